"""``Highway``: a highway layer (Srivastava, Greff and Schmidhuber 2015, "Highway networks"), a gated skip
connection that lets very deep plain networks train: the gate decides, per unit, how much of the transformed input
H(x) and how much of the input itself passes on."""

from __future__ import annotations

import numbers

import numpy as np

from tinygrad_edu.autograd import InputError
from tinygrad_edu.nn.functional import linear, relu
from tinygrad_edu.nn.modules.linear import Linear
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.tensor import Tensor


class Highway(Module):
    """y = T(x) · H(x) + (1 - T(x)) · x, elementwise, for x (..., features):

        H(x) = relu(x W_Hᵀ + b_H)        the transform (a plain layer)
        T(x) = sigmoid(x W_Tᵀ + b_T)     the transform gate; 1 - T(x) is the carry gate

    T(x) = 0 passes x unchanged (the layer is the identity, its Jacobian I), T(x) = 1 is the plain layer. The paper
    initializes b_T negative (−1 to −3, by depth) so that every layer starts close to carrying its input: a deep
    highway network begins as a short, well-conditioned one and learns where to transform. Here b_T = ``gate_bias``
    (default −2.0: T ≈ sigmoid(−2) ≈ 0.12 at the start); W_H, b_H and W_T start as ``nn.Linear``'s (uniform in
    ±1/sqrt(features)). Composed from existing ops (linear, relu, sigmoid, +, ×): the gradient is the tape's.
    """

    def __init__(self, features: int, gate_bias: float = -2.0, device: str | None = None, dtype=None):
        super().__init__()
        if isinstance(features, bool) or not isinstance(features, numbers.Integral) or features <= 0:
            raise ValueError(f"Highway: features must be a positive int, got {features!r}")
        if isinstance(gate_bias, bool) or not isinstance(gate_bias, numbers.Real) or not np.isfinite(gate_bias):
            raise ValueError(f"Highway: gate_bias must be a finite real number, got {gate_bias!r}")
        self.features, self.gate_bias = int(features), float(gate_bias)
        self.transform = Linear(features, features, device=device, dtype=dtype)  # W_H, b_H
        self.gate = Linear(features, features, device=device, dtype=dtype)  # W_T, b_T
        bias = self.gate.bias
        self.gate.bias = Parameter(Tensor(np.full(self.features, self.gate_bias, dtype=bias.dtype), device=bias.device))

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"Highway: input must be a Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.features:
            raise InputError(f"Highway: expected an input of shape (..., {self.features}), got shape {tuple(x.shape)}")
        h = relu(linear(x, self.transform.weight, self.transform.bias))
        t = linear(x, self.gate.weight, self.gate.bias).sigmoid()
        return t * h + (1 - t) * x

    def extra_repr(self) -> str:
        return f"features={self.features}, gate_bias={self.gate_bias}"
