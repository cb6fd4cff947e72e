"""Layer normalization (``F.layer_norm``, ``nn.LayerNorm``): its values, its hand-derived backward against finite
differences and against the same function composed from primitives, float16, and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst


def leaf(array, device="cpu"):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def spread(noise: np.ndarray, k: int) -> np.ndarray:
    """``noise`` (|.| <= 0.3) plus a ladder of step 0.7 over the trailing ``k`` axes: neighbours in a group differ by
    >= 0.1, so σ stays far above sqrt(eps) and central differences are accurate."""
    group = noise.shape[noise.ndim - k :]
    return noise + 0.7 * (np.arange(math.prod(group)) - (math.prod(group) - 1) / 2).reshape(group)


def composed_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """The same function from primitives (mean, var, sqrt, ...): its backward is the tape's, not the closed form."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, correction=0)
    y = (x - mu) / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


@st.composite
def layer_norm_cases(draw):
    """x (1 to 4 axes, sides 1 to 4), the number k of normalized axes, an affine mode, and a permutation of x's
    axes: the leaf is stored permuted and permuted back inside the function, so layer_norm gets a strided view."""
    shape = draw(tst.shapes(min_dims=1, max_dims=4, max_side=4))
    k = draw(st.integers(1, len(shape)))
    x = spread(draw(tst.arrays(shape, magnitude=0.3)), k)
    affine = draw(st.sampled_from(["none", "weight", "bias", "both"]))
    order = draw(st.permutations(range(len(shape))))
    group = shape[len(shape) - k :]
    gamma = draw(tst.arrays(group, magnitude=1.5))
    beta = draw(tst.arrays(group, magnitude=1.5))
    return x, k, affine, tuple(order), gamma, beta


@settings(max_examples=15)
@given(case=layer_norm_cases())
def test_layer_norm_gradients(device, case):
    x, k, affine, order, gamma, beta = case
    inverse = tuple(int(i) for i in np.argsort(order))
    group = x.shape[x.ndim - k :]
    stored = leaf(np.transpose(x, order), device)

    def fn(xt, w, b):
        xt = xt.permute(inverse)  # a non-contiguous view of x
        return F.layer_norm(xt, group, w if affine in ("weight", "both") else None,
                            b if affine in ("bias", "both") else None)

    assert tg.gradcheck(fn, [stored, leaf(gamma, device), leaf(beta, device)])


@settings(max_examples=15)
@given(case=layer_norm_cases())
def test_closed_form_backward_matches_the_composed_primitives_to_1e_10(device, case):
    x, k, _, _, gamma, beta = case
    group = x.shape[x.ndim - k :]
    rng = np.random.default_rng(0)
    upstream = rng.standard_normal(x.shape)
    grads = []
    for layer in (F.layer_norm, composed_layer_norm):
        xs, ws, bs = leaf(x, device), leaf(gamma, device), leaf(beta, device)
        y = layer(xs, group, ws, bs)
        y.backward(Tensor(upstream, device=device))
        grads.append([y.numpy(), xs.grad.numpy(), ws.grad.numpy(), bs.grad.numpy()])
    for closed, composed in zip(*grads):
        np.testing.assert_allclose(closed, composed, rtol=0, atol=1e-10)


def test_values_by_hand(device):
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 9.0]])
    w, b = np.array([1.0, 2.0, -1.0]), np.array([0.5, 0.0, 1.0])
    # row 0: μ = 2, σ² = 2/3;  row 1: μ = 5, σ² = (9 + 1 + 16) / 3 = 26/3
    xhat = np.array([[-1.0, 0.0, 1.0] / np.sqrt(2 / 3 + 1e-5), [-3.0, -1.0, 4.0] / np.sqrt(26 / 3 + 1e-5)])
    out = F.layer_norm(Tensor(x, device=device), 3, Tensor(w, device=device), Tensor(b, device=device))
    np.testing.assert_allclose(out.numpy(), xhat * w + b, rtol=1e-12)
    np.testing.assert_allclose(F.layer_norm(Tensor(x, device=device), [3]).numpy(), xhat, rtol=1e-12)
    # over both axes: one group of 6, μ = 3.5
    whole = (x - 3.5) / np.sqrt(np.var(x) + 0.1)
    np.testing.assert_allclose(F.layer_norm(Tensor(x, device=device), (2, 3), eps=0.1).numpy(), whole, rtol=1e-12)


@settings(max_examples=10)
@given(x=tst.arrays(tst.shapes(min_dims=2, max_dims=4, min_side=2, max_side=4), magnitude=0.3), k=st.integers(1, 2))
def test_zero_mean_and_unit_variance_over_the_normalized_axes(x, k):
    x = spread(x, k)
    y = F.layer_norm(Tensor(x), x.shape[x.ndim - k :], eps=0.0).numpy()
    axes = tuple(range(x.ndim - k, x.ndim))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-12)


def test_input_gradient_sums_to_zero_over_each_group():
    """Shifting a whole group does not change its output, so dL/dx sums to 0 over every group."""
    x = leaf(spread(np.random.default_rng(3).uniform(-0.3, 0.3, (4, 2, 5)), 2))
    y = F.layer_norm(x, (2, 5), leaf(np.linspace(0.5, 2, 10).reshape(2, 5)))
    y.backward(Tensor(np.random.default_rng(4).standard_normal(y.shape)))
    np.testing.assert_allclose(x.grad.numpy().sum(axis=(1, 2)), 0.0, atol=1e-12)


def test_float16_statistics_are_accumulated_in_float32():
    """4096 values near 100: their float16 sum (~4e5) would overflow float16 (max 65504); float32 does not."""
    rng = np.random.default_rng(5)
    x64 = 100 + rng.uniform(-1, 1, (2, 4096))
    x = Tensor(x64.astype(np.float16), requires_grad=True)
    w = Tensor(np.ones(4096, dtype=np.float16), requires_grad=True)
    y = F.layer_norm(x, 4096, w)
    assert y.dtype == np.float16
    reference = F.layer_norm(Tensor(x64.astype(np.float16).astype(np.float64)), 4096).numpy()
    np.testing.assert_allclose(y.numpy().astype(np.float64), reference, atol=2e-2)
    upstream = rng.standard_normal(y.shape)
    y.backward(Tensor(upstream.astype(np.float16)))
    assert x.grad.dtype == np.float16 and w.grad.dtype == np.float16
    assert np.all(np.isfinite(x.grad.numpy())) and np.all(np.isfinite(w.grad.numpy()))
    np.testing.assert_allclose(w.grad.numpy().astype(np.float64), (upstream * reference).sum(axis=0), atol=0.1)


def test_module(device):
    layer = nn.LayerNorm((2, 3), device=device)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.shape == layer.bias.shape == (2, 3) and layer.weight.dtype == np.float32
    assert layer.weight.device == layer.bias.device == tg.get_backend(device).name
    np.testing.assert_array_equal(layer.weight.numpy(), 1.0)
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
    x = Tensor(np.random.default_rng(6).standard_normal((4, 2, 3)).astype(np.float32), device=device)
    np.testing.assert_allclose(layer(x).numpy(), F.layer_norm(x, (2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(layer.eval()(x).numpy(), layer.train()(x).numpy())  # no batch statistics
    assert list(nn.LayerNorm(4, elementwise_affine=False).parameters()) == []
    assert [n for n, _ in nn.LayerNorm(4, bias=False).named_parameters()] == ["weight"]
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"


def test_module_gradients(device):
    layer = nn.LayerNorm(3, device=device, dtype="float64")
    rng = np.random.default_rng(7)
    layer.weight.data = tg.get_backend(device).asarray(rng.uniform(0.5, 1.5, 3))  # away from the init's symmetry
    layer.bias.data = tg.get_backend(device).asarray(rng.uniform(-1, 1, 3))
    x = Tensor(spread(rng.uniform(-0.3, 0.3, (2, 4, 3)), 1), device=device)
    assert tg.gradcheck_module(layer, x)


def test_errors_name_the_argument_and_both_shapes():
    x = Tensor(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(4,\) does not match the trailing axes of "
                                         r"the input of shape \(2, 3\)"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"normalized_shape \(1, 2, 3\) does not match .* shape \(2, 3\)"):
        F.layer_norm(x, (1, 2, 3))
    with pytest.raises(ValueError, match=r"layer_norm: weight has shape \(2,\), expected normalized_shape \(3,\)"):
        F.layer_norm(x, 3, Tensor(np.ones(2, dtype=np.float32)))
    with pytest.raises(ValueError, match=r"layer_norm: bias has shape \(3, 1\)"):
        F.layer_norm(x, 3, None, Tensor(np.ones((3, 1), dtype=np.float32)))
    with pytest.raises(ValueError, match="non-empty sequence of positive sizes, got \\(\\)"):
        F.layer_norm(x, ())
    with pytest.raises(TypeError, match="normalized_shape must be an int or a sequence of ints, got 3.0"):
        F.layer_norm(x, 3.0)
    with pytest.raises(ValueError, match="eps must be a non-negative number, got -1"):
        F.layer_norm(x, 3, eps=-1)
    with pytest.raises(TypeError, match="layer_norm: input must be a floating-point tensor, got dtype int64"):
        F.layer_norm(Tensor(np.zeros((2, 3), dtype=np.int64)), 3)
    with pytest.raises(ValueError, match="LayerNorm: normalized_shape must be a non-empty"):
        nn.LayerNorm([])
