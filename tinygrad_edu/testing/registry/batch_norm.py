"""Entries of batch normalization (``tinygrad_edu.nn.functional.batch_norm`` and ``sync_batch_norm``): training
mode, evaluation mode, the slides' staged backward, and synchronized batchnorm in a world of one process.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_edu.nn import functional as F
from tinygrad_edu.tensor import Tensor
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _away_from, _shape, _uniform


def _batch_norm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x (N, C), (N, C, L) or (N, C, H, W) of at most 64 elements with M >= 3 values per channel (batch and spatial
    positions), γ and β (C,).

    Each channel of x is a shuffled ladder of M values spanning [-1, 1], scaled by 0.5 to 1.5 and shifted by -1 to
    1: its variance is never small (no blow-up of 1/σ). M >= 3, because with M = 2 every x̂ is ±1 and dL/dx shrinks
    to O(ε), below the round-off floor of the relative error.
    """
    ndim = int(rng.integers(2, 5))
    shape = _shape(rng, ndim, ndim)
    while not (3 <= math.prod(shape) // shape[1] and math.prod(shape) <= 64):  # small sums: small round-off
        shape = _shape(rng, ndim, ndim)
    channels, count = shape[1], math.prod(shape) // shape[1]
    ladders = np.stack([rng.permutation(np.linspace(-1.0, 1.0, count)) for _ in range(channels)])
    ladders = ladders * rng.uniform(0.5, 1.5, (channels, 1)) + rng.uniform(-1.0, 1.0, (channels, 1))
    x = np.moveaxis(ladders.reshape((channels, shape[0]) + shape[2:]), 0, 1)
    return [np.ascontiguousarray(x), _away_from(rng, (channels,), margin=0.5), _uniform(rng, (channels,))]


def _running_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Fixed running mean in [-0.5, 0.5] and running variance in [0.5, 2] per channel (float32 for float16 x)."""
    channels = x.shape[1]
    dtype = np.float32 if x.dtype == np.float16 else x.dtype
    return (Tensor(np.linspace(-0.5, 0.5, channels), dtype=dtype, device=x.device),
            Tensor(np.linspace(0.5, 2.0, channels), dtype=dtype, device=x.device))


register(
    "batch_norm",
    lambda x, w, b: (F.batch_norm(x, *_running_stats(x), w, b, training=True, momentum=0.2),
                     F.batch_norm(x, None, None, training=True)),
    _batch_norm_inputs,
    (F.BatchNormFunction,),
    "training mode, x (N, C), (N, C, L) or (N, C, H, W) with >= 3 values per channel, γ and β differentiated; "
    "with running statistics updated and without, affine and not",
)
register(
    "batch_norm_eval",
    lambda x, w, b: (F.batch_norm(x, *_running_stats(x), w, b), F.batch_norm(x, *_running_stats(x))),
    _batch_norm_inputs,
    (F.BatchNormEvalFunction,),
    "evaluation mode with fixed running statistics (mean in [-0.5, 0.5], variance in [0.5, 2]); affine and not",
)
register(
    "batch_norm_staged",
    lambda x, w, b: (F.batch_norm_staged(x, w, b), F.batch_norm_staged(x, eps=1e-3)),
    _batch_norm_inputs,
    (F.BatchNormStagedFunction,),
    "the slides' node-by-node backward (training mode), affine, and not affine with eps 1e-3",
)
register(
    "sync_batch_norm",
    lambda x, w, b: (F.SyncBatchNormFunction.apply(x, w, b, running_mean=_running_stats(x)[0].data, momentum=0.2),
                     F.SyncBatchNormFunction.apply(x, 1.0, 0.0)),
    _batch_norm_inputs,
    (F.SyncBatchNormFunction,),
    "synchronized batchnorm in a world of one process (the all-reduces return their input); across 2 and 4 MPI "
    "processes it is gradchecked in tests/test_distributed.py",
)
