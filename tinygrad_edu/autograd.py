"""``tinygrad_edu.autograd``: the tape's switches, with the names of ``torch.autograd``.

Anomaly detection finds the first op that turns finite numbers into NaN or Inf::

    with tg.autograd.detect_anomaly():
        loss = model(x).log().sum()      # raises AnomalyError here if log() met a 0: names the op and this line
        loss.backward()                  # or here, naming the op whose backward produced NaN/Inf, and where
                                         # in your code that op was created

While it is on, every ``Function.apply`` records the user's stack (``traceback.extract_stack()`` without the frames
inside tinygrad_edu), checks its forward output for NaN/Inf, and ``backward`` checks every gradient an op returns.
That costs a stack walk per op and one device-to-host boolean per array: slow, for debugging only. Off (the
default) it costs one flag check per op.

``set_detect_anomaly(True)`` switches it on until ``set_detect_anomaly(False)``; it is also a context manager that
restores the previous mode on exit, as in PyTorch. ``detect_anomaly()`` is a context manager and a decorator.
Nested uses restore the mode of the enclosing one.
"""

from __future__ import annotations

import contextlib

from tinygrad_edu import tensor as _tensor
from tinygrad_edu.tensor import AnomalyError, Function, InplaceModificationError, is_grad_enabled, no_grad

__all__ = ["AnomalyError", "Function", "InplaceModificationError", "detect_anomaly", "is_anomaly_enabled",
           "is_grad_enabled", "no_grad", "queue_callback", "set_detect_anomaly"]


def queue_callback(callback) -> None:
    """Run ``callback()`` once the backward pass now running has finished, after every gradient is in ``.grad``
    (PyTorch's ``Variable._execution_engine.queue_callback``). Only an op's ``backward`` can call it: data-parallel
    training queues its gradient all-reduce this way (``distributed.DistributedDataParallel``)."""
    if _tensor._backward_callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running; call it from a Function's backward")
    if not callable(callback):
        raise TypeError(f"queue_callback: expected a callable, got {type(callback).__name__}")
    _tensor._backward_callbacks.append(callback)


def is_anomaly_enabled() -> bool:
    """True while anomaly detection is on."""
    return _tensor._anomaly_enabled


class detect_anomaly(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) that turns anomaly detection on, and restores the previous mode on exit."""

    def __init__(self, check_nan: bool = True) -> None:
        if not isinstance(check_nan, bool):
            raise TypeError(f"detect_anomaly: check_nan must be a bool, got {type(check_nan).__name__}")
        self.check_nan = check_nan
        self._previous: list[bool] = []  # a stack, so one instance may be entered again while active

    def __enter__(self) -> detect_anomaly:
        self._previous.append(_tensor._anomaly_enabled)
        _tensor._anomaly_enabled = self.check_nan
        return self

    def __exit__(self, *exc: object) -> bool:
        _tensor._anomaly_enabled = self._previous.pop()
        return False


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """``set_detect_anomaly(mode)`` sets anomaly detection on or off at once; used in ``with``, it restores the
    previous mode on exit."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        if not isinstance(mode, bool):
            raise TypeError(f"set_detect_anomaly: mode must be a bool, got {type(mode).__name__}")
        self._previous = _tensor._anomaly_enabled
        _tensor._anomaly_enabled = mode and check_nan

    def __enter__(self) -> set_detect_anomaly:
        return self

    def __exit__(self, *exc: object) -> bool:
        _tensor._anomaly_enabled = self._previous
        return False
