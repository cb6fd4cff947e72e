"""Arithmetic: ``+ - * / **`` and negation, with broadcasting.

For z = f(a, b) with upstream gradient g = dL/dz, each backward returns (dL/da, dL/db), reduced to the input shapes
by ``unbroadcast``. A Python-scalar operand gets no gradient (None). The operands arrive in one dtype: the Tensor's
operators convert them first (the promotion rule, ``tinygrad_edu/dtypes.py``).
"""

from __future__ import annotations

import math

from tinygrad_edu.autograd import Function
from tinygrad_edu.ops.broadcast import shape_of, unbroadcast


class Add(Function):
    """z = a + b;  dL/da = g,  dL/db = g."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = shape_of(a), shape_of(b)
        return a + b

    @staticmethod
    def backward(ctx, g):
        a_shape, b_shape = ctx.shapes
        return (unbroadcast(ctx.xp, g, a_shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(ctx.xp, g, b_shape) if ctx.needs_input_grad[1] else None)


class Sub(Function):
    """z = a - b;  dL/da = g,  dL/db = -g."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = shape_of(a), shape_of(b)
        return a - b

    @staticmethod
    def backward(ctx, g):
        a_shape, b_shape = ctx.shapes
        return (unbroadcast(ctx.xp, g, a_shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(ctx.xp, -g, b_shape) if ctx.needs_input_grad[1] else None)


class Mul(Function):
    """z = a * b;  dL/da = g * b,  dL/db = g * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return (unbroadcast(ctx.xp, g * b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(ctx.xp, g * a, b.shape) if ctx.needs_input_grad[1] else None)


class Div(Function):
    """z = a / b;  dL/da = g / b,  dL/db = -g * a / b² = -g * z / b."""

    @staticmethod
    def forward(ctx, a, b):
        z = a / b
        ctx.save_for_backward(a, b, z)
        return z

    @staticmethod
    def backward(ctx, g):
        a, b, z = ctx.saved_tensors
        return (unbroadcast(ctx.xp, g / b, a.shape) if ctx.needs_input_grad[0] else None,
                unbroadcast(ctx.xp, -g * z / b, b.shape) if ctx.needs_input_grad[1] else None)


class Pow(Function):
    """z = a ** b;  dL/da = g * b * a^(b-1),  dL/db = g * z * log(a) (taken as 0 where a = 0)."""

    @staticmethod
    def forward(ctx, a, b):
        z = a ** b
        ctx.save_for_backward(a, b, z)
        return z

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a, b, z = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            if hasattr(b, "shape"):
                da = xp.where(b == 0, 0.0, b * a ** (b - 1))
            else:
                da = b * a ** (b - 1) if b != 0 else xp.zeros_like(a)
            grad_a = unbroadcast(xp, g * da, a.shape)
        if ctx.needs_input_grad[1]:
            if hasattr(a, "shape"):
                log_a = xp.log(xp.where(a == 0, 1.0, a))
            else:  # a Python number as the base: 2 ** t
                log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
            grad_b = unbroadcast(xp, g * z * log_a, b.shape)
        return grad_a, grad_b


class Neg(Function):
    """z = -a;  dL/da = -g."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g
