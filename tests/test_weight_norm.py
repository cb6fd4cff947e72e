"""Weight normalization (``F.weight_norm``, ``nn.WeightNormLinear``): w = g v / ‖v‖, its hand-derived backward, the
paper's properties (rows of length g; dv orthogonal to v), PyTorch's ``dim`` conventions, float16 and errors."""

from __future__ import annotations

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


def g_shape(shape, dim):
    """g's shape: size 1 but on axis ``dim``; () where the norm is over the whole of v (dim None, or -1 as in
    ``torch._weight_norm``)."""
    return () if dim in (None, -1) else tuple(n if a == dim % len(shape) else 1 for a, n in enumerate(shape))


@st.composite
def weight_norm_cases(draw):
    """v (1 to 3 axes, every |v| >= 0.2 so every norm is), a dim (None, -1 meaning all, an axis, a negative axis),
    g of the matching shape, and a permutation of v's axes for a non-contiguous view."""
    shape = draw(tst.shapes(min_dims=1, max_dims=3, max_side=4))
    v = draw(tst.arrays(shape, magnitude=1.5, avoid=(0.0,), margin=0.2))
    dim = draw(st.sampled_from([None, *range(len(shape)), -len(shape)]))
    g = draw(tst.arrays(g_shape(shape, dim), magnitude=1.5))
    order = draw(st.permutations(range(len(shape))))
    return v, dim, g, tuple(order)


@settings(max_examples=15)
@given(case=weight_norm_cases())
def test_weight_norm_gradients(device, case):
    v, dim, g, order = case
    inverse = tuple(int(i) for i in np.argsort(order))
    stored = leaf(np.transpose(v, order), device)
    assert tg.gradcheck(lambda vt, gt: F.weight_norm(vt.permute(inverse), gt, dim), [stored, leaf(g, device)])


@settings(max_examples=15)
@given(case=weight_norm_cases())
def test_rows_have_length_g_and_dv_is_orthogonal_to_v(device, case):
    v, dim, g, _ = case
    axes = tuple(a for a in range(v.ndim) if dim in (None, -1) or a != dim % v.ndim)
    vt, gt = leaf(v, device), leaf(g, device)
    w = F.weight_norm(vt, gt, dim)
    lengths = np.sqrt((w.numpy() ** 2).sum(axis=axes, keepdims=True))
    np.testing.assert_allclose(lengths, np.abs(g).reshape(lengths.shape), rtol=1e-12, atol=1e-15)
    w.backward(Tensor(np.random.default_rng(0).standard_normal(w.shape), device=device))
    dv = vt.grad.numpy()
    np.testing.assert_allclose((dv * v).sum(axis=axes), 0.0, atol=1e-12)  # Σ dv ⊙ v = 0 per output
    assert gt.grad.shape == gt.shape


def test_values_by_hand(device):
    v = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
    g = np.array([[2.0], [-1.0], [0.5]])
    w = F.weight_norm(Tensor(v, device=device), Tensor(g, device=device), 0)
    np.testing.assert_allclose(w.numpy(), [[1.2, 1.6], [-1.0, 0.0], [0.0, -0.5]], rtol=1e-15)
    # dim 1: columns of length g; norms 3.1623 (sqrt 10) and sqrt 20
    w1 = F.weight_norm(Tensor(v, device=device), Tensor([[1.0, 2.0]], dtype=np.float64, device=device), 1)
    np.testing.assert_allclose(w1.numpy(), v / np.sqrt([10.0, 20.0]) * [1.0, 2.0], rtol=1e-15)
    # the whole tensor (norm sqrt 30), with g of shape () or all ones, and dim -1 as in torch._weight_norm
    for g_all, dim in [((), None), ((), -1), ((1, 1), None)]:
        whole = F.weight_norm(Tensor(v, device=device), Tensor(np.full(g_all, 3.0), device=device), dim)
        np.testing.assert_allclose(whole.numpy(), 3.0 * v / np.sqrt(30.0), rtol=1e-15)


def test_negative_dims_count_from_the_end_but_minus_one():
    v = np.random.default_rng(1).uniform(0.5, 1.5, (2, 3, 4))
    g = np.ones((1, 3, 1))
    np.testing.assert_array_equal(F.weight_norm(Tensor(v), Tensor(g), -2).numpy(),
                                  F.weight_norm(Tensor(v), Tensor(g), 1).numpy())


def test_backward_formulas_by_hand():
    v, g = leaf([[3.0, 4.0]]), leaf([[2.0]])
    w = F.weight_norm(v, g, 0)
    w.backward(Tensor(np.array([[1.0, 0.0]])))
    # s = Σ dw v = 3, ‖v‖ = 5: dg = 3/5, dv = (2/5)([1, 0] - (3/25)[3, 4]) = (2/5)[16/25, -12/25]
    np.testing.assert_allclose(g.grad.numpy(), [[0.6]], rtol=1e-15)
    np.testing.assert_allclose(v.grad.numpy(), [[0.4 * 16 / 25, -0.4 * 12 / 25]], rtol=1e-15)


def test_float16_norm_in_float32():
    """256 values of 20 in a row: Σ v² = 102400 overflows float16, not float32."""
    v = Tensor(np.full((2, 256), 20.0, dtype=np.float16), requires_grad=True)
    g = Tensor(np.array([[1.0], [3.0]], dtype=np.float16), requires_grad=True)
    w = F.weight_norm(v, g, 0)
    assert w.dtype == np.float16
    np.testing.assert_allclose(w.numpy().astype(np.float64), np.broadcast_to([[1 / 16], [3 / 16]], (2, 256)), rtol=1e-3)
    w.backward(Tensor(np.ones((2, 256), dtype=np.float16)))
    assert v.grad.dtype == g.grad.dtype == np.float16
    np.testing.assert_allclose(g.grad.numpy().astype(np.float64), [[16.0], [16.0]], rtol=1e-3)  # Σ v / ‖v‖ = 16
    np.testing.assert_allclose(v.grad.numpy().astype(np.float64), 0.0, atol=1e-3)  # dw along v: nothing left


def test_module(device):
    layer = nn.WeightNormLinear(3, 4, device=device)
    assert [n for n, _ in layer.named_parameters()] == ["weight_g", "weight_v", "bias"]
    assert layer.weight_v.shape == (4, 3) and layer.weight_g.shape == (4, 1) and layer.bias.shape == (4,)
    v = layer.weight_v.numpy()
    assert np.all(np.abs(v) <= 1 / np.sqrt(3)) and np.all(np.abs(layer.bias.numpy()) <= 1 / np.sqrt(3))
    np.testing.assert_allclose(layer.weight_g.numpy(), np.linalg.norm(v, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.numpy(), v, rtol=1e-6)  # g = ‖v‖: the Linear's weight at the start
    x = Tensor(np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32), device=device)
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ v.T + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    layer.weight_g.data = tg.get_backend(device).asarray(np.array([[0.5], [2.0], [1.0], [3.0]], dtype=np.float32))
    np.testing.assert_allclose(np.linalg.norm(layer.weight.numpy(), axis=1), [0.5, 2.0, 1.0, 3.0], rtol=1e-6)
    assert [n for n, _ in nn.WeightNormLinear(2, 2, bias=False).named_parameters()] == ["weight_g", "weight_v"]
    assert repr(layer) == "WeightNormLinear(in_features=3, out_features=4, bias=True)"


def test_module_gradients_and_orthogonal_update(device):
    layer = nn.WeightNormLinear(3, 2, device=device, dtype="float64")
    x = Tensor(np.random.default_rng(3).standard_normal((4, 3)), device=device)
    assert tg.gradcheck_module(layer, x)
    layer(x).sum().backward()
    np.testing.assert_allclose((layer.weight_v.grad.numpy() * layer.weight_v.numpy()).sum(axis=1), 0.0, atol=1e-12)


def test_errors():
    v = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"weight_norm: g has shape \(2,\), expected \(2, 1\) for v of shape "
                                         r"\(2, 3\) and dim=0"):
        F.weight_norm(v, Tensor(np.ones(2)), 0)
    with pytest.raises(ValueError, match=r"g has shape \(2, 1\), expected \(\) or \(1, 1\) .* dim=None"):
        F.weight_norm(v, Tensor(np.ones((2, 1))), None)
    with pytest.raises(ValueError, match=r"weight_norm: dim=2 is out of range for v of shape \(2, 3\)"):
        F.weight_norm(v, Tensor(np.ones((2, 1))), 2)
    with pytest.raises(TypeError, match="weight_norm: dim must be an int or None, got float"):
        F.weight_norm(v, Tensor(np.ones((2, 1))), 0.0)
    with pytest.raises(TypeError, match="weight_norm: g must be a floating-point tensor, got dtype int64"):
        F.weight_norm(v, Tensor(np.ones((2, 1), dtype=np.int64)), 0)
    with pytest.raises(ValueError, match="WeightNormLinear: in_features must be a positive int, got 0"):
        nn.WeightNormLinear(0, 2)
