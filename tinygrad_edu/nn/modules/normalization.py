"""``LayerNorm`` and ``WeightNormLinear``: normalization layers that, unlike batchnorm, need no batch statistics."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from tinygrad_edu.backend import get_backend
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.nn.functional.layer_norm import layer_norm, normalized_shape_arg
from tinygrad_edu.nn.functional.linear import linear
from tinygrad_edu.nn.functional.weight_norm import weight_norm
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` axes (``torch.nn.LayerNorm``; Ba et al. 2016).

    With ``elementwise_affine`` (the default) it learns ``weight`` (ones at the start) and ``bias`` (zeros; absent
    for ``bias=False``), both of shape ``normalized_shape``. The same computation in training and evaluation.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: str | None = None, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_shape_arg(normalized_shape, "LayerNorm")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be a non-negative number, got {eps!r}")
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        backend = get_backend(device)
        dtype = backend.dtype(np.dtype(dtype or "float32"))
        xp = backend.xp
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = Parameter(Tensor._wrap(xp.ones(self.normalized_shape, dtype=dtype, device=backend.device),
                                                 backend))
            if bias:
                self.bias = Parameter(Tensor._wrap(xp.zeros(self.normalized_shape, dtype=dtype,
                                                            device=backend.device), backend))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class WeightNormLinear(Module):
    """A Linear layer whose weight is reparameterized as w = g ⊙ v / ‖v‖ row by row (Salimans and Kingma 2016), as
    ``torch.nn.utils.weight_norm(nn.Linear(in_features, out_features))``.

    Parameters ``weight_v`` (out_features, in_features), ``weight_g`` (out_features, 1) and ``bias``
    (out_features,). v and the bias start from PyTorch's Linear init (uniform in ±1/sqrt(in_features)) and
    g = ‖v‖ per row, so at the start the effective weight is exactly that Linear's weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: str | None = None,
                 dtype=None):
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"WeightNormLinear: {name} must be a positive int, got {n!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        backend = get_backend(device)
        xp, dtype = backend.xp, dtype or "float32"
        bound = 1 / math.sqrt(in_features)
        v = backend.uniform((out_features, in_features), -bound, bound, dtype)
        wide = xp.astype(v, xp.float32) if is_low_precision(v.dtype) else v
        g = xp.astype(xp.sqrt(xp.sum(wide * wide, axis=1, keepdims=True)), v.dtype)
        self.weight_g = Parameter(Tensor._wrap(g, backend))
        self.weight_v = Parameter(Tensor._wrap(v, backend))
        self.bias = Parameter(Tensor._wrap(backend.uniform((out_features,), -bound, bound, dtype), backend)) if bias \
            else None

    @property
    def weight(self) -> Tensor:
        """The effective weight g ⊙ v / ‖v‖ (on the tape: gradients flow to ``weight_g`` and ``weight_v``)."""
        return weight_norm(self.weight_v, self.weight_g, 0)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
