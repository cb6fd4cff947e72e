"""Tensor factories (``zeros``, ``ones``, ``randn`` ...), made directly on the device by its backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_edu.backend import get_backend
from tinygrad_edu.tensor import Tensor


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _make(array: Any, backend, requires_grad: bool) -> Tensor:
    return Tensor._wrap(array, backend).requires_grad_(requires_grad)


def zeros(*shape, dtype=np.float32, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    backend = get_backend(device)
    return _make(backend.xp.zeros(_shape(shape), dtype=backend.dtype(dtype), device=backend.device), backend, requires_grad)


def ones(*shape, dtype=np.float32, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    backend = get_backend(device)
    return _make(backend.xp.ones(_shape(shape), dtype=backend.dtype(dtype), device=backend.device), backend, requires_grad)


def full(shape, fill_value: float, dtype=np.float32, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``."""
    backend = get_backend(device)
    array = backend.xp.full(_shape((shape,)), fill_value, dtype=backend.dtype(dtype), device=backend.device)
    return _make(array, backend, requires_grad)


def zeros_like(t: Tensor, dtype=None) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device)


def ones_like(t: Tensor, dtype=None) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device)


def arange(start, stop=None, step=1, dtype=None, device: str | None = None) -> Tensor:
    """Evenly spaced values in [start, stop), as ``numpy.arange``."""
    backend = get_backend(device)
    if stop is None:
        start, stop = 0, start
    array = backend.xp.arange(start, stop, step, device=backend.device)
    if dtype is not None:
        array = backend.xp.astype(array, backend.dtype(dtype))
    return Tensor._wrap(array, backend)


def randn(*shape, dtype=np.float32, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Samples from N(0, 1), from the device's seeded generator (see ``manual_seed``)."""
    backend = get_backend(device)
    return _make(backend.normal(_shape(shape), 0.0, 1.0, dtype), backend, requires_grad)


def rand(*shape, dtype=np.float32, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Samples from U[0, 1), from the device's seeded generator."""
    backend = get_backend(device)
    return _make(backend.uniform(_shape(shape), 0.0, 1.0, dtype), backend, requires_grad)
