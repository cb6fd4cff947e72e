"""Dtypes: the names (``tg.float32`` is ``numpy.dtype('float32')``), the default dtypes of new tensors
(``host_array``), the low-precision storage dtypes and the promotion rule of every binary op.

``tg.bfloat16`` is ``numpy.dtype(ml_dtypes.bfloat16)``: the bfloat16 of ``ml_dtypes`` (the library JAX uses), 1 sign
bit, float32's 8 exponent bits and 7 mantissa bits. NumPy files it under kind ``'V'``, not ``'f'``: test a dtype with
``is_floating``, never with ``dtype.kind == "f"``. float16 and bfloat16 are the **low-precision** dtypes
(``is_low_precision``): tensors store them, but sums, dot products, normalizations, softmax and losses compute in
float32 (``accumulate_dtype``) and round once at the end.

Promotion follows PyTorch's rule; ``result_type`` decides it, and ``promote`` converts the operands of ``+ - * / **``,
``maximum``, ``minimum``, ``where``, ``@`` and ``linear`` on every device:

* categories: bool < integer < floating. Tensors of one category combine to the wider dtype (float16 with float32
  gives float32, int8 with int32 gives int32, uint8 with int8 gives int16); a tensor of a higher category wins
  outright (int64 with float16 gives float16, bool with int32 gives int32). bfloat16 as in PyTorch: with float16
  it gives float32 (neither holds the other), with float32 float32, with float64 float64, with integers and bool
  bfloat16.
* Python numbers, and 0-d tensors against n-d tensors, only promote across categories: ``float16_tensor * 2.5`` stays
  float16 and ``float16_tensor * zero_dim_float64`` too, but ``int_tensor * 2.5`` is float32 (PyTorch's default
  float dtype) and ``bool_tensor + 1`` is int64.
* ``/`` is true division: an integer or bool result becomes float32.
* two bool operands: ``+ * maximum minimum`` give bool (logical or / and); ``-``, ``**`` and ``@`` raise TypeError,
  as ``-bool_tensor`` does; uint64 with a signed integer raises TypeError (no integer dtype holds both).
* a Python int that does not fit the tensor's integer dtype, and an integer tensor to a negative integer power,
  raise ``InputError``; tensors on different devices raise RuntimeError.

The operands are converted before the op runs, with ``Tensor.astype`` (a differentiable ``Cast`` for floating
targets), so each input receives its gradient in its own dtype: a float16 input of a float32 result gets a float16
gradient. Unlike PyTorch, whose ``matmul`` requires equal dtypes, ``@`` promotes too (as NumPy does).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from tinygrad_edu.autograd.function import InputError, device_mismatch

float16 = np.dtype("float16")
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
bool_ = np.dtype("bool")

#: The storage dtypes computed in float32 (``is_low_precision``).
LOW_PRECISION = (float16, bfloat16)

_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}
_DEFAULT_FLOAT = float32  # PyTorch's default dtype, for an integer tensor with a Python float
_DEFAULT_INT = int64


def is_floating(dtype: Any) -> bool:
    """True for a floating-point dtype (a NumPy dtype or name): float16, bfloat16, float32, float64. (bfloat16's NumPy
    kind is ``'V'``: ``dtype.kind == "f"`` misses it.)"""
    dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    return dtype.kind == "f" or dtype == bfloat16


def is_low_precision(dtype: Any) -> bool:
    """True for a low-precision storage dtype, float16 or bfloat16: its sums, products and normalizations are computed
    in float32 (``accumulate_dtype``) and rounded once. Takes an array's dtype as it comes: a NumPy dtype (NumPy and
    CuPy arrays), or another namespace's dtype object (array_api_strict), which is never low precision."""
    return isinstance(dtype, np.dtype) and dtype in LOW_PRECISION


def accumulate_dtype(dtype: Any) -> Any:
    """The dtype that values of ``dtype`` are summed, multiplied and normalized in: float32 (NumPy's) for the
    low-precision dtypes, else ``dtype`` itself."""
    return float32 if is_low_precision(dtype) else dtype


def host_array(data: Any, dtype: Any) -> np.ndarray:
    """A NumPy copy of ``data`` (a list, scalar or array) with PyTorch's default dtypes: Python floats become float32
    (its default float dtype), Python ints int64; arrays keep their dtype; ``dtype`` overrides."""
    try:
        array = np.array(data, dtype=None if dtype is None else np.dtype(dtype), copy=True, order="K")
    except (ValueError, OverflowError) as error:  # ragged nesting, a number its dtype cannot hold
        raise ValueError(f"Tensor: cannot make a tensor from this {type(data).__name__}: {_why(data, error)}") from None
    if dtype is None and not isinstance(data, (np.ndarray, np.generic)) and array.dtype == np.float64:
        array = array.astype(np.float32)
    check_supported("Tensor", array.dtype, data)
    return array


def check_supported(op: str, dtype: np.dtype, data: Any = None) -> None:
    """TypeError unless ``dtype`` is one a tensor holds: bool, integers, floating (bfloat16 included)."""
    if dtype.kind in "biuf" or dtype == bfloat16:
        return
    if dtype.kind == "O" and isinstance(data, (list, tuple)):
        big = [v for v in np.asarray(data, dtype=object).ravel() if isinstance(v, int) and not -2**63 <= v < 2**64]
        if big:
            raise TypeError(f"{op}: the integer {big[0]} does not fit in int64 (nor uint64): a tensor's integers do")
    raise TypeError(f"{op}: cannot make a tensor of dtype {dtype}"
                    + (f" (from {type(data).__name__})" if data is not None else "")
                    + ": a tensor holds bools, integers or floating-point numbers")


def _why(data: Any, error: Exception) -> str:
    """Why NumPy could not make an array of ``data``, in words."""
    if "inhomogeneous" in str(error) or "sequence" in str(error):
        return "its rows have different lengths (a ragged list); a tensor is rectangular"
    return f"{type(error).__name__}: {error}"


def _is_number(value: Any) -> bool:
    """A Python number operand (the other operands are tensors)."""
    return isinstance(value, (bool, int, float))


def _category(dtype: np.dtype) -> int:
    try:
        return _CATEGORY["f" if dtype == bfloat16 else dtype.kind]
    except KeyError:
        raise TypeError(f"dtype {dtype} is not supported by tinygrad_edu's ops (bool, integer or floating)") from None


def _scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, bool):
        return bool_
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
    dims = [o.dtype for o in operands if not _is_number(o) and o.ndim > 0]
    zero_dims = [o.dtype for o in operands if not _is_number(o) and o.ndim == 0]
    scalars = [_scalar_dtype(o) for o in operands if _is_number(o)]
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


def same_floating(a: Any, b: Any) -> bool:
    """Nothing to convert: two tensors of one floating dtype, or a floating tensor and a Python int or float."""
    if not _is_number(a):
        if not _is_number(b):
            return a.backend is b.backend and a._data.dtype == b._data.dtype and is_floating(a.dtype)
        return b.__class__ in (int, float) and is_floating(a.dtype)
    return not _is_number(b) and a.__class__ in (int, float) and is_floating(b.dtype)


def promote(op: str, operands: tuple) -> tuple[tuple, np.dtype, np.dtype]:
    """Convert ``operands`` to one dtype: returns (converted operands, dtype the op computes in, result dtype).

    Two bool operands of ``+ * maximum minimum`` compute in uint8 (the array API has no arithmetic on bool) and the
    result is cast back to bool.
    """
    backend = None
    for o in operands:
        if not _is_number(o):
            if backend is not None and o.backend is not backend:
                raise device_mismatch(op, operands)
            backend = o.backend
    out = result_type(op, *operands)
    if op == "Pow" and out.kind in "iu" and _is_number(operands[-1]) and operands[-1] < 0:
        raise InputError(f"Pow: integers to negative integer powers are not allowed (exponent {operands[-1]} for "
                         f"dtype {out}); use a float tensor, e.g. t.float() ** {operands[-1]}")
    compute = np.dtype(np.uint8) if out.kind == "b" and op != "Where" else out
    converted = tuple(_as_number(op, o, compute) if _is_number(o) else (o if o.dtype == compute else o.astype(compute))
                      for o in operands)
    return converted, compute, out


def _as_number(op: str, value: Any, dtype: np.dtype) -> Any:
    """A Python number as the kind of ``dtype`` (array_api_strict accepts only numbers of the array's kind)."""
    if is_floating(dtype):
        return float(value)
    if dtype.kind == "b":
        return bool(value)
    value = int(value)
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise InputError(f"{op}: the Python integer {value} does not fit the tensor's dtype {dtype} "
                         f"(range {info.min} to {info.max}); cast the tensor first")
    return value
