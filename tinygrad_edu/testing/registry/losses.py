"""Entries of ``tinygrad_edu.nn.functional.loss``: cross-entropy and the mean squared error, with every reduction."""

from __future__ import annotations

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _same_shape, _shape, _uniform


def _cross_entropy(logits: Tensor) -> tuple[Tensor, ...]:
    """Cross-entropy of logits (N, C) against the fixed target i mod C, with reductions mean, sum and none."""
    n, classes = logits.shape
    target = Tensor(np.arange(n) % classes, device=logits.device)  # a fixed target: 0, 1, 2, ... mod C
    return tuple(F.cross_entropy(logits, target, reduction=r) for r in ("mean", "sum", "none"))


register("cross_entropy", _cross_entropy, lambda rng: [_uniform(rng, _shape(rng, 2, 2), -3.0, 3.0)],
         (F.CrossEntropy,), "logits (N, C) in [-3, 3], target i mod C; reductions mean, sum, none")
register(
    "mse_loss",
    lambda a, b: tuple(F.mse_loss(a, b, reduction=r) for r in ("mean", "sum", "none")),
    _same_shape(2, lambda rng, shape: _uniform(rng, shape, -1.0, 1.0), min_dims=0),
    (F.MSELoss,),
    "input and target in [-1, 1], both differentiated; reductions mean, sum, none",
)
