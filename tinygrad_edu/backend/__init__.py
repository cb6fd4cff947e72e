"""Device strings, the backend for each, and the default device (the one flag).

* ``"cpu"``: NumPy. ``"cuda"`` or ``"cuda:N"``: CuPy on GPU ``N`` (``"cuda"`` is ``"cuda:0"``).
  ``"strict"``: array_api_strict on a non-CPU device, for tests.
* The default device is ``set_default_device(...)`` if called, else the environment variable
  ``TINYGRAD_EDU_DEVICE``, else ``"cpu"``. New tensors and modules go there, so switching a whole program to
  the GPU is one flag: ``TINYGRAD_EDU_DEVICE=cuda python train.py``.
"""

from __future__ import annotations

import os
from typing import Any

from tinygrad_edu.backend.base import DEFAULT_SEED, Backend
from tinygrad_edu.backend.cupy_backend import CupyBackend, DeviceUnavailableError
from tinygrad_edu.backend.numpy_backend import NumpyBackend
from tinygrad_edu.backend.strict_backend import StrictBackend

__all__ = [
    "Backend",
    "DeviceUnavailableError",
    "backend_of",
    "get_backend",
    "get_default_device",
    "set_default_device",
    "manual_seed",
    "cuda_is_available",
    "get_rng_state",
    "set_rng_state",
]

ENV_VAR = "TINYGRAD_EDU_DEVICE"

_backends: dict[str, Backend] = {}
_default_device: str | None = None
_seed: int = DEFAULT_SEED


def canonical_device(device: str) -> str:
    """Normalize a device string: ``"CUDA"`` -> ``"cuda:0"``; unknown strings raise ``ValueError``."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
    name = device.strip().lower()
    if name in ("cpu", "strict"):
        return name
    if name == "cuda":
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return f"cuda:{int(name[5:])}"
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda', 'cuda:N' or 'strict'")


def get_backend(device: str | None = None) -> Backend:
    """The backend for ``device`` (default: the default device), created on first use."""
    name = canonical_device(device) if device is not None else get_default_device()
    backend = _backends.get(name)
    if backend is None:
        if name == "cpu":
            backend = NumpyBackend()
        elif name == "strict":
            backend = StrictBackend()
        else:
            backend = CupyBackend(int(name.split(":")[1]))
        backend.manual_seed(_seed)
        _backends[name] = backend
    return backend


def backend_of(data: Any) -> Backend | None:
    """The backend that owns ``data`` if it is a device array (CuPy's, array_api_strict's); None for host data."""
    for kind in (CupyBackend, StrictBackend):
        device = kind.device_of(data)
        if device is not None:
            return get_backend(device)
    return None


def get_default_device() -> str:
    """The device new tensors go to: ``set_default_device``'s, else ``$TINYGRAD_EDU_DEVICE``, else ``"cpu"``."""
    if _default_device is not None:
        return _default_device
    return canonical_device(os.environ.get(ENV_VAR) or "cpu")


def set_default_device(device: str | None) -> None:
    """Make ``device`` the default for new tensors and modules (``None`` returns to the environment's choice).

    Raises ``DeviceUnavailableError`` at once if the device cannot be used (for CUDA: CuPy missing or no GPU).
    """
    global _default_device
    if device is None:
        _default_device = None
        return
    name = canonical_device(device)
    get_backend(name)  # fail now, not at the first tensor
    _default_device = name


def manual_seed(seed: int) -> None:
    """Seed the random generator of every backend, those already created and those created later."""
    global _seed
    _seed = int(seed)
    for backend in _backends.values():
        backend.manual_seed(_seed)


def cuda_is_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    try:
        get_backend("cuda")
    except DeviceUnavailableError:
        return False
    return True


def get_rng_state(device: str | None = None) -> dict:
    """The random generator's state of ``device``'s backend (default: the default device), as in PyTorch's
    ``torch.get_rng_state``: save it in a checkpoint and ``set_rng_state`` it on resume to draw the same dropout
    masks as the uninterrupted run. A NumPy generator's state is a dict of strings and ints."""
    return get_backend(device).get_rng_state()


def set_rng_state(state: dict, device: str | None = None) -> None:
    """Restore a state that ``get_rng_state(device)`` returned; a bad state raises ``ValueError``, changing nothing."""
    get_backend(device).set_rng_state(state)
