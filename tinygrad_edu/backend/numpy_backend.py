"""The CPU backend: NumPy 2, whose main namespace implements the array API standard.

Its low-precision dtypes are NumPy's float16 and ``ml_dtypes``' bfloat16 (a NumPy dtype that ml_dtypes registers);
their matrix products run the CPU kernel ``kernels/matmul_cpu.py`` (float32 accumulation).
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

from tinygrad_edu.backend.base import DEFAULT_SEED, Backend, kernel_call


class NumpyBackend(Backend):
    """Device ``"cpu"``: arrays are ``numpy.ndarray``, random numbers come from a seeded ``numpy.random.Generator``."""

    name = "cpu"
    xp = np
    device = "cpu"
    float16 = np.dtype(np.float16)
    bfloat16 = np.dtype(ml_dtypes.bfloat16)

    def __init__(self) -> None:
        self.manual_seed(DEFAULT_SEED)
        self._scratch: dict[str, np.ndarray] = {}

    def scratch(self, name, shape, dtype):
        """The previous call's array for ``name`` when nothing else holds it any more (the op that saved it has run
        its backward: a NumPy view of it would hold it through ``.base``), else a new one, kept for the next call.
        Reusing it saves allocating, and page-faulting, tens of MiB at every step: memory the C library may have
        handed back to the OS in between, which made conv2d's step time change from run to run."""
        array = self._scratch.get(name)
        # held by the cache, this variable and getrefcount's argument only: free to be written again
        if array is not None and array.shape == shape and array.dtype == dtype and sys.getrefcount(array) <= 3:
            return array
        array = self._scratch[name] = np.empty(shape, dtype=dtype)
        return array

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

        return kernel_call(matmul_cpu.matmul_accumulate, a, b, accumulate_dtype)
