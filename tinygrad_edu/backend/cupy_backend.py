"""The CUDA backend: CuPy, seen through ``array_api_compat.cupy`` so that it speaks the array API standard.

CuPy is imported only when a ``"cuda"`` device is asked for. Install it with the package's extra that matches the
CUDA driver: ``pip install "tinygrad_edu[cuda12]"`` or ``"tinygrad_edu[cuda13]"``.

Low precision on CUDA is float16 only: its products run our float16 GEMM kernels (``kernels/gemm_fp16.cu``) and
batch normalization the fused float16 kernels. bfloat16 is refused (``dtype``, ``from_host``) with a TypeError: none
of the kernels here handle it, and CuPy's own bfloat16 (through ml_dtypes, new and partial in CuPy 14) has not been
checked against this backend on a GPU.
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

from tinygrad_edu.backend.base import DEFAULT_SEED, Backend


class DeviceUnavailableError(RuntimeError):
    """A CUDA device was asked for, but CuPy is missing or sees no GPU."""


def import_cupy():
    """Import CuPy and check that it sees a GPU; raise ``DeviceUnavailableError`` saying which part is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceUnavailableError(
            "device 'cuda' needs CuPy, which is not installed "
            f"({exc}). Install the extra matching your CUDA driver: "
            "pip install \"tinygrad_edu[cuda12]\" (CUDA 12.x) or \"tinygrad_edu[cuda13]\" (CUDA 13.x)."
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no device
        raise DeviceUnavailableError(
            f"device 'cuda': CuPy {cupy.__version__} is installed but sees no CUDA GPU ({exc}). "
            "Check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or use device 'cpu'."
        ) from None
    if count == 0:
        raise DeviceUnavailableError(
            f"device 'cuda': CuPy {cupy.__version__} is installed but sees no CUDA GPU. "
            "Check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or use device 'cpu'."
        )
    return cupy


_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def _no_bfloat16(device: str) -> str:
    return (f"device {device!r} has no dtype bfloat16 in tinygrad_edu: its CUDA kernels are float16 only and CuPy's "
            "bfloat16 is not supported here; use float16 on CUDA, or bfloat16 on the CPU")


class CupyBackend(Backend):
    """Device ``"cuda:N"``: CuPy arrays on GPU ``N``, a seeded ``cupy.random.RandomState`` per device."""

    def __init__(self, index: int) -> None:
        cupy = import_cupy()
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise DeviceUnavailableError(f"device 'cuda:{index}' does not exist: CuPy sees {count} GPU(s)")
        import array_api_compat.cupy
        import cupyx

        self._cupy, self._cupyx = cupy, cupyx
        self.xp = array_api_compat.cupy
        self.name = f"cuda:{index}"
        self.device = cupy.cuda.Device(index)
        self.context = self.device
        self.float16 = np.dtype(np.float16)
        self.manual_seed(DEFAULT_SEED)

    def dtype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype == _BFLOAT16:
            raise TypeError(_no_bfloat16(self.name))
        return dtype

    def from_host(self, host):
        if host.dtype == _BFLOAT16:
            raise TypeError(_no_bfloat16(self.name))
        with self.device:
            return self._cupy.asarray(host)

    def to_host(self, array):
        return self._cupy.asnumpy(array)

    def owns(self, array: Any) -> bool:
        return isinstance(array, self._cupy.ndarray) and array.device.id == self.device.id

    @staticmethod
    def device_of(array: Any) -> str | None:
        cupy = sys.modules.get("cupy")  # a CuPy array exists only once CuPy was imported
        return f"cuda:{array.device.id}" if cupy is not None and isinstance(array, cupy.ndarray) else None

    def manual_seed(self, seed):
        with self.device:
            self.rng = self._cupy.random.RandomState(seed)

    def uniform(self, shape, low, high, dtype):
        with self.device:
            return self.rng.uniform(low, high, size=shape).astype(np.dtype(dtype), copy=False)

    def normal(self, shape, mean, std, dtype):
        with self.device:
            return self.rng.normal(mean, std, size=shape).astype(np.dtype(dtype), copy=False)

    def scatter_add(self, target, index, values):
        with self.device:
            self._cupyx.scatter_add(target, index, values)

    # -- the CUDA kernels (kernels/*.cu, compiled at run time; see kernels/cuda.py) ---------------------------------
    def matmul_accumulate(self, a, b, accumulate_dtype):
        """float16 operands with a float32 accumulator: the tensor-core GEMM (or its SIMT fallback), in both the
        forward and the backward GEMMs of ``@``, ``linear`` and ``conv2d``; other dtypes: the base class."""
        if a.dtype == self.float16 and b.dtype == self.float16 and np.dtype(accumulate_dtype) == np.float32:
            from tinygrad_edu.backend.kernels import cuda

            with self.device:
                return cuda.matmul_fp16(a, b, out_dtype=np.float16)
        return super().matmul_accumulate(a, b, accumulate_dtype)

    def kernel(self, name):
        """``"batch_norm_fp16_forward"``, ``"batch_norm_fp16_backward"``: fused training-mode batch normalization of
        float16 x, statistics in float32 (kernels/batchnorm_fp16.cu; ``FusedBatchNormFunction`` calls them)."""
        if name not in ("batch_norm_fp16_forward", "batch_norm_fp16_backward"):
            return None
        from tinygrad_edu.backend.kernels import cuda

        return getattr(cuda, name)
