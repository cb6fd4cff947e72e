"""Highway layer (Srivastava, Greff and Schmidhuber 2015): y = T(x)·H(x) + (1 - T(x))·x.

* forward against the formula in NumPy, on inputs of 1 to 3 axes;
* the gates: a strongly negative gate bias carries x through (identity), a strongly positive one gives H(x);
  the initial gate bias and the other parameters' initialization;
* gradients of the input and every parameter with ``gradcheck_module`` (float64, and float32 parameters);
* errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.testing import strategies as tst

SETTINGS = settings(max_examples=10, deadline=None)


def numpy_highway(layer, x):
    w_h, b_h = layer.transform.weight.numpy(), layer.transform.bias.numpy()
    w_t, b_t = layer.gate.weight.numpy(), layer.gate.bias.numpy()
    h = np.maximum(x @ w_h.T + b_h, 0)
    t = 1 / (1 + np.exp(-(x @ w_t.T + b_t)))
    return t * h + (1 - t) * x


@SETTINGS
@given(features=st.integers(1, 4), batch=tst.shapes(min_dims=0, max_dims=2, max_side=3), data=st.data())
def test_forward_matches_the_formula(device, features, batch, data):
    layer = nn.Highway(features, device=device, dtype="float64")
    x = data.draw(tst.arrays(batch + (features,), dtype="float64"))
    np.testing.assert_allclose(layer(Tensor(x, device=device)).numpy(), numpy_highway(layer, x), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(features=st.integers(1, 4), n=st.integers(1, 3), gate_bias=st.sampled_from([-3.0, -1.0, 0.5]), data=st.data())
def test_gradcheck_module_float64(device, features, n, gate_bias, data):
    layer = nn.Highway(features, gate_bias=gate_bias, device=device, dtype="float64")
    x = data.draw(tst.arrays((n, features), dtype="float64").flatmap(tst.layouts))
    assert tg.gradcheck_module(layer, Tensor(x, device=device), kinks="allow")


def test_gradcheck_module_float32_parameters():
    layer = nn.Highway(5)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 2, 5)).astype(np.float32))
    assert tg.gradcheck_module(layer, x, atol=1e-3, rtol=1e-2, kinks="allow")


def test_initialization(device):
    layer = nn.Highway(16, device=device)
    names = dict(layer.named_parameters())
    assert sorted(names) == ["gate.bias", "gate.weight", "transform.bias", "transform.weight"]
    np.testing.assert_array_equal(names["gate.bias"].numpy(), np.full(16, -2.0, np.float32))
    assert names["gate.bias"].dtype == np.float32 and names["gate.bias"].device == layer.gate.weight.device
    for name in ("gate.weight", "transform.weight", "transform.bias"):
        assert np.abs(names[name].numpy()).max() <= 1 / 4  # uniform in ±1/sqrt(16), as nn.Linear
    assert nn.Highway(3, gate_bias=-1).gate.bias.numpy().tolist() == [-1.0, -1.0, -1.0]


def test_gates_carry_or_transform(device):
    x = np.random.default_rng(1).standard_normal((4, 3))
    carry = nn.Highway(3, gate_bias=-60.0, device=device, dtype="float64")  # T ≈ e^-60: y = x
    np.testing.assert_allclose(carry(Tensor(x, device=device)).numpy(), x, rtol=1e-12, atol=1e-12)
    transform = nn.Highway(3, gate_bias=60.0, device=device, dtype="float64")  # T ≈ 1: y = relu(x W_Hᵀ + b_H)
    transform.gate.weight = nn.Parameter(Tensor(np.zeros((3, 3)), device=device))
    h = np.maximum(x @ transform.transform.weight.numpy().T + transform.transform.bias.numpy(), 0)
    np.testing.assert_allclose(transform(Tensor(x, device=device)).numpy(), h, rtol=1e-12, atol=1e-12)


def test_a_closed_gate_passes_the_gradient_unchanged(device):
    """With T ≈ 0 the layer is the identity and its Jacobian is I: deep stacks start well conditioned."""
    stack = nn.Sequential(*[nn.Highway(3, gate_bias=-60.0, device=device, dtype="float64") for _ in range(20)])
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3)), requires_grad=True, device=device)
    stack(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0, rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="Highway: features must be a positive int, got 0"):
        nn.Highway(0)
    with pytest.raises(ValueError, match="Highway: gate_bias must be a finite real number"):
        nn.Highway(3, gate_bias=float("nan"))
    layer = nn.Highway(3)
    with pytest.raises(tg.InputError, match=r"Highway: expected an input of shape \(\.\.\., 3\), got shape \(2, 4\)"):
        layer(Tensor(np.zeros((2, 4), np.float32)))
    with pytest.raises(TypeError, match="Highway: input must be a Tensor"):
        layer([1.0, 2.0, 3.0])
    assert layer.extra_repr() == "features=3, gate_bias=-2.0"
