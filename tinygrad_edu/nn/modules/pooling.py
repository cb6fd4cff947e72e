"""Pooling layers and ``Flatten``: ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` (output 1 × 1 only) and
``Flatten``, as their ``torch.nn`` namesakes. None has parameters."""

from __future__ import annotations

import numbers
from typing import Any

from tinygrad_edu.autograd import InputError
from tinygrad_edu.nn.functional._pooling import geometry
from tinygrad_edu.nn.functional.adaptive_avg_pool2d import adaptive_avg_pool2d
from tinygrad_edu.nn.functional.avg_pool2d import avg_pool2d
from tinygrad_edu.nn.functional.max_pool2d import max_pool2d
from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.tensor import Tensor


def _checked(layer: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> None:
    """Check the window arguments when the layer is built (ValueError/TypeError, as PyTorch's constructors)."""
    kernel = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
    try:  # a large enough plane: only the arguments themselves are checked here
        side = 2 * max(int(k) if isinstance(k, numbers.Integral) else 1 for k in kernel) * 64
        geometry(layer, (side, side), kernel_size, stride, padding, dilation)
    except InputError as exc:
        raise ValueError(str(exc)) from None


class MaxPool2d(Module):
    """``F.max_pool2d`` as a layer: the max of each kh × kw window (stride defaults to kernel_size, -inf padding)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1):
        super().__init__()
        _checked("MaxPool2d", kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}, dilation={self.dilation}"


class AvgPool2d(Module):
    """``F.avg_pool2d`` as a layer: the mean of each kh × kw window (zero padding, counted in the divisor unless
    ``count_include_pad=False``)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *, count_include_pad: bool = True):
        super().__init__()
        _checked("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.count_include_pad = count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=self.count_include_pad)

    def extra_repr(self) -> str:
        stride = self.kernel_size if self.stride is None else self.stride
        return f"kernel_size={self.kernel_size}, stride={stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Global average pooling: ``torch.nn.AdaptiveAvgPool2d`` restricted to ``output_size`` 1 or (1, 1);
    (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size: Any = 1):
        super().__init__()
        if output_size not in (1, (1, 1), [1, 1]) or isinstance(output_size, bool):
            raise ValueError(f"AdaptiveAvgPool2d: only output_size 1 or (1, 1) (global average pooling) is "
                             f"supported, got {output_size!r}")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(Module):
    """Axes ``start_dim`` .. ``end_dim`` merged into one (``torch.nn.Flatten``; default: all but the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"Flatten: {name} must be an int, got {type(value).__name__}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Flatten: input must be a Tensor, got {type(x).__name__}")
        ndim = max(x.ndim, 1)
        for name, value in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -ndim <= value < ndim:
                raise InputError(f"Flatten: {name}={value} is out of range for an input of shape {tuple(x.shape)} "
                                 f"(expected {-ndim} <= {name} < {ndim})")
        if x.ndim and self.start_dim % ndim > self.end_dim % ndim:
            raise InputError(f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim} for an input of "
                             f"shape {tuple(x.shape)}")
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
