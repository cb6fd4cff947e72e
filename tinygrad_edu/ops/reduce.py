"""Reductions over axes: sum, mean, max, min, var (``axis`` None or a sorted tuple of axes, ``keepdims``).

Each backward first restores the reduced axes of g as size-1 axes (``_keep``), then broadcasts it back over them.
Low-precision inputs (float16, bfloat16) are accumulated in float32 (``accumulating_sum``) and the result is rounded
to their dtype once.
"""

from __future__ import annotations

import math

from tinygrad_edu.autograd import Function
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.ops.broadcast import accumulating_sum, scaled


def _keep(xp, g, x_shape, axis, keepdims):
    """g reshaped so the reduced axes are present with size 1 (ready to broadcast against x)."""
    if keepdims:
        return g
    axes = range(len(x_shape)) if axis is None else axis
    shape = tuple(1 if i in axes else n for i, n in enumerate(x_shape))
    return xp.reshape(g, shape)


def _spread(xp, g, x_shape):
    """g broadcast back over the reduced axes, as a new array (a broadcast view would be read-only in NumPy)."""
    return xp.asarray(xp.broadcast_to(g, x_shape), copy=True)


def _count(x_shape, axis):
    """How many elements each output element reduces."""
    return math.prod(x_shape) if axis is None else math.prod(x_shape[i] for i in axis)


class Sum(Function):
    """z = Σ x over the axes;  dL/dx = g broadcast back over the axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.x_shape, ctx.axis, ctx.keepdims = tuple(x.shape), axis, keepdims
        return accumulating_sum(ctx.xp, x, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _spread(ctx.xp, _keep(ctx.xp, g, ctx.x_shape, ctx.axis, ctx.keepdims), ctx.x_shape)


class Mean(Function):
    """z = (1/n) Σ x over the axes;  dL/dx = g / n broadcast back over the axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.x_shape, ctx.axis, ctx.keepdims = tuple(x.shape), axis, keepdims
        ctx.n = _count(ctx.x_shape, axis)
        return accumulating_sum(ctx.xp, x, axis=axis, keepdims=keepdims, divide_by=ctx.n)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        return _spread(xp, scaled(xp, _keep(xp, g, ctx.x_shape, ctx.axis, ctx.keepdims), 1 / ctx.n), ctx.x_shape)


class _Extremum(Function):
    """z = max (or min) of x over the axes;  dL/dx = g / k at each of the k elements equal to z, 0 elsewhere.

    Sharing the gradient among ties is what central differences measure, and keeps Σ dL/dx = g. A NaN is the
    extreme of its group (NaN propagates, as in PyTorch), so the NaNs share the gradient: max([1, NaN, 3]) sends
    g to the NaN.
    """

    reduce_name = ""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = ctx.xp
        z = getattr(xp, ctx.reduce_name)(x, axis=axis, keepdims=True)
        ctx.save_for_backward(x, z)
        ctx.x_shape, ctx.axis, ctx.keepdims = tuple(x.shape), axis, keepdims
        return z if keepdims else xp.reshape(z, tuple(n for i, n in enumerate(x.shape) if axis is not None and i not in axis))

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, z = ctx.saved_tensors
        is_extreme = xp.astype((x == z) | (xp.isnan(x) & xp.isnan(z)), g.dtype)  # (NaN == NaN is False)
        ties = xp.sum(is_extreme, axis=ctx.axis, keepdims=True)
        return is_extreme * (_keep(xp, g, ctx.x_shape, ctx.axis, ctx.keepdims) / ties)


class Max(_Extremum):
    """z = max of x over the axes; tied maxima share the gradient (see ``_Extremum``)."""

    reduce_name = "max"


class Min(_Extremum):
    """z = min of x over the axes; tied minima share the gradient (see ``_Extremum``)."""

    reduce_name = "min"


class Var(Function):
    """v = Σ (x - m)² / (n - correction), m the mean over the axes;  dL/dx = g · 2 (x - m) / (n - correction).

    (The term through m vanishes: Σ (x - m) = 0.) With n - correction <= 0 the divisor is 0, as in PyTorch: the
    variance is inf (NaN where every x equals m: 0/0), and so is its gradient.
    Low-precision inputs (float16, bfloat16) are centered, squared and summed in float32.
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        xp = ctx.xp
        n = _count(tuple(x.shape), axis)
        xf = xp.astype(x, xp.float32) if is_low_precision(x.dtype) else x
        centered = xf - xp.mean(xf, axis=axis, keepdims=True)
        ctx.save_for_backward(centered)
        ctx.x_shape, ctx.axis, ctx.keepdims = tuple(x.shape), axis, keepdims
        ctx.inverse_dof = 1 / (n - correction) if n > correction else math.inf
        v = xp.sum(centered * centered, axis=axis, keepdims=keepdims) * ctx.inverse_dof
        return xp.astype(v, x.dtype)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (centered,) = ctx.saved_tensors
        return _keep(xp, g, ctx.x_shape, ctx.axis, ctx.keepdims) * (2 * ctx.inverse_dof) * centered
