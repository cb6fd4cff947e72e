"""Mathematical properties of the ops that learners study, beyond 'the gradient matches finite differences'."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

MATRICES = tst.shapes(min_dims=2, max_dims=2, min_side=1, max_side=5)


def leaf(array, device):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


@settings(max_examples=15)
@given(data=st.data())
def test_cross_entropy_gradient_is_softmax_minus_onehot_and_rows_sum_to_zero(device, data):
    z = data.draw(tst.arrays(MATRICES, magnitude=5.0))
    target = data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0]))
    logits = leaf(z, device)
    F.cross_entropy(logits, Tensor(np.array(target), device=device)).backward()
    softmax = np.exp(z - z.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    expected = (softmax - np.eye(z.shape[1])[target]) / z.shape[0]
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(logits.grad.numpy().sum(axis=1), 0.0, atol=1e-12)


@settings(max_examples=15)
@given(z=tst.arrays(MATRICES, magnitude=5.0), shift=st.floats(-50, 50))
def test_cross_entropy_is_invariant_to_shifting_the_logits(device, z, shift):
    target = Tensor(np.zeros(z.shape[0], dtype=np.int64), device=device)
    a = F.cross_entropy(Tensor(z, device=device), target).item()
    b = F.cross_entropy(Tensor(z + shift, device=device), target).item()
    assert abs(a - b) <= 1e-9 * max(1.0, abs(a))


@settings(max_examples=15)
@given(data=st.data())
def test_centering_passes_gradients_that_sum_to_zero(device, data):
    """y = x - mean(x) over a row: whatever the upstream gradient, dL/dx sums to zero along the row."""
    x = data.draw(tst.arrays(MATRICES))
    upstream = data.draw(tst.arrays(x.shape))
    t = leaf(x, device)
    (t - t.mean(axis=1, keepdims=True)).backward(upstream)
    np.testing.assert_allclose(t.grad.numpy().sum(axis=1), 0.0, atol=1e-12)


@settings(max_examples=15)
@given(x=tst.arrays(MATRICES), shift=st.floats(-10, 10))
def test_variance_ignores_shifts_and_its_gradient_sums_to_zero(device, x, shift):
    v = Tensor(x, device=device).var(axis=0, correction=0).numpy()
    np.testing.assert_allclose(Tensor(x + shift, device=device).var(axis=0, correction=0).numpy(), v, atol=1e-9)
    t = leaf(x, device)
    t.var(axis=0, correction=0).sum().backward()
    np.testing.assert_allclose(t.grad.numpy().sum(axis=0), 0.0, atol=1e-10)


@settings(max_examples=15)
@given(x=tst.arrays(tst.shapes(max_dims=3), magnitude=3.0, avoid=[0.0], margin=1e-3))
def test_relu_identities_crelu_and_two_piece_maxout(device, x):
    """relu(x) - relu(-x) = x, relu(x) + relu(-x) = |x| = max(x, -x): CReLU keeps all of x, and a maxout of two
    pieces with opposite weights is the absolute value. The gradients agree too."""
    t = leaf(x, device)
    np.testing.assert_allclose((t.relu() - (-t).relu()).numpy(), x)
    np.testing.assert_allclose((t.relu() + (-t).relu()).numpy(), np.abs(x))
    np.testing.assert_allclose(tg.maximum(t, -t).numpy(), np.abs(x))
    tg.maximum(t, -t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.sign(x))
    crelu = tg.concatenate([t.relu().reshape(-1), (-t).relu().reshape(-1)])
    np.testing.assert_allclose(np.linalg.norm(crelu.numpy()), np.linalg.norm(x))  # CReLU keeps the norm


@settings(max_examples=15)
@given(data=st.data())
def test_maximum_plus_minimum_is_the_sum_and_routes_every_gradient_once(device, data):
    shape = data.draw(tst.shapes(max_dims=3))
    a, b = leaf(data.draw(tst.arrays(shape)), device), leaf(data.draw(tst.arrays(shape)), device)
    total = tg.maximum(a, b) + tg.minimum(a, b)
    np.testing.assert_allclose(total.numpy(), a.numpy() + b.numpy())
    total.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 1.0)  # ties included: half from max, half from min
    np.testing.assert_allclose(b.grad.numpy(), 1.0)


@settings(max_examples=15)
@given(x=tst.arrays(tst.shapes(min_dims=1, max_dims=3), unique=True, margin=0.01))
def test_max_reduction_routes_the_whole_gradient_to_the_argmax(device, x):
    t = leaf(x, device)
    t.max().backward()
    expected = np.zeros_like(x)
    expected[np.unravel_index(np.argmax(x), x.shape)] = 1.0
    np.testing.assert_array_equal(t.grad.numpy(), expected)
