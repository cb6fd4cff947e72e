"""``Linear``: y = x Wᵀ + b."""

from __future__ import annotations

import math

from tinygrad_edu.backend import get_backend
from tinygrad_edu.nn.functional.linear import LinearFunction
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class Linear(Module):
    """Affine map ``y = x Wᵀ + b`` with W of shape (out_features, in_features), as ``torch.nn.Linear``.

    W and b start uniform in [-1/sqrt(in_features), 1/sqrt(in_features)] (PyTorch's default).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str | None = None, dtype=None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: in_features and out_features must be positive, got {in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        backend = get_backend(device)
        dtype = dtype or "float32"
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(Tensor._wrap(backend.uniform((out_features, in_features), -bound, bound, dtype), backend))
        self.bias = (
            Parameter(Tensor._wrap(backend.uniform((out_features,), -bound, bound, dtype), backend)) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return LinearFunction.apply(x, self.weight)
        return LinearFunction.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
