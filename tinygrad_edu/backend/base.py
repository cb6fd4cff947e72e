"""The Backend interface: what the core asks of an array library.

The core never imports NumPy or CuPy for its math. Every op asks its tensor's backend for

* ``xp``: an array namespace that follows the Python array API standard
  (https://data-apis.org/array-api/), so ``xp.exp``, ``xp.matmul``, ``xp.sum`` ... work the same on every backend;
* a few extras the standard lacks, documented below: random numbers, scatter-add, host transfer, and the fast paths
  an op may take: ``matmul`` (float16 and bfloat16 accumulated in float32: the kernels), ``sum_per_channel`` (a sum
  as BLAS products) and ``kernel(name)`` (a fused kernel, where the backend has it);
* its low-precision storage dtypes (``float16``, ``bfloat16``, ``low_precision``): those it stores and computes in
  float32. A backend without one refuses it (``dtype``, ``from_host``) with a TypeError naming the device and dtype.

A backend is one device: ``"cpu"`` (NumPy), ``"cuda:0"`` (CuPy), ``"strict"`` (array_api_strict on a non-CPU
device, used by the test suite to prove that no NumPy-only call hides in the core).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

#: Seed every backend's generator starts from, so that runs are reproducible by default (as in PyTorch).
DEFAULT_SEED = 0


def kernel_call(kernel: Any, *args: Any) -> Any:
    """``kernel(*args)`` for a compiled kernel that reads its arrays' memory. An argument whose type has
    ``__kernel_call__`` (the jit's traced arrays, ``autograd/lowering.py``) is given the whole call instead: to the
    lowered op it is one call."""
    for a in args:
        hand_over = getattr(type(a), "__kernel_call__", None)
        if hand_over is not None:
            return hand_over(a, kernel, args)
    return kernel(*args)


class Backend:
    """One device and the array library that computes on it.

    Subclasses set ``name`` (the device string, e.g. ``"cpu"`` or ``"cuda:1"``), ``xp`` (the array API
    namespace) and ``device`` (the namespace's device object, passed to ``xp.zeros(..., device=...)``), and
    implement the extras below.
    """

    name: str
    xp: Any
    device: Any

    #: A context manager in which the namespace computes on this backend's device (CuPy: ``cupy.cuda.Device(n)``).
    #: Ops run their forward and backward inside it. None where there is nothing to select (the CPU).
    context: contextlib.AbstractContextManager | None = None

    #: The namespace's float16 dtype, or None where it has none; float16 matmuls accumulate in float32.
    float16: Any = None
    #: The namespace's bfloat16 dtype (``ml_dtypes.bfloat16``), or None where it has none; as float16.
    bfloat16: Any = None

    @functools.cached_property
    def low_precision(self) -> tuple[Any, ...]:
        """The low-precision dtypes this backend stores (its ``float16`` and ``bfloat16``, those it has): ``matmul``
        accumulates them in float32 and rounds once. Empty where it has none (array_api_strict)."""
        return tuple(d for d in (self.float16, self.bfloat16) if d is not None)

    def has_dtype(self, dtype: Any) -> bool:
        """True when this backend can store arrays of ``dtype`` (a NumPy dtype or name)."""
        try:
            self.dtype(dtype)
        except TypeError:
            return False
        return True

    # -- placement -------------------------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: np.dtype | None = None) -> Any:
        """Copy data (a NumPy array, list, scalar, or an array of this backend) into a new array on this device."""
        if self.owns(data):
            array = self.xp.asarray(data, copy=True)
            return array if dtype is None else self.xp.astype(array, self.dtype(dtype))
        host = np.array(data, dtype=dtype, copy=True, order="K")
        return self.from_host(host)

    def from_host(self, host: np.ndarray) -> Any:
        """Move a NumPy array onto this device (may share memory on the CPU)."""
        raise NotImplementedError

    def to_host(self, array: Any) -> np.ndarray:
        """Return the array's values as a NumPy array in host memory."""
        raise NotImplementedError

    def owns(self, array: Any) -> bool:
        """True when ``array`` is an array of this backend's library on this backend's device."""
        raise NotImplementedError

    @staticmethod
    def device_of(array: Any) -> str | None:
        """The device string of ``array`` if it is an array of this kind of backend (``Tensor(cupy_array)`` stays
        on its GPU), else None. Host data (NumPy arrays, lists, numbers) belongs to no device."""
        return None

    # -- dtypes ----------------------------------------------------------------------------------------------
    def dtype(self, dtype: Any) -> Any:
        """The namespace's dtype object for a NumPy dtype or name (``float32`` -> ``xp.float32``); the namespace's
        own dtypes pass through."""
        return np.dtype(dtype)

    def numpy_dtype(self, dtype: Any) -> np.dtype:
        """The NumPy dtype that names the namespace's ``dtype``: tensors report dtypes as NumPy dtypes."""
        return np.dtype(dtype)

    # -- random numbers (seedable, one generator per backend) ------------------------------------------------
    def manual_seed(self, seed: int) -> None:
        """Restart this backend's generator from ``seed``."""
        raise NotImplementedError

    def get_rng_state(self) -> dict[str, Any]:
        """A copy of the generator's state, to restore with ``set_rng_state`` (a checkpoint stores it, so a resumed
        run draws the same dropout masks). For a NumPy ``Generator``: its ``bit_generator.state``, a dict of
        strings and Python ints. Raises ``NotImplementedError`` where the generator cannot export its state."""
        rng = getattr(self, "rng", None)
        if not isinstance(rng, np.random.Generator):
            raise NotImplementedError(f"get_rng_state: the generator of device {self.name!r} "
                                      f"({type(rng).__name__}) cannot export its state; use manual_seed")
        return rng.bit_generator.state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state from ``get_rng_state``; a bad state raises ``ValueError`` and changes nothing."""
        if not isinstance(getattr(self, "rng", None), np.random.Generator):
            raise NotImplementedError(f"set_rng_state: the generator of device {self.name!r} cannot import a state")
        kind = state.get("bit_generator") if isinstance(state, dict) else None
        if kind not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
            raise ValueError(f"set_rng_state: expected a dict from get_rng_state() with 'bit_generator' naming a "
                             f"NumPy bit generator, got {state!r:.100}")
        bit_generator = getattr(np.random, kind)()
        try:
            bit_generator.state = state  # NumPy checks the entries
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"set_rng_state: invalid {kind} state for device {self.name!r}: {error}") from None
        self.rng = np.random.Generator(bit_generator)

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: np.dtype) -> Any:
        """Samples from U[low, high)."""
        raise NotImplementedError

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: np.dtype) -> Any:
        """Samples from N(mean, std^2)."""
        raise NotImplementedError

    def bernoulli(self, shape: tuple[int, ...], p: float, dtype: np.dtype) -> Any:
        """1 with probability ``p``, else 0, in ``dtype`` (a dropout mask is ``bernoulli(shape, 1 - p)``)."""
        return self.xp.astype(self.uniform(shape, 0.0, 1.0, np.float32) < p, self.dtype(dtype))

    # -- extras the standard lacks ---------------------------------------------------------------------------
    def scatter_add(self, target: Any, index: Any, values: Any) -> None:
        """``target[index] += values`` in place, adding repeated indices (unlike ``target[index] += values``)."""
        raise NotImplementedError

    def sum_per_channel(self, a: Any) -> Any:
        """Σ over every axis of ``a`` but axis 1: the (C,) vector of per-channel sums of an (N, C, ...) array (the
        statistics and gradients of batch normalization, the gradient of a bias).

        Computed as products with vectors of ones, ``1ᵀ A`` for (N, C) (after ``(N, C, L) @ 1`` over the positions
        L for more axes): BLAS does them several times faster than a strided ``xp.sum``, and ``matmul`` accumulates
        float16 and bfloat16 in float32.
        """
        if a.ndim > 2:
            a = self.xp.reshape(a, (a.shape[0], a.shape[1], -1))
            a = self.matmul(a, self._ones(a.shape[2], a.dtype))
        return self.matmul(self._ones(a.shape[0], a.dtype), a)

    @functools.cached_property
    def _ones_cache(self) -> dict:
        return {}

    def scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialized array for the large temporary ``name`` of an op (im2col's columns). Here a new one at
        every call; the NumPy backend hands back the previous call's array when nothing holds it any more."""
        return self.xp.empty(shape, dtype=dtype, device=self.device)

    def _ones(self, n: int, dtype: Any) -> Any:
        """A vector of n ones on this device, kept from one call to the next (it is only ever read)."""
        cache = self._ones_cache
        ones = cache.get((n, dtype))
        if ones is None:
            if len(cache) > 64:  # batch sizes come and go: keep the cache small
                cache.clear()
            ones = cache[n, dtype] = self.xp.ones(n, dtype=dtype, device=self.device)
        return ones

    def kernel(self, name: str) -> Any:
        """The fused kernel ``name`` of this backend (a function of arrays), or None where it has none: an op then
        takes its plain path. Kernels: ``"batch_norm_fp16_forward"`` and ``"batch_norm_fp16_backward"`` (CUDA)."""
        return None

    def matmul(self, a: Any, b: Any) -> Any:
        """Matrix product that accumulates low-precision inputs in float32 (the kernel hook).

        float32/float64 operands go to the library's own matmul. Low-precision operands of one dtype (two float16, or
        two bfloat16: ``low_precision``) are multiplied with a float32 accumulator and rounded to their dtype once at
        the end, as in mixed-precision training.
        """
        if a.dtype == b.dtype and a.dtype in self.low_precision:
            return self.matmul_accumulate(a, b, self.xp.float32)
        return self.xp.matmul(a, b)

    def matmul_accumulate(self, a: Any, b: Any, accumulate_dtype: Any) -> Any:
        """Matmul of low-precision operands with an ``accumulate_dtype`` accumulator; result in ``a.dtype``."""
        xp = self.xp
        out = xp.matmul(xp.astype(a, accumulate_dtype), xp.astype(b, accumulate_dtype))
        return xp.astype(out, a.dtype)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
