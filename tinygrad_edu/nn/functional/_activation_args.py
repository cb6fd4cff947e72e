"""Argument checks shared by the public activation functions (leaky_relu, prelu, crelu, elu, maxout, softmax,
log_softmax), run before ``Function.apply`` so that the Functions hold only the math."""

from __future__ import annotations

import numbers
from typing import Any

from tinygrad_edu.autograd import InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor


def check_float(op: str, name: str, x: Any) -> None:
    """TypeError unless ``x`` (argument ``name`` of ``op``) is a Tensor with a floating-point dtype."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: {name} must be a floating-point tensor, got dtype {x.dtype}")


def check_number(op: str, name: str, value: Any) -> float:
    """``value`` as a Python float; TypeError unless it is a real number (Python or NumPy; not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def check_dim(op: str, dim: Any, shape: tuple[int, ...]) -> int:
    """``dim`` as a non-negative axis of ``shape``; TypeError for a non-integer, InputError when out of range."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    ndim = len(shape)
    if not -ndim <= dim < ndim:
        expected = f"-{ndim} <= dim < {ndim}" if ndim else "an input with at least one axis"
        raise InputError(f"{op}: dim={dim} is out of range for an input of shape {tuple(shape)} (expected {expected})")
    return int(dim) % ndim
