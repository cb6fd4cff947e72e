"""Anomaly detection: find the first op that turns finite numbers into NaN or Inf (``torch.autograd``'s names).

::

    with tg.autograd.detect_anomaly():
        loss = model(x).log().sum()      # raises AnomalyError here if log() met a 0: names the op and this line
        loss.backward()                  # or here, naming the op whose backward produced NaN/Inf, and where
                                         # in your code that op was created

While it is on, every ``Function.apply`` records the user's stack (``traceback.extract_stack()`` without the frames
inside tinygrad_edu), checks its forward output for NaN/Inf, and the backward walk checks every gradient an op
returns. That costs a stack walk per op and one device-to-host boolean per array: slow, for debugging only. Off (the
default) it costs one flag check per op.

``set_detect_anomaly(True)`` switches it on until ``set_detect_anomaly(False)``; it is also a context manager that
restores the previous mode on exit, as in PyTorch. ``detect_anomaly()`` is a context manager and a decorator.
Nested uses restore the mode of the enclosing one.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from typing import Any

#: Is anomaly detection on? Read by ``Function.apply`` and by the backward walk.
enabled = False

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(RuntimeError):
    """Raised under ``detect_anomaly()`` by the first op whose forward output or backward gradient holds NaN/Inf."""


def is_anomaly_enabled() -> bool:
    """True while anomaly detection is on."""
    return enabled


class detect_anomaly(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) that turns anomaly detection on, and restores the previous mode on exit."""

    def __init__(self, check_nan: bool = True) -> None:
        if not isinstance(check_nan, bool):
            raise TypeError(f"detect_anomaly: check_nan must be a bool, got {type(check_nan).__name__}")
        self.check_nan = check_nan
        self._previous: list[bool] = []  # a stack, so one instance may be entered again while active

    def __enter__(self) -> detect_anomaly:
        global enabled
        self._previous.append(enabled)
        enabled = self.check_nan
        return self

    def __exit__(self, *exc: object) -> bool:
        global enabled
        enabled = self._previous.pop()
        return False


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """``set_detect_anomaly(mode)`` sets anomaly detection on or off at once; used in ``with``, it restores the
    previous mode on exit."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        global enabled
        if not isinstance(mode, bool):
            raise TypeError(f"set_detect_anomaly: mode must be a bool, got {type(mode).__name__}")
        self._previous = enabled
        enabled = mode and check_nan

    def __enter__(self) -> set_detect_anomaly:
        return self

    def __exit__(self, *exc: object) -> bool:
        global enabled
        enabled = self._previous
        return False


# -- what apply and the backward walk call while it is on ------------------------------------------------------------
def user_stack(limit: int = 8) -> list:
    """The caller's stack without the frames inside tinygrad_edu, innermost last (at most ``limit`` frames)."""
    frames = [f for f in traceback.extract_stack() if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    return frames[-limit:]


def site(ctx: Any) -> str:
    """Where in the user's code the op ``ctx`` was created: ``file.py:12 in train``."""
    stack = ctx._created_at
    if not stack:
        return "an unknown place (run the forward under detect_anomaly() to record it)"
    f = stack[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def created_hint(ctx: Any) -> str:
    """" The op was created at file.py:12 in train." when that was recorded, else ""."""
    return f" The op was created at {site(ctx)}." if ctx._created_at else ""


def check_forward(name: str, ctx: Any, arrays: list, out: Any) -> None:
    """Raise ``AnomalyError`` if the forward output ``out`` of op ``name`` holds NaN or Inf."""
    bad = _nonfinite(ctx, out)
    if bad is None:
        return
    inputs_bad = any(_nonfinite(ctx, a) for a in arrays)
    raise AnomalyError(
        f"Function '{name}' returned {bad} values in its forward output ({_describe(ctx, [out])}) "
        f"from inputs {_describe(ctx, arrays)}"
        + (" (some inputs were already not finite)" if inputs_bad else " (all inputs finite)")
        + f"; created at {site(ctx)}" + _trace(ctx)
    )


def check_backward(ctx: Any, grads: tuple) -> None:
    """Raise ``AnomalyError`` if a gradient the backward of ``ctx`` returned holds NaN or Inf."""
    for i, g in enumerate(grads):
        bad = None if g is None else _nonfinite(ctx, g)
        if bad is not None:
            raise AnomalyError(
                f"Function '{type(ctx).__name__}' returned {bad} values in its {i}th output (the gradient for input "
                f"{i}: {_describe(ctx, [g])}) of backward; created at {site(ctx)}" + _trace(ctx)
            )


def _trace(ctx: Any) -> str:
    if not ctx._created_at:
        return ""
    return "\nTraceback of the forward call that created the op (most recent call last):\n" + "".join(
        traceback.format_list(ctx._created_at)).rstrip()


def _nonfinite(ctx: Any, array: Any) -> str | None:
    """"nan", "inf" or None: what a floating array holds that is not finite (one host bool per check)."""
    if not hasattr(array, "dtype"):
        return None
    dtype = ctx.backend.numpy_dtype(array.dtype)
    if dtype.kind != "f" and dtype not in ctx.backend.low_precision:  # bfloat16's NumPy kind is "V"
        return None
    xp, to_host = ctx.xp, ctx.backend.to_host
    if bool(to_host(xp.all(xp.isfinite(array)))):
        return None
    return "nan" if bool(to_host(xp.any(xp.isnan(array)))) else "inf"


def _describe(ctx: Any, arrays: Any) -> str:
    """"(3, 2) float32, (2,) float32": shapes and (NumPy) dtypes of the arrays among ``arrays``."""
    described = [f"{tuple(a.shape)} {ctx.backend.numpy_dtype(a.dtype)}" for a in arrays if hasattr(a, "dtype")]
    return ", ".join(described) or "none"
