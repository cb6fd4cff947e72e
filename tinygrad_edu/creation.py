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


def zeros_like(input: Tensor, dtype: Any = None, *, device: str | None = None,  # noqa: A002 - PyTorch's name
               requires_grad: bool = False) -> Tensor:
    """Zeros of ``input``'s shape, and of its dtype and device unless given (``torch.zeros_like``)."""
    return full_like(input, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input: Tensor, dtype: Any = None, *, device: str | None = None,  # noqa: A002 - PyTorch's name
              requires_grad: bool = False) -> Tensor:
    """Ones of ``input``'s shape, and of its dtype and device unless given (``torch.ones_like``)."""
    return full_like(input, 1, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: float, *, dtype: Any = None, device: str | None = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``input``'s shape, and of its dtype and device unless given (``torch.full_like``: the value
    is converted to that dtype)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"full_like: input must be a Tensor, got {type(input).__name__}")
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                device=input.device if device is None else device, requires_grad=requires_grad)


def rand_like(input: Tensor, *, dtype: Any = None, device: str | None = None,  # noqa: A002 - PyTorch's name
              requires_grad: bool = False) -> Tensor:
    """Samples from U[0, 1) in ``input``'s shape, dtype (floating) and device unless given (``torch.rand_like``)."""
    return rand(input.shape, dtype=input.dtype if dtype is None else dtype,
                device=input.device if device is None else device, requires_grad=requires_grad)


def randn_like(input: Tensor, *, dtype: Any = None, device: str | None = None,  # noqa: A002 - PyTorch's name
               requires_grad: bool = False) -> Tensor:
    """Samples from N(0, 1) in ``input``'s shape, dtype (floating) and device unless given (``torch.randn_like``)."""
    return randn(input.shape, dtype=input.dtype if dtype is None else dtype,
                 device=input.device if device is None else device, requires_grad=requires_grad)


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
