"""Batch normalization: F.batch_norm (training and evaluation), its staged and composed versions, BatchNorm1d/2d.

Gradients are checked with finite differences (float64, random upstream gradient) on Hypothesis-drawn shapes, with
non-contiguous inputs; values against formulas on hand-computed cases (and PyTorch where installed); running
statistics against their update rule; float16 against float64; and every error message.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import InputError, Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

EPS = 1e-5


def leaf(array, device="cpu", dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True, device=device)


def per_channel(v, ndim):
    return np.reshape(v, (1, -1) + (1,) * (ndim - 2))


def reference(x, weight=None, bias=None, mean=None, var=None, eps=EPS):
    """Batch normalization in float64 NumPy: batch statistics (biased variance) unless mean and var are given."""
    x = np.asarray(x, dtype=np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    if mean is None:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    y = (x - per_channel(mean, x.ndim)) / np.sqrt(per_channel(var, x.ndim) + eps)
    if weight is not None:
        y = y * per_channel(weight, x.ndim)
    if bias is not None:
        y = y + per_channel(bias, x.ndim)
    return y


@st.composite
def cases(draw, min_ndim=2, max_ndim=4):
    """(x, weight, bias, perm): x (N, C, ...) with >= 2 values per channel, distinct values (no zero-variance
    channel), and a permutation: the test stores x transposed by it and permutes back inside the function, so the
    op sees a non-contiguous input."""
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = draw(tst.shapes(min_dims=ndim, max_dims=ndim, max_side=3 if ndim == 4 else 4)
                 .filter(lambda s: math.prod(s) // s[1] >= 2))
    x = draw(tst.arrays(shape=shape, magnitude=3.0, unique=True, margin=0.03))
    weight = draw(tst.arrays(shape=(shape[1],), magnitude=1.5))
    bias = draw(tst.arrays(shape=(shape[1],), magnitude=1.5))
    perm = tuple(draw(st.permutations(range(ndim))))
    return x, weight, bias, perm


def stored(x, perm, device):
    """A leaf holding x transposed by perm, and the function that permutes it back (a non-contiguous view)."""
    inverse = tuple(int(i) for i in np.argsort(perm))
    return leaf(np.ascontiguousarray(np.transpose(x, perm)), device), lambda t: t.permute(inverse)


#: explicit shapes: batch 2, size-1 spatial maps, a batch of one with a spatial map
SHAPES = [(2, 3), (2, 1), (5, 4), (2, 3, 1), (3, 2, 4), (2, 3, 1, 1), (1, 2, 1, 3), (2, 2, 3, 2)]


def explicit_case(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.arange(math.prod(shape), dtype=np.float64)).reshape(shape) * 0.37 - 1.0
    return x, rng.uniform(0.5, 1.5, shape[1]), rng.uniform(-1, 1, shape[1])


# ----------------------------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(case=cases(), with_stats=st.booleans())
def test_training_gradients(device, case, with_stats):
    x, weight, bias, perm = case
    xs, unpermute = stored(x, perm, device)
    C = x.shape[1]

    def fn(xs, w, b):
        stats = (Tensor(np.zeros(C), device=device), Tensor(np.ones(C), device=device)) if with_stats else (None, None)
        return F.batch_norm(unpermute(xs), *stats, w, b, training=True), F.batch_norm(unpermute(xs), None, None,
                                                                                      training=True)

    assert tg.gradcheck(fn, [xs, leaf(weight, device), leaf(bias, device)])


@settings(max_examples=15)
@given(case=cases())
def test_eval_gradients(device, case):
    x, weight, bias, perm = case
    xs, unpermute = stored(x, perm, device)
    C = x.shape[1]
    mean, var = Tensor(np.linspace(-1, 1, C), device=device), Tensor(np.linspace(0.5, 2, C), device=device)

    def fn(xs, w, b):
        return F.batch_norm(unpermute(xs), mean, var, w, b), F.batch_norm(unpermute(xs), mean, var, bias=b)

    assert tg.gradcheck(fn, [xs, leaf(weight, device), leaf(bias, device)])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_on_explicit_shapes(shape, training):
    x, weight, bias = explicit_case(shape)
    C = shape[1]
    mean, var = Tensor(np.linspace(-1, 1, C)), Tensor(np.linspace(0.5, 2, C))
    fn = lambda x, w, b: F.batch_norm(x, mean, var, w, b, training=training)  # noqa: E731
    assert tg.gradcheck(fn, [leaf(x), leaf(weight), leaf(bias)])


@pytest.mark.parametrize("module,shape", [(nn.BatchNorm1d, (4, 3)), (nn.BatchNorm1d, (2, 3, 2)),
                                          (nn.BatchNorm2d, (2, 3, 2, 2)), (nn.BatchNorm2d, (1, 2, 1, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_module_gradients(module, shape, training):
    layer = module(shape[1])
    with tg.no_grad():
        for p in layer.parameters():
            p.data[...] = np.random.default_rng(3).uniform(0.5, 1.5, p.shape)
        layer.running_mean.data[...] = 0.3
        layer.running_var.data[...] = 1.7
    layer.train(training)
    x, _, _ = explicit_case(shape)
    assert tg.gradcheck_module(layer, Tensor(x.astype(np.float32)), atol=1e-4, rtol=1e-3)


# ----------------------------------------------------------------------------------------------------------------
# three backwards, one gradient
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(case=cases(), affine=st.booleans())
def test_closed_form_staged_and_composed_agree_to_1e_10(device, case, affine):
    x, weight, bias, perm = case
    upstream = np.random.default_rng(7).standard_normal(x.shape)
    results = []
    for fn in (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), F.batch_norm_staged,
               F.batch_norm_composed):
        xs, unpermute = stored(x, perm, device)
        w, b = (leaf(weight, device), leaf(bias, device)) if affine else (None, None)
        y = fn(unpermute(xs), w, b)
        y.backward(Tensor(upstream, device=device))
        results.append([y.numpy(), xs.grad.numpy()] + ([w.grad.numpy(), b.grad.numpy()] if affine else []))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# values
# ----------------------------------------------------------------------------------------------------------------
def test_forward_on_a_hand_computed_case(device):
    # channel 0: 1, 2, 3 -> mean 2, biased variance 2/3; with eps = 1/3, sqrt(var + eps) = 1: x̂ = -1, 0, 1
    # channel 1: 0, 2, 4 -> mean 2, biased variance 8/3; sqrt(8/3 + 1/3) = sqrt(3): x̂ = -2/√3, 0, 2/√3
    x = Tensor([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]], dtype=np.float64, device=device)
    weight, bias = Tensor([2.0, -1.0], dtype=np.float64, device=device), Tensor([0.5, 3.0], dtype=np.float64,
                                                                                  device=device)
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=1 / 3)
    r3 = math.sqrt(3)
    expected = [[2 * -1 + 0.5, -1 * (-2 / r3) + 3], [0.5, 3.0], [2 * 1 + 0.5, -1 * (2 / r3) + 3]]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-14, atol=1e-14)
    # evaluation with running mean (1, 1) and running variance (2/3, 8/3): the same eps, other statistics
    rm, rv = Tensor([1.0, 1.0], dtype=np.float64, device=device), Tensor([2 / 3, 8 / 3], dtype=np.float64,
                                                                          device=device)
    y = F.batch_norm(x, rm, rv, weight, bias, eps=1 / 3)
    expected = [[2 * 0 + 0.5, -1 * (-1 / r3) + 3], [2 * 1 + 0.5, -1 * (1 / r3) + 3], [2 * 2 + 0.5, -1 * (3 / r3) + 3]]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 4, 5)])
def test_output_has_zero_mean_and_unit_variance_per_channel(shape):
    x = np.random.default_rng(4).standard_normal(shape) * per_channel(np.arange(1, shape[1] + 1), len(shape)) + 5
    y = F.batch_norm(Tensor(x), None, None, training=True).numpy()
    axes = (0,) + tuple(range(2, len(shape)))
    var = x.var(axis=axes)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), var / (var + EPS), rtol=1e-12)  # 1 up to eps
    np.testing.assert_allclose(y.var(axis=axes), 1, atol=1e-4)


def test_input_gradient_sums_to_zero_and_is_orthogonal_to_x_hat_up_to_eps():
    x = np.random.default_rng(5).standard_normal((7, 3, 2))
    xt = leaf(x)
    y = F.batch_norm(xt, None, None, leaf(np.ones(3)), None, training=True)
    y.backward(Tensor(np.random.default_rng(6).standard_normal(x.shape)))
    dx, x_hat = xt.grad.numpy(), reference(x)
    np.testing.assert_allclose(dx.sum(axis=(0, 2)), 0, atol=1e-12)
    # Σ dx x̂ = γ/σ̃ · Σdy x̂ · (1 - Σx̂²/M) = γ/σ̃ · Σdy x̂ · ε/(σ² + ε): orthogonal to x̂ up to O(ε)
    g, var = np.random.default_rng(6).standard_normal(x.shape), x.var(axis=(0, 2))
    expected = (g * x_hat).sum(axis=(0, 2)) / np.sqrt(var + EPS) * EPS / (var + EPS)
    np.testing.assert_allclose((dx * x_hat).sum(axis=(0, 2)), expected, rtol=1e-6, atol=1e-15)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    for shape in [(5, 3), (4, 3, 6), (2, 3, 4, 5)]:
        for training in (True, False):
            x, w, b, g = rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3), \
                rng.standard_normal(shape)
            rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
            xt, wt, bt, rmt, rvt = leaf(x), leaf(w), leaf(b), Tensor(rm), Tensor(rv)
            F.batch_norm(xt, rmt, rvt, wt, bt, training=training, momentum=0.3).backward(g)
            tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            trm, trv = torch.tensor(rm), torch.tensor(rv)
            ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3)
            ty.backward(torch.tensor(g))
            for ours, theirs in [(xt.grad, tx.grad), (wt.grad, tw.grad), (bt.grad, tb.grad), (rmt, trm), (rvt, trv)]:
                np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# running statistics, modes, options
# ----------------------------------------------------------------------------------------------------------------
def test_running_statistics_after_two_steps(device):
    rng = np.random.default_rng(9)
    layer = nn.BatchNorm1d(3, momentum=0.2, device=device)
    batches = [rng.standard_normal((5, 3)).astype(np.float32) * [1, 2, 3] + [0, 1, -4] for _ in range(2)]
    for b in batches:
        layer(Tensor(b, device=device))
    mean, var = np.zeros(3), np.ones(3)
    for b in batches:
        mean = 0.8 * mean + 0.2 * b.mean(axis=0, dtype=np.float64)
        var = 0.8 * var + 0.2 * b.var(axis=0, ddof=1, dtype=np.float64)  # the unbiased variance
    np.testing.assert_allclose(layer.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.running_var.numpy(), var, rtol=1e-5)
    assert layer.num_batches_tracked.item() == 2 and layer.num_batches_tracked.dtype == np.int64
    assert layer.num_batches_tracked.shape == ()


def test_running_statistics_of_a_4d_input_and_of_the_functional_form():
    x = np.random.default_rng(10).standard_normal((3, 2, 4, 5))
    rm, rv = Tensor(np.full(2, 0.5)), Tensor(np.full(2, 2.0))
    F.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(rm.numpy(), 0.9 * 0.5 + 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.9 * 2.0 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)


def test_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(11)
    layer = nn.BatchNorm1d(2, momentum=None)
    batches = [rng.standard_normal((4, 2)) for _ in range(3)]
    for b in batches:
        layer(Tensor(b.astype(np.float32)))
    np.testing.assert_allclose(layer.running_mean.numpy(), np.mean([b.mean(axis=0) for b in batches], axis=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.running_var.numpy(), np.mean([b.var(axis=0, ddof=1) for b in batches], axis=0),
                               rtol=1e-5)


def test_eval_mode_uses_running_statistics_and_changes_nothing(device):
    layer = nn.BatchNorm2d(3, device=device)
    rng = np.random.default_rng(12)
    layer(Tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), device=device))
    with tg.no_grad():
        layer.weight.data = layer.weight.data * 2  # not the identity
    state = layer.state_dict()
    layer.eval()
    x = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = layer(Tensor(x, device=device))
    expected = reference(x, state["weight"], state["bias"], state["running_mean"], state["running_var"])
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert layer(Tensor(x[:1, :, :1, :1], device=device)).shape == (1, 3, 1, 1)  # one value per channel is fine


def test_affine_false_has_no_parameters():
    layer = nn.BatchNorm1d(3, affine=False)
    assert list(layer.parameters()) == [] and layer.weight is None and layer.bias is None
    x = np.random.default_rng(13).standard_normal((6, 3, 2))
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), reference(x), rtol=1e-10, atol=1e-12)
    assert sorted(layer.state_dict()) == ["num_batches_tracked", "running_mean", "running_var"]


def test_track_running_stats_false_uses_batch_statistics_in_eval_too():
    layer = nn.BatchNorm2d(2, track_running_stats=False)
    assert layer.running_mean is None and layer.running_var is None and layer.num_batches_tracked is None
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    x = np.random.default_rng(14).standard_normal((3, 2, 2, 2))
    train = layer(Tensor(x)).numpy()
    eval_ = layer.eval()(Tensor(x)).numpy()
    np.testing.assert_allclose(train, reference(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(train, eval_)


def test_parameters_and_buffers_are_initialized_as_in_pytorch(device):
    layer = nn.BatchNorm2d(4, device=device)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(layer.weight.numpy(), np.ones(4, np.float32))
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(layer.running_mean.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(layer.running_var.numpy(), np.ones(4, np.float32))
    assert layer.weight.device == layer.running_var.device == tg.Tensor([0.0], device=device).device
    assert repr(layer) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


def test_state_dict_round_trip_of_buffers():
    rng = np.random.default_rng(15)
    a = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    for _ in range(3):
        a(Tensor(rng.standard_normal((5, 2)).astype(np.float32)))
    state = a.state_dict()
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"] == 3
    b = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    b.load_state_dict(state)
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
        assert value.dtype == state[name].dtype
    x = Tensor(rng.standard_normal((4, 2)).astype(np.float32))
    np.testing.assert_array_equal(a.eval()(x).numpy(), b.eval()(x).numpy())


# ----------------------------------------------------------------------------------------------------------------
# float16
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_float16_with_a_large_mean_matches_float64(training):
    rng = np.random.default_rng(16)
    x16 = (1000 + rng.standard_normal((64, 4, 3)) * [[0.5], [1], [2], [4]]).astype(np.float16)
    x64 = x16.astype(np.float64)  # the same values: the rounding to float16 is the input's, not the op's
    weight, bias = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.uniform(-1, 1, 4).astype(np.float32)
    rm, rv = Tensor(np.full(4, 1000.0, np.float32)), Tensor(np.full(4, 2.0, np.float32))
    g = rng.standard_normal(x16.shape).astype(np.float16).astype(np.float64)  # exact in float16
    xt, wt, bt = leaf(x16, dtype=np.float16), leaf(weight, dtype=np.float32), leaf(bias, dtype=np.float32)
    y = F.batch_norm(xt, rm, rv, wt, bt, training=training)
    y.backward(Tensor(g.astype(np.float16)))
    assert y.dtype == np.float16 and xt.grad.dtype == np.float16 and wt.grad.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float32
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(xt.grad.numpy())) and np.all(np.isfinite(rv.numpy()))
    stats = (None, None) if training else (np.full(4, 1000.0), np.full(4, 2.0))
    expected = reference(x64, weight, bias, *stats)
    np.testing.assert_allclose(y.numpy(), expected, rtol=2e-3, atol=4e-3)  # float16: 2^-11 relative rounding
    x64t, w64, b64 = leaf(x64), leaf(weight), leaf(bias)
    F.batch_norm(x64t, Tensor(np.full(4, 1000.0)), Tensor(np.full(4, 2.0)), w64, b64, training=training).backward(g)
    scale = np.abs(x64t.grad.numpy()).max()
    np.testing.assert_allclose(xt.grad.numpy(), x64t.grad.numpy(), rtol=2e-3, atol=2e-3 * scale)
    np.testing.assert_allclose(wt.grad.numpy(), w64.grad.numpy(), rtol=1e-3, atol=1e-3)
    if training:
        np.testing.assert_allclose(rm.numpy(), 0.9 * 1000 + 0.1 * x64.mean(axis=(0, 2)), rtol=1e-6)
        np.testing.assert_allclose(rv.numpy(), 0.9 * 2 + 0.1 * x64.var(axis=(0, 2), ddof=1), rtol=1e-5)


def test_float16_saves_x_hat_in_float32_and_modules_accept_float16_input():
    x = Tensor(np.random.default_rng(17).standard_normal((8, 3)).astype(np.float16), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True)
    tape = [y.grad_fn, y.grad_fn.parents[0].grad_fn, y.grad_fn.parents[0].grad_fn.parents[0].grad_fn]
    assert [type(op).__name__ for op in tape] == ["Cast", "BatchNormFunction", "Cast"]  # float16 -> float32 -> float16
    x_hat, inv_std, gamma = tape[1].saved_tensors
    assert x_hat.dtype == np.float32 and inv_std.dtype == np.float32 and gamma == 1.0
    layer = nn.BatchNorm1d(3)
    out = layer(x)
    assert out.dtype == np.float16 and layer.running_mean.dtype == np.float32
    out.sum().backward()
    assert layer.weight.grad.dtype == np.float32 and x.grad.dtype == np.float16


# ----------------------------------------------------------------------------------------------------------------
# errors: named, and nothing changed
# ----------------------------------------------------------------------------------------------------------------
def test_one_value_per_channel_in_training_is_an_error():
    rm = Tensor(np.zeros(3, np.float32))
    with pytest.raises(InputError, match=r"batch_norm: Expected more than 1 value per channel when training, got "
                                         r"input size \(1, 3\)"):
        F.batch_norm(Tensor(np.ones((1, 3), np.float32)), rm, Tensor(np.ones(3, np.float32)), training=True)
    np.testing.assert_array_equal(rm.numpy(), 0)
    layer = nn.BatchNorm2d(3)
    with pytest.raises(InputError, match=r"BatchNorm2d: Expected more than 1 value per channel when training"):
        layer(Tensor(np.ones((1, 3, 1, 1), np.float32)))
    assert layer.num_batches_tracked.item() == 0
    for fn in (F.batch_norm_staged, F.batch_norm_composed):
        with pytest.raises(InputError, match="Expected more than 1 value per channel"):
            fn(Tensor(np.ones((1, 3, 1), np.float32)))


def test_shape_and_argument_errors_name_what_was_expected():
    x = Tensor(np.ones((4, 3), np.float32))
    c3, c2 = Tensor(np.ones(3, np.float32)), Tensor(np.ones(2, np.float32))
    with pytest.raises(InputError, match=r"batch_norm: running_mean has shape \(2,\), expected \(3,\) for input of "
                                         r"shape \(4, 3\) \(3 channels on axis 1\)"):
        F.batch_norm(x, c2, c3, training=True)
    with pytest.raises(InputError, match=r"batch_norm: weight has shape \(2,\), expected \(3,\)"):
        F.batch_norm(x, c3, c3, c2)
    with pytest.raises(InputError, match=r"batch_norm: bias has shape \(3, 1\), expected \(3,\)"):
        F.batch_norm(x, c3, c3, c3, Tensor(np.ones((3, 1), np.float32)))
    for eps in (0, -1e-5, float("nan")):
        with pytest.raises(InputError, match="batch_norm: eps must be a positive number"):
            F.batch_norm(x, c3, c3, eps=eps)
    with pytest.raises(InputError, match="running_mean and running_var are required when training=False"):
        F.batch_norm(x, None, None)
    with pytest.raises(InputError, match=r"at least 2 axes, got shape \(3,\)"):
        F.batch_norm(c3, None, None, training=True)
    with pytest.raises(TypeError, match="batch_norm: input must be floating point, got dtype int64"):
        F.batch_norm(Tensor(np.ones((4, 3), np.int64)), None, None, training=True)
    with pytest.raises(TypeError, match="batch_norm: momentum must be a number, got None"):
        F.batch_norm(x, c3, c3, training=True, momentum=None)
    with pytest.raises(TypeError, match="batch_norm: weight must be a Tensor or None, got ndarray"):
        F.batch_norm(x, c3, c3, np.ones(3))
    np.testing.assert_array_equal(c3.numpy(), 1)


def test_module_errors_name_the_layer():
    with pytest.raises(InputError, match=r"^BatchNorm2d: expected 4-D input \(N, C, H, W\), got \(3, 4\)$"):
        nn.BatchNorm2d(4)(Tensor(np.ones((3, 4), np.float32)))
    with pytest.raises(InputError, match=r"BatchNorm1d: expected 2-D or 3-D input \(N, C\) or \(N, C, L\), got "
                                         r"\(2, 4, 1, 1\)"):
        nn.BatchNorm1d(4)(Tensor(np.ones((2, 4, 1, 1), np.float32)))
    layer = nn.BatchNorm1d(4)
    with pytest.raises(InputError, match=r"BatchNorm1d\(4\): expected 4 channels on axis 1 of the input, got shape "
                                         r"\(3, 5\)"):
        layer(Tensor(np.ones((3, 5), np.float32)))
    assert layer.num_batches_tracked.item() == 0
    np.testing.assert_array_equal(layer.running_var.numpy(), 1)
    with pytest.raises(ValueError, match="BatchNorm1d: num_features must be a positive integer, got 0"):
        nn.BatchNorm1d(0)
    with pytest.raises(ValueError, match="BatchNorm2d: eps must be positive, got 0"):
        nn.BatchNorm2d(3, eps=0)
    with pytest.raises(ValueError, match=r"BatchNorm2d: momentum must be in \[0, 1\] or None"):
        nn.BatchNorm2d(3, momentum=1.5)


def test_eval_output_keeps_its_gradient_when_a_later_training_step_moves_the_running_mean():
    """The eval-mode op saves a copy of the running mean: updating the buffer afterwards must not change dγ."""
    bn = nn.BatchNorm1d(3)
    bn.running_mean.data[...] = 1.0
    bn.eval()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y = bn(Tensor(x))
    bn.train()
    bn(Tensor(np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32) * 5 + 10))
    y.sum().backward()
    np.testing.assert_allclose(bn.weight.grad.numpy(), ((x - 1.0) / np.sqrt(1.0 + 1e-5)).sum(axis=0), rtol=1e-5)
