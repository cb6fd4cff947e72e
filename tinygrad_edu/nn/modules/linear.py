"""``Linear``: y = x Wᵀ + b."""

from __future__ import annotations

import math
import numbers

from tinygrad_edu.backend import get_backend
from tinygrad_edu.nn.functional.linear import linear
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class Linear(Module):
    """Affine map ``y = x Wᵀ + b`` with W of shape (out_features, in_features), as ``torch.nn.Linear``.

    W and b start uniform in [-1/sqrt(in_features), 1/sqrt(in_features)] (PyTorch's default).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str | None = None, dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        backend = get_backend(device)
        dtype = dtype or "float32"
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(Tensor._wrap(backend.uniform((out_features, in_features), -bound, bound, dtype), backend))
        self.bias = (
            Parameter(Tensor._wrap(backend.uniform((out_features,), -bound, bound, dtype), backend)) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
