"""Entries of ``tinygrad_edu.ops.conversion``: ``Cast``, as a round trip through another float dtype.

Its inputs lie on a grid of float32-exact values and the entry's own ``eps`` is a power of two, so the perturbed
inputs are float32-exact too and the central difference stays exact (a step of 1e-6 would be rounded away by
float32). ``ToDevice`` (``Tensor.to(device)``) needs two devices: it is ``UNREGISTERED``, and gradchecked between
"cpu" and "strict" in ``tests/test_ops_gradients.py``.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import ops
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _shape


def _round_trip(x: Tensor) -> Tensor:
    """x cast to another float dtype and back: float64 -> float32 -> float64, float32 -> float64 -> float32, ..."""
    return x.astype(np.float32 if x.dtype == np.float64 else np.float64).astype(x.dtype)


register(
    "cast",
    _round_trip,
    lambda rng: [np.asarray(rng.integers(-256, 257, size=_shape(rng, 0)) / 64, dtype=np.float64)],
    (ops.Cast,),
    "astype to another float dtype and back; inputs k/64 (|k| <= 256) and eps 2^-12 keep every value float32-exact",
    eps=2.0**-12,
)
