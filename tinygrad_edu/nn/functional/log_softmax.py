"""Log-softmax as one op: log of the softmax probabilities, computed without forming them, so that very unlikely
classes get a finite log-probability (log(softmax) would round their probability to 0 and give -inf). Cross-entropy
is ``-log_softmax(z)[t]``."""

from __future__ import annotations

from typing import Any

from tinygrad_edu import arguments
from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional.softmax import softmax_along
from tinygrad_edu.tensor import Tensor


class LogSoftmaxFunction(Function):
    """z = log softmax(x) along axis ``dim``: with m = max_j x_j (a constant shift, it cancels),

        z = x - m - log Σ_j exp(x_j - m)

    Backward, with g = dL/dz: dz_i/dx_k = δ_ik - softmax(x)_k, so with p = softmax(x) = exp(z)

        dL/dx = g - p ⊙ Σ_j g_j          (the sum along ``dim``, kept as a size-1 axis)

    Each row of dL/dx sums to 0 (Σ_i p_i = 1), as adding a constant to a row does not change z. A 0-d x is its own
    row (z = 0). ``log_softmax`` hands float16 and bfloat16 input over in float32 (the shifted exp, the sum and
    the log) and rounds z to the input's dtype once; the backward sums in float32 too. Forward saves p (exp of the unrounded z).
    """

    @staticmethod
    def forward(ctx, x, dim=-1):
        xp = ctx.xp
        ctx.axis = (dim,) if x.ndim else ()
        x_m = x - xp.max(x, axis=ctx.axis, keepdims=True)
        z = x_m - xp.log(xp.sum(xp.exp(x_m), axis=ctx.axis, keepdims=True))
        p = xp.exp(z)
        ctx.save_for_backward(p)
        return z

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (p,) = ctx.saved_tensors
        return g - p * xp.sum(g, axis=ctx.axis, keepdims=True)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None, *,  # noqa: A002
                axis: int | None = None) -> Tensor:
    """``x - log Σ exp(x)`` along ``dim`` (``torch.nn.functional.log_softmax``; ``axis`` is NumPy's spelling, not
    both). ``dim=None`` follows PyTorch's deprecated implicit choice (axis 0 for 0-, 1- and 3-d inputs, else axis 1)
    and warns: always pass ``dim``. ``dtype`` casts the input first (e.g. float16 logits to a float32 result)."""
    dim, _ = arguments.spelling("log_softmax", dim, axis)
    return softmax_along("log_softmax", LogSoftmaxFunction, input, dim, _stacklevel, dtype)
