"""Swapout as one op (Singh, Hoiem and Forsyth 2016, "Swapout: learning an ensemble of deep architectures", NIPS):
the sum of a residual unit, y = x + F(x), with each of its two terms kept or dropped at random, unit by unit.

    y = Θ1 ⊙ x + Θ2 ⊙ F(x),      Θ1 ~ Bernoulli(θ1), Θ2 ~ Bernoulli(θ2), independent, one value per unit

Each output unit reports one of four things: 0 (both dropped), x (the unit skips the block), F(x) (a plain
feed-forward unit) or x + F(x) (a residual unit). The methods it generalizes are masks of a special form:

* residual block:    θ1 = θ2 = 1              (both masks all ones: y = x + F(x), nothing drawn);
* dropout of F(x):   θ1 = 0, θ2 = 1 - p       (y = m ⊙ F(x), so ``dropout(F(x), p)`` is
  ``swapout(x, F(x), 0, 1 - p) * (1 / (1 - p))`` bit for bit: dropout scales its survivors by 1 / (1 - p) in
  training and swapout does not);
* stochastic depth:  θ1 = 1, θ2 = p, ``per="batch"`` (Huang et al.: one draw per mini-batch for the whole block,
  as ``nn.StochasticDepth`` and ``nn.ResidualBlock(survival_prob=p)``) or ``per="sample"`` (one draw per sample,
  torchvision's ``stochastic_depth(mode="row")``, without its 1 / p scaling).

Inference, as the paper compares it: *deterministic* inference replaces each mask by its expectation,
y = θ1·x + θ2·F(x) (``training=False``); *stochastic* inference keeps drawing masks and averages the outputs of k
forward passes (``training=True`` at evaluation time: ``nn.Swapout(inference="stochastic")`` and
``nn.stochastic_inference``). For one swapout the two agree in expectation, since y is linear in the masks; through
the nonlinearities of a deep network they do not, which is why the paper prefers stochastic inference.
"""

from __future__ import annotations

import numbers

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.autograd.function import device_mismatch
from tinygrad_edu.nn.functional._activation_args import check_float
from tinygrad_edu.ops import unbroadcast
from tinygrad_edu.tensor import Tensor

#: What one mask value covers: one unit (element), one sample (all of axis 0's slice), or the whole batch.
PER = ("unit", "sample", "batch")


def _aligned(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[int, int]]:
    """The sides of ``a`` and ``b`` axis by axis, the shorter shape padded with leading 1s (NumPy's alignment)."""
    return list(zip((1,) * (len(b) - len(a)) + tuple(a), (1,) * (len(a) - len(b)) + tuple(b)))


def broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Do shapes ``a`` and ``b`` broadcast together? (Each pair of aligned sides is equal or contains a 1.)"""
    return all(m == n or 1 in (m, n) for m, n in _aligned(a, b))


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``a`` and ``b`` broadcast together, for shapes that ``broadcasts`` accepts."""
    return tuple(n if m == 1 else m for m, n in _aligned(a, b))


class SwapoutFunction(Function):
    """y = Θ1 ⊙ x + Θ2 ⊙ Fx for x and Fx = F(x) of one shape (or two shapes that broadcast, as a residual sum does).

    Each mask is drawn once, in forward, from the backend's seeded generator (``ctx.backend.bernoulli``, Θ1 first,
    then Θ2) and saved. ``per`` sets its shape, broadcast over the output's shape S:

        "unit"   S                      one Bernoulli per element (swapout)
        "sample" (S[0], 1, ..., 1)      one per sample, for all its units (per-sample stochastic depth)
        "batch"  (1, 1, ..., 1)         one per call, for the whole batch (Huang et al.'s stochastic depth)

    θ = 0 or θ = 1 is a mask of all zeros or all ones: the constant 0.0 or 1.0, nothing drawn. ``draw=False``
    is deterministic inference: each mask is its expectation θ (a constant again). The masks are constants of the
    op, so with g = dL/dy the backward is the same products:

        dx  = Θ1 ⊙ g        dFx = Θ2 ⊙ g

    each summed over the axes its input was broadcast along (``unbroadcast``, as for ``+``).
    """

    @staticmethod
    def mask_shape(shape: tuple[int, ...], per: str) -> tuple[int, ...]:
        """The shape of one mask for an output of ``shape`` (see the class docstring)."""
        if per == "unit":
            return tuple(shape)
        if per == "sample":
            return tuple(shape[:1]) + (1,) * (len(shape) - 1)
        return (1,) * len(shape)

    @staticmethod
    def mask(backend, theta: float, shape: tuple[int, ...], dtype, draw: bool):
        """Θ ~ Bernoulli(θ) of ``shape`` from ``backend``'s generator; the constant θ where θ is 0 or 1 or nothing is
        drawn (deterministic inference: Θ replaced by E[Θ] = θ)."""
        if not draw or theta in (0.0, 1.0):
            return theta
        return backend.bernoulli(shape, theta, dtype)

    @staticmethod
    def forward(ctx, x, fx, theta1=0.5, theta2=0.5, per="unit", draw=True):
        shape = ctx.mask_shape(broadcast_shape(x.shape, fx.shape), per)
        backend = ctx.backend
        dtype = backend.numpy_dtype(x.dtype)
        theta_1 = ctx.mask(backend, theta1, shape, dtype, draw)  # Θ1, drawn first
        theta_2 = ctx.mask(backend, theta2, shape, dtype, draw)  # Θ2
        ctx.save_for_backward(theta_1, theta_2)
        ctx.shapes = tuple(x.shape), tuple(fx.shape)
        return theta_1 * x + theta_2 * fx

    @staticmethod
    def backward(ctx, g):
        theta_1, theta_2 = ctx.saved_tensors
        x_shape, fx_shape = ctx.shapes
        dx = unbroadcast(ctx.xp, theta_1 * g, x_shape) if ctx.needs_input_grad[0] else None
        dfx = unbroadcast(ctx.xp, theta_2 * g, fx_shape) if ctx.needs_input_grad[1] else None
        return dx, dfx


def check_theta(op: str, name: str, theta: object) -> float:
    """``theta`` (a keep probability) as a float in [0, 1]; TypeError for a non-number, InputError outside."""
    if isinstance(theta, bool) or not isinstance(theta, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(theta).__name__}")
    if not 0 <= theta <= 1:  # also refuses NaN
        raise InputError(f"{op}: {name} is a keep probability and must be in [0, 1], got {float(theta)}")
    return float(theta)


def check_per(op: str, per: object) -> str:
    """``per`` as one of ``PER``; InputError otherwise."""
    if per not in PER:
        raise InputError(f"{op}: per must be one of {', '.join(map(repr, PER))}, got {per!r}")
    return str(per)


def swapout(
    x: Tensor,
    fx: Tensor,
    theta1: float = 0.5,
    theta2: float = 0.5,
    training: bool = True,
    per: str = "unit",
) -> Tensor:
    """Swapout of a residual unit's two terms (Singh et al. 2016): ``Θ1 ⊙ x + Θ2 ⊙ fx`` with fresh masks
    Θ1 ~ Bernoulli(``theta1``) and Θ2 ~ Bernoulli(``theta2``) when ``training``; the expectation
    ``theta1 * x + theta2 * fx`` (deterministic inference) otherwise.

    ``x`` is the block's input (its shortcut), ``fx`` = F(x) its branch: floating-point tensors of one dtype, on one
    device, of shapes that broadcast. ``theta1`` and ``theta2`` are KEEP probabilities in [0, 1] (dropout's p is a
    drop probability); 0 and 1 draw nothing. ``per``: ``"unit"`` (one mask value per element, the paper's swapout),
    ``"sample"`` (one per sample, along axis 0) or ``"batch"`` (one per call). Nothing is scaled: survivors are not
    divided by θ, so the deterministic output is the expected training output.

    Special cases, value for value (the same seed draws the same masks):

    * ``swapout(x, fx, 1, 1)`` is ``x + fx`` (a residual sum; no random number drawn);
    * ``swapout(x, fx, 0, 1 - p) * (1 / (1 - p))`` is ``dropout(fx, p)``;
    * ``swapout(x, fx, 1, p, per="batch")`` is stochastic depth, ``x + b·fx`` with one b ~ Bernoulli(p).
    """
    op = "swapout"
    theta1, theta2 = check_theta(op, "theta1", theta1), check_theta(op, "theta2", theta2)
    per = check_per(op, per)
    check_float(op, "x", x)
    check_float(op, "fx", fx)
    if x.dtype != fx.dtype:
        raise TypeError(f"{op}: x and fx must have the same dtype, got {x.dtype} and {fx.dtype}")
    if x.backend is not fx.backend:
        raise device_mismatch(op, (x, fx))
    if not broadcasts(x.shape, fx.shape):
        raise InputError(f"{op}: x of shape {tuple(x.shape)} and fx of shape {tuple(fx.shape)} do not broadcast "
                         f"together (a residual sum x + F(x) needs them to)")
    if per == "sample" and x.ndim == fx.ndim == 0:
        raise InputError(f"{op}: per='sample' needs a batch axis (axis 0), got 0-d inputs")
    return SwapoutFunction.apply(x, fx, theta1=theta1, theta2=theta2, per=per, draw=bool(training))
