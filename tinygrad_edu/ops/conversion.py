"""Changing dtype or device: the gradient goes back the other way (cast back, moved back)."""

from __future__ import annotations

from tinygrad_edu.autograd import Function


class Cast(Function):
    """z = x converted to ``dtype``;  dL/dx = g converted back to x's dtype."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.x_dtype = x.dtype
        return ctx.xp.astype(x, ctx.backend.dtype(dtype))

    @staticmethod
    def backward(ctx, g):
        return ctx.xp.astype(g, ctx.x_dtype)


class ToDevice(Function):
    """z = x copied to another device (through host memory);  dL/dx = g copied back to x's device."""

    @staticmethod
    def forward(ctx, x, target):
        ctx.source = ctx.backend
        ctx.backend = target  # the output lives on the target backend
        return target.from_host(ctx.source.to_host(x).copy())

    @staticmethod
    def backward(ctx, g):
        return ctx.source.from_host(ctx.backend.to_host(g).copy())
