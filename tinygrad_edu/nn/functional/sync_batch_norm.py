"""Synchronized batch normalization: K processes with batches of B normalize as one process with a batch of K·B.

In data-parallel training each process sees only its own B samples. Plain batchnorm then normalizes with per-process
statistics (the default: cheap, and for large B nearly the same). ``SyncBatchNormFunction`` instead all-reduces the
few per-channel sums it needs, so that every process uses the statistics of the whole K·B batch:

    forward:   Σ x and the count M, summed over the processes        ->  μ            (C + 1 values)
               Σ (x - μ)², summed over the processes                 ->  σ²           (C values)
    backward:  Σ dy and Σ dy·x̂, summed over the processes            ->  dx           (2C values)

The forward sends the sum of squares about the global mean, in a second small all-reduce, rather than Σ x² in the
first: σ² = Σx²/M - μ² cancels catastrophically when |μ| ≫ σ (in float32 with μ = 1000, σ = 2 it errs by percents
of σ²; tests/test_distributed.py checks the two-pass form there). Each process's sums are taken in float32 (float16
input) or its own dtype, and sent in float64.

Backward, for replica k with upstream gradient dy (its own loss), x̂ = (x - μ)/σ̃ and the global sums:

    dx = γ/σ̃ · (dy - Σ_all dy / M - x̂ · Σ_all dy x̂ / M)          (BatchNormFunction's closed form, global sums)
    dγ = Σ_local dy x̂          dβ = Σ_local dy                        (local: DistributedDataParallel averages them)

Why this is the gradient of one process on K·B samples: that process's loss is ℓ = (1/K) Σ_k ℓ_k, so its upstream
gradient is dy/K and its dx is the line above divided by K. Each replica's dx is K times its share; the gradients of
the layers below are then K times theirs, and DistributedDataParallel's average over K processes divides it out.
dγ and dβ: (1/K) Σ_k of the local sums is exactly Σ_all dy x̂ / K. So K replicas step exactly as one process would.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.nn.functional.batch_norm import (
    BatchNormFunction,
    _data,
    check_inputs,
    in_compute_dtype,
    per_channel,
    update_running_stats,
)
from tinygrad_edu.tensor import Tensor


def _all_reduce(ctx, *vectors):
    """Sum 1-D arrays over the processes, packed into one all-reduce of float64; returns them, summed, in float64."""
    from tinygrad_edu.distributed import process_group as pg

    xp = ctx.xp
    packed = pg.all_reduce_array(ctx.backend, xp.concat([xp.astype(v, xp.float64) for v in vectors]), "sum")
    bounds = [0]
    for v in vectors:
        bounds.append(bounds[-1] + v.shape[0])
    return [packed[a:b] for a, b in zip(bounds, bounds[1:])]


class SyncBatchNormFunction(Function):
    """Training-mode batch normalization with statistics over every process of the group (see the module text).

    Saved for backward: x̂, 1/σ̃ (C values), γ, and the global count M."""

    @staticmethod
    def forward(ctx, x, gamma, beta, *, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        xp, Σ = ctx.xp, ctx.backend.sum_per_channel
        local_count = ctx.backend.asarray([float(math.prod(x.shape) // x.shape[1])], np.float64)
        total, count = _all_reduce(ctx, Σ(x), local_count)
        ctx.M = M = int(count[0])  # the values per channel in all processes' batches together
        if M == 1:  # known only now: the other processes' counts arrive with the all-reduce
            raise InputError(f"sync_batch_norm: Expected more than 1 value per channel when training, got {M} over "
                             f"all processes (input size {tuple(x.shape)} here)")
        mu = xp.astype(total / M, x.dtype)
        x_hat = x - per_channel(xp, mu, x)  # x - μ, centered on the global mean: normalized in place below
        (sum_sq,) = _all_reduce(ctx, Σ(x_hat * x_hat))
        var = xp.astype(sum_sq / M, x.dtype)  # biased, over all M values
        inv_std = 1 / xp.sqrt(var + eps)
        x_hat *= per_channel(xp, inv_std, x)  # x̂ = (x - μ)/σ̃
        ctx.save_for_backward(x_hat, inv_std, gamma)
        update_running_stats(xp, running_mean, running_var, momentum, mu, var, M)  # every process: the same values
        y = per_channel(xp, gamma, x) * x_hat
        y += per_channel(xp, beta, x)  # y = γ x̂ + β
        return y

    @staticmethod
    def backward(ctx, dy):
        xp, Σ, M = ctx.xp, ctx.backend.sum_per_channel, ctx.M
        x_hat, inv_std, gamma = ctx.saved_tensors
        d_beta, d_gamma = Σ(dy), Σ(dy * x_hat)  # local: DistributedDataParallel averages them
        all_d_beta, all_d_gamma = (xp.astype(s, dy.dtype) for s in _all_reduce(ctx, d_beta, d_gamma))
        dx = x_hat * per_channel(xp, all_d_gamma / -M, dy)  # batchnorm's closed form, with the global sums:
        dx += dy  # dx = γ/σ̃ · (dy - x̂ Σ_all dy x̂ / M - Σ_all dy / M)
        dx -= per_channel(xp, all_d_beta / M, dy)
        dx *= per_channel(xp, gamma * inv_std, dy)
        return dx, d_gamma, d_beta


def sync_batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,  # noqa: A002
                    weight: Tensor | None = None, bias: Tensor | None = None, momentum: float = 0.1,
                    eps: float = 1e-5) -> Tensor:
    """Training-mode batch normalization with the statistics of every process's batch together (the group of
    ``tinygrad_edu.distributed``); the running statistics, when given, are updated in place with them. In a world
    of one process (or before ``init_process_group``) this is ``batch_norm(..., training=True)``."""
    from tinygrad_edu.distributed import process_group as pg

    check_inputs("sync_batch_norm", input, weight, bias, eps, running_mean, running_var)
    function = SyncBatchNormFunction if pg.is_initialized() and pg.get_world_size() > 1 else BatchNormFunction
    if function is BatchNormFunction and input.numel() == input.shape[1]:
        raise InputError(f"sync_batch_norm: Expected more than 1 value per channel when training, got input size "
                         f"{input.shape}")
    return in_compute_dtype(function, input, weight, bias, running_mean=_data(running_mean),
                            running_var=_data(running_var), momentum=float(momentum), eps=float(eps))
