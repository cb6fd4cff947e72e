"""``tinygrad_edu.nn.init``: fans, gains, the statistics of each init, orthogonality, in-place writes, the device,
He init through a deep ReLU network, LSUV, and looks-linear init of CReLU networks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import InputError, nn
from tinygrad_edu.nn import init


def weight(shape, device="cpu", dtype="float32"):
    return nn.Parameter(tg.Tensor(np.zeros(shape), dtype=dtype, device=device))


# -- fans and gains ---------------------------------------------------------------------------------------------------
def test_fans_of_linear_and_conv_weights():
    assert init.calculate_fan_in_and_fan_out(nn.Linear(7, 3).weight) == (7, 3)
    assert init.calculate_fan_in_and_fan_out(weight((16, 8, 3, 5))) == (8 * 15, 16 * 15)
    assert init._calculate_fan_in_and_fan_out(weight((4, 6))) == (6, 4)
    with pytest.raises(InputError, match="fewer than 2 dimensions"):
        init.calculate_fan_in_and_fan_out(weight((5,)))


def test_gains_match_pytorch():
    assert init.calculate_gain("linear") == init.calculate_gain("conv2d") == init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")
    torch = pytest.importorskip("torch")
    for name, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.3), ("selu", None), ("conv1d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


# -- statistics ---------------------------------------------------------------------------------------------------------
SHAPE = (400, 250)  # fan_in 250, fan_out 400, 100 000 samples: the std of the sample std is ~0.2 %
FAN_IN, FAN_OUT = 250, 400


@pytest.mark.parametrize(
    "fn, kwargs, mean, std",
    [
        (init.uniform_, dict(a=-2.0, b=4.0), 1.0, 6 / math.sqrt(12)),
        (init.normal_, dict(mean=0.5, std=3.0), 0.5, 3.0),
        (init.xavier_uniform_, dict(gain=2.0), 0.0, 2.0 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (init.xavier_normal_, dict(), 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (init.kaiming_uniform_, dict(nonlinearity="relu"), 0.0, math.sqrt(2 / FAN_IN)),
        (init.kaiming_uniform_, dict(a=math.sqrt(5)), 0.0, math.sqrt(2 / 6) / math.sqrt(FAN_IN)),  # torch's Linear
        (init.kaiming_normal_, dict(nonlinearity="relu"), 0.0, math.sqrt(2 / FAN_IN)),
        (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), 0.0, math.sqrt(2 / FAN_OUT)),
        (init.kaiming_normal_, dict(nonlinearity="tanh"), 0.0, 5 / 3 / math.sqrt(FAN_IN)),
    ],
)
def test_statistics(fn, kwargs, mean, std):
    w = weight(SHAPE)
    values = fn(w, **kwargs).numpy().astype(np.float64)
    assert abs(values.mean() - mean) < 0.01 * std + 1e-12
    assert values.std() == pytest.approx(std, rel=0.01)


def test_uniform_bounds_and_constants():
    w = weight(SHAPE)
    v = init.kaiming_uniform_(w, nonlinearity="relu").numpy()
    bound = math.sqrt(3) * math.sqrt(2 / FAN_IN)
    assert v.min() >= -bound and v.max() <= bound and v.max() > 0.99 * bound
    assert (init.zeros_(w).numpy() == 0).all()
    assert (init.ones_(w).numpy() == 1).all()
    assert (init.constant_(w, -2.5).numpy() == -2.5).all()


def test_seeded_and_reproducible():
    tg.manual_seed(3)
    a = init.kaiming_normal_(weight((20, 10))).numpy()
    tg.manual_seed(3)
    b = init.kaiming_normal_(weight((20, 10))).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(30, 30), (10, 40), (40, 10), (8, 3, 2, 2), (64, 2, 3, 3)])
def test_orthogonal(shape):
    w = init.orthogonal_(weight(shape, dtype="float64"), gain=1.0)
    m = w.numpy().reshape(shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)
    g = init.orthogonal_(weight(shape, dtype="float64"), gain=3.0).numpy().reshape(rows, cols)
    np.testing.assert_allclose(np.linalg.svd(g, compute_uv=False), 3.0, rtol=1e-12)


def test_orthogonal_sign_correction_gives_haar_diagonal():
    """Without multiplying by sign(diag(R)), NumPy's QR makes diag(R) negative (Householder), which biases Q."""
    diag = np.array([np.diag(init.orthogonal_(weight((3, 3), dtype="float64")).numpy()) for _ in range(400)])
    assert abs(diag.mean()) < 0.08  # the diagonal of a Haar-random orthogonal matrix has mean 0


# -- in place, devices, dtypes, errors ------------------------------------------------------------------------------
ALL_INITS = [
    lambda w: init.uniform_(w, -1, 1), lambda w: init.normal_(w), init.zeros_, init.ones_,
    lambda w: init.constant_(w, 0.3), init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_,
    init.kaiming_normal_, init.orthogonal_, init.looks_linear_,
]


@pytest.mark.parametrize("fn", ALL_INITS)
def test_in_place_on_device(fn, device):
    layer = nn.Linear(8, 6, device=device)
    w, array = layer.weight, layer.weight.data
    out = fn(w)
    assert out is w and layer.weight is w and w.data is array  # the same Parameter, the same array, new values
    assert w.device == tg.Tensor(np.zeros(1), device=device).device and w.dtype == np.float32
    assert w.requires_grad and w.grad is None
    assert np.isfinite(w.numpy()).all()


def test_float16_and_float64_keep_their_dtype():
    for dtype in ("float16", "float64"):
        w = weight((50, 40), dtype=dtype)
        assert init.kaiming_normal_(w).dtype == np.dtype(dtype)
        assert init.orthogonal_(w).dtype == np.dtype(dtype)


def test_errors_change_nothing():
    w = weight((4, 6))
    before = w.numpy().copy()
    with pytest.raises(InputError, match="uniform_"):
        init.uniform_(w, 2.0, 1.0)
    with pytest.raises(InputError, match="normal_: std"):
        init.normal_(w, std=-1.0)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_normal_(w, mode="fan_both")
    with pytest.raises(TypeError, match="must be a Tensor"):
        init.xavier_uniform_(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="floating dtype"):
        init.normal_(tg.Tensor(np.zeros((3, 3), dtype=np.int64)))
    with pytest.raises(InputError, match="orthogonal_"):
        init.orthogonal_(weight((5,)))
    with pytest.raises(InputError, match="even input dim"):
        init.looks_linear_(weight((4, 5)))
    np.testing.assert_array_equal(w.numpy(), before)


# -- why the scale matters: 20 Linear+ReLU layers of width 256 ----------------------------------------------------------
def _second_moments(init_fn, depth=20, width=256):
    layers = [nn.Linear(width, width, bias=False, dtype="float64") for _ in range(depth)]
    for layer in layers:
        init_fn(layer.weight)
    x = tg.Tensor(np.random.default_rng(0).standard_normal((128, width)))
    moments = []
    with tg.no_grad():
        for layer in layers:
            x = layer(x).relu()
            moments.append(float((x.numpy() ** 2).mean()))
    return np.array(moments)


def test_he_init_keeps_the_signal_while_naive_inits_explode_or_vanish():
    # E[x²] = 1 in, 1 in expectation after every layer. One network of finite width drifts (a random walk of
    # log E[x²]: a factor 4 either way after 20 layers happens), so average over 8 networks.
    he = np.mean([_second_moments(lambda w: init.kaiming_normal_(w, nonlinearity="relu")) for _ in range(8)], axis=0)
    assert 0.5 < he.min() and he.max() < 2
    big = _second_moments(lambda w: init.normal_(w, 0.0, 1.0))
    assert big[-1] / big[0] > 1e30  # × n/2 = 128 per layer
    small = _second_moments(lambda w: init.normal_(w, 0.0, 0.01))
    assert small[-1] / small[0] < 1e-30  # × n·σ²/2 = 0.0128 per layer


# -- LSUV ----------------------------------------------------------------------------------------------------------------
def _output_variances(model, x):
    variances = []
    with tg.no_grad():
        for module in model:
            x = module(x)
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                variances.append(float(x.numpy().var()))
    return variances


def test_lsuv_gives_unit_variance_outputs(device):
    model = nn.Sequential(nn.Linear(10, 64, device=device), nn.ReLU(), nn.Linear(64, 64, device=device), nn.Tanh(),
                          nn.Linear(64, 32, device=device), nn.ReLU(), nn.Sequential(nn.Linear(32, 3, device=device)))
    x = tg.Tensor(5 * np.random.default_rng(1).standard_normal((128, 10)), device=device)
    params = list(model.parameters())
    assert init.lsuv_(model, x) is model
    assert list(model.parameters()) == params and model.training
    flat = [model[i] for i in range(6)] + [model[6][0]]
    variances = _output_variances(nn.Sequential(*flat), x)
    assert len(variances) == 4
    for v in variances:
        assert abs(v - 1) < 0.1


def test_lsuv_on_a_convolutional_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 5))
    x = tg.Tensor(np.random.default_rng(2).standard_normal((16, 3, 8, 8)) * 3, dtype="float32")
    init.lsuv_(model, x, tol=0.05)
    for v in _output_variances(model, x):
        assert abs(v - 1) < 0.05


def test_lsuv_follows_the_forward_order_of_a_custom_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.second = nn.Linear(16, 4)  # registered first, called second
            self.first = nn.Linear(6, 16)

        def forward(self, x):
            return self.second(self.first(x).relu())

    net = Net()
    x = tg.Tensor(np.random.default_rng(3).standard_normal((64, 6)) * 10)
    init.lsuv_(net, x)
    with tg.no_grad():
        h = net.first(x)
        assert abs(float(h.numpy().var()) - 1) < 0.1
        assert abs(float(net.second(h.relu()).numpy().var()) - 1) < 0.1
    assert "forward" not in net.first.__dict__  # the hook is gone


def test_lsuv_errors():
    with pytest.raises(TypeError, match="lsuv_"):
        init.lsuv_([nn.Linear(2, 2)], tg.Tensor(np.zeros((2, 2))))
    with pytest.raises(InputError, match="no layer"):
        init.lsuv_(nn.Sequential(nn.ReLU()), tg.Tensor(np.zeros((2, 2))))
    with pytest.raises(InputError, match="variance"):
        init.lsuv_(nn.Sequential(nn.Linear(2, 2, bias=False)), tg.Tensor(np.zeros((4, 2))))


# -- looks-linear init of CReLU networks -------------------------------------------------------------------------------
def _crelu_net(device="cpu"):
    kw = dict(dtype="float64", device=device)
    return nn.Sequential(nn.Linear(4, 6, **kw), nn.CReLU(), nn.Linear(12, 5, **kw), nn.CReLU(), nn.Linear(10, 3, **kw))


def test_looks_linear_crelu_network_is_exactly_linear(device):
    model = init.looks_linear_(_crelu_net(device))
    w1, w2, w3 = (model[i].weight.numpy() for i in (0, 2, 4))
    for w in (w2, w3):  # mirrored blocks [W, -W]
        n = w.shape[1] // 2
        np.testing.assert_array_equal(w[:, n:], -w[:, :n])
    for i in (0, 2, 4):
        assert (model[i].bias.numpy() == 0).all()
    product = w1.T @ w2[:, :6].T @ w3[:, :5].T
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    a, b = 1.7, -0.6

    def f(v):
        with tg.no_grad():
            return model(tg.Tensor(v, device=device)).numpy()

    np.testing.assert_allclose(f(a * x + b * y), a * f(x) + b * f(y), rtol=0, atol=1e-10)
    np.testing.assert_allclose(f(x), x @ product, rtol=0, atol=1e-10)


def test_looks_linear_half_is_orthogonal_and_default_init_is_not_linear():
    model = init.looks_linear_(_crelu_net())
    w = model[2].weight.numpy()[:, :6]  # (5, 6): orthonormal rows
    np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-12)
    x = np.random.default_rng(5).standard_normal((8, 4))
    with tg.no_grad():
        default = _crelu_net()
        assert not np.allclose(default(tg.Tensor(-x)).numpy(), -default(tg.Tensor(x)).numpy(), atol=1e-3)


def test_looks_linear_conv_weight_and_crelu_dim_check():
    w = init.looks_linear_(weight((6, 8, 3, 3), dtype="float64")).numpy()
    np.testing.assert_array_equal(w[:, 4:], -w[:, :4])
    half = w[:, :4].reshape(6, -1)
    np.testing.assert_allclose(half @ half.T, np.eye(6), atol=1e-12)
    bad = nn.Sequential(nn.Conv2d(2, 3, 1), nn.CReLU(dim=-1), nn.Conv2d(6, 2, 1))
    with pytest.raises(InputError, match="dim=-1"):
        init.looks_linear_(bad)
    with pytest.raises(TypeError, match="Sequential"):
        init.looks_linear_(nn.Linear(2, 2).__dict__)


def test_looks_linear_checks_every_layer_before_writing_any():
    model = nn.Sequential(nn.Linear(4, 4), nn.CReLU(), nn.Linear(8, 4), nn.CReLU(dim=0), nn.Linear(8, 3))
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(tg.InputError, match="CReLU with dim=0"):
        init.looks_linear_(model)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)
