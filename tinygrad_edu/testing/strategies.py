"""Hypothesis strategies for property-testing ops and layers: shapes, broadcastable pairs, values, layouts.

Example::

    from hypothesis import given
    from tinygrad_edu.testing import strategies as tst

    @given(tst.arrays(shape=tst.shapes(), dtype="float64"))
    def test_my_op(x): ...

Values are kept in a bounded range (``magnitude``), optionally away from a set of kinks (``avoid``), so central
differences stay meaningful. ``layouts`` turns an array into an equal-valued non-contiguous view (a permuted copy
transposed back, or a strided slice of a larger array), the awkward memory layouts real code hands to ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = ("float16", "float32", "float64")


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5) -> st.SearchStrategy:
    """Array shapes, size-1 axes included (``min_side=1``)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4, max_side: int = 4) -> st.SearchStrategy:
    """Tuples of ``num_shapes`` shapes that broadcast together (size-1 axes and missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    ).map(lambda result: result.input_shapes)


def dtypes(names: Sequence[str] = FLOAT_DTYPES) -> st.SearchStrategy:
    """Floating-point NumPy dtypes."""
    return st.sampled_from([np.dtype(n) for n in names])


def arrays(
    shape: Any = None,
    dtype: Any = "float64",
    magnitude: float = 2.0,
    avoid: Sequence[float] = (),
    margin: float = 1e-2,
    unique: bool = False,
) -> st.SearchStrategy:
    """Arrays with values in [-magnitude, magnitude], none within ``margin`` of a point in ``avoid`` (kinks).

    ``shape`` is a tuple or a strategy of shapes (default ``shapes()``). ``unique=True`` draws values at least
    ``margin`` apart from each other: no ties, for max, maxout and sorting.
    """
    shape = shapes() if shape is None else shape
    elements = st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False, width=64)
    if avoid:
        elements = elements.filter(lambda v: all(abs(v - k) >= margin for k in avoid))
    if unique:  # round to a grid of step margin, so distinct values are at least margin apart
        elements = elements.map(lambda v: round(v / margin) * margin)
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique).map(lambda a: a.astype(dtype))


def positive_arrays(shape: Any = None, dtype: Any = "float64", low: float = 0.1, high: float = 3.0) -> st.SearchStrategy:
    """Arrays with values in [low, high] (inputs of log, sqrt, division)."""
    shape = shapes() if shape is None else shape
    elements = st.floats(low, high, allow_nan=False, width=64)
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: a.astype(dtype))


@st.composite
def layouts(draw: st.DrawFn, array: np.ndarray) -> np.ndarray:
    """``array``'s values in a possibly non-contiguous layout: as is, transposed storage, or a strided view."""
    kind = draw(st.sampled_from(["contiguous", "permuted", "strided"]))
    if array.ndim == 0 or kind == "contiguous":
        return array
    if kind == "permuted":
        order = draw(st.permutations(range(array.ndim)))
        inverse = np.argsort(order)
        return np.ascontiguousarray(np.transpose(array, order)).transpose(inverse)
    step = draw(st.integers(2, 3))
    padded = np.zeros(array.shape[:-1] + (array.shape[-1] * step,), dtype=array.dtype)
    padded[..., ::step] = array
    return padded[..., ::step]
