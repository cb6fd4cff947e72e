"""``DistributedSampler``: each process's share of a data set, as ``torch.utils.data.DistributedSampler``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_edu.distributed import process_group as pg


class DistributedSampler:
    """The indices of ``dataset`` (anything with ``len()``, or the length itself) that process ``rank`` of
    ``num_replicas`` trains on this epoch.

    Every process draws the same permutation (``numpy.random.default_rng(seed + epoch)``; call ``set_epoch`` each
    epoch for a new one) and takes every ``num_replicas``-th index from position ``rank``. So in step t, the K
    processes' batches of B together are positions t·K·B … (t+1)·K·B - 1 of the permutation: the batch one process
    of batch K·B would take. ``drop_last=False`` pads the permutation with its first indices up to a multiple of K
    (every process gets ``len(sampler)`` indices); ``drop_last=True`` drops the tail instead.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        n = dataset if isinstance(dataset, (int, np.integer)) and not isinstance(dataset, bool) else len(dataset)
        num_replicas = pg.get_world_size() if num_replicas is None else num_replicas
        rank = pg.get_rank() if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        if n < 0:
            raise ValueError(f"DistributedSampler: the data set's length must be >= 0, got {n}")
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), bool(drop_last), 0
        if self.drop_last and self.n % self.num_replicas:
            self.num_samples = self.n // self.num_replicas
        else:
            self.num_samples = math.ceil(self.n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (the same on every process)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This process's indices for the current epoch, as an int64 array."""
        order = np.random.default_rng(self.seed + self.epoch).permutation(self.n) if self.shuffle \
            else np.arange(self.n)
        if self.total_size > self.n:  # pad with the first indices (again, when K exceeds the data set's length)
            order = np.concatenate([order, np.resize(order, self.total_size - self.n)])
        return order[: self.total_size][self.rank :: self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")
