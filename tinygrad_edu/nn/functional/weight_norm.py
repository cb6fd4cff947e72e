"""Weight normalization as one op (Salimans and Kingma 2016, "Weight normalization: a simple reparameterization to
accelerate training of deep neural networks"): a weight is written as a length g times a direction v / ‖v‖, so
gradient descent adjusts the two separately."""

from __future__ import annotations

import numbers

import numpy as np

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_floating, is_low_precision
from tinygrad_edu.tensor import Tensor


class WeightNormFunction(Function):
    """w = g ⊙ v / ‖v‖, the norm taken over every axis of v except ``dim`` (over all axes for ``dim=None``).

    For a Linear weight v (out, in) and dim = 0, every row w_i = g_i v_i / ‖v_i‖ has length |g_i|. g has v's shape
    with size 1 on every axis except ``dim`` (PyTorch's ``torch._weight_norm(v, g, dim)``). With s = Σ dw ⊙ v over
    the same axes as the norm (one number per output):

        dg = s / ‖v‖                    dv = (g / ‖v‖) (dw - (s / ‖v‖²) v)

    dv is dw with its component along v removed (then scaled): Σ dv ⊙ v = 0, a step on v never changes ‖v‖ to first
    order, the length is g's job alone (the paper's eq. 4). v and g come in one dtype: ``weight_norm`` accumulates
    the norm of float16 weights in float32. Forward saves v, g and ‖v‖ (keepdims, so everything broadcasts against
    v).
    """

    @staticmethod
    def forward(ctx, v, g, dim=0):
        xp = ctx.xp
        ctx.axes, ctx.g_shape = tuple(a for a in range(v.ndim) if a != dim), tuple(g.shape)
        g = xp.reshape(g, tuple(v.shape[a] if a == dim else 1 for a in range(v.ndim)))
        norm_v = xp.sqrt(xp.sum(v * v, axis=ctx.axes, keepdims=True))
        ctx.save_for_backward(v, g, norm_v)
        return v * (g / norm_v)

    @staticmethod
    def backward(ctx, dw):
        xp = ctx.xp
        v, g, norm_v = ctx.saved_tensors
        s = xp.sum(dw * v, axis=ctx.axes, keepdims=True)
        dv = (g / norm_v) * (dw - (s / (norm_v * norm_v)) * v) if ctx.needs_input_grad[0] else None
        dg = xp.reshape(s / norm_v, ctx.g_shape) if ctx.needs_input_grad[1] else None
        return dv, dg


def weight_norm(v: Tensor, g: Tensor, dim: int | None = 0) -> Tensor:
    """``g * v / ‖v‖`` with the norm over every axis except ``dim`` (``torch._weight_norm(v, g, dim)``).

    ``dim=None`` (or -1, as in ``torch._weight_norm`` and ``torch.nn.utils.weight_norm``) takes the norm over the
    whole tensor, with g of shape () or all ones; other negative dims count from the end. g must have v's shape with
    size 1 on every axis but ``dim``. A v whose norm is 0 gives NaN, as in PyTorch.
    """
    for name, t in (("v", v), ("g", g)):
        if not isinstance(t, Tensor):
            raise TypeError(f"weight_norm: {name} must be a Tensor, got {type(t).__name__}")
        if not is_floating(t.dtype):
            raise TypeError(f"weight_norm: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
        raise TypeError(f"weight_norm: dim must be an int or None, got {type(dim).__name__}")
    if v.ndim == 0:
        raise InputError("weight_norm: v must have at least one axis, got a 0-d tensor")
    if dim is None or dim == -1:
        expected = [(), (1,) * v.ndim]
        dim = -1  # no axis of v is kept: the norm is over all of them
    elif -v.ndim <= dim < v.ndim:
        dim = int(dim) % v.ndim
        expected = [tuple(v.shape[a] if a == dim else 1 for a in range(v.ndim))]
    else:
        raise InputError(f"weight_norm: dim={dim} is out of range for v of shape {v.shape} "
                         f"(expected -{v.ndim} <= dim < {v.ndim}, or None)")
    if g.shape not in expected:
        raise InputError(f"weight_norm: g has shape {g.shape}, expected {' or '.join(map(str, expected))} "
                         f"for v of shape {v.shape} and dim={dim if dim != -1 else None}")
    # one compute dtype for both: float32 when either is float16 or bfloat16 (the norm accumulates in float32), else the
    # wider
    out = np.result_type(v.dtype, g.dtype)
    compute = np.dtype(np.float32) if is_low_precision(v.dtype) or is_low_precision(g.dtype) else out
    return WeightNormFunction.apply(v.astype(compute), g.astype(compute), dim=dim).astype(out)
