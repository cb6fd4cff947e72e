"""Entries of ``tinygrad_edu.nn.functional.conv2d``: ``F.conv2d`` with and without bias, with strides, padding
and dilation.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _uniform


def _conv2d_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x (N, C, H, W) with N 1-2, C 1-3, H and W 3-4; W (O, C, K, K) with O 1-3 and K 1-3; b (O,). Convolution is
    bilinear (no kinks), so any moderate values do."""
    n, c, o, k = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(3, 5, size=2))
    return [_uniform(rng, (n, c, h, w)), _uniform(rng, (o, c, k, k), -1.0, 1.0), _uniform(rng, (o,))]


register("conv2d", lambda x, w, b: (F.conv2d(x, w, b), F.conv2d(x, w)), _conv2d_inputs, (F.Conv2dFunction,),
         "F.conv2d(x, W, b) and without bias; stride 1, no padding; x (N, C, 3-4, 3-4), kernels 1-3")
register(
    "conv2d_options",
    lambda x, w, b: (F.conv2d(x, w, b, stride=2, padding=1), F.conv2d(x, w, padding=(2, 1), dilation=2),
                     F.conv2d(x, w, b, stride=(1, 2), padding=(0, 1)), F.conv2d(x, w, padding="same", dilation=(1, 2))),
    _conv2d_inputs,
    (F.Conv2dFunction,),
    "stride 2 with padding 1; dilation 2 with padding (2, 1); stride (1, 2) with padding (0, 1); 'same' padding",
)
