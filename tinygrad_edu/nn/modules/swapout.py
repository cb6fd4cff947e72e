"""Swapout (Singh, Hoiem and Forsyth 2016, "Swapout: learning an ensemble of deep architectures", NIPS) as layers:

* ``Swapout``: the combining layer y = Θ1 ⊙ x + Θ2 ⊙ F(x) of two tensors (``F.swapout``), as ``nn.Dropout`` is of one;
* ``SwapoutBlock``: ``ResidualBlock``'s branch and shortcut, summed by a swapout: y = relu(Θ1 ⊙ shortcut(x) + Θ2 ⊙ F(x));
* ``swapout_schedule``: θ per block over depth, the paper's ``Linear(1, θ_L)`` and ``Uniform(θ)``;
* ``stochastic_inference``: the average of k forward passes with masks drawn (the paper's stochastic inference),
  beside the deterministic inference of ``.eval()`` (each mask replaced by its expectation θ).

Deterministic or stochastic inference? In ``.eval()`` a swapout layer outputs θ1·x + θ2·F(x), the expectation of its
training output for the input it is given. Through a deep network the expectations do not compose: E[relu(y)] is
not relu(E[y]), and a later block sees the averaged, not the sampled, activations (batch norm's statistics were
measured on sampled ones). The paper finds stochastic inference, which averages sampled networks, more accurate
once it averages enough samples; ``stochastic_inference`` lets a user measure the gap on their own model.
"""

from __future__ import annotations

import numbers
from typing import Any

from tinygrad_edu.autograd import InputError, no_grad
from tinygrad_edu.backend import manual_seed
from tinygrad_edu.nn.functional import relu
from tinygrad_edu.nn.functional.swapout import check_per, check_theta, swapout
from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.nn.modules.residual import ResidualBlock
from tinygrad_edu.tensor import Tensor

#: How a swapout layer evaluates in ``.eval()``: masks replaced by their expectation, or drawn as in training.
INFERENCE = ("deterministic", "stochastic")


def _options(layer: str, theta1: Any, theta2: Any, per: Any, inference: Any) -> tuple[float, float, str, str]:
    """The checked options of a swapout layer; a bad value raises ValueError (as PyTorch's constructors do)."""
    try:
        theta1, theta2 = check_theta(layer, "theta1", theta1), check_theta(layer, "theta2", theta2)
        per = check_per(layer, per)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    if inference not in INFERENCE:
        raise ValueError(f"{layer}: inference must be 'deterministic' or 'stochastic', got {inference!r}")
    return theta1, theta2, per, inference


class _SwapoutLayer:
    """What ``Swapout`` and ``SwapoutBlock`` share: θ1, θ2, ``per``, ``inference``, and when masks are drawn."""

    theta1: float
    theta2: float
    per: str
    inference: str
    training: bool

    @property
    def draws(self) -> bool:
        """Are masks drawn in this call? In training, and in evaluation with ``inference="stochastic"``."""
        return self.training or self.inference == "stochastic"

    def swapout_repr(self) -> str:
        return f"theta1={self.theta1}, theta2={self.theta2}, per={self.per!r}, inference={self.inference!r}"


class Swapout(_SwapoutLayer, Module):
    """y = Θ1 ⊙ x + Θ2 ⊙ F(x) (``F.swapout``), called as ``layer(x, fx)`` with x a block's input and fx = F(x):

        training (``.train()``):  Θ1 ~ Bernoulli(theta1), Θ2 ~ Bernoulli(theta2), drawn per ``per`` every call
        evaluation (``.eval()``): θ1·x + θ2·F(x)  (deterministic inference, the default), or masks drawn as in
                                  training with ``inference="stochastic"`` (average calls: ``stochastic_inference``)

    ``theta1`` and ``theta2`` are keep probabilities in [0, 1]; ``per`` is ``"unit"`` (swapout), ``"sample"`` or
    ``"batch"`` (see ``F.swapout``). ``Swapout(1, 1)`` is the residual sum x + F(x), ``Swapout(0, 1 - p)`` is
    dropout of F(x) without the 1 / (1 - p) scaling, ``Swapout(1, p, per="batch")`` is stochastic depth.
    """

    def __init__(self, theta1: float = 0.5, theta2: float = 0.5, per: str = "unit", inference: str = "deterministic"):
        super().__init__()
        self.theta1, self.theta2, self.per, self.inference = _options("Swapout", theta1, theta2, per, inference)

    def forward(self, x: Tensor, fx: Tensor) -> Tensor:
        return swapout(x, fx, self.theta1, self.theta2, training=self.draws, per=self.per)

    def extra_repr(self) -> str:
        return self.swapout_repr()


class SwapoutBlock(_SwapoutLayer, ResidualBlock):
    """ResNet's basic block (``ResidualBlock``: the same branch F, shortcut and parameters) whose sum is a swapout:

        F(x) = BN(conv3x3(relu(BN(conv3x3_stride(x)))))
        y    = relu(Θ1 ⊙ shortcut(x) + Θ2 ⊙ F(x))            (training; Θ1, Θ2 as in ``Swapout``)
        y    = relu(θ1·shortcut(x) + θ2·F(x))                (``.eval()``, deterministic inference)

    (Singh et al. 2016: swapout applied to the sum of a residual unit, with ResidualBlock's ReLU after it.) The branch
    is computed in every call, also where all of Θ2 is 0: per-unit masks need it. ``SwapoutBlock(theta1=1,
    theta2=p, per="batch")`` gives the outputs of ``ResidualBlock(survival_prob=p)`` (stochastic depth) for the same
    seed and parameters; the one difference is that a dropped ResidualBlock skips its branch, and with it the
    update of the branch's batch-norm running statistics. Give the blocks of a network their θ by depth with
    ``swapout_schedule``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "projection",
                 theta1: float = 0.5, theta2: float = 0.5, per: str = "unit", inference: str = "deterministic",
                 device: str | None = None, dtype=None):
        options = _options("SwapoutBlock", theta1, theta2, per, inference)  # checked before anything is built
        super().__init__(in_channels, out_channels, stride, shortcut, device=device, dtype=dtype)
        self.theta1, self.theta2, self.per, self.inference = options

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        branch = self.residual(x)
        return relu(swapout(self.shortcut(x), branch, self.theta1, self.theta2, training=self.draws, per=self.per))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}, "
                f"shortcut={self.shortcut_kind!r}, {self.swapout_repr()}")


def swapout_schedule(L: int, end: float = 0.5, rule: str = "linear", start: float = 1.0) -> list[float]:
    """Keep probabilities θ_1 .. θ_L of L swapout blocks, input to output (Singh et al. 2016's schedules, used for
    θ1 = θ2 = θ_l in block l):

    * ``"linear"``: the paper's Linear(start, end), θ_l = start + (end - start)·(l - 1)/(L - 1), from ``start``
      (default 1: the first block is a plain residual block) at block 1 down to ``end`` at block L, equally spaced;
      both ends exact. A single block gets ``end``. (Stochastic depth's rule, ``survival_probabilities``, differs:
      p_l = 1 - (l/L)(1 - q) starts below 1.) Like stochastic depth, it keeps the early blocks, whose features
      every later block uses, most often;
    * ``"uniform"``: the paper's Uniform(end), θ_l = ``end`` for every block (``start`` is not used).
    """
    if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
        raise ValueError(f"swapout_schedule: L must be a positive int, got {L!r}")
    for name, value in (("end", end), ("start", start)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"swapout_schedule: {name} must be a keep probability in [0, 1], got {value!r}")
    start, end = float(start), float(end)
    if rule == "linear":
        if L == 1:
            return [end]
        weights = [(l - 1) / (L - 1) for l in range(1, L + 1)]  # noqa: E741 - the paper's l
        return [(1 - w) * start + w * end for w in weights]  # exact at w = 0 and w = 1
    if rule == "uniform":
        return [end] * int(L)
    raise ValueError(f"swapout_schedule: rule must be 'linear' or 'uniform', got {rule!r}")


def stochastic_inference(model: Module, *inputs: Any, samples: int = 30, seed: int | None = None) -> Tensor:
    """The paper's stochastic inference: the mean of ``samples`` outputs of ``model(*inputs)``, each pass with fresh
    swapout masks, (1/k) Σ_i model(x; Θ^(i)), computed without recording gradients (under ``no_grad``).

    Every ``Swapout`` and ``SwapoutBlock`` inside ``model`` (``model`` itself included) draws its masks for the
    duration of the call (``inference="stochastic"``), then gets its own setting back; nothing else changes mode.
    Call ``model.eval()`` first, so that batch norm uses its running statistics, as at test time. ``seed``: an int
    restarts the random generator first (``tinygrad_edu.manual_seed(seed)``, every device, so what is drawn after
    the call is reproducible too); None (default) draws from the generator as it is.

    For a single swapout the mean converges to the deterministic output θ1·x + θ2·F(x) (its expectation), with a
    standard error shrinking as 1/sqrt(k); for a deep network it converges to E[model(x)], which deterministic
    inference (``model.eval()`` alone) only approximates. ``model(*inputs)`` minus this is the gap between the two.
    """
    if not isinstance(model, Module):
        raise TypeError(f"stochastic_inference: model must be a Module, got {type(model).__name__}")
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
        raise ValueError(f"stochastic_inference: samples must be a positive int, got {samples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"stochastic_inference: seed must be an int or None, got {type(seed).__name__}")
    layers = [m for _, m in model.named_modules() if isinstance(m, _SwapoutLayer)]
    if not layers:
        raise ValueError(f"stochastic_inference: {type(model).__name__} has no Swapout or SwapoutBlock layer, so "
                         f"every pass would give the same output")
    settings = [layer.inference for layer in layers]
    if seed is not None:
        manual_seed(int(seed))
    try:
        for layer in layers:
            layer.inference = "stochastic"
        with no_grad():
            total = None
            for _ in range(int(samples)):
                out = model(*inputs)
                if not isinstance(out, Tensor):
                    raise TypeError(f"stochastic_inference: the model must return a Tensor, got {type(out).__name__}")
                dtype = out.dtype
                out = out.astype("float32") if dtype.itemsize < 4 else out  # float16 outputs: summed in float32
                total = out if total is None else total + out
            mean = (total / int(samples)).astype(dtype)
    finally:
        for layer, setting in zip(layers, settings):
            layer.inference = setting
    return mean
