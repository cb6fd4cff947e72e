"""Swapout (Singh, Hoiem and Forsyth 2016): ``F.swapout``, ``nn.Swapout``, ``nn.SwapoutBlock``,
``nn.swapout_schedule`` and ``nn.stochastic_inference``.

* forward and backward against NumPy with the same masks (the generator reseeded and the masks redrawn), over
  shapes, broadcasting, θ values and mask granularities (per unit, sample, batch);
* the masks' keep rates, per-unit independence, per-sample and per-batch masks (seeded; 5-sigma tolerances);
* gradcheck in float64 with a random upstream gradient on every device;
* the special cases, bit for bit (np.array_equal, same seed): dropout (Θ1 = 0, up to dropout's 1 / (1 - p)),
  stochastic depth (per batch: nn.StochasticDepth and ResidualBlock(survival_prob=p); per sample: a direct
  computation), the residual sum (θ1 = θ2 = 1, nothing drawn);
* deterministic inference (the expectation) and stochastic inference converging to the expectation of the output as
  the number of samples grows (a Hoeffding bound), which for a block with a ReLU is not the deterministic output;
* the schedules (linear from 1 to θ_L, uniform) and the input errors, which name the op and change nothing.
"""

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

THETAS = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.05, 0.95))


def leaf(array, device="cpu"):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def mask_shape(shape, per):
    return {"unit": tuple(shape), "sample": tuple(shape[:1]) + (1,) * (len(shape) - 1),
            "batch": (1,) * len(shape)}[per]


def seeded_masks(device, seed, shape, theta1, theta2):
    """Θ1 and Θ2 as the op draws them first after ``manual_seed(seed)``: Θ1 first; θ = 0 or 1 draws nothing."""
    tg.manual_seed(seed)
    backend = tg.get_backend(device)
    masks = []
    for theta in (theta1, theta2):
        if theta in (0.0, 1.0):
            masks.append(np.full(shape, theta))
        else:
            masks.append(backend.to_host(backend.bernoulli(shape, theta, np.dtype(np.float64))))
    return masks


def reduce_to(g, shape):
    """NumPy's unbroadcast: sum ``g`` over the axes along which an input of ``shape`` was broadcast."""
    extra = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(extra))) if extra else g
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


def first_draw(device):
    backend = tg.get_backend(device)
    return backend.to_host(backend.uniform((4,), 0.0, 1.0, np.dtype(np.float64)))


def hoeffding(value_range, samples, elements, failure=1e-9):
    """t such that P(|mean of `samples` draws - expectation| >= t) <= failure / elements per element, for draws
    confined to an interval of length ``value_range`` (Hoeffding: 2 exp(-2 k t² / R²)): a union over ``elements``
    fails with probability at most ``failure`` whatever the seed."""
    return value_range * math.sqrt(math.log(2 * elements / failure) / (2 * samples))


# ================================================================================================================
# forward and backward against NumPy
# ================================================================================================================
@pytest.mark.parametrize("per", ["unit", "sample", "batch"])
@pytest.mark.parametrize("x_shape, fx_shape", [((4, 3, 5), (4, 3, 5)), ((4, 1, 5), (3, 1)), ((3,), (2, 4, 3))])
def test_forward_and_backward_match_numpy_with_the_same_masks(device, per, x_shape, fx_shape):
    rng = np.random.default_rng(0)
    x, fx = rng.standard_normal(x_shape), rng.standard_normal(fx_shape)
    out_shape = np.broadcast_shapes(x_shape, fx_shape)
    theta1, theta2 = 0.6, 0.3
    m1, m2 = seeded_masks(device, 7, mask_shape(out_shape, per), theta1, theta2)
    xs, fxs = leaf(x, device), leaf(fx, device)
    tg.manual_seed(7)
    y = F.swapout(xs, fxs, theta1, theta2, per=per)
    np.testing.assert_array_equal(y.numpy(), m1 * x + m2 * fx)
    assert 0 < m1.mean() < 1 or per != "unit"  # the masks are not degenerate
    g = rng.standard_normal(out_shape)
    y.backward(Tensor(g, device=device))  # draws nothing: the saved masks
    np.testing.assert_allclose(xs.grad.numpy(), reduce_to(m1 * g, x_shape), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fxs.grad.numpy(), reduce_to(m2 * g, fx_shape), rtol=1e-13, atol=1e-15)


@settings(max_examples=20)
@given(shapes=tst.broadcastable_shapes(2, min_dims=0, max_dims=4), theta1=THETAS, theta2=THETAS,
       per=st.sampled_from(["unit", "sample", "batch"]), seed=st.integers(0, 2**16), data=st.data())
def test_matches_numpy_over_shapes_thetas_and_layouts(device, shapes, theta1, theta2, per, seed, data):
    x_shape, fx_shape = shapes
    out_shape = np.broadcast_shapes(x_shape, fx_shape)
    per = "unit" if not out_shape else per  # a 0-d output has no batch axis
    x = data.draw(tst.arrays(x_shape).flatmap(tst.layouts))  # non-contiguous layouts included
    fx = data.draw(tst.arrays(fx_shape))
    m1, m2 = seeded_masks(device, seed, mask_shape(out_shape, per), theta1, theta2)
    xs, fxs = leaf(x, device), leaf(fx, device)
    tg.manual_seed(seed)
    y = F.swapout(xs, fxs, theta1, theta2, per=per)
    np.testing.assert_array_equal(y.numpy(), m1 * x + m2 * fx)
    g = np.random.default_rng(seed).standard_normal(out_shape)
    y.backward(Tensor(g, device=device))
    np.testing.assert_allclose(xs.grad.numpy(), reduce_to(m1 * g, x_shape), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fxs.grad.numpy(), reduce_to(m2 * g, fx_shape), rtol=1e-13, atol=1e-15)


def test_masks_come_from_the_seeded_generator_fresh_per_call(device):
    x, fx = Tensor(np.zeros((6, 40)), device=device), Tensor(np.ones((6, 40)), device=device)
    tg.manual_seed(5)
    first, second = F.swapout(x, fx).numpy(), F.swapout(x, fx).numpy()
    tg.manual_seed(5)
    np.testing.assert_array_equal(F.swapout(x, fx).numpy(), first)  # the same seed, the same masks
    assert not np.array_equal(first, second)  # fresh masks per call


def test_float16_masks_are_exact_and_gradients_stay_float16():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((8, 16)).astype(np.float16), requires_grad=True)
    fx = Tensor(rng.standard_normal((8, 16)).astype(np.float16), requires_grad=True)
    m1, m2 = seeded_masks("cpu", 2, (8, 16), 0.5, 0.5)
    tg.manual_seed(2)
    y = F.swapout(x, fx, 0.5, 0.5)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y.numpy(), (m1 * x.numpy() + m2 * fx.numpy()).astype(np.float16))
    y.backward(Tensor(np.ones((8, 16), dtype=np.float16)))
    assert x.grad.dtype == fx.grad.dtype == np.float16
    np.testing.assert_array_equal(x.grad.numpy(), m1)
    np.testing.assert_array_equal(fx.grad.numpy(), m2)


# ================================================================================================================
# keep rates
# ================================================================================================================
@pytest.mark.parametrize("theta1, theta2", [(0.5, 0.5), (0.8, 0.3), (0.1, 0.9)])
def test_per_unit_masks_keep_at_rates_theta_independently(device, theta1, theta2):
    """With x = 1 and F(x) = 2 the output 0, 1, 2, 3 names (Θ1, Θ2) at each unit. The rates of Θ1 = 1, Θ2 = 1 and of
    both are θ1, θ2 and θ1·θ2 within 5 standard deviations (a seeded draw; for any seed a 5-sigma miss has
    probability below 1e-6)."""
    n = 40_000
    y = F.swapout(Tensor(np.ones(n), device=device), Tensor(np.full(n, 2.0), device=device), theta1, theta2).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0, 2.0, 3.0}
    kept_x, kept_f = (y == 1) | (y == 3), (y == 2) | (y == 3)
    for rate, p in ((kept_x.mean(), theta1), (kept_f.mean(), theta2), ((kept_x & kept_f).mean(), theta1 * theta2)):
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n), (rate, p)


def test_per_sample_masks_cover_whole_samples(device):
    n, theta = 4000, 0.3
    y = F.swapout(Tensor(np.zeros((n, 3, 2)), device=device), Tensor(np.ones((n, 3, 2)), device=device), 1.0, theta,
                  per="sample").numpy()
    per_sample = y.reshape(n, -1)
    assert np.all(per_sample == per_sample[:, :1])  # every unit of a sample shares its draw
    rate = per_sample[:, 0].mean()
    assert abs(rate - theta) < 5 * math.sqrt(theta * (1 - theta) / n), rate


def test_per_batch_masks_cover_the_whole_batch(device):
    calls, theta = 2000, 0.6
    x, fx = Tensor(np.zeros((3, 4)), device=device), Tensor(np.ones((3, 4)), device=device)
    kept = []
    for _ in range(calls):
        y = F.swapout(x, fx, 1.0, theta, per="batch").numpy()
        assert np.all(y == y.flat[0])
        kept.append(y.flat[0])
    assert abs(np.mean(kept) - theta) < 5 * math.sqrt(theta * (1 - theta) / calls)


# ================================================================================================================
# gradients
# ================================================================================================================
@settings(max_examples=15)
@given(shapes=tst.broadcastable_shapes(2, min_dims=1, max_dims=3), theta1=THETAS, theta2=THETAS,
       per=st.sampled_from(["unit", "sample", "batch"]), training=st.booleans(), data=st.data())
def test_gradcheck_float64(device, shapes, theta1, theta2, per, training, data):
    """gradcheck draws a random upstream gradient and reseeds the generator before every evaluation: each pass
    draws the same masks."""
    x = data.draw(tst.arrays(shapes[0]))
    fx = data.draw(tst.arrays(shapes[1]))
    assert tg.gradcheck(lambda a, b: F.swapout(a, b, theta1, theta2, training=training, per=per),
                        [leaf(x, device), leaf(fx, device)])


def test_gradient_flows_only_through_kept_terms(device):
    x, fx = leaf(np.ones((50, 4)), device), leaf(np.ones((50, 4)), device)
    m1, m2 = seeded_masks(device, 3, (50, 4), 0.5, 0.5)
    tg.manual_seed(3)
    F.swapout(x, fx).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), m1)  # a dropped x term gets no gradient
    np.testing.assert_array_equal(fx.grad.numpy(), m2)
    assert (m1 * m2).any() and ((1 - m1) * (1 - m2)).any()  # units that are x + F(x), units that are 0


# ================================================================================================================
# special cases, bit for bit
# ================================================================================================================
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_is_swapout_without_x_and_with_the_inverted_scale(device, p):
    """dropout(F(x), p) = swapout(x, F(x), θ1 = 0, θ2 = 1 - p) · 1/(1 - p): the same mask m ~ Bernoulli(1 - p) (the
    same generator draw), and dropout's survivors scaled by 1/(1 - p) in training; at test time dropout is the
    identity and swapout the expectation (1 - p)·F(x), the original (non-inverted) dropout."""
    rng = np.random.default_rng(4)
    x_np, f_np = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    x, f_drop, f_swap = leaf(x_np, device), leaf(f_np, device), leaf(f_np, device)
    tg.manual_seed(11)
    dropped = F.dropout(f_drop, p)
    tg.manual_seed(11)
    swapped = F.swapout(x, f_swap, 0.0, 1 - p) * (1 / (1 - p))
    np.testing.assert_array_equal(swapped.numpy(), dropped.numpy())
    assert 0 < np.mean(dropped.numpy() == 0) < 1
    g = rng.standard_normal((6, 7))
    dropped.backward(Tensor(g, device=device))
    swapped.backward(Tensor(g, device=device))
    np.testing.assert_array_equal(f_swap.grad.numpy(), f_drop.grad.numpy())  # m·g·scale either way: m is 0 or 1
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)  # Θ1 = 0
    # evaluation: the expectation (1 - p)·F(x), i.e. (1 - p) times dropout's identity
    evaluated = F.swapout(x, f_swap, 0.0, 1 - p, training=False).numpy()
    np.testing.assert_array_equal(evaluated, (1 - p) * F.dropout(f_drop, p, training=False).numpy())


class Branch(nn.Module):
    """A deterministic branch F(x) = tanh(x) · 1.5 that counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x.tanh() * 1.5


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_stochastic_depth_per_batch_is_nn_stochastic_depth(device, p):
    """swapout(x, F(x), 1, p, per="batch") = x + b·F(x), one b ~ Bernoulli(p) per call: nn.StochasticDepth's draw
    (one Bernoulli from the same generator), value for value, for every batch size; x + p·F(x) in evaluation."""
    x = Tensor(np.random.default_rng(5).standard_normal((5, 3)), device=device)
    branch = Branch()
    depth = nn.StochasticDepth(branch, p)
    outcomes = set()
    for seed in range(12):
        tg.manual_seed(seed)
        expected = depth(x).numpy()
        tg.manual_seed(seed)
        got = F.swapout(x, branch(x), 1.0, p, per="batch").numpy()
        np.testing.assert_array_equal(got, expected)
        outcomes.add(np.array_equal(got, x.numpy()))
    assert outcomes == {True, False}  # dropped and kept both seen
    depth.eval()
    np.testing.assert_array_equal(F.swapout(x, branch(x), 1.0, p, training=False).numpy(), depth(x).numpy())


def test_stochastic_depth_per_sample_is_one_draw_per_sample(device):
    """swapout(x, F(x), 1, p, per="sample") = x + b ⊙ F(x) with b of shape (N, 1, 1): computed directly."""
    p, shape = 0.5, (16, 3, 2)
    rng = np.random.default_rng(6)
    x, fx = rng.standard_normal(shape), rng.standard_normal(shape)
    tg.manual_seed(8)
    backend = tg.get_backend(device)
    b = backend.to_host(backend.bernoulli((16, 1, 1), p, np.dtype(np.float64)))
    tg.manual_seed(8)
    y = F.swapout(Tensor(x, device=device), Tensor(fx, device=device), 1.0, p, per="sample").numpy()
    np.testing.assert_array_equal(y, x + b * fx)
    assert 0 < b.sum() < 16
    # one sample: the per-sample draw is the per-batch draw, i.e. nn.StochasticDepth's
    one = Tensor(x[:1], device=device)
    branch = Branch()
    for seed in range(6):
        tg.manual_seed(seed)
        expected = nn.StochasticDepth(branch, p)(one).numpy()
        tg.manual_seed(seed)
        np.testing.assert_array_equal(F.swapout(one, branch(one), 1.0, p, per="sample").numpy(), expected)


@pytest.mark.parametrize("shortcut, cin, cout, stride", [("projection", 2, 3, 2), ("zeros", 2, 2, 1)])
def test_swapout_block_per_batch_is_residual_block_with_stochastic_depth(device, shortcut, cin, cout, stride):
    """SwapoutBlock(θ1 = 1, θ2 = p, per="batch") and ResidualBlock(survival_prob=p) with the same parameters give the
    same outputs for the same seed, dropped or kept, and in evaluation (fresh running statistics: a dropped
    ResidualBlock skips its branch, and with it its batch-norm update)."""
    p = 0.5
    residual = nn.ResidualBlock(cin, cout, stride, shortcut, survival_prob=p, device=device, dtype="float64")
    swap = nn.SwapoutBlock(cin, cout, stride, shortcut, theta1=1.0, theta2=p, per="batch", device=device,
                           dtype="float64")
    state = residual.state_dict()
    swap.load_state_dict(state)
    x = Tensor(np.random.default_rng(7).standard_normal((3, cin, 5, 4)), device=device)
    dropped = set()
    for seed in range(8):
        tg.manual_seed(seed)
        expected = residual(x).numpy()
        tg.manual_seed(seed)
        np.testing.assert_array_equal(swap(x).numpy(), expected)
        dropped.add(np.array_equal(expected, np.maximum(residual.shortcut(x).numpy(), 0)))
    assert dropped == {True, False}
    residual.load_state_dict(state)
    swap.load_state_dict(state)
    residual.eval()
    swap.eval()
    np.testing.assert_array_equal(swap(x).numpy(), residual(x).numpy())


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("per", ["unit", "sample", "batch"])
def test_theta_one_and_one_is_the_residual_sum_and_draws_nothing(device, training, per):
    rng = np.random.default_rng(9)
    x_np, f_np = rng.standard_normal((4, 1, 3)), rng.standard_normal((5, 3))
    x, fx = leaf(x_np, device), leaf(f_np, device)
    x2, fx2 = leaf(x_np, device), leaf(f_np, device)
    tg.manual_seed(3)
    y = F.swapout(x, fx, 1.0, 1.0, training=training, per=per)
    after = first_draw(device)
    tg.manual_seed(3)
    np.testing.assert_array_equal(after, first_draw(device))  # the generator did not move
    plain = x2 + fx2
    np.testing.assert_array_equal(y.numpy(), plain.numpy())
    g = Tensor(rng.standard_normal((4, 5, 3)), device=device)
    y.backward(g)
    plain.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), x2.grad.numpy())
    np.testing.assert_array_equal(fx.grad.numpy(), fx2.grad.numpy())


@pytest.mark.parametrize("theta1, theta2, expected", [(1.0, 0.0, "x"), (0.0, 1.0, "fx"), (0.0, 0.0, "zero")])
def test_constant_masks_draw_nothing(device, theta1, theta2, expected):
    x, fx = np.full((2, 3), 2.0), np.full((2, 3), -1.0)
    tg.manual_seed(1)
    y = F.swapout(Tensor(x, device=device), Tensor(fx, device=device), theta1, theta2).numpy()
    after = first_draw(device)
    tg.manual_seed(1)
    np.testing.assert_array_equal(after, first_draw(device))
    np.testing.assert_array_equal(y, {"x": x, "fx": fx, "zero": np.zeros((2, 3))}[expected])


# ================================================================================================================
# inference: deterministic and stochastic
# ================================================================================================================
@pytest.mark.parametrize("per", ["unit", "sample", "batch"])
def test_evaluation_is_the_expectation_and_draws_nothing(device, per):
    rng = np.random.default_rng(10)
    x_np, f_np = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x, fx = leaf(x_np, device), leaf(f_np, device)
    tg.manual_seed(2)
    y = F.swapout(x, fx, 0.7, 0.4, training=False, per=per)
    after = first_draw(device)
    tg.manual_seed(2)
    np.testing.assert_array_equal(after, first_draw(device))
    np.testing.assert_array_equal(y.numpy(), 0.7 * x_np + 0.4 * f_np)
    g = rng.standard_normal((3, 4))
    y.backward(Tensor(g, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), 0.7 * g)
    np.testing.assert_array_equal(fx.grad.numpy(), 0.4 * g)
    layer = nn.Swapout(0.7, 0.4, per=per).eval()
    np.testing.assert_array_equal(layer(x, fx).numpy(), y.numpy())


def test_swapout_module_modes(device):
    x, fx = Tensor(np.ones((4, 30)), device=device), Tensor(np.full((4, 30), 2.0), device=device)
    layer = nn.Swapout(0.5, 0.5)
    assert layer.training and list(layer.parameters()) == []
    assert not np.array_equal(layer(x, fx).numpy(), layer(x, fx).numpy())  # training: fresh masks
    layer.eval()
    np.testing.assert_array_equal(layer(x, fx).numpy(), 1.5)  # deterministic inference
    layer.inference = "stochastic"
    assert not np.array_equal(layer(x, fx).numpy(), layer(x, fx).numpy())  # evaluation that draws
    assert repr(nn.Swapout(0.2, 1)) == "Swapout(theta1=0.2, theta2=1.0, per='unit', inference='deterministic')"


@pytest.mark.parametrize("samples", [10, 100, 1000])
def test_stochastic_inference_of_one_swapout_converges_to_the_deterministic_output(device, samples):
    """One swapout is linear in its masks, so E[y] = θ1·x + θ2·F(x), the deterministic output. Each sample of an
    element lies in {0, x, F, x + F}, an interval of length R <= |x| + |F|; by Hoeffding's inequality the mean of k
    samples is within R·sqrt(ln(2n/δ) / 2k) of E[y] at all n elements but with probability δ = 1e-9, whatever the
    seed. The mean squared error, E = mean over elements of Var/k, shrinks as 1/k."""
    rng = np.random.default_rng(11)
    x_np, f_np = rng.standard_normal((10, 20)), rng.standard_normal((10, 20))
    x, fx = Tensor(x_np, device=device), Tensor(f_np, device=device)
    theta1, theta2 = 0.6, 0.3
    layer = nn.Swapout(theta1, theta2).eval()
    deterministic = layer(x, fx).numpy()
    mean = nn.stochastic_inference(layer, x, fx, samples=samples, seed=0).numpy()
    bound = hoeffding(np.abs(x_np) + np.abs(f_np), samples, x_np.size)
    assert np.all(np.abs(mean - deterministic) <= bound)
    variance = theta1 * (1 - theta1) * x_np**2 + theta2 * (1 - theta2) * f_np**2
    mse, expected_mse = np.mean((mean - deterministic) ** 2), np.mean(variance) / samples
    assert mse < 3 * expected_mse  # 200 elements: the mean of squared errors is concentrated near its expectation
    assert layer.inference == "deterministic" and not layer.training  # given back as they were


def test_stochastic_inference_of_a_block_with_relu_converges_to_its_expectation_not_the_deterministic_output(device):
    """SwapoutBlock: y = relu(Θ1 ⊙ s + Θ2 ⊙ f) with s = shortcut(x) and f = F(x) fixed in evaluation. Its
    expectation enumerates the four outcomes of (Θ1, Θ2): Σ P(a)P(b) relu(a·s + b·f); the deterministic output is
    relu(θ1·s + θ2·f), different (Jensen: relu is convex, E[relu(y)] >= relu(E[y])). Stochastic inference converges
    to the former (Hoeffding bound, as above), and the gap to the latter is larger than that bound."""
    theta1, theta2, samples = 0.5, 0.5, 1200
    block = nn.SwapoutBlock(2, 2, theta1=theta1, theta2=theta2, device=device, dtype="float64")
    x = Tensor(np.random.default_rng(12).standard_normal((2, 2, 4, 4)), device=device)
    block(x)  # one training step gives the batch norms running statistics
    block.eval()
    s, f = block.shortcut(x).numpy(), block.residual(x).numpy()
    outcomes = []  # (probability, output) for (Θ1, Θ2) = (a, b) everywhere
    for a, p_a in ((1, theta1), (0, 1 - theta1)):
        for b, p_b in ((1, theta2), (0, 1 - theta2)):
            outcomes.append((p_a * p_b, np.maximum(a * s + b * f, 0)))
    expectation = sum(probability * value for probability, value in outcomes)
    deterministic = block(x).numpy()
    np.testing.assert_allclose(deterministic, np.maximum(theta1 * s + theta2 * f, 0), rtol=1e-12, atol=1e-12)
    value_range = np.max([v for _, v in outcomes], axis=0) - np.min([v for _, v in outcomes], axis=0)
    bound = hoeffding(value_range, samples, s.size)
    mean = nn.stochastic_inference(block, x, samples=samples, seed=1).numpy()
    assert np.all(np.abs(mean - expectation) <= bound + 1e-12)
    gap = np.abs(expectation - deterministic)
    assert np.all(expectation >= deterministic - 1e-12)  # Jensen
    assert np.any(gap > 2 * bound)  # the gap stochastic inference measures is real, not sampling noise
    assert not block.training and block.inference == "deterministic"


def test_stochastic_inference_is_reproducible_and_leaves_modes_alone(device):
    model = nn.Sequential(nn.Linear(3, 3, device=device, dtype="float64"))
    swap = nn.Swapout(0.5, 0.5)

    class TwoTerms(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.swap = model, swap

        def forward(self, x):
            return self.swap(x, self.inner(x))

    net = TwoTerms().eval()
    x = Tensor(np.random.default_rng(13).standard_normal((4, 3)), device=device)
    first = nn.stochastic_inference(net, x, samples=5, seed=3).numpy()
    np.testing.assert_array_equal(nn.stochastic_inference(net, x, samples=5, seed=3).numpy(), first)
    assert not np.array_equal(nn.stochastic_inference(net, x, samples=5).numpy(), first)  # seed None: draws on
    assert swap.inference == "deterministic" and not net.training
    assert not nn.stochastic_inference(net, Tensor(x.numpy(), requires_grad=True, device=device)).requires_grad
    one = nn.stochastic_inference(net, x, samples=1, seed=4).numpy()
    tg.manual_seed(4)
    np.testing.assert_array_equal(one, F.swapout(x, model(x), 0.5, 0.5).numpy())  # one pass: one draw of the masks


def test_stochastic_inference_float16_output():
    layer = nn.Swapout(0.5, 0.5).eval()
    x = Tensor(np.ones((2, 3), dtype=np.float16))
    mean = nn.stochastic_inference(layer, x, x, samples=40, seed=0)  # Θ1 + Θ2 in {0, 1, 2}, expectation 1
    assert mean.dtype == np.float16 and np.all(np.abs(mean.numpy() - 1.0) <= hoeffding(2.0, 40, 6))


def test_stochastic_inference_errors():
    with pytest.raises(ValueError, match="stochastic_inference: Linear has no Swapout or SwapoutBlock layer"):
        nn.stochastic_inference(nn.Linear(2, 2), Tensor(np.ones((1, 2), np.float32)))
    with pytest.raises(ValueError, match="stochastic_inference: samples must be a positive int, got 0"):
        nn.stochastic_inference(nn.Swapout(), Tensor(np.ones(2)), Tensor(np.ones(2)), samples=0)
    with pytest.raises(TypeError, match="stochastic_inference: model must be a Module"):
        nn.stochastic_inference(lambda x: x, Tensor(np.ones(2)))
    with pytest.raises(TypeError, match="stochastic_inference: seed must be an int or None, got float"):
        nn.stochastic_inference(nn.Swapout(), Tensor(np.ones(2)), Tensor(np.ones(2)), seed=1.5)


# ================================================================================================================
# SwapoutBlock
# ================================================================================================================
def test_swapout_block_shapes_parameters_and_repr(device):
    block = nn.SwapoutBlock(2, 4, 2, "projection", theta1=0.9, theta2=0.8, device=device, dtype="float64")
    assert isinstance(block, nn.ResidualBlock)
    assert [n for n, _ in block.named_parameters()] == [n for n, _ in nn.ResidualBlock(2, 4, 2).named_parameters()]
    y = block(Tensor(np.random.default_rng(14).standard_normal((2, 2, 6, 5)), device=device))
    assert y.shape == (2, 4, 3, 3) and (y.numpy() >= 0).all()
    assert block.extra_repr() == ("in_channels=2, out_channels=4, stride=2, shortcut='projection', theta1=0.9, "
                                  "theta2=0.8, per='unit', inference='deterministic'")


@pytest.mark.parametrize("training", [True, False])
def test_swapout_block_gradcheck_module(device, training):
    block = nn.SwapoutBlock(2, 3, 2, "zeros", theta1=0.7, theta2=0.6, device=device, dtype="float64")
    block.train(training)
    x = Tensor(np.random.default_rng(15).standard_normal((2, 2, 4, 4)), device=device)
    assert tg.gradcheck_module(block, x, kinks="allow")


# ================================================================================================================
# schedules
# ================================================================================================================
@pytest.mark.parametrize("L, end", [(2, 0.5), (5, 0.5), (18, 0.3), (100, 0.0)])
def test_linear_schedule_goes_from_one_to_theta_L_in_equal_steps(L, end):
    theta = nn.swapout_schedule(L, end)
    assert len(theta) == L and theta[0] == 1.0 and theta[-1] == end  # both ends exact
    np.testing.assert_allclose(np.diff(theta), (end - 1.0) / (L - 1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(theta, [1 - (1 - end) * k / (L - 1) for k in range(L)], rtol=1e-15)
    assert nn.swapout_schedule(L, end, start=0.8)[0] == 0.8


def test_schedule_rules_and_their_difference_from_stochastic_depth():
    assert nn.swapout_schedule(5) == [1.0, 0.875, 0.75, 0.625, 0.5]  # the paper's Linear(1, 0.5)
    assert nn.swapout_schedule(3, 0.5, rule="uniform") == [0.5, 0.5, 0.5]  # Uniform(0.5)
    assert nn.swapout_schedule(1, 0.4) == [0.4]
    assert nn.survival_probabilities(4)[0] == 0.875 and nn.swapout_schedule(4)[0] == 1.0  # SD's rule starts below 1
    blocks = [nn.SwapoutBlock(2, 2, theta1=t, theta2=t) for t in nn.swapout_schedule(3, 0.5)]
    assert [b.theta1 for b in blocks] == [1.0, 0.75, 0.5]


@pytest.mark.parametrize("call, words", [
    (lambda: nn.swapout_schedule(0), ["swapout_schedule", "L", "0"]),
    (lambda: nn.swapout_schedule(3, 1.5), ["swapout_schedule", "end", "[0, 1]"]),
    (lambda: nn.swapout_schedule(3, start=-0.1), ["swapout_schedule", "start"]),
    (lambda: nn.swapout_schedule(3, rule="cosine"), ["rule", "'cosine'"]),
])
def test_schedule_errors(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert all(word in str(info.value) for word in words)


# ================================================================================================================
# errors: they name the op and change nothing
# ================================================================================================================
@pytest.mark.parametrize("kwargs, error, message", [
    ({"theta1": -0.1}, tg.InputError, r"swapout: theta1 is a keep probability and must be in \[0, 1\], got -0.1"),
    ({"theta2": 1.5}, tg.InputError, r"swapout: theta2 is a keep probability and must be in \[0, 1\], got 1.5"),
    ({"theta1": float("nan")}, tg.InputError, r"swapout: theta1 .* got nan"),
    ({"theta2": "0.5"}, TypeError, "swapout: theta2 must be a real number, got str"),
    ({"theta1": True}, TypeError, "swapout: theta1 must be a real number, got bool"),
    ({"per": "channel"}, tg.InputError, r"swapout: per must be one of 'unit', 'sample', 'batch', got 'channel'"),
    ({"training": False, "theta1": 2}, tg.InputError, r"swapout: theta1 .* got 2.0"),  # checked in evaluation too
])
def test_bad_options(device, kwargs, error, message):
    x, fx = leaf(np.ones((2, 3)), device), leaf(np.ones((2, 3)), device)
    state = tg.get_rng_state(device)
    with pytest.raises(error, match=message):
        F.swapout(x, fx, **kwargs)
    assert tg.get_rng_state(device) == state and x.grad is None and fx.grad is None


def test_bad_inputs(device):
    x = leaf(np.ones((2, 3)), device)
    state = tg.get_rng_state(device)
    cases = [
        ((x, leaf(np.ones((4,)), device)), tg.InputError,
         r"swapout: x of shape \(2, 3\) and fx of shape \(4,\) do not broadcast together"),
        ((x, Tensor(np.ones((2, 3), np.float32), device=device)), TypeError,
         "swapout: x and fx must have the same dtype, got float64 and float32"),
        ((x, np.ones((2, 3))), TypeError, "swapout: fx must be a Tensor, got ndarray"),
        ((Tensor(np.ones((2, 3), np.int64), device=device), x), TypeError,
         "swapout: x must be a floating-point tensor, got dtype int64"),
        ((leaf(1.0, device), leaf(2.0, device)), tg.InputError, "swapout: per='sample' needs a batch axis"),
    ]
    for args, error, message in cases:
        kwargs = {"per": "sample"} if "batch axis" in message else {}
        with pytest.raises(error, match=message):
            F.swapout(*args, **kwargs)
    assert tg.get_rng_state(device) == state


def test_tensors_on_two_devices():
    state = tg.get_rng_state("cpu"), tg.get_rng_state("strict")
    with pytest.raises(RuntimeError, match="swapout: expected all tensors on one device, got tensors on cpu and "
                                           "strict"):
        F.swapout(leaf(np.ones(3), "cpu"), leaf(np.ones(3), "strict"))
    assert (tg.get_rng_state("cpu"), tg.get_rng_state("strict")) == state


@pytest.mark.parametrize("build, error, words", [
    (lambda: nn.Swapout(1.5), ValueError, ["Swapout", "theta1", "[0, 1]"]),
    (lambda: nn.Swapout(0.5, -1), ValueError, ["Swapout", "theta2"]),
    (lambda: nn.Swapout(per="row"), ValueError, ["Swapout", "per", "'row'"]),
    (lambda: nn.Swapout(inference="mc"), ValueError, ["Swapout", "inference", "'mc'"]),
    (lambda: nn.Swapout("a"), TypeError, ["Swapout", "theta1", "str"]),
    (lambda: nn.SwapoutBlock(2, 2, theta2=2.0), ValueError, ["SwapoutBlock", "theta2"]),
    (lambda: nn.SwapoutBlock(0, 2), ValueError, ["SwapoutBlock", "in_channels"]),
    (lambda: nn.SwapoutBlock(4, 2, shortcut="zeros"), ValueError, ["SwapoutBlock", "zeros"]),
])
def test_constructor_errors(build, error, words):
    with pytest.raises(error) as info:
        build()
    assert type(info.value) is error  # a constructor raises ValueError, as PyTorch's, not InputError
    assert all(word in str(info.value) for word in words), str(info.value)


def test_block_input_errors():
    block = nn.SwapoutBlock(2, 3)
    with pytest.raises(tg.InputError, match=r"SwapoutBlock: expected an input of shape \(N, 2, H, W\), got shape "
                                            r"\(1, 3, 4, 4\)"):
        block(Tensor(np.zeros((1, 3, 4, 4), np.float32)))
    with pytest.raises(TypeError, match="SwapoutBlock: input must be a Tensor"):
        block(np.zeros((1, 2, 4, 4)))
