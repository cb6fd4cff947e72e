"""Device strings, the backend for each, and the default device (the one flag).

* ``"cpu"``: NumPy. ``"cuda"`` or ``"cuda:N"``: CuPy on GPU ``N`` (``"cuda"`` is ``"cuda:0"``).
  ``"strict"``: array_api_strict on a non-CPU device, for tests.
* The default device is ``set_default_device(...)`` if called (or the device of an enclosing
  ``with default_device(...)``), else the environment variable ``TINYGRAD_EDU_DEVICE``, else ``"cpu"``. New
  tensors and modules go there, so switching a whole program to the GPU is one flag:
  ``TINYGRAD_EDU_DEVICE=cuda python train.py``. Every entry point reads the flag the same way: an explicit device
  (``device=...``, the command line's ``--device``) beats the variable, which beats ``"cpu"``. The variable is read
  when a default is needed, not at import; a bad value raises ``ValueError`` naming the variable
  (``TINYGRAD_EDU_DEVICE='gpu': unknown device 'gpu': ...``), and a device it names that cannot be used raises
  ``DeviceUnavailableError`` whose message begins with the variable too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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
    "canonical_device",
    "default_device",
    "device_from_environment",
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
    """The backend for ``device`` (default: the default device), created on first use.

    With ``device=None`` and the default taken from ``$TINYGRAD_EDU_DEVICE``, the errors name the variable: a bad
    value raises ``ValueError``, a device that cannot be used ``DeviceUnavailableError`` (``TINYGRAD_EDU_DEVICE=
    'cuda': device 'cuda' needs CuPy, ...``)."""
    if device is not None:
        return _backend(canonical_device(device))
    name = get_default_device()
    if _default_device is not None or device_from_environment() is None:
        return _backend(name)
    try:
        return _backend(name)
    except DeviceUnavailableError as exc:
        raise DeviceUnavailableError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: {exc}") from None


def _backend(name: str) -> Backend:
    """The backend of the canonical device ``name``, created on first use."""
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


def device_from_environment() -> str | None:
    """The device ``$TINYGRAD_EDU_DEVICE`` names, canonical (``"cuda"`` -> ``"cuda:0"``); ``None`` when the variable
    is unset or empty. A value that is not a device raises ``ValueError`` naming the variable and its value."""
    value = os.environ.get(ENV_VAR)
    if value is None or not value.strip():
        return None
    try:
        return canonical_device(value)
    except ValueError as exc:
        raise ValueError(f"{ENV_VAR}={value!r}: {exc}") from None


def get_default_device() -> str:
    """The device new tensors go to: ``set_default_device``'s, else ``$TINYGRAD_EDU_DEVICE``, else ``"cpu"``.

    Raises ``ValueError`` naming the variable when it holds something that is not a device."""
    if _default_device is not None:
        return _default_device
    return device_from_environment() or "cpu"


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


@contextmanager
def default_device(device: str | None) -> Iterator[str]:
    """``with default_device("strict"): ...``: within the block, the default device is ``device`` (checked first,
    as ``set_default_device`` does); afterwards it is what it was. ``None`` leaves the default as it is (and then
    yields it, resolved). Yields the canonical device name.

    The command line runs each command inside one, so that ``--device`` beats ``$TINYGRAD_EDU_DEVICE`` for every
    tensor the command creates, its own and the library's."""
    global _default_device
    if device is None:
        yield get_default_device()
        return
    name = canonical_device(device)
    get_backend(name)
    previous, _default_device = _default_device, name
    try:
        yield name
    finally:
        _default_device = previous


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
