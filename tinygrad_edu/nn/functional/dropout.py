"""Inverted dropout as one op (Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks from
overfitting"): in training every unit is kept with probability 1 - p and scaled by 1 / (1 - p), so the expected
output equals the input and the network is used untouched at test time."""

from __future__ import annotations

import numbers

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor


class DropoutFunction(Function):
    """y = x ⊙ m / (1 - p), with m ~ Bernoulli(1 - p) drawn elementwise, once, in forward (E[y] = x).

    The mask is a constant of the op, so the backward is the same product:

        dx = dy ⊙ m / (1 - p)

    The mask comes from the backend's seeded generator (``ctx.backend.bernoulli``): ``manual_seed`` reproduces it.
    Forward saves m (0 or 1, in x's dtype) for backward; nothing is drawn again there.
    """

    @staticmethod
    def mask_shape(x) -> tuple[int, ...]:
        """One mask value per element (Dropout2d overrides this: one per channel)."""
        return tuple(x.shape)

    @staticmethod
    def forward(ctx, x, p=0.5):
        backend = ctx.backend
        m = backend.bernoulli(ctx.mask_shape(x), 1 - p, backend.numpy_dtype(x.dtype))
        ctx.save_for_backward(m)
        ctx.scale = 1 / (1 - p)
        return x * m * ctx.scale

    @staticmethod
    def backward(ctx, dy):
        (m,) = ctx.saved_tensors
        return dy * m * ctx.scale


def check_p(op: str, p: object) -> float:
    """``p`` as a float in [0, 1); TypeError for a non-number, InputError outside the range (``p = 1`` would scale
    by 1 / 0)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a real number, got {type(p).__name__}")
    if not 0 <= p < 1:
        raise InputError(f"{op}: p must be in [0, 1), got {float(p)}")
    return float(p)


def check_float_input(op: str, x: object) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:  # noqa: A002 - PyTorch's name
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) in training; the input itself
    when ``training`` is False or p == 0 (``torch.nn.functional.dropout``)."""
    p = check_p("dropout", p)
    check_float_input("dropout", input)
    if not training or p == 0:
        return input
    return DropoutFunction.apply(input, p=p)
