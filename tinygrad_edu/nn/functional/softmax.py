"""Softmax as one op (Bridle 1990, "Probabilistic interpretation of feedforward classification network outputs"):
scores to a probability distribution along one axis, shifted by their max first so that exp never overflows.

``softmax_along`` (the checks, the dim and dtype arguments and the float16/bfloat16 compute dtype) is shared with
``log_softmax``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tinygrad_edu import arguments
from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import accumulate_dtype, is_floating
from tinygrad_edu.nn.functional._activation_args import check_dim, check_float
from tinygrad_edu.tensor import Tensor


class SoftmaxFunction(Function):
    """y = softmax(x) along axis ``dim``: with m = max_j x_j (a constant shift, it cancels),

        e = exp(x - m)        s = Σ_j e_j        y = e / s

    Backward, with g = dL/dy: the Jacobian is dy_i/dx_k = y_i (δ_ik - y_k), so

        dL/dx = y ⊙ (g - Σ_j g_j y_j)          (the sum along ``dim``, kept as a size-1 axis)

    Each row of dL/dx sums to 0 (Σ_i y_i = 1): adding a constant to a row does not change its softmax. A 0-d x is
    its own row (y = 1). ``softmax`` hands float16 (and bfloat16) input over in float32 (the shifted exp and both
    sums) and rounds y to the input's dtype once, so logits such as 12 whose exp (≈ 1.6e5) overflows float16's 65504 still come out right;
    the backward sums in float32 too. Forward saves y.
    """

    @staticmethod
    def forward(ctx, x, dim=-1):
        xp = ctx.xp
        ctx.axis = (dim,) if x.ndim else ()
        m = xp.max(x, axis=ctx.axis, keepdims=True)
        e = xp.exp(x - m)
        s = xp.sum(e, axis=ctx.axis, keepdims=True)
        y = e / s
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (y,) = ctx.saved_tensors
        return y * (g - xp.sum(g * y, axis=ctx.axis, keepdims=True))


def softmax_along(op: str, function: type[Function], input: Tensor, dim: Any, stacklevel: int,  # noqa: A002
                  dtype: Any) -> Tensor:
    """``function.apply`` along ``dim`` for ``softmax`` and ``log_softmax`` (``op``): ``input`` cast to ``dtype``
    when given, the dim checked (None: PyTorch's implicit choice, which warns at ``stacklevel`` above the caller),
    and float16 and bfloat16 computed in float32 by differentiable casts (the output rounded to the input's dtype once)."""
    input = _dtype_arg(op, input, dtype)
    if dim is None:
        dim = _softmax_dim(op, input.ndim, stacklevel + 1)
    check_float(op, "input", input)
    dim = _dim(op, dim, input.shape)
    compute = accumulate_dtype(input.dtype)
    return function.apply(input.astype(compute), dim=dim).astype(input.dtype)


def _dim(op: str, dim: Any, shape: tuple[int, ...]) -> int:
    """The reduced axis, non-negative; a 0-d input takes dim 0 or -1 as in PyTorch (a scalar is its own row:
    softmax 1, log_softmax 0)."""
    if shape:
        return check_dim(op, dim, shape)
    try:
        check_dim(op, dim, (1,))
    except InputError:
        raise InputError(f"{op}: dim={dim} is out of range for an input of shape () (expected -1 <= dim <= 0)") from None
    return 0


def _softmax_dim(op: str, ndim: int, stacklevel: int) -> int:
    """PyTorch's legacy rule when ``dim`` is None: axis 0 for 0-, 1- and 3-d inputs, else axis 1, with a warning."""
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to include "
                  f"dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return dim


def _dtype_arg(op: str, input: Tensor, dtype: Any) -> Tensor:  # noqa: A002
    """``input`` cast to ``dtype`` first (PyTorch's ``dtype=`` keyword, differentiable); a floating dtype only."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if dtype is None:
        return input
    try:
        target = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{op}: dtype must be a floating-point dtype such as 'float32', got {dtype!r}") from exc
    if not is_floating(target):
        raise TypeError(f"{op}: dtype must be a floating-point dtype such as 'float32', got {target}")
    return input.astype(target)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None, *,  # noqa: A002
            axis: int | None = None) -> Tensor:
    """``exp(x) / Σ exp(x)`` along ``dim`` (``torch.nn.functional.softmax``; ``axis`` is NumPy's spelling, not both).
    ``dim=None`` follows PyTorch's deprecated implicit choice (axis 0 for 0-, 1- and 3-d inputs, else axis 1) and
    warns: always pass ``dim``. ``dtype`` casts the input first (e.g. float16 logits to a float32 result)."""
    dim, _ = arguments.spelling("softmax", dim, axis)
    return softmax_along("softmax", SoftmaxFunction, input, dim, _stacklevel, dtype)
