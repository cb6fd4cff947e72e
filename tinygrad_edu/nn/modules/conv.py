"""``Conv2d``: a 2-D convolutional layer (LeCun et al. 1998)."""

from __future__ import annotations

import math
import numbers

from tinygrad_edu.backend import get_backend
from tinygrad_edu.nn.functional.conv2d import conv2d, conv2d_arguments
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class Conv2d(Module):
    """``y = conv2d(x, W, b, stride, padding, dilation)`` with W of shape (out_channels, in_channels, kH, kW), as
    ``torch.nn.Conv2d`` (zero padding, no groups).

    W and b start uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in = in_channels·kH·kW: PyTorch's default
    (``kaiming_uniform_(a=sqrt(5))`` for W, which reduces to that bound, and the same bound for b).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, device: str | None = None, dtype=None):
        super().__init__()
        name = type(self).__name__
        for arg, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {n!r}")
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, numbers.Integral) else tuple(kernel_size)
        if len(ks) != 2 or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0 for k in ks):
            raise ValueError(f"{name}: kernel_size must be a positive int or a pair of them, got {kernel_size!r}")
        conv2d_arguments((out_channels, in_channels) + ks, stride, padding, dilation)  # validate them now
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), ks
        self.stride, self.padding, self.dilation = stride, padding, dilation
        backend = get_backend(device)
        dtype = dtype or "float32"
        bound = 1 / math.sqrt(in_channels * ks[0] * ks[1])
        shape = (out_channels, in_channels) + ks
        self.weight = Parameter(Tensor._wrap(backend.uniform(shape, -bound, bound, dtype), backend))
        self.bias = (
            Parameter(Tensor._wrap(backend.uniform((out_channels,), -bound, bound, dtype), backend)) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != 0:
            s += f", padding={self.padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        return s + ("" if self.bias is not None else ", bias=False")
