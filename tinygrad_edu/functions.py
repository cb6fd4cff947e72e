"""Functions of several tensors, beside the Tensor's methods: ``cat``, ``stack``, ``split``, ``where``, ``maximum``,
``minimum`` (``torch.cat``, ``torch.where`` ...). Each checks its arguments and applies one op of ``tinygrad_edu.ops``.
A function that takes a dim names it ``dim``, as PyTorch; NumPy's ``axis`` is accepted as an alias (not both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinygrad_edu import arguments, composite, ops
from tinygrad_edu.autograd.function import InputError
from tinygrad_edu.tensor import Tensor, _operand, promoted


def concatenate(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing dim (default 0; ``axis`` is NumPy's spelling), ``torch.cat``; each input's
    gradient is its slice of the output's."""
    tensors = list(tensors)
    dim = arguments.one_dim("cat", dim, axis, default=0)
    if not tensors:
        raise InputError("Concatenate: expected at least one tensor")
    ndim = tensors[0].ndim
    if not -ndim <= dim < ndim:
        raise InputError(f"Concatenate: axis {dim} is out of range for {ndim}-dimensional tensors")
    return ops.Concatenate.apply(*tensors, axis=dim % ndim)


cat = concatenate


def stack(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors of one shape along a new dim (default 0; ``axis`` is NumPy's spelling), ``torch.stack``."""
    tensors = list(tensors)
    dim = arguments.one_dim("stack", dim, axis, default=0)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    if not -(tensors[0].ndim + 1) <= dim <= tensors[0].ndim:
        raise ValueError(f"stack: dim {dim} is out of range for {tensors[0].ndim}-dimensional tensors "
                         f"(expected {-(tensors[0].ndim + 1)} <= dim <= {tensors[0].ndim})")
    dim = dim % (tensors[0].ndim + 1)
    return concatenate([t.unsqueeze(dim) for t in tensors], dim)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int], dim: int | None = None, *,
          axis: int | None = None) -> tuple[Tensor, ...]:
    """Split into views along ``dim`` (default 0; ``axis`` is NumPy's spelling): ``Tensor.split``, ``torch.split``."""
    return tensor.split(split_size_or_sections, arguments.one_dim("split", dim, axis, default=0))


def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    """Elementwise ``x if condition else y`` (``condition`` a boolean tensor); the gradient flows to the chosen branch.

    ``x`` and ``y`` may be tensors or Python numbers; with two numbers the result is a float32 (or int64) tensor.
    """
    if not isinstance(condition, Tensor):
        like = x if isinstance(x, Tensor) else y
        condition = Tensor(condition, device=like.device if isinstance(like, Tensor) else None)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x, device=condition.device)
    like = x if isinstance(x, Tensor) else y
    return composite.where(condition, _operand(x, like), _operand(y, like))


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return promoted(ops.Maximum, _operand(a, like), _operand(b, like))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return promoted(ops.Minimum, _operand(a, like), _operand(b, like))
