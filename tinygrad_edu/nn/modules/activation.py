"""Activation modules, thin wrappers over ``tinygrad_edu.nn.functional``."""

from __future__ import annotations

from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.ops import Relu
from tinygrad_edu.tensor import Tensor


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return Relu.apply(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()
