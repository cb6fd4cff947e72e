"""Arithmetic: ``+ - * / **`` and negation, with broadcasting, and the dtype promotion rule of every binary op.

For z = f(a, b) with upstream gradient g = dL/dz, each backward returns (dL/da, dL/db), reduced to the input shapes
by ``unbroadcast``. A Python-scalar operand gets no gradient (None).

Dtype promotion (PyTorch's rule; ``result_type`` decides it, ``Promoting.apply`` applies it to ``+ - * / **``,
``maximum``, ``minimum``, ``where`` and ``@`` on every device):

* categories: bool < integer < floating. Tensors of one category combine to the wider dtype (float16 with float32
  gives float32, int8 with int32 gives int32, uint8 with int8 gives int16); a tensor of a higher category wins
  outright (int64 with float16 gives float16, bool with int32 gives int32).
* Python numbers, and 0-d tensors against n-d tensors, only promote across categories: ``float16_tensor * 2.5`` stays
  float16 and ``float16_tensor * zero_dim_float64`` too, but ``int_tensor * 2.5`` is float32 (PyTorch's default
  float dtype) and ``bool_tensor + 1`` is int64.
* ``/`` is true division: an integer or bool result becomes float32.
* two bool operands: ``+ * maximum minimum`` give bool (logical or / and); ``-``, ``**`` and ``@`` raise TypeError,
  as ``-bool_tensor`` does; uint64 with a signed integer raises TypeError (no integer dtype holds both).
* a Python int that does not fit the tensor's integer dtype, and an integer tensor to a negative integer power,
  raise ``InputError``; tensors on different devices raise RuntimeError.

The operands are converted before the op runs, with ``Tensor.astype`` (``xp.astype``: a differentiable ``Cast`` for
floating targets), so each input receives its gradient in its own dtype: a float16 input of a float32 result gets a
float16 gradient. Unlike PyTorch, whose ``matmul`` requires equal dtypes, ``@`` promotes too (as NumPy does).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_edu.ops.broadcast import shape_of, unbroadcast
from tinygrad_edu.tensor import Function, InputError, Tensor, _device_mismatch

_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}
_DEFAULT_FLOAT = np.dtype(np.float32)  # PyTorch's default dtype, for an integer tensor with a Python float
_DEFAULT_INT = np.dtype(np.int64)


def _category(dtype: np.dtype) -> int:
    try:
        return _CATEGORY[dtype.kind]
    except KeyError:
        raise TypeError(f"dtype {dtype} is not supported by tinygrad_edu's ops (bool, integer or floating)") from None


def _scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    return _DEFAULT_INT if isinstance(value, int) else _DEFAULT_FLOAT


def _promote_pair(op: str, a: np.dtype, b: np.dtype) -> np.dtype:
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    out = np.promote_types(a, b)
    if out.kind == "f" and ca == 1:
        raise TypeError(f"{op}: no integer dtype holds both {a} and {b}; cast one of them first, e.g. .astype('int64')")
    return out


def _combine(op: str, dtypes: list[np.dtype]) -> np.dtype | None:
    out = None
    for d in dtypes:
        out = d if out is None else _promote_pair(op, out, d)
    return out


def result_type(op: str, *operands: Any) -> np.dtype:
    """The dtype of ``op(*operands)`` (tensors and Python numbers) under the promotion rule of this module."""
    dims = [o.dtype for o in operands if isinstance(o, Tensor) and o.ndim > 0]
    zero_dims = [o.dtype for o in operands if isinstance(o, Tensor) and o.ndim == 0]
    scalars = [_scalar_dtype(o) for o in operands if not isinstance(o, Tensor)]
    out = None
    for group in (dims, zero_dims, scalars):  # a lower-priority group counts only if its category is higher
        d = _combine(op, group)
        if d is not None and (out is None or _category(d) > _category(out)):
            out = d if out is None else _promote_pair(op, out, d)
    if out is None:
        raise TypeError(f"{op}: needs at least one Tensor operand")
    if op == "Div" and out.kind in "biu":
        return _DEFAULT_FLOAT
    if out.kind == "b" and op in ("Sub", "Pow", "MatMul"):
        raise TypeError(
            f"{op}: not supported for two bool operands; cast first, e.g. a.int() or a.astype('int64')"
        )
    return out


def _as_scalar(op: str, value: Any, dtype: np.dtype) -> Any:
    """A Python number as the kind of ``dtype`` (array_api_strict accepts only numbers of the array's kind)."""
    if dtype.kind == "f":
        return float(value)
    if dtype.kind == "b":
        return bool(value)
    value = int(value)
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise InputError(f"{op}: the Python integer {value} does not fit the tensor's dtype {dtype} "
                         f"(range {info.min} to {info.max}); cast the tensor first")
    return value


def promote(op: str, operands: tuple) -> tuple[tuple, np.dtype, np.dtype]:
    """Convert ``operands`` to one dtype: returns (converted operands, dtype the op computes in, result dtype).

    Two bool operands of ``+ * maximum minimum`` compute in uint8 (the array API has no arithmetic on bool) and the
    result is cast back to bool.
    """
    backend = None
    for o in operands:
        if isinstance(o, Tensor):
            if backend is not None and o.backend is not backend:
                raise _device_mismatch(op, operands)
            backend = o.backend
    out = result_type(op, *operands)
    if op == "Pow" and out.kind in "iu" and not isinstance(operands[-1], Tensor) and operands[-1] < 0:
        raise InputError(f"Pow: integers to negative integer powers are not allowed (exponent {operands[-1]} for "
                         f"dtype {out}); use a float tensor, e.g. t.float() ** {operands[-1]}")
    compute = np.dtype(np.uint8) if out.kind == "b" and op != "Where" else out
    converted = tuple(
        (o if o.dtype == compute else o.astype(compute)) if isinstance(o, Tensor) else _as_scalar(op, o, compute)
        for o in operands
    )
    return converted, compute, out


def _nothing_to_convert(a: Any, b: Any) -> bool:
    """Two tensors of one floating dtype, or a floating tensor and a Python int or float."""
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            return a.data.dtype == b.data.dtype and a.dtype.kind == "f"
        return b.__class__ in (int, float) and a.dtype.kind == "f"
    return isinstance(b, Tensor) and a.__class__ in (int, float) and b.dtype.kind == "f"


class Promoting:
    """Mixin for binary ops: ``apply`` converts the operands from index ``promote_from`` on by the promotion rule."""

    promote_from = 0

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        k = cls.promote_from
        a = args[k:]
        if len(a) == 2 and _nothing_to_convert(*a):
            return super().apply(*args, **kwargs)  # the common case, kept fast
        converted, compute, out = promote(cls.__name__, a)
        result = super().apply(*args[:k], *converted, **kwargs)
        return result if compute == out else result.astype(out)


class Add(Promoting, Function):
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


class Sub(Promoting, Function):
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


class Mul(Promoting, Function):
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


class Div(Promoting, Function):
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


class Pow(Promoting, Function):
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
        if a.dtype == ctx.xp.bool:
            raise TypeError("Neg: negation of a bool tensor is not supported; use logical_not (~) or cast first")
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g
