"""Argument normalization for Tensor methods: axes, shapes, permutations, paddings, indices, splits.

Each helper turns what a user may write (``-1``, a list, ``reshape(2, 3)`` or ``reshape((2, 3))``) into one
canonical form the ops rely on, and raises a ValueError naming the method and the shapes when it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tinygrad_edu.tensor import Tensor


def axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """Normalize a reduction's ``axis`` (None, int or sequence) to a sorted tuple of non-negative axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimension(s)")
        normalized.append(a % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"repeated axis in {axis}")
    if ndim == 0:  # as in PyTorch, a 0-d tensor accepts axis 0 (or -1): it reduces its one element
        return None
    return tuple(sorted(normalized))


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


def flattened(start_dim: int, end_dim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``flatten(start_dim, end_dim)``: the axes from start to end (included) merged into one."""
    if not shape:
        return (1,)
    start, end = start_dim % len(shape), end_dim % len(shape)
    return shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]


def unsqueezed(dim: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``unsqueeze(dim)``: a size-1 axis inserted at ``dim`` (counted in the result)."""
    if not -(len(shape) + 1) <= dim <= len(shape):
        raise ValueError(f"unsqueeze: axis {dim} is out of range for a tensor of shape {shape}")
    dim = dim % (len(shape) + 1)
    return shape[:dim] + (1,) + shape[dim:]


def squeezed(dim: int | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``squeeze(dim)``: without every size-1 axis (``dim=None``), or without axis ``dim`` if its size
    is 1 (unchanged otherwise, as in PyTorch)."""
    if dim is None:
        return tuple(n for n in shape if n != 1)
    ndim = len(shape)
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"squeeze: axis {dim} is out of range for a tensor of shape {shape}")
    if ndim == 0 or shape[dim % ndim] != 1:
        return shape
    return shape[: dim % ndim] + shape[dim % ndim + 1 :]


def split_indices(split_size_or_sections: int | Sequence[int], axis: int, shape: tuple[int, ...]) -> list[tuple]:
    """The index of each piece of ``split``: chunks of ``split_size`` (an int) along ``axis`` (the last one smaller),
    or of the given sizes (a list adding up to the axis's size)."""
    n = shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to the size {n} of axis {axis} of shape {shape}")
    axis, start, indices = axis % len(shape), 0, []
    for size in sizes:
        indices.append((slice(None),) * axis + (slice(start, start + size), Ellipsis))
        start += size
    return indices


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
            item = item.data
        elif isinstance(item, (list, np.ndarray)):
            item = tensor.backend.asarray(np.asarray(item))
        items.append(item)
    if not any(i is Ellipsis or hasattr(i, "shape") for i in items):  # `is`: `in` would compare arrays with ==
        items.append(Ellipsis)
    return tuple(items)
