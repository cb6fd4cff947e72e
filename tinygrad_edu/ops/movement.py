"""Ops that move elements without changing them: each backward moves the gradient back the same way.

reshape <-> reshape back; permute <-> the inverse permutation; expand (broadcast) <-> sum over the copies;
indexing <-> write (scatter-add) the gradient into a zero array at the same positions; concatenate <-> slice;
pad <-> slice out the interior.
"""

from __future__ import annotations

from tinygrad_edu.autograd import Function
from tinygrad_edu.ops.broadcast import unbroadcast


class Reshape(Function):
    """z = x viewed with another shape of the same size;  dL/dx = g reshaped to x's shape."""

    _view = True  # the output may share memory with x: it shares x's version counter (in-place safety)

    @staticmethod
    def forward(ctx, x, shape):
        ctx.x_shape = tuple(x.shape)
        return ctx.xp.reshape(x, shape)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.reshape(g, ctx.x_shape)


class Permute(Function):
    """z = x with its axes reordered (z.shape[i] = x.shape[dims[i]]);  dL/dx = g permuted by the inverse order."""

    _view = True  # the output may share memory with x: it shares x's version counter (in-place safety)

    @staticmethod
    def forward(ctx, x, dims):
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return ctx.xp.permute_dims(x, dims)

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.permute_dims(g, ctx.inverse)


class Expand(Function):
    """z = x broadcast to ``shape`` (no copy);  dL/dx = g summed over the broadcast axes."""

    _view = True  # the output may share memory with x: it shares x's version counter (in-place safety)

    @staticmethod
    def forward(ctx, x, shape):
        ctx.x_shape = tuple(x.shape)
        return ctx.xp.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(ctx.xp, g, ctx.x_shape)


class GetItem(Function):
    """z = x[index];  dL/dx = zeros with g added at the indexed positions.

    Slices, integers, ``None`` and boolean masks pick each element at most once, so the gradient is written with an
    assignment. Integer-array indices may pick an element several times (``x[[0, 0]]``): those gradients must add
    up, which is the backend's scatter-add. One 1-D integer array among full slices (``x[:, [2, 0]]``) picks along
    one axis: that is the standard's ``take``.
    """

    _view = True  # the output may share memory with x: it shares x's version counter (in-place safety)

    @staticmethod
    def forward(ctx, x, index):
        xp = ctx.xp
        ctx.x_shape, ctx.index = tuple(x.shape), index
        arrays = [i for i in index if hasattr(i, "dtype")]
        ctx.repeats = any(i.dtype != xp.bool for i in arrays)
        if len(arrays) == 1 and ctx.repeats and arrays[0].ndim == 1:
            axis = _take_axis(index, x.ndim)
            if axis is not None:
                return xp.take(x, arrays[0], axis=axis)
        if len(index) == 1 and arrays:
            return x[index[0]]  # a lone boolean mask (or n-d integer array)
        if any(i is None for i in index):  # backward writes through the index without its new axes
            ctx.plain_index = tuple(i for i in index if i is not None)
            ctx.plain_shape = tuple(x[ctx.plain_index].shape)
        return x[index]

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        grad = xp.zeros(ctx.x_shape, dtype=g.dtype, device=g.device)
        index = ctx.index
        if ctx.repeats:
            ctx.backend.scatter_add(grad, index, g)
            return grad
        if hasattr(ctx, "plain_index"):
            index, g = ctx.plain_index, xp.reshape(g, ctx.plain_shape)
        grad[index[0] if len(index) == 1 and hasattr(index[0], "dtype") else index] = g
        return grad


def _take_axis(index, ndim):
    """The axis of the one integer array in ``index`` if every other item is ``:`` (or one ``...``), else None."""
    ellipses = [k for k, i in enumerate(index) if i is Ellipsis]
    items = [i for i in index if i is not Ellipsis]
    position = next(k for k, i in enumerate(items) if hasattr(i, "dtype"))
    if len(ellipses) > 1 or not all(i == slice(None) for k, i in enumerate(items) if k != position):
        return None
    if ellipses and ellipses[0] <= position:  # the array counts from the end
        return ndim - (len(items) - position)
    return position


class Concatenate(Function):
    """z = [x₁, x₂, ...] joined along ``axis``;  dL/dxᵢ = the slice of g where xᵢ went."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        return ctx.xp.concat(xs, axis=ctx.axis)

    @staticmethod
    def backward(ctx, g):
        grads, start = [], 0
        for size in ctx.sizes:
            grads.append(g[(slice(None),) * ctx.axis + (slice(start, start + size), Ellipsis)])
            start += size
        return tuple(grads)


class Pad(Function):
    """z = x surrounded by zeros (``pad_width[i] = (before, after)`` on axis i);  dL/dx = the interior of g."""

    @staticmethod
    def forward(ctx, x, pad_width):
        xp = ctx.xp
        shape = tuple(n + before + after for n, (before, after) in zip(x.shape, pad_width))
        ctx.interior = tuple(slice(before, before + n) for n, (before, _) in zip(x.shape, pad_width)) + (Ellipsis,)
        out = xp.zeros(shape, dtype=x.dtype, device=x.device)
        out[ctx.interior] = x
        return out

    @staticmethod
    def backward(ctx, g):
        return g[ctx.interior]
