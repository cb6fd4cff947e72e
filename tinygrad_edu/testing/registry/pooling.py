"""Entries of ``tinygrad_edu.nn.functional.max_pool2d`` and ``avg_pool2d``: kernels, strides, padding and
dilation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _distinct, _uniform


def _pool_inputs(draw: Callable[..., np.ndarray]) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for pooling: x (N, C, H, W) with N 1-2, C 1-2, H and W 2-4 (every kernel in the entries fits)."""
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        n, c = (int(v) for v in rng.integers(1, 3, size=2))
        h, w = (int(v) for v in rng.integers(2, 5, size=2))
        return [draw(rng, (n, c, h, w))]
    return make


register(
    "max_pool2d",
    lambda x: (F.max_pool2d(x, 2), F.max_pool2d(x, 2, stride=1, padding=1), F.max_pool2d(x, 3, stride=2, padding=1),
               F.max_pool2d(x, 2, stride=1, padding=1, dilation=2)),
    _pool_inputs(_distinct),
    (F.MaxPool2dFunction,),
    "x (N, C, 2-4, 2-4) without ties (values >= 0.04 apart); kernel 2; kernel 2 stride 1 padding 1 (overlapping "
    "windows); kernel 3 stride 2 padding 1; kernel 2 stride 1 padding 1 dilation 2",
)
register(
    "avg_pool2d",
    lambda x: (F.avg_pool2d(x, 2), F.avg_pool2d(x, 2, stride=1, padding=1),
               F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), F.avg_pool2d(x, (2, 1), (1, 2))),
    _pool_inputs(_uniform),
    (F.AvgPool2dFunction,),
    "x (N, C, 2-4, 2-4); kernel 2; kernel 2 stride 1 padding 1; kernel 3 stride 2 padding 1 without counting the "
    "padding; kernel (2, 1) stride (1, 2)",
)
