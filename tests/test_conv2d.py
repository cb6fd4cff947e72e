"""2-D convolution: ``F.conv2d`` (im2col + one matmul, col2im in the backward) and ``nn.Conv2d``.

Gradients are checked over Hypothesis-drawn geometries (kernel, stride, padding, dilation, channels, batch, spatial
size, non-contiguous input); forward values against a direct loop convolution written here in plain NumPy; float16
against float32 accumulation; the layer feeding BatchNorm2d and Dropout2d; the module's PyTorch initialization;
errors.
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


def leaf(array, device="cpu", dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True, device=device)


def loop_conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    """The definition, one output element at a time: y[n, o, u, v] = b[o] + Σ_{c,i,j} W[o,c,i,j] x_pad[...]."""
    (sh, sw), (ph, pw), (dh, dw) = [(v, v) if np.isscalar(v) else v for v in (stride, padding, dilation)]
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    OH, OW = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    y = np.zeros((N, C_out, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            for u in range(OH):
                for v in range(OW):
                    total = 0.0 if b is None else b[o]
                    for c in range(C):
                        for i in range(KH):
                            for j in range(KW):
                                total += w[o, c, i, j] * x_pad[n, c, u * sh + i * dh, v * sw + j * dw]
                    y[n, o, u, v] = total
    return y


@st.composite
def geometries(draw):
    """Shapes and options with an output of at least 1x1: (x shape, w shape, stride, padding, dilation)."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    sides = []
    for k, p, d in ((kh, padding[0], dilation[0]), (kw, padding[1], dilation[1])):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        sides.append(draw(st.integers(smallest, smallest + 3)))
    return (n, c, *sides), (o, c, kh, kw), stride, padding, dilation


@st.composite
def conv_cases(draw):
    """Arrays of a drawn geometry, x stored with permuted axes (permuted back inside the function: a strided view)."""
    x_shape, w_shape, stride, padding, dilation = draw(geometries())
    order = tuple(draw(st.permutations(range(4))))
    x = draw(tst.arrays(tuple(x_shape[i] for i in order), magnitude=1.5))
    w = draw(tst.arrays(w_shape, magnitude=1.0))
    b = draw(st.none() | tst.arrays((w_shape[0],), magnitude=1.0))
    return x, tuple(int(i) for i in np.argsort(order)), w, b, stride, padding, dilation


# ================================================================================================================
# gradients
# ================================================================================================================
@settings(max_examples=15)
@given(case=conv_cases())
def test_conv2d_gradients(device, case):
    x, inverse, w, b, stride, padding, dilation = case
    inputs = [leaf(x, device), leaf(w, device)] + ([leaf(b, device)] if b is not None else [])

    def fn(x, w, b=None):
        return F.conv2d(x.permute(inverse), w, b, stride, padding, dilation)

    assert tg.gradcheck(fn, inputs)


def test_conv2d_padding_same_gradients(device):
    rng = np.random.default_rng(3)
    x, w = leaf(rng.uniform(-1, 1, (2, 2, 4, 5)), device), leaf(rng.uniform(-1, 1, (3, 2, 2, 3)), device)
    assert F.conv2d(x, w, padding="same", dilation=(2, 1)).shape == (2, 3, 4, 5)
    assert tg.gradcheck(lambda x, w: F.conv2d(x, w, padding="same", dilation=(2, 1)), [x, w])


# ================================================================================================================
# forward values
# ================================================================================================================
CASES = [  # x shape, w shape, stride, padding, dilation
    ((1, 1, 3, 3), (1, 1, 1, 1), 1, 0, 1),
    ((2, 3, 5, 4), (4, 3, 3, 2), 1, 1, 1),
    ((2, 2, 7, 6), (3, 2, 3, 3), 2, 1, 2),
    ((1, 3, 6, 7), (2, 3, 2, 3), (2, 1), (0, 2), (1, 2)),
    ((2, 1, 4, 4), (2, 1, 4, 4), 1, 0, 1),  # the kernel covers the input: one output pixel
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation", CASES)
def test_conv2d_matches_the_loop_definition_in_float64(device, x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    y = F.conv2d(Tensor(x, device=device), Tensor(w, device=device), Tensor(b, device=device), stride, padding,
                 dilation)
    np.testing.assert_allclose(y.numpy(), loop_conv2d(x, w, b, stride, padding, dilation), rtol=0, atol=1e-12)
    y = F.conv2d(Tensor(x, device=device), Tensor(w, device=device), None, stride, padding, dilation)
    np.testing.assert_allclose(y.numpy(), loop_conv2d(x, w, None, stride, padding, dilation), rtol=0, atol=1e-12)


def test_conv2d_hand_computed():
    """A 3x3 image of 1..9 with the 2x2 kernel [[1, 0], [0, -1]] (x[u, v] - x[u+1, v+1] = -4 everywhere), bias 1."""
    x = Tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    w = Tensor(np.array([[[[1.0, 0.0], [0.0, -1.0]]]]))
    np.testing.assert_array_equal(F.conv2d(x, w, Tensor(np.array([1.0]))).numpy(), np.full((1, 1, 2, 2), -3.0))
    # zero padding 1, stride 2: windows at padded rows/columns 0 and 2; the top-left tap of the first row and column
    # falls on padding: [[0 - x[0, 0], 0 - x[0, 2]], [0 - x[2, 0], x[1, 1] - x[2, 2]]]
    np.testing.assert_array_equal(F.conv2d(x, w, stride=2, padding=1).numpy()[0, 0], [[-1.0, -3.0], [-7.0, -4.0]])


def test_conv2d_float32_forward(device):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y = F.conv2d(*(Tensor(a, dtype=np.float32, device=device) for a in (x, w, b)), stride=1, padding=1)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), loop_conv2d(x, w, b, 1, 1), rtol=1e-5, atol=1e-5)


def test_conv2d_float16_accumulates_in_float32():
    """2304 products of ones in one output, 2304 outputs summed into dW and db: float16 accumulators would stop at
    2048 (2048 + 1 rounds back to 2048 in float16); float32 ones are exact."""
    x = leaf(np.ones((1, 1, 48, 48)), dtype=np.float16)
    w = leaf(np.ones((1, 1, 48, 48)), dtype=np.float16)
    y = F.conv2d(x, w)
    assert y.dtype == np.float16 and y.item() == 2304.0
    x1, w1, b1 = leaf(np.ones((1, 1, 48, 48)), dtype=np.float16), leaf(np.ones((1, 1, 1, 1)), dtype=np.float16), \
        leaf(np.zeros(1), dtype=np.float16)
    F.conv2d(x1, w1, b1).sum().backward()
    assert w1.grad.dtype == b1.grad.dtype == x1.grad.dtype == np.float16
    assert w1.grad.item() == 2304.0 and b1.grad.item() == 2304.0
    np.testing.assert_array_equal(x1.grad.numpy(), np.ones((1, 1, 48, 48)))


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    g = rng.standard_normal((2, 4, 7, 6))
    tensors = [leaf(a) for a in (x, w, b)]
    y = F.conv2d(*tensors, padding="same", dilation=2)
    y.backward(Tensor(g))
    ref = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    torch.nn.functional.conv2d(*ref, padding="same", dilation=2).backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), torch.nn.functional.conv2d(*ref, padding="same", dilation=2).detach(),
                               atol=1e-12)
    for t, r in zip(tensors, ref):
        np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy(), atol=1e-12)


# ================================================================================================================
# in a network
# ================================================================================================================
def test_batchnorm2d_and_dropout2d_on_the_output(device):
    rng = np.random.default_rng(4)
    x, w, b = leaf(rng.uniform(-1, 1, (2, 2, 4, 4)), device), leaf(rng.uniform(-1, 1, (3, 2, 3, 3)), device), \
        leaf(rng.uniform(-1, 1, 3), device)

    def fn(x, w, b):
        return F.dropout2d(F.batch_norm(F.conv2d(x, w, b, padding=1), None, None, training=True), 0.3)

    assert tg.gradcheck(fn, [x, w, b])
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, device=device, dtype="float64"),
                          nn.BatchNorm2d(3, device=device, dtype="float64"), nn.Dropout2d(0.5))
    x = Tensor(rng.standard_normal((4, 2, 5, 5)), device=device)
    y = model(x)
    assert y.shape == (4, 3, 5, 5)
    (y * y).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.eval()  # running statistics, no dropout: deterministic
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())


# ================================================================================================================
# the module
# ================================================================================================================
def test_conv2d_module_init_shapes_and_repr():
    tg.manual_seed(0)
    layer = nn.Conv2d(4, 8, 3, stride=2, padding=1)
    bound = 1 / math.sqrt(4 * 3 * 3)
    assert layer.weight.shape == (8, 4, 3, 3) and layer.bias.shape == (8,) and layer.weight.dtype == np.float32
    for p in (layer.weight, layer.bias):
        values = p.numpy()
        assert np.all(np.abs(values) <= bound) and np.max(np.abs(values)) > 0.5 * bound
    assert len(list(layer.parameters())) == 2
    assert repr(layer) == "Conv2d(4, 8, kernel_size=(3, 3), stride=2, padding=1)"
    layer = nn.Conv2d(2, 3, (1, 2), bias=False, dilation=2, dtype="float64")
    assert layer.bias is None and layer.weight.shape == (3, 2, 1, 2) and layer.weight.dtype == np.float64
    assert len(list(layer.parameters())) == 1
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5)))
    np.testing.assert_array_equal(layer(x).numpy(), F.conv2d(x, layer.weight, None, 1, 0, 2).numpy())


def test_conv2d_module_on_the_device(device):
    layer = nn.Conv2d(3, 2, 3, padding="same", device=device)
    y = layer(Tensor(np.ones((1, 3, 4, 4), dtype=np.float32), device=device))
    assert y.shape == (1, 2, 4, 4) and y.device == layer.weight.device


# ================================================================================================================
# errors
# ================================================================================================================
def test_conv2d_errors():
    x, w = Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((3, 2, 3, 3)))
    with pytest.raises(InputError, match=r"conv2d: input of shape \(1, 2, 4, 4\) has 2 channels but weight of shape "
                                         r"\(3, 3, 3, 3\) expects 3"):
        F.conv2d(x, Tensor(np.ones((3, 3, 3, 3))))
    with pytest.raises(InputError, match=r"conv2d: the kernel spans 5 pixels in height .*dilation 2.* padded input's 4"):
        F.conv2d(x, w, dilation=2)
    with pytest.raises(InputError, match=r"kernel spans 3 pixels in width"):
        F.conv2d(Tensor(np.ones((1, 2, 3, 2))), w)
    for name in ("stride", "dilation"):
        with pytest.raises(InputError, match=f"conv2d: {name} must be positive, got 0"):
            F.conv2d(x, w, **{name: 0})
        with pytest.raises(InputError, match=rf"conv2d: {name} must be positive, got \(1, -1\)"):
            F.conv2d(x, w, **{name: (1, -1)})
    with pytest.raises(InputError, match="conv2d: padding must be non-negative, got -1"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(InputError, match=r"conv2d: expected input of shape \(N, C, H, W\) \(4-D\), got shape "
                                         r"\(2, 4, 4\) \(3-D\)"):
        F.conv2d(Tensor(np.ones((2, 4, 4))), w)
    with pytest.raises(InputError, match=r"conv2d: expected weight .*\(4-D\), got shape \(3, 2, 3\)"):
        F.conv2d(x, Tensor(np.ones((3, 2, 3))))
    with pytest.raises(InputError, match=r"conv2d: bias has shape \(2,\), expected \(3,\)"):
        F.conv2d(x, w, Tensor(np.ones(2)))
    with pytest.raises(InputError, match="conv2d: input, weight and bias must have one dtype, got float32, float64"):
        F.conv2d(x.float(), w)
    with pytest.raises(TypeError, match="conv2d: input must be a floating-point Tensor, got dtype int64"):
        F.conv2d(Tensor(np.ones((1, 2, 4, 4), dtype=np.int64)), w)
    with pytest.raises(TypeError, match="conv2d: stride must be an int or a pair of ints, got 1.5"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(InputError, match="padding='same' needs stride 1"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(InputError, match="padding must be an int, a pair, 'valid' or 'same', got 'full'"):
        F.conv2d(x, w, padding="full")
    assert F.conv2d(x, w, padding="valid").shape == (1, 3, 2, 2)


def test_conv2d_module_errors():
    with pytest.raises(ValueError, match="Conv2d: in_channels must be a positive int, got 0"):
        nn.Conv2d(0, 2, 3)
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be a positive int or a pair of them, got \(3, 0\)"):
        nn.Conv2d(1, 2, (3, 0))
    with pytest.raises(InputError, match="conv2d: stride must be positive"):
        nn.Conv2d(1, 2, 3, stride=0)
    layer = nn.Conv2d(3, 2, 3)
    with pytest.raises(InputError, match="has 1 channels but weight of shape"):
        layer(Tensor(np.ones((1, 1, 5, 5), dtype=np.float32)))


def test_reused_im2col_columns_never_overwrite_saved_ones(monkeypatch):
    """The NumPy backend hands im2col's columns of the previous call back only when no graph holds them: two
    same-shaped layers in one graph, and several steps, give the gradients of fresh arrays at every call."""
    from tinygrad_edu.backend import get_backend

    def gradients():
        tg.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
        rng = np.random.default_rng(0)
        out = []
        for _ in range(3):
            x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), requires_grad=True)
            g = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
            a, b = net(x), net(x * 2.0)  # two graphs alive at once
            ((a * g).sum() + (b * g).sum()).backward()
            out += [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in net.parameters()]
            for p in net.parameters():
                p.grad = None
        return out

    reused = gradients()
    backend = get_backend("cpu")
    monkeypatch.setattr(type(backend), "scratch", lambda self, name, shape, dtype: np.empty(shape, dtype=dtype))
    fresh = gradients()
    assert all(np.array_equal(a, b) for a, b in zip(reused, fresh))
