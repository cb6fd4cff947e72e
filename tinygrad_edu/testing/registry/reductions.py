"""Entries of ``tinygrad_edu.ops.reduce``: sum, mean, max, min and var, over all axes and over chosen ones."""

from __future__ import annotations

from tinygrad_edu import ops
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _distinct, _one, _two_or_more_rows, _uniform


def _ends(x: Tensor) -> tuple[int, ...]:
    """The first and the last axis (one axis for a 1-D tensor)."""
    return tuple(sorted({0, x.ndim - 1}))


register("sum", lambda x: (x.sum(), x.sum(axis=0, keepdims=True), x.sum(axis=-1), x.sum(axis=_ends(x))),
         _one(_uniform), (ops.Sum,), "all axes, axis 0 with keepdims, last axis, first and last axes")
register("mean", lambda x: (x.mean(), x.mean(axis=0, keepdims=True), x.mean(axis=-1), x.mean(axis=_ends(x))),
         _one(_uniform), (ops.Mean,), "all axes, axis 0 with keepdims, last axis, first and last axes")
register("max", lambda x: (x.max(), x.max(axis=0), x.max(axis=-1, keepdims=True)), _one(_distinct), (ops.Max,),
         "all axes, axis 0, last axis with keepdims; distinct values (gaps >= 0.04)")
register("min", lambda x: (x.min(), x.min(axis=0), x.min(axis=-1, keepdims=True)), _one(_distinct), (ops.Min,),
         "all axes, axis 0, last axis with keepdims; distinct values (gaps >= 0.04)")
register(
    "var",
    lambda x: (x.var(), x.var(axis=0, keepdims=True), x.var(axis=-1, correction=0)),
    _two_or_more_rows,
    (ops.Var,),
    "all axes, axis 0 with keepdims (unbiased: axis 0 has 2 to 4 elements), last axis with correction=0",
)
