"""The CPU backend: NumPy 2, whose main namespace implements the array API standard.

Its low-precision dtypes are NumPy's float16 and ``ml_dtypes``' bfloat16 (a NumPy dtype that ml_dtypes registers);
their matrix products run the CPU kernel ``kernels/matmul_cpu.py`` (float32 accumulation).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from tinygrad_edu.backend.base import DEFAULT_SEED, Backend


class NumpyBackend(Backend):
    """Device ``"cpu"``: arrays are ``numpy.ndarray``, random numbers come from a seeded ``numpy.random.Generator``."""

    name = "cpu"
    xp = np
    device = "cpu"
    float16 = np.dtype(np.float16)
    bfloat16 = np.dtype(ml_dtypes.bfloat16)

    def __init__(self) -> None:
        self.manual_seed(DEFAULT_SEED)

    def from_host(self, host: np.ndarray) -> np.ndarray:
        return host

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def owns(self, array: Any) -> bool:
        return isinstance(array, np.ndarray)

    def manual_seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def uniform(self, shape, low, high, dtype):
        return self.rng.uniform(low, high, size=shape).astype(dtype, copy=False)

    def normal(self, shape, mean, std, dtype):
        return self.rng.normal(mean, std, size=shape).astype(dtype, copy=False)

    def bernoulli(self, shape, p, dtype):
        return (self.rng.random(size=shape, dtype=np.float32) < p).astype(dtype)

    def scatter_add(self, target, index, values):
        np.add.at(target, index, values)

    def matmul_accumulate(self, a, b, accumulate_dtype):
        from tinygrad_edu.backend.kernels import matmul_cpu

        return matmul_cpu.matmul_accumulate(a, b, accumulate_dtype)
