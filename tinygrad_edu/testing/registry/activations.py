"""Entries of the activations of ``tinygrad_edu.nn.functional``: the ReLU variants (leaky_relu, prelu, crelu, elu)
and maxout. (relu itself is an op: ``elementwise.py``; softmax and log_softmax: ``softmax.py``.)
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _away_from, _distinct, _one, _shape, _side, _uniform

register("leaky_relu", lambda x: (F.leaky_relu(x), F.leaky_relu(x, 0.2), F.leaky_relu(x, negative_slope=-0.5)),
         _one(_away_from, min_dims=0), (F.LeakyRelu,), "slopes 0.01 (default), 0.2, -0.5; |x| in [0.05, 1.5]")


def _prelu_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x of 0 to 4 axes away from the kink, one slope per channel (C,) (C = axis 1, or 1) and one shared (1,)."""
    x = _away_from(rng, _shape(rng, 0, 4))
    channels = x.shape[1] if x.ndim >= 2 else 1
    return [x, _uniform(rng, (channels,), -0.5, 1.0), _uniform(rng, (1,), -0.5, 1.0)]


register("prelu", lambda x, a, b: (F.prelu(x, a), F.prelu(x, b)), _prelu_inputs, (F.PRelu,),
         "x (|x| in [0.05, 1.5]) and both slopes differentiated: per channel (C,) on axis 1, shared (1,)")
register("crelu", lambda x: (F.crelu(x), F.crelu(x, dim=0), F.crelu(x, dim=-1)),
         _one(_away_from, min_dims=2), (F.CRelu,), "dim 1 (default), 0 and -1; |x| in [0.05, 1.5]")
register("elu", lambda x: (F.elu(x), F.elu(x, alpha=0.5), F.elu(x, 2.0)), _one(_away_from, min_dims=0),
         (F.Elu,), "alpha 1 (default), 0.5, 2 (a kink at 0 unless alpha = 1); |x| in [0.05, 1.5]")


def _maxout_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x of shape (n, 2 or 4) or (n, 2 or 4, 2 or 4), distinct values (no ties)."""
    even = lambda: 2 * int(rng.integers(1, 3))  # noqa: E731
    shape = (_side(rng), even()) + ((even(),) if rng.random() < 0.5 else ())
    return [_distinct(rng, shape)]


register(
    "maxout",
    lambda x: (F.maxout(x, 2), F.maxout(x, x.shape[1]), F.maxout(x, x.shape[0], dim=0), F.maxout(x, 2, dim=-1),
               F.maxout(x, 1)),
    _maxout_inputs,
    (F.MaxoutFunction,),
    "pieces 2 on axis 1 (default), one group of all of axis 1, one group of all of axis 0, pieces 2 on the last "
    "axis, pieces 1 (identity); distinct values (gaps >= 0.04)",
)
