"""Two helpers every backward pass needs: ``unbroadcast`` and ``accumulating_sum``.

Broadcasting copies an input along new leading axes and along its size-1 axes. In the backward pass each copy
received its own gradient, and the chain rule adds them: ``unbroadcast`` sums the gradient over those axes so it
has the input's shape again.
"""

from __future__ import annotations

from typing import Any

from tinygrad_edu.dtypes import is_low_precision


def accumulating_sum(xp: Any, x: Any, axis: Any = None, keepdims: bool = False, divide_by: int = 1) -> Any:
    """``xp.sum(x) / divide_by`` in ``x.dtype``; for float16 and bfloat16 (``is_low_precision``) both done in float32
    and rounded once at the end.

    (A float16 sum of many terms loses digits or overflows past 65504; so would a count n > 65504 as a float16. A
    bfloat16 running sum has only 8 significant bits: past 256 adding 1 changes nothing.)
    """
    if is_low_precision(x.dtype):
        total = xp.sum(x, axis=axis, keepdims=keepdims, dtype=xp.float32)
        return xp.astype(total / divide_by if divide_by != 1 else total, x.dtype)
    total = xp.sum(x, axis=axis, keepdims=keepdims)
    return total / divide_by if divide_by != 1 else total


def scaled(xp: Any, x: Any, factor: float) -> Any:
    """``x * factor``, computed in float32 for low-precision ``x`` (a factor such as 1/n may not fit in float16, and
    is rounded to 8 bits in bfloat16)."""
    if is_low_precision(x.dtype):
        return xp.astype(xp.astype(x, xp.float32) * factor, x.dtype)
    return x * factor


def unbroadcast(xp: Any, grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` (the shape of a broadcast result) down to ``shape`` (the shape of the input that was broadcast)."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    return xp.reshape(accumulating_sum(xp, grad, axis=axes, keepdims=True), shape)


def shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of an array operand, None for a Python scalar (which gets no gradient)."""
    return tuple(value.shape) if hasattr(value, "shape") else None
