"""Entries of ``tinygrad_edu.ops.elementwise``: exp, log, sqrt, tanh, sigmoid, relu, abs, clip, where, maximum and
minimum.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import ops
from tinygrad_edu.functions import maximum, minimum, where
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import (
    _away_from,
    _broadcast_pair,
    _one,
    _pair,
    _pattern,
    _positive,
    _uniform,
)


def _separated_pair(rng: np.random.Generator) -> list[np.ndarray]:
    """A broadcasting pair whose elements differ by 0.06 or more wherever they meet: maximum/minimum never tie.

    a = 0.2 k ± 0.02 and b = 0.2 k + 0.1 ± 0.02 (k integers): a - b is at least 0.06 from every multiple of 0.2.
    """
    shape_a, shape_b = _broadcast_pair(rng)
    a = 0.2 * rng.integers(-8, 9, size=shape_a) + rng.uniform(-0.02, 0.02, size=shape_a)
    b = 0.2 * rng.integers(-8, 9, size=shape_b) + 0.1 + rng.uniform(-0.02, 0.02, size=shape_b)
    return [np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)]


register("exp", lambda x: x.exp(), _one(_uniform, min_dims=0), (ops.Exp,), "x in [-1.5, 1.5]")
register("log", lambda x: x.log(), _one(_positive, min_dims=0), (ops.Log,), "x in [0.2, 2]")
register("sqrt", lambda x: x.sqrt(), _one(_positive, min_dims=0), (ops.Sqrt,), "x in [0.2, 2]")
register("tanh", lambda x: x.tanh(), _one(_uniform, min_dims=0), (ops.Tanh,), "x in [-1.5, 1.5]")
register("sigmoid", lambda x: x.sigmoid(), _one(lambda rng, s: _uniform(rng, s, -3.0, 3.0), min_dims=0),
         (ops.Sigmoid,), "x in [-3, 3]: both branches of the stable formula")
register("relu", lambda x: (x.relu(), F.relu(x)), _one(_away_from, min_dims=0), (ops.Relu,),
         "Tensor.relu and F.relu; |x| in [0.05, 1.5]")
register("abs", lambda x: x.abs(), _one(_away_from, min_dims=0), (ops.Abs,), "|x| in [0.05, 1.5]")
register(
    "clip",
    lambda x: (x.clip(-0.5, 0.8), x.clip(min=-0.5), x.clamp(max=0.8)),
    _one(lambda rng, shape: np.where(rng.random(shape) < 0.5, _away_from(rng, shape, -0.5, reach=1.0),
                                     _away_from(rng, shape, 0.8, reach=1.0))),
    (ops.Clip,),
    "bounds [-0.5, 0.8], min only, max only; x at least 0.05 from both bounds",
)
register("where", lambda a, b: where(_pattern(a, np.broadcast_shapes(a.shape, b.shape)), a, b), _pair(),
         (ops.Where,), "broadcasting pair, a fixed checkerboard condition")
register("maximum", lambda a, b: (maximum(a, b), a.maximum(0.5)), _separated_pair, (ops.Maximum,),
         "broadcasting pair without ties (gaps >= 0.06); tensor and scalar 0.5")
register("minimum", lambda a, b: (minimum(a, b), minimum(-0.4, b)), _separated_pair, (ops.Minimum,),
         "broadcasting pair without ties (gaps >= 0.06); scalar -0.4 and tensor")
