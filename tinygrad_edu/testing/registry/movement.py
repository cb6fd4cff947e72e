"""Entries of ``tinygrad_edu.ops.movement``: reshape, permute, expand, indexing (basic, integer arrays, boolean
masks), and concatenate, stack, split and pad (``tinygrad_edu.functions``).
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import ops
from tinygrad_edu.functions import concatenate, split, stack
from tinygrad_edu.nn.modules.module import BackwardHookIdentity
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import (
    _one,
    _pattern,
    _same_shape,
    _shape,
    _side,
    _two_or_more_rows,
    _uniform,
)


def _indices(x: Tensor, values: list[int]) -> Tensor:
    """A fixed int64 index array of ``values`` on x's device."""
    return Tensor(np.array(values, dtype=np.int64), device=x.device)


def _with_ones(rng: np.random.Generator) -> list[np.ndarray]:
    """One array with about half of its axes of size 1 (to expand)."""
    return [_uniform(rng, tuple(1 if rng.random() < 0.5 else n for n in _shape(rng)))]


def _differ_in_last_axis(rng: np.random.Generator) -> list[np.ndarray]:
    """Three arrays of one shape but for the size of the last axis (to concatenate along it)."""
    lead = _shape(rng, 0, 2)
    return [_uniform(rng, lead + (_side(rng),)) for _ in range(3)]


register("reshape", lambda x: (x.reshape(-1), x.reshape(tuple(reversed(x.shape))), x.flatten(), x.unsqueeze(0),
                               x.squeeze()),
         _one(_uniform), (ops.Reshape,), "reshape(-1), reversed shape, flatten, unsqueeze, squeeze")
register("permute", lambda x: (x.permute(tuple(range(1, x.ndim)) + (0,)), x.transpose(0, -1), x.T),
         _one(_uniform, min_dims=2, max_dims=4), (ops.Permute,), "a cyclic permute, transpose(0, -1), .T")
register("expand", lambda x: x.expand((2,) + tuple(3 if n == 1 else n for n in x.shape)), _with_ones,
         (ops.Expand,), "size-1 axes grow to 3, a new leading axis of 2")
register("getitem", lambda x: (x[0], x[:, ::2], x[::-1, None, ..., -1:], x[x.shape[0] // 2 :, ..., 0]),
         _one(_uniform, min_dims=2), (ops.GetItem,), "basic indexing: integers, slices with steps, None, ...")


def _integer_arrays(x: Tensor) -> tuple[Tensor, ...]:
    """Integer-array indexing, every index with repeats (their gradients must add up, a scatter-add)."""
    first, last = x.shape[0] - 1, x.shape[-1] - 1
    return (
        x[_indices(x, [first, 0, first])],  # along axis 0
        x[..., _indices(x, [0, 0, last])],  # along the last axis
        x[tuple(_indices(x, [0, n - 1, 0]) for n in x.shape)],  # one array per axis: elements
        x.reshape(-1)[_indices(x, [[0, x.numel() - 1], [0, 0]])],  # a 2-D index into a 1-D tensor
    )


register("getitem_array", _integer_arrays, _one(_uniform, min_dims=2), (ops.GetItem, ops.Reshape),
         "integer-array indices with repeats: along axis 0, along the last axis, one per axis, a 2-D index")
register("getitem_mask", lambda x: x[_pattern(x)], _one(_uniform), (ops.GetItem,), "a boolean mask of x's shape")
register(
    "concatenate",
    lambda a, b, c: (concatenate([a, b, c], axis=-1), concatenate([a, a], axis=0)),
    _differ_in_last_axis,
    (ops.Concatenate,),
    "three tensors along the last axis; one tensor twice along axis 0",
)
register("stack", lambda a, b: (stack([a, b]), stack([a, b, a], axis=-1)), _same_shape(2, min_dims=0),
         (ops.Reshape, ops.Concatenate), "along a new first axis; along a new last axis with a repeat")
register("split", lambda x: (*split(x, 2, axis=-1), *x.split([1, x.shape[0] - 1], axis=0)), _two_or_more_rows,
         (ops.GetItem,), "chunks of 2 along the last axis; sections [1, n - 1] along axis 0")
register("pad", lambda x: x.pad(tuple((i % 2, (i + 1) % 3) for i in range(x.ndim))), _one(_uniform), (ops.Pad,),
         "zero padding (before, after) = (i % 2, (i + 1) % 3) on axis i")
register("backward_hook_identity", lambda x: BackwardHookIdentity.apply(x, on_grad=lambda g, backend: g),
         _one(_uniform), (BackwardHookIdentity,),
         "the identity through which a module's full backward hooks see its gradients (here: passed on unchanged)")
