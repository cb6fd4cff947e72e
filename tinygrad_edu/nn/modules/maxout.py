"""``Maxout``: a linear layer to ``out_features * pieces`` units, then the max over each group of ``pieces``."""

from __future__ import annotations

import math

from tinygrad_edu.backend import get_backend
from tinygrad_edu.nn.functional.linear import linear
from tinygrad_edu.nn.functional.maxout import maxout
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class Maxout(Module):
    """h_k(x) = max_j (x W_{k,j}ᵀ + b_{k,j}), k < out_features, j < pieces (Goodfellow et al. 2013): each output is
    the max of ``pieces`` affine functions of x, so it can encode ReLU (pieces x·w and 0) and |x| (x·w and -x·w),
    and approximate any convex function.

    ``weight`` has shape (out_features·pieces, in_features) and ``bias`` (out_features·pieces,): row k·pieces + j is
    piece j of output k (the consecutive grouping of ``F.maxout``, applied over the last axis). Both start uniform in
    [-1/sqrt(in_features), 1/sqrt(in_features)], as ``Linear`` (PyTorch has no Maxout).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True,
                 device: str | None = None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features), ("pieces", pieces)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Maxout: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features, self.pieces = in_features, out_features, pieces
        backend = get_backend(device)
        dtype = dtype or "float32"
        bound = 1 / math.sqrt(in_features)
        units = out_features * pieces
        self.weight = Parameter(Tensor._wrap(backend.uniform((units, in_features), -bound, bound, dtype), backend))
        self.bias = Parameter(Tensor._wrap(backend.uniform((units,), -bound, bound, dtype), backend)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return maxout(linear(x, self.weight, self.bias), self.pieces, dim=-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}, "
                f"bias={self.bias is not None}")
