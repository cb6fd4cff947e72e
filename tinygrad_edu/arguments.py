"""Argument normalization for Tensor methods: dims and their NumPy aliases, axes, shapes, permutations, paddings,
indices, splits.

Each helper turns what a user may write (``-1``, a list, ``reshape(2, 3)`` or ``reshape((2, 3))``, ``dim=`` or
``axis=``) into one canonical form the ops rely on, and raises an error naming the method and the argument when it
cannot: a TypeError for an argument of the wrong kind (or given twice, under both spellings), a ValueError for a
value out of range.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from tinygrad_edu.autograd.function import InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.ops.matmul import batch_shape

if TYPE_CHECKING:
    from tinygrad_edu.tensor import Tensor

#: The dims a reduction takes: None (every dim), an int, or a sequence of ints (negative ones count from the end).
Dims = Union[int, Sequence[int], None]


# -- dim / axis: PyTorch's keywords and NumPy's aliases ---------------------------------------------------------------
def spelling(method: str, dim: Any, axis: Any, keepdim: Any = None, keepdims: Any = None,
             name: str = "dim") -> tuple[Any, bool]:
    """``(dim, keepdim)`` from PyTorch's ``dim``/``keepdim`` or their NumPy aliases ``axis``/``keepdims`` (None: not
    given). Giving both spellings of one argument is a TypeError naming ``method`` and both names, as PyTorch's
    ``torch.sum(x, dim=0, axis=0)``; ``keepdim`` must be a bool."""
    if dim is not None and axis is not None:
        raise TypeError(f"{method}(): got both {name}={dim!r} and its NumPy alias axis={axis!r}; pass only one")
    if keepdim is not None and keepdims is not None:
        raise TypeError(f"{method}(): got both keepdim={keepdim!r} and its NumPy alias keepdims={keepdims!r}; "
                        "pass only one")
    keep = keepdim if keepdims is None else keepdims
    if keep is not None and not isinstance(keep, (bool, np.bool_)):
        raise TypeError(f"{method}(): keepdim must be a bool, got {type(keep).__name__}")
    return (axis if dim is None else dim), bool(keep)


def reduction(method: str, ndim: int, dim: Dims, keepdim: Any, axis: Dims, keepdims: Any) -> dict[str, Any]:
    """The keywords of a reduction op (``axis``: None or a sorted tuple of non-negative axes, ``keepdims``) from
    either spelling: ``ops.Sum.apply(x, **reduction("sum", x.ndim, dim, keepdim, axis, keepdims))``."""
    dim, keep = spelling(method, dim, axis, keepdim, keepdims)
    return {"axis": axes(dim, ndim, method), "keepdims": keep}


def one_dim(method: str, dim: Any, axis: Any, ndim: int | None = None, default: int | None = None,
            name: str = "dim") -> int:
    """A single ``dim`` (or its alias ``axis``), ``default`` when neither is given; non-negative when ``ndim`` is
    given (TypeError for a non-integer or a missing dim, ValueError when out of range)."""
    dim, _ = spelling(method, dim, axis, name=name)
    if dim is None:
        if default is None:
            raise TypeError(f"{method}(): missing the {name} argument")
        dim = default
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{method}(): {name} must be an int, got {type(dim).__name__}")
    if ndim is None:
        return int(dim)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{method}(): {name}={dim} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected {-max(ndim, 1)} <= {name} < {max(ndim, 1)})")
    return int(dim) % max(ndim, 1)


def axes(axis: Any, ndim: int, method: str = "") -> tuple[int, ...] | None:
    """Normalize a reduction's ``axis`` (None, int or sequence) to a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    where = f" in {method}()" if method else ""
    axes = (axis,) if isinstance(axis, numbers.Integral) else \
        tuple(axis) if isinstance(axis, (Sequence, np.ndarray)) and not isinstance(axis, str) else None
    if axes is None or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral) for a in axes):
        raise TypeError(f"{method or 'reduction'}(): dim must be an int or a tuple of ints, got {axis!r}")
    normalized = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimension(s){where} "
                             f"(expected {-max(ndim, 1)} <= dim < {max(ndim, 1)})")
        normalized.append(int(a) % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"repeated axis in {axis}{where}")
    if ndim == 0:  # as in PyTorch, a 0-d tensor accepts axis 0 (or -1): it reduces its one element
        return None
    return tuple(sorted(normalized))


def correction(method: str, correction: Any, unbiased: Any) -> float:
    """The ``correction`` of var/std (default 1), or PyTorch's older ``unbiased`` (True: 1, False: 0); not both."""
    if correction is not None and unbiased is not None:
        raise TypeError(f"{method}(): got both correction={correction!r} and unbiased={unbiased!r}; pass only one")
    if unbiased is not None:
        if not isinstance(unbiased, (bool, np.bool_)):
            raise TypeError(f"{method}(): unbiased must be a bool, got {type(unbiased).__name__}")
        return 1 if unbiased else 0
    if correction is None:
        return 1
    if isinstance(correction, (bool, np.bool_)) or not isinstance(correction, numbers.Real):
        raise TypeError(f"{method}(): correction must be a number, got {type(correction).__name__}")
    return correction


def shape_arg(shape: tuple, tensor: Tensor) -> tuple[int, ...]:
    """``reshape(2, 3)`` or ``reshape((2, 3))``, with one ``-1`` inferred; ValueError if the sizes differ."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    size = tensor.numel()
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape}")
    known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
    if -1 in shape:
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tensor.shape} into {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise ValueError(
            f"reshape: cannot reshape a tensor of shape {tensor.shape} ({size} elements) into {shape} ({known} elements)"
        )
    return shape


def varargs(args: tuple) -> tuple:
    """``permute(1, 0)`` or ``permute((1, 0))``: the arguments as one tuple."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def swapped(dim0: int, dim1: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation of ``transpose(dim0, dim1)``: the axes in order, with those two swapped."""
    ndim = len(shape)
    for d in (dim0, dim1):
        if not -ndim <= d < ndim:
            raise ValueError(f"transpose: axis {d} is out of range for a tensor of shape {shape}")
    dims = list(range(ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return tuple(dims)


def matrix_dims(method: str, ndim: int) -> tuple[int, int]:
    """The dims ``t()`` swaps: (0, 1); a tensor of more than 2 dimensions is a ValueError, as in PyTorch."""
    if ndim > 2:
        raise ValueError(f"{method}(): expects a tensor with <= 2 dimensions, got {ndim}; use transpose(dim0, dim1)")
    return 0, 1


def flattened(start_dim: int, end_dim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``flatten(start_dim, end_dim)``: the axes from start to end (included) merged into one."""
    start = one_dim("flatten", start_dim, None, len(shape), name="start_dim")
    end = one_dim("flatten", end_dim, None, len(shape), name="end_dim")
    if start > end:
        raise ValueError(f"flatten(): start_dim={start_dim} comes after end_dim={end_dim} for shape {shape}")
    if not shape:
        return (1,)
    return shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]


def unsqueezed(dim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``unsqueeze(dim)``: a size-1 axis inserted at ``dim`` (counted in the result)."""
    if not -(len(shape) + 1) <= dim <= len(shape):
        raise ValueError(f"unsqueeze: axis {dim} is out of range for a tensor of shape {shape}")
    dim = dim % (len(shape) + 1)
    return shape[:dim] + (1,) + shape[dim:]


def squeezed(dim: Dims, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``squeeze(dim)``: without every size-1 axis (``dim=None``), or without those of the axes ``dim``
    (an int or a tuple) whose size is 1 (the others are kept, as in PyTorch)."""
    if dim is None:
        return tuple(n for n in shape if n != 1)
    ndim = len(shape)
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise TypeError(f"squeeze(): dim must be an int or a tuple of ints, got {dim!r}")
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"squeeze: axis {d} is out of range for a tensor of shape {shape}")
    dropped = {d % ndim for d in dims if ndim and shape[d % ndim] == 1}
    return tuple(n for i, n in enumerate(shape) if i not in dropped)


def split_indices(split_size_or_sections: int | Sequence[int], axis: int, shape: tuple[int, ...]) -> list[tuple]:
    """The index of each piece of ``split``: chunks of ``split_size`` (an int) along ``axis`` (the last one smaller),
    or of the given sizes (a list adding up to the axis's size)."""
    if not shape:
        raise ValueError("split(): a 0-d tensor has no dimension to split")
    axis = one_dim("split", axis, None, len(shape))
    n = shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral) and not isinstance(split_size_or_sections, bool):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} do not add up to the size {n} of axis {axis} of shape {shape}")
    start, indices = 0, []
    for size in sizes:
        indices.append((slice(None),) * axis + (slice(start, start + size), Ellipsis))
        start += size
    return indices


def chunk_size(chunks: int, dim: int, shape: tuple[int, ...]) -> int:
    """The ``split_size`` of ``chunk(chunks, dim)``: ceil(size / chunks), as PyTorch (so there may be fewer pieces)."""
    if isinstance(chunks, (bool, np.bool_)) or not isinstance(chunks, numbers.Integral) or chunks <= 0:
        raise ValueError(f"chunk(): chunks must be a positive int, got {chunks!r}")
    if not shape:
        raise ValueError("chunk(): a 0-d tensor has no dimension to split")
    return max(-(-shape[one_dim("chunk", dim, None, len(shape))] // chunks), 1)


def repeated(sizes: tuple, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``repeat(*sizes)`` as reshape, expand, reshape: (each axis with a size-1 axis before it, that axis grown to
    its repeat count, the two merged). The copies of axis i come one after another (a tile), as in PyTorch."""
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < len(shape) or any(s < 0 for s in sizes):
        raise ValueError(f"repeat(): expected at least {len(shape)} non-negative repeat counts (one per dimension of "
                         f"shape {shape}), got {sizes}")
    shape = (1,) * (len(sizes) - len(shape)) + tuple(shape)
    interleaved = tuple(v for n in shape for v in (1, n))
    grown = tuple(v for r, n in zip(sizes, shape) for v in (r, n))
    return interleaved, grown, tuple(r * n for r, n in zip(sizes, shape))


def permutation(dims: Iterable[int], ndim: int) -> tuple[int, ...]:
    dims = tuple(d % ndim if ndim else d for d in dims)
    if sorted(dims) != list(range(ndim)):
        raise ValueError(f"permute: {tuple(dims)} is not a permutation of the {ndim} axes")
    return dims


def expand_shape(shape: tuple, tensor: Tensor) -> tuple[int, ...]:
    """Target shape of ``expand``: ``-1`` keeps a size; only size-1 axes (or new leading ones) grow."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < tensor.ndim:
        raise ValueError(f"expand: cannot expand shape {tensor.shape} to fewer dimensions {shape}")
    offset = len(shape) - tensor.ndim
    out = list(shape)
    for i, n in enumerate(tensor.shape):
        target = shape[offset + i]
        if target == -1:
            out[offset + i] = n
        elif n != 1 and n != target:
            raise ValueError(f"expand: cannot expand shape {tensor.shape} to {shape} (axis {i} has size {n})")
    return tuple(out)


def pad_width(pad_width: Any, ndim: int) -> tuple[tuple[int, int], ...]:
    if isinstance(pad_width, int):
        pad_width = ((pad_width, pad_width),) * ndim
    pad = tuple((int(a), int(b)) for a, b in pad_width)
    if len(pad) != ndim or any(a < 0 or b < 0 for a, b in pad):
        raise ValueError(f"pad: expected {ndim} non-negative (before, after) pairs, got {pad_width}")
    return pad


def index(index: Any, tensor: Tensor) -> Any:
    """An index in the array API's form: integer-array indices on the tensor's device, a trailing ``...``."""
    if not isinstance(index, tuple):
        index = (index,)
    items = []
    for item in index:
        if hasattr(item, "backend"):
            if item.backend is not tensor.backend:
                raise RuntimeError(f"indexing: index on {item.device}, tensor on {tensor.device}")
            kind = item.dtype.kind
            item = item.data
        elif isinstance(item, (list, np.ndarray)):
            host = np.asarray(item)
            if host.size == 0:  # x[[]]: an empty list of positions
                host = host.astype(np.int64)
            kind, item = host.dtype.kind, tensor.backend.asarray(host)
        else:
            kind = "i"
        if kind not in "biu":
            raise IndexError(f"indexing: an index tensor or array must hold integers or booleans, got dtype "
                             f"{getattr(item, 'dtype', kind)} (cast it: .long() or .astype('int64'))")
        items.append(item)
    if not any(i is Ellipsis or hasattr(i, "shape") for i in items):  # `is`: `in` would compare arrays with ==
        items.append(Ellipsis)
    return tuple(items)


def upstream(grad: Any, tensor: Tensor) -> Any:
    """The upstream gradient of ``tensor.backward(grad)``, as a new array of the tensor's backend: ones for a
    one-element tensor when ``grad`` is None, else a copy of ``grad`` (a Tensor on the same device, or an array) that
    must have the tensor's shape."""
    backend = tensor.backend
    if grad is None:
        if tensor.numel() != 1:
            raise RuntimeError(
                f"backward(): grad can be created implicitly only for one-element outputs; this tensor has shape "
                f"{tensor.shape}. Pass grad= (an array or Tensor of that shape), or reduce it first (e.g. .sum())."
            )
        return backend.xp.ones_like(tensor.data)
    if hasattr(grad, "backend"):
        if grad.backend is not backend:
            raise RuntimeError(f"backward(): grad is on {grad.device} but the tensor is on {tensor.device}")
        array = backend.xp.asarray(grad.data, copy=True)
    else:
        host = np.asarray(grad)
        if host.dtype.kind not in "biuf":
            raise TypeError(f"backward(): grad must hold numbers, got {type(grad).__name__} of dtype {host.dtype}")
        array = backend.asarray(host, tensor.dtype)
    if tuple(array.shape) != tensor.shape:
        raise ValueError(f"backward(): grad has shape {tuple(array.shape)}, the tensor has shape {tensor.shape}")
    return array


def grad(tensor: Tensor, value: Any) -> Any:
    """``tensor.grad = value`` is accepted for None and for a Tensor of the tensor's shape, dtype and device (as
    PyTorch: "assigned grad has data of a different size")."""
    if value is None:
        return None
    if not hasattr(value, "backend"):
        raise TypeError(f"assigned grad must be a Tensor or None, got {type(value).__name__}")
    if value.shape != tensor.shape or value.backend is not tensor.backend or value.dtype != tensor.dtype:
        raise ValueError(f"assigned grad has shape {value.shape}, {value.dtype} on {value.device}; the tensor has "
                         f"shape {tensor.shape}, {tensor.dtype} on {tensor.device}")
    return value


def inplace_result(method: str, new: Any, tensor: Tensor, grad_enabled: bool) -> None:
    """Checks before ``method`` (an in-place op) writes the array ``new`` into ``tensor``: no tensor that requires
    grad while grad mode is on (in-place changes are not recorded on the tape), the shape kept, no float into ints."""
    if tensor.requires_grad and grad_enabled:
        kind = "a leaf" if tensor.is_leaf else "an op's output"
        raise RuntimeError(
            f"{method}: this tensor ({kind}, shape {tensor.shape}) requires grad, and in-place changes are not "
            "recorded on the tape. Wrap a parameter update in `with no_grad():`, or compute out of place "
            f"(e.g. y = x + 1 instead of x.add_(1))."
        )
    if tuple(new.shape) != tensor.shape:
        raise RuntimeError(f"{method}: the result has shape {tuple(new.shape)}, which does not fit in place into "
                           f"this tensor of shape {tensor.shape}")
    if not is_floating(tensor.dtype) and is_floating(tensor.backend.numpy_dtype(new.dtype)):
        raise TypeError(f"{method}: a floating result can't be written in place into a tensor of dtype {tensor.dtype}")


def broadcast_source(method: str, src: Any, tensor: Tensor) -> Any:
    """``src`` (an array) broadcast to ``tensor``'s shape, for ``copy_``; a RuntimeError if it does not broadcast."""
    try:
        return tensor.backend.xp.broadcast_to(src, tensor.shape)
    except ValueError as exc:
        raise RuntimeError(f"{method}: source of shape {tuple(src.shape)} does not broadcast to this tensor's shape "
                           f"{tensor.shape}") from exc


def matmul_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """``a @ b``'s shapes: NumPy's matmul semantics (see ``ops/matmul.py``); an InputError when they do not align."""
    if not a or not b:
        raise InputError("MatMul: both operands must be tensors with at least one dimension; use * for scalars")
    if a[-1] != (b[0] if len(b) == 1 else b[-2]) or batch_shape(a[:-2], b[:-2]) is None:
        raise InputError(f"MatMul: shapes {a} and {b} are not aligned: "
                         f"(..., M, K) @ (..., K, N) needs equal K and broadcastable batch axes")


def bounds(method: str, low: Any, high: Any, hint: str = "") -> None:
    """The bounds of ``clamp``/``clip``: Python numbers or None, low <= high."""
    for which, bound in (("min", low), ("max", high)):
        if bound is not None and not isinstance(bound, (int, float)):
            raise TypeError(f"{method}: {which} must be a Python number or None, got {type(bound).__name__}{hint}")
    if low is not None and high is not None and low > high:
        raise InputError(f"{method}: min ({low}) is greater than max ({high})")


def device_and_dtype(device: Any, dtype: Any) -> tuple[Any, Any]:
    """The arguments of ``Tensor.to``: ``to(device)``, ``to(dtype)``, ``to(device, dtype)`` or ``to(other)`` (another
    tensor's device and dtype), as PyTorch. A string is a device; anything else in first place is a dtype."""
    if hasattr(device, "backend"):  # another tensor
        if dtype is not None:
            raise TypeError("to(): got a tensor to take the device and dtype from, and a dtype")
        return device.device, device.dtype
    if device is None or isinstance(device, str):
        return device, dtype
    if dtype is not None:
        raise TypeError(f"to(): {device!r} is not a device string such as 'cpu' or 'cuda:0'")
    return None, device
