"""Functions of several tensors, beside the Tensor's methods: ``cat``, ``stack``, ``split``, ``where``, ``maximum``,
``minimum`` (``torch.cat``, ``torch.where`` ...). Each checks its arguments and applies one op of ``tinygrad_edu.ops``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_edu import dtypes, ops
from tinygrad_edu.autograd.function import InputError
from tinygrad_edu.tensor import Tensor, _operand, promoted


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = list(tensors)
    if not tensors:
        raise InputError("Concatenate: expected at least one tensor")
    ndim = tensors[0].ndim
    if not -ndim <= axis < ndim:
        raise InputError(f"Concatenate: axis {axis} is out of range for {ndim}-dimensional tensors")
    return ops.Concatenate.apply(*tensors, axis=axis % ndim)


cat = concatenate


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    axis = axis % (tensors[0].ndim + 1)
    return concatenate([t.unsqueeze(axis) for t in tensors], axis=axis)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
    """Split into views along ``axis`` (``Tensor.split``)."""
    return tensor.split(split_size_or_sections, axis)


def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    """Elementwise ``x if condition else y`` (``condition`` a boolean tensor); the gradient flows to the chosen branch.

    ``x`` and ``y`` may be tensors or Python numbers; with two numbers the result is a float32 (or int64) tensor.
    """
    if not isinstance(condition, Tensor):
        like = x if isinstance(x, Tensor) else y
        condition = Tensor(condition, device=like.device if isinstance(like, Tensor) else None)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a boolean tensor, got dtype {condition.dtype}")
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x, device=condition.device)
    like = x if isinstance(x, Tensor) else y
    x, y = _operand(x, like), _operand(y, like)
    if not dtypes.same_floating(x, y):
        (x, y), _, _ = dtypes.promote("Where", (x, y))  # the condition stays bool
    return ops.Where.apply(condition, x, y)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return promoted(ops.Maximum, _operand(a, like), _operand(b, like))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return promoted(ops.Minimum, _operand(a, like), _operand(b, like))
