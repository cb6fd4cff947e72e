"""Residual learning (He, Zhang, Ren and Sun 2016, "Deep residual learning for image recognition") and stochastic
depth (Huang, Sun, Liu, Sedra and Weinberger 2016, "Deep networks with stochastic depth").

* ``ResidualBlock``: the basic two-layer block of ResNets, y = relu(F(x) + shortcut(x));
* ``StochasticDepth``: a residual connection y = x + b·F(x) around any branch F, b ~ Bernoulli(p) in training;
* ``survival_probabilities`` and ``expected_active_blocks``: the survival rules of the stochastic depth paper.

Stochastic depth in one paragraph: in training, each residual block l survives a mini-batch with probability p_l
(one Bernoulli draw per forward call, from the backend's generator, ``tinygrad_edu.manual_seed``); a dropped block
is its shortcut alone, and its branch is not computed at all (the saving in training time). At test time every
branch is on, scaled by its survival probability: y = relu(p_l·F(x) + shortcut(x)), the expected training output
(as dropout's scaling, here at test time rather than in training).
"""

from __future__ import annotations

import numbers
from typing import Any

from tinygrad_edu.autograd import InputError, capture
from tinygrad_edu.nn.functional import relu
from tinygrad_edu.nn.modules.activation import ReLU
from tinygrad_edu.nn.modules.batchnorm import BatchNorm2d
from tinygrad_edu.nn.modules.container import Sequential
from tinygrad_edu.nn.modules.conv import Conv2d
from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.tensor import Tensor


def _check_survival(layer: str, p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"{layer}: survival_prob must be a number in (0, 1], got {p!r}")
    return float(p)


def _survives(x: Tensor, p: float) -> bool:
    """One Bernoulli(p) draw from the generator of ``x``'s backend: does the branch run in this forward call?"""
    if p >= 1.0:
        return True
    capture.unreplayable("stochastic depth draws on the host whether its branch runs (the ops differ from call to "
                         "call)")
    draw = x.backend.bernoulli((), p, "float32")
    return bool(float(x.backend.to_host(draw)) > 0.5)


class ResidualBlock(Module):
    """The basic block of ResNets (He et al. 2016, Fig. 2 left, with batch normalization after each convolution):

        F(x) = BN(conv3x3(relu(BN(conv3x3_stride(x)))))
        y    = relu(F(x) + shortcut(x))

    ``shortcut`` is the identity when ``in_channels == out_channels`` and ``stride == 1``. Otherwise it matches
    F(x)'s shape in one of the paper's two ways (Sec. 3.3):

    * ``"projection"`` (option B): a 1×1 convolution with the block's stride, no bias, then batch normalization;
    * ``"zeros"`` (option A, no parameters): x subsampled with the stride (x[:, :, ::s, ::s], what a 1×1 stride-s
      convolution reads) and padded with ``out_channels - in_channels`` channels of zeros after its own
      (needs ``out_channels >= in_channels``).

    The 3×3 convolutions have padding 1 and no bias (the batch norm after them has one). ``survival_prob`` p < 1
    turns on stochastic depth (Huang et al. 2016): in training, with probability 1 - p the block is
    relu(shortcut(x)) and F is not evaluated; at test time (``.eval()``) y = relu(p·F(x) + shortcut(x)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "projection",
                 survival_prob: float = 1.0, device: str | None = None, dtype=None):
        super().__init__()
        layer = type(self).__name__  # errors name the class built (SwapoutBlock is a subclass)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
        if shortcut not in ("projection", "zeros"):
            raise ValueError(f"{layer}: shortcut must be 'projection' or 'zeros', got {shortcut!r}")
        if shortcut == "zeros" and out_channels < in_channels:
            raise ValueError(f"{layer}: the 'zeros' shortcut pads channels, so it needs out_channels >= "
                             f"in_channels, got in_channels={in_channels}, out_channels={out_channels}")
        self.in_channels, self.out_channels, self.stride = int(in_channels), int(out_channels), int(stride)
        self.shortcut_kind = shortcut
        self.survival_prob = _check_survival(layer, survival_prob)
        kw = {"device": device, "dtype": dtype}
        self.residual = Sequential(  # F(x)
            Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, **kw),
            BatchNorm2d(out_channels, **kw),
            ReLU(),
            Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False, **kw),
            BatchNorm2d(out_channels, **kw),
        )
        self.changes_shape = in_channels != out_channels or stride != 1
        if self.changes_shape and shortcut == "projection":
            self.projection = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, **kw),
                                         BatchNorm2d(out_channels, **kw))
        else:
            self.projection = None

    def shortcut(self, x: Tensor) -> Tensor:
        """The identity, the projection, or the zero-padded subsampled identity (see the class docstring)."""
        if not self.changes_shape:
            return x
        if self.projection is not None:
            return self.projection(x)
        s = self.stride
        sub = x[:, :, ::s, ::s] if s > 1 else x
        extra = self.out_channels - self.in_channels
        return sub.pad(((0, 0), (0, extra), (0, 0), (0, 0))) if extra else sub

    def check_input(self, x: Tensor) -> None:
        """TypeError unless ``x`` is a Tensor, InputError unless its shape is (N, in_channels, H, W)."""
        layer = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{layer}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"{layer}: expected an input of shape (N, {self.in_channels}, H, W), got shape "
                             f"{tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        p = self.survival_prob
        if self.training:
            if not _survives(x, p):
                return relu(self.shortcut(x))  # a dropped block: F is not computed
            return relu(self.residual(x) + self.shortcut(x))
        branch = self.residual(x)
        return relu((branch * p if p < 1 else branch) + self.shortcut(x))

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}, "
                f"shortcut={self.shortcut_kind!r}, survival_prob={self.survival_prob}")


class StochasticDepth(Module):
    """A residual connection with stochastic depth around any branch F (a Module whose output has x's shape):

        training:    y = x + b·F(x),   b ~ Bernoulli(p), one draw per call; b = 0 returns x without calling F
        evaluation:  y = x + p·F(x)

    (Huang et al. 2016, Eq. 2 and 4, without the final ReLU; ``ResidualBlock(survival_prob=p)`` is the ReLU form.)
    """

    def __init__(self, block: Module, survival_prob: float):
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"StochasticDepth: block must be a Module, got {type(block).__name__}")
        self.block = block
        self.survival_prob = _check_survival("StochasticDepth", survival_prob)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"StochasticDepth: input must be a Tensor, got {type(x).__name__}")
        p = self.survival_prob
        if self.training:
            return x + self.block(x) if _survives(x, p) else x
        return x + self.block(x) * p

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob}"


def survival_probabilities(L: int, q: float = 0.5, rule: str = "linear") -> list[float]:
    """Survival probabilities p_1 .. p_L of L residual blocks (Huang et al. 2016, Sec. 3), q = p_L:

    * ``"linear"`` decay: p_l = 1 - (l / L)(1 - q), from nearly 1 at the input down to q at the last block (the
      early blocks, which extract low-level features every later block uses, survive most often);
    * ``"uniform"``: p_l = q for every block.
    """
    if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
        raise ValueError(f"survival_probabilities: L must be a positive int, got {L!r}")
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 < q <= 1:
        raise ValueError(f"survival_probabilities: q must be a number in (0, 1], got {q!r}")
    if rule == "linear":
        return [1 - (l / L) * (1 - q) for l in range(1, L + 1)]  # noqa: E741 - the paper's l
    if rule == "uniform":
        return [float(q)] * int(L)
    raise ValueError(f"survival_probabilities: rule must be 'linear' or 'uniform', got {rule!r}")


def expected_active_blocks(probs: Any) -> float:
    """E[number of surviving blocks] = Σ_l p_l. For linear decay with q = 0.5 it is (3L - 1) / 4, the paper's
    "approximately 3L/4" (Σ_l (1 - l/(2L)) = L - (L + 1)/4): a quarter of the blocks are skipped on average."""
    probs = [float(p) for p in probs]
    if any(not 0 <= p <= 1 for p in probs):
        raise ValueError(f"expected_active_blocks: probabilities must lie in [0, 1], got {probs}")
    return float(sum(probs))
