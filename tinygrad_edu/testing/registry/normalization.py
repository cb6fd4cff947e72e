"""Entries of layer normalization and weight normalization (``tinygrad_edu.nn.functional.layer_norm`` and
``weight_norm``). (Batch normalization: ``batch_norm.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _away_from, _shape, _uniform


def _spread_groups(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Values whose groups over the trailing ``k`` axes are well spread (std >= 0.4 for two or more elements): a
    shuffled ladder of step 0.8 per group, jitter ±0.1, and a random offset per group. Layer norm's σ stays far
    above sqrt(eps), so its curvature (~1/σ³) leaves central differences accurate."""
    lead, group = shape[: len(shape) - k], shape[len(shape) - k :]
    m = math.prod(group)
    rungs = np.stack([rng.permutation(m) for _ in range(math.prod(lead))]) - (m - 1) / 2
    x = 0.8 * rungs + rng.uniform(-0.1, 0.1, size=rungs.shape) + rng.uniform(-0.5, 0.5, size=(rungs.shape[0], 1))
    return np.asarray(x.reshape(shape), dtype=np.float64)


def _layer_norm_inputs(affine: bool) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """x of 1 to 3 axes with well-spread groups over its last two axes (hence over its last one too), and, if
    ``affine``, weight and bias of x's trailing 1 or 2 axes. The last axis has 3 or 4 elements: in a group of 2,
    x̂ = ±1 up to eps and dx ~ eps / σ³ is so small that round-off dominates its relative error."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape = _shape(rng, 0, 2) + (int(rng.integers(3, 5)),)
        x = _spread_groups(rng, shape, min(2, len(shape)))
        if not affine:
            return [x]
        group = shape[-int(rng.integers(1, min(2, len(shape)) + 1)) :]
        return [x, _uniform(rng, group), _uniform(rng, group)]

    return make_inputs


register(
    "layer_norm",
    lambda x, w, b: (F.layer_norm(x, w.shape, w, b), F.layer_norm(x, w.shape, w), F.layer_norm(x, w.shape, None, b)),
    _layer_norm_inputs(True),
    (F.LayerNormFunction,),
    "weight and bias of x's trailing 1 or 2 axes; also weight only, bias only; groups well spread (std >= 0.4)",
)
register(
    "layer_norm_noaffine",
    lambda x: (F.layer_norm(x, x.shape[-1]), F.layer_norm(x, x.shape[-2:], eps=1e-3)),
    _layer_norm_inputs(False),
    (F.LayerNormFunction,),
    "no weight or bias: over the last axis; over the last two axes with eps 1e-3",
)


def _weight_norm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """v of 2 or 3 axes with |v| in [0.3, 1.5] (every norm >= 0.3), and g for dim 0, the last dim, the whole v."""
    shape = _shape(rng, 2, 3)
    g_first = (shape[0],) + (1,) * (len(shape) - 1)
    g_last = (1,) * (len(shape) - 1) + (shape[-1],)
    return [_away_from(rng, shape, margin=0.3), _uniform(rng, g_first), _uniform(rng, g_last), _uniform(rng, ())]


register(
    "weight_norm",
    lambda v, g0, g1, g: (F.weight_norm(v, g0, 0), F.weight_norm(v, g1, v.ndim - 1), F.weight_norm(v, g, None)),
    _weight_norm_inputs,
    (F.WeightNormFunction,),
    "g * v / |v| over all axes but dim 0, but the last dim, over all axes (dim None); |v| in [0.3, 1.5]",
)
