"""A test-only backend: ``array_api_strict`` arrays placed on a non-CPU device.

``array_api_strict`` implements the array API standard and nothing else. Its arrays on ``Device("device1")``
refuse silent conversion to NumPy, as CuPy's GPU arrays do, and refuse to mix with arrays on other devices. Running
the core's tests on it (device string ``"strict"``) shows that no NumPy-only call hides in the core.

Its extras (random numbers, scatter-add) work on the host and copy the result onto the device, as a GPU backend
would do them in a kernel. It has no float16 and no bfloat16 (the standard requires neither): ``dtype`` and
``from_host`` refuse them with a TypeError naming the dtype.
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

from tinygrad_edu.backend.base import DEFAULT_SEED, Backend

#: NumPy's low-precision dtypes, which array_api_strict does not have.
_LOW_PRECISION = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


class StrictBackend(Backend):
    """Device ``"strict"``: ``array_api_strict`` arrays on ``Device("device1")``."""

    name = "strict"

    def __init__(self) -> None:
        import array_api_strict
        from array_api_strict._array_object import Array

        self._array_type = Array
        self.xp = array_api_strict
        self.device = array_api_strict.Device("device1")
        self._host_device = array_api_strict.Device("CPU_DEVICE")
        self._dtypes = {
            np.dtype(name): getattr(array_api_strict, name)
            for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "float32", "float64")
        }
        self._names = {v: k for k, v in self._dtypes.items()}
        self.manual_seed(DEFAULT_SEED)

    def dtype(self, dtype):
        if not isinstance(dtype, (np.dtype, str, type)) and dtype in self._names:  # one of array_api_strict's own
            return dtype
        try:
            return self._dtypes[np.dtype(dtype)]
        except KeyError:
            raise TypeError(f"the 'strict' backend has no dtype {np.dtype(dtype)}") from None

    def numpy_dtype(self, dtype):
        return self._names[dtype]

    def from_host(self, host):
        if host.dtype in _LOW_PRECISION:
            raise TypeError(f"the 'strict' backend has no dtype {host.dtype} (array_api_strict does not provide it)")
        return self.xp.asarray(np.asarray(host, order="C"), device=self.device)  # (ascontiguousarray makes 0-d 1-d)

    def to_host(self, array):
        return np.from_dlpack(array.to_device(self._host_device)).copy()

    def owns(self, array: Any) -> bool:
        return isinstance(array, self._array_type) and array.device == self.device

    @staticmethod
    def device_of(array: Any) -> str | None:
        module = sys.modules.get("array_api_strict")  # its arrays exist only once it was imported
        return "strict" if module is not None and isinstance(array, module._array_object.Array) else None

    def manual_seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def uniform(self, shape, low, high, dtype):
        return self.from_host(self.rng.uniform(low, high, size=shape).astype(self.numpy_dtype(self.dtype(dtype))))

    def normal(self, shape, mean, std, dtype):
        return self.from_host(self.rng.normal(mean, std, size=shape).astype(self.numpy_dtype(self.dtype(dtype))))

    def scatter_add(self, target, index, values):
        host = self.to_host(target)
        host_index = tuple(self.to_host(i) if isinstance(i, self._array_type) else i for i in index)
        np.add.at(host, host_index, self.to_host(values))
        target[...] = self.from_host(host)
