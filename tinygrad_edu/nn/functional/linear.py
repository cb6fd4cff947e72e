"""The affine layer as one op: y = x Wᵀ + b, with its backward written out."""

from __future__ import annotations

from tinygrad_edu import dtypes
from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.tensor import Tensor


class LinearFunction(Function):
    """y = x Wᵀ + b for x of shape (..., in), W (out, in), b (out,).

    With G = dL/dy and x, G flattened to matrices X (n, in), G (n, out) over the leading axes:

        dL/dx = G W            dL/dW = Gᵀ X            dL/db = Σ_rows G
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        y = ctx.backend.matmul(x, weight.T)
        if bias is not None:
            y += bias  # y is a new array: add in place, saving an allocation
        return y

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, weight = ctx.saved_tensors
        grad_x = ctx.backend.matmul(g, weight) if ctx.needs_input_grad[0] else None
        if g.ndim != 2:  # (..., out) -> (n, out): every leading position is a row
            g, x = xp.reshape(g, (-1, g.shape[-1])), xp.reshape(x, (-1, x.shape[-1]))
        grad_w = ctx.backend.matmul(g.T, x)
        grad_b = ctx.backend.sum_per_channel(g) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` (``torch.nn.functional.linear``). Mixed dtypes follow the promotion rule of ``@``
    (``tinygrad_edu.dtypes``); PyTorch requires one dtype here."""
    if isinstance(x, Tensor) and isinstance(weight, Tensor):  # (read from the arrays: every Linear layer calls this)
        x_data, w_data = x._data, weight._data
        if w_data.ndim != 2 or not x_data.ndim or x_data.shape[-1] != w_data.shape[1]:
            raise InputError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                             "(expected input (..., in_features) and weight (out_features, in_features))")
        if bias is not None and tuple(getattr(bias, "_data", bias).shape) != w_data.shape[:1]:
            raise InputError(f"linear: bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
        same = x_data.dtype == w_data.dtype and (bias is None or getattr(bias, "_data", bias).dtype == x_data.dtype)
        if not same or x.backend is not weight.backend:
            (x, weight, *rest), _, _ = dtypes.promote("linear", (x, weight) + ((bias,) if bias is not None else ()))
            bias = rest[0] if rest else None
    if bias is None:
        return LinearFunction.apply(x, weight)
    return LinearFunction.apply(x, weight, bias)
