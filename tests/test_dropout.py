"""The dropout family: inverted dropout (``F.dropout``, ``nn.Dropout``), channel dropout (``F.dropout2d``,
``nn.Dropout2d``) and DropConnect (``F.dropconnect_linear``, ``nn.DropConnectLinear``).

Gradients are checked in training mode (``gradcheck`` reseeds the generator before every evaluation, so every pass
draws the same mask) and in evaluation mode; the statistics (expectation kept, fraction dropped, whole channels,
weights not inputs), the masks' origin (the backend's seeded generator), mode switching and errors are checked too.
"""

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


def seeded_mask(device, seed, shape, p):
    """The Bernoulli(1 - p) mask the backend draws first after ``manual_seed(seed)``."""
    tg.manual_seed(seed)
    backend = tg.get_backend(device)
    return backend.to_host(backend.bernoulli(shape, 1 - p, np.dtype(np.float64)))


@st.composite
def permuted(draw, shapes):
    """An array and a permutation of its axes: stored permuted, permuted back inside the function (a strided view)."""
    x = draw(tst.arrays(shapes, magnitude=2.0))
    order = tuple(draw(st.permutations(range(x.ndim))))
    return np.transpose(x, order), tuple(int(i) for i in np.argsort(order))


# ================================================================================================================
# dropout
# ================================================================================================================
@settings(max_examples=15)
@given(case=permuted(tst.shapes(min_dims=0, max_dims=4, max_side=4)), p=st.sampled_from([0.2, 0.5, 0.8]),
       training=st.booleans())
def test_dropout_gradients(device, case, p, training):
    stored, inverse = case
    assert tg.gradcheck(lambda x: F.dropout(x.permute(inverse), p, training), [leaf(stored, device)])


def test_dropout_values_and_backward_reuse_the_forward_mask(device):
    p, shape = 0.3, (6, 7)
    mask = seeded_mask(device, 11, shape, p)
    x = leaf(np.random.default_rng(0).uniform(0.5, 2.0, shape), device)
    tg.manual_seed(11)
    y = F.dropout(x, p)
    np.testing.assert_allclose(y.numpy(), x.numpy() * mask / (1 - p), rtol=1e-15)
    assert 0 < mask.sum() < mask.size
    g = np.random.default_rng(1).standard_normal(shape)
    y.backward(Tensor(g, device=device))  # draws nothing: the saved mask, not a fresh one
    np.testing.assert_allclose(x.grad.numpy(), g * mask / (1 - p), rtol=1e-15)


def test_dropout_masks_come_from_the_seeded_generator(device):
    x = Tensor(np.ones((4, 50)), device=device)
    tg.manual_seed(5)
    first, second = F.dropout(x).numpy(), F.dropout(x).numpy()
    tg.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x).numpy(), first)  # the same seed, the same mask
    assert not np.array_equal(first, second)  # a fresh mask per call


def test_dropout_is_the_identity_in_evaluation_and_for_p_zero(device):
    x = Tensor(np.random.default_rng(2).standard_normal((3, 4)), requires_grad=True, device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0, training=True) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.75])
def test_dropout_drops_a_fraction_p_and_scales_the_rest(device, p):
    y = F.dropout(Tensor(np.ones(40_000), device=device), p).numpy()
    dropped = np.mean(y == 0)
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / y.size), dropped  # 4 standard deviations
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-15)


def test_dropout_keeps_the_expectation(device):
    """The mean over 4000 draws (rows of one call: an independent mask per element) is x within 5 standard errors."""
    p, draws = 0.4, 4000
    x = np.linspace(-2, 2, 25)
    mean = F.dropout(Tensor(np.broadcast_to(x, (draws, 25)), device=device), p).numpy().mean(axis=0)
    standard_error = np.abs(x) * np.sqrt(p / (1 - p)) / np.sqrt(draws)
    assert np.all(np.abs(mean - x) <= 5 * standard_error + 1e-12), (mean, x)


def test_dropout_float16():
    x = Tensor(np.ones((4, 8), dtype=np.float16), requires_grad=True)
    y = F.dropout(x, 0.5)
    assert y.dtype == np.float16 and set(np.unique(y.numpy())) <= {0.0, 2.0}
    y.backward(Tensor(np.ones((4, 8), dtype=np.float16)))
    assert x.grad.dtype == np.float16
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # dx = mask / (1 - p) = y for x = 1, g = 1


def test_dropout_module_respects_train_and_eval(device):
    x = Tensor(np.ones((8, 16, 2, 2)), device=device)
    model = nn.Sequential(nn.Dropout(0.5), nn.Dropout2d(0.25))
    assert model.training and all(m.training for m in model.modules())
    assert np.any(nn.Dropout(0.5)(x).numpy() == 0)
    model.eval()
    assert model(x) is x
    model.train()
    assert np.any(model(x).numpy() == 0)
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)" and list(nn.Dropout().parameters()) == []


def test_dropout_errors():
    x = Tensor(np.ones(3))
    with pytest.raises(ValueError, match=r"^dropout: p must be in \[0, 1\), got 1.0$"):
        F.dropout(x, 1.0)
    with pytest.raises(ValueError, match=r"dropout: p must be in \[0, 1\), got -0.1"):
        F.dropout(x, -0.1, training=False)  # checked in evaluation too
    with pytest.raises(TypeError, match="dropout: p must be a real number, got str"):
        F.dropout(x, "0.5")
    with pytest.raises(TypeError, match="dropout: input must be a floating-point tensor, got dtype int64"):
        F.dropout(Tensor(np.ones(3, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\), got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"Dropout2d: p must be in \[0, 1\), got 1.0"):
        nn.Dropout2d(1)


# ================================================================================================================
# dropout2d
# ================================================================================================================
@settings(max_examples=15)
@given(case=permuted(tst.shapes(min_dims=3, max_dims=4, max_side=4)), p=st.sampled_from([0.3, 0.6]),
       training=st.booleans())
def test_dropout2d_gradients(device, case, p, training):
    stored, inverse = case
    assert tg.gradcheck(lambda x: F.dropout2d(x.permute(inverse), p, training), [leaf(stored, device)])


@pytest.mark.parametrize("shape", [(6, 5, 3, 4), (6, 5, 7)])
def test_dropout2d_drops_whole_channels(device, shape):
    p = 0.4
    x = np.random.default_rng(3).uniform(0.5, 2.0, shape)
    y = F.dropout2d(Tensor(x, device=device), p).numpy()
    spatial = tuple(range(2, len(shape)))
    dropped = np.all(y == 0, axis=spatial)  # (N, C)
    kept = np.all(np.abs(y - x / (1 - p)) <= 1e-15 * np.abs(y), axis=spatial)
    assert np.all(dropped ^ kept)  # each channel is zeroed whole or kept whole, scaled
    assert dropped.any() and kept.any()
    mask = seeded_mask(device, 9, shape[:2] + (1,) * len(spatial), p)  # one Bernoulli per (n, c)
    tg.manual_seed(9)
    np.testing.assert_allclose(F.dropout2d(Tensor(x, device=device), p).numpy(), x * mask / (1 - p), rtol=1e-15)


def test_dropout2d_drops_a_fraction_p_of_channels_and_reuses_its_mask(device):
    p = 0.3
    x = leaf(np.ones((200, 100, 2, 2)), device)
    y = F.dropout2d(x, p)
    channels = y.numpy()[:, :, 0, 0]
    assert abs(np.mean(channels == 0) - p) < 4 * np.sqrt(p * (1 - p) / channels.size)
    y.backward(Tensor(np.ones(y.shape), device=device))
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # g * mask / (1 - p) with g = x = 1


def test_dropout2d_identity_and_errors(device):
    x = Tensor(np.ones((2, 3, 4, 4)), device=device)
    assert F.dropout2d(x, 0.5, training=False) is x and F.dropout2d(x, 0.0) is x
    module = nn.Dropout2d(0.5).eval()
    assert module(x) is x
    for shape in [(2, 3), (1, 2, 3, 4, 5)]:
        with pytest.raises(ValueError, match=rf"dropout2d: expected an input of shape \(N, C, H, W\) or \(N, C, L\), "
                                             rf"got shape \({', '.join(map(str, shape))}\) \({len(shape)}-D\)"):
            F.dropout2d(Tensor(np.ones(shape), device=device))
    with pytest.raises(ValueError, match=r"dropout2d: p must be in \[0, 1\), got 1.0"):
        F.dropout2d(x, 1.0)


# ================================================================================================================
# DropConnect
# ================================================================================================================
@settings(max_examples=15)
@given(batch=st.sampled_from([(), (1,), (3,), (2, 3)]), n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       bias=st.booleans(), training=st.booleans(), data=st.data())
def test_dropconnect_gradients(device, batch, n_in, n_out, bias, training, data):
    x = data.draw(tst.arrays(batch + (n_in,)))
    w_t = data.draw(tst.arrays((n_in, n_out)))  # W stored transposed: the function sees a strided view
    b = data.draw(tst.arrays((n_out,)))
    inputs = [leaf(x, device), leaf(w_t, device)] + ([leaf(b, device)] if bias else [])
    assert tg.gradcheck(lambda x, w_t, *b: F.dropconnect_linear(x, w_t.T, *b, p=0.4, training=training), inputs)


def test_dropconnect_drops_weights_not_inputs(device):
    p = 0.5
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((5, 6)), rng.standard_normal((3, 6)), rng.standard_normal(3)
    mask = seeded_mask(device, 13, (3, 6), p)  # of the weight's shape: one mask per call, for the whole batch
    xs, ws, bs = leaf(x, device), leaf(w, device), leaf(b, device)
    tg.manual_seed(13)
    y = F.dropconnect_linear(xs, ws, bs, p=p)
    np.testing.assert_allclose(y.numpy(), x @ (w * mask / (1 - p)).T + b, rtol=1e-12)
    # identical input rows give identical output rows: the mask is shared by the batch (input dropout would differ)
    same = F.dropconnect_linear(Tensor(np.ones((4, 6)), device=device), Tensor(w, device=device), p=p).numpy()
    assert np.all(same == same[0])
    g = rng.standard_normal((5, 3))
    y.backward(Tensor(g, device=device))
    np.testing.assert_allclose(ws.grad.numpy(), (g.T @ x) * mask / (1 - p), rtol=1e-12)
    assert np.all(ws.grad.numpy()[mask == 0] == 0)  # a dropped weight gets no gradient
    np.testing.assert_allclose(xs.grad.numpy(), g @ (w * mask / (1 - p)), rtol=1e-12)  # every input gets one
    np.testing.assert_allclose(bs.grad.numpy(), g.sum(axis=0), rtol=1e-12)


def test_dropconnect_in_evaluation_is_linear(device):
    rng = np.random.default_rng(5)
    x, w = Tensor(rng.standard_normal((2, 3)), device=device), Tensor(rng.standard_normal((4, 3)), device=device)
    np.testing.assert_array_equal(F.dropconnect_linear(x, w, training=False).numpy(), F.linear(x, w).numpy())
    np.testing.assert_array_equal(F.dropconnect_linear(x, w, p=0.0).numpy(), F.linear(x, w).numpy())


def test_dropconnect_module(device):
    layer = nn.DropConnectLinear(4, 3, p=0.5, device=device)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.shape == (3, 4) and np.all(np.abs(layer.weight.numpy()) <= 0.5)
    x = Tensor(np.ones((2, 4), dtype=np.float32), device=device)
    tg.manual_seed(1)
    a = layer(x).numpy()
    tg.manual_seed(1)
    np.testing.assert_array_equal(layer(x).numpy(), a)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), F.linear(x, layer.weight, layer.bias).numpy())
    assert repr(layer) == "DropConnectLinear(in_features=4, out_features=3, bias=True, p=0.5)"
    double = nn.DropConnectLinear(3, 2, p=0.3, device=device, dtype="float64")
    assert tg.gradcheck_module(double, Tensor(np.random.default_rng(6).standard_normal((4, 3)), device=device))
    assert list(nn.DropConnectLinear(2, 2, bias=False).named_parameters())[0][0] == "weight"


def test_dropconnect_float16_and_errors():
    x = Tensor(np.ones((2, 3), dtype=np.float16), requires_grad=True)
    w = Tensor(np.ones((4, 3), dtype=np.float16), requires_grad=True)
    b = Tensor(np.zeros(4, dtype=np.float16), requires_grad=True)
    y = F.dropconnect_linear(x, w, b)
    assert y.dtype == np.float16
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float16
    with pytest.raises(ValueError, match=r"dropconnect_linear: input of shape \(2, 3\) does not match weight of "
                                         r"shape \(4, 2\)"):
        F.dropconnect_linear(x, Tensor(np.ones((4, 2), dtype=np.float16)))
    with pytest.raises(ValueError, match=r"dropconnect_linear: bias has shape \(3,\), expected \(4,\)"):
        F.dropconnect_linear(x, w, Tensor(np.zeros(3, dtype=np.float16)))
    with pytest.raises(ValueError, match=r"dropconnect_linear: p must be in \[0, 1\), got 1.0"):
        F.dropconnect_linear(x, w, p=1.0)
    with pytest.raises(ValueError, match=r"DropConnectLinear: p must be in \[0, 1\), got -1.0"):
        nn.DropConnectLinear(2, 2, p=-1)
