"""Pooling: ``F.max_pool2d``, ``F.avg_pool2d``, global average pooling, and the layers ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, ``Flatten``.

* gradients: ``gradcheck`` in float64 over Hypothesis batch, channels, plane, kernel, stride, padding (and dilation
  for max pooling), max pooling on tie-free values (``unique=True``), non-contiguous layouts and a permute inside
  the checked function;
* forward and backward against loops over output positions (the definition, written the slow way);
* the tie rule (the first maximal element of a window, row-major, gets the whole gradient), overlapping windows
  adding up, the average's g / (kh·kw) spread, count_include_pad, float16;
* errors that name the function, the argument and the shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

SETTINGS = settings(max_examples=15, deadline=None)


def leaf(array, device):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def out_size(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def reference(x, k, s, p, d=1, mode="max", count_include_pad=True):
    """Pooling by loops over output positions: forward y, and dL/dx for upstream gradient g (a function of y's
    shape) with the max routed to the first maximal element in row-major order."""
    N, C, H, W = x.shape
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    inside = np.pad(np.ones((H, W)), p)
    OH, OW = out_size(H, k, s, p, d), out_size(W, k, s, p, d)
    y = np.zeros((N, C, OH, OW))
    windows = {}
    for n in range(N):
        for c in range(C):
            for r in range(OH):
                for q in range(OW):
                    rows = [r * s + i * d for i in range(k)]
                    cols = [q * s + j * d for j in range(k)]
                    pos = [(a, b) for a in rows for b in cols]  # row-major
                    vals = [xp[n, c, a, b] for a, b in pos]
                    if mode == "max":
                        y[n, c, r, q] = max(vals)
                        windows[n, c, r, q] = [pos[int(np.argmax(vals))]], 1.0
                    else:
                        count = k * k if count_include_pad else sum(inside[a, b] for a, b in pos)
                        y[n, c, r, q] = sum(vals) / count
                        windows[n, c, r, q] = pos, count

    def grad(g):
        dx = np.zeros(xp.shape)
        for (n, c, r, q), (pos, count) in windows.items():
            for a, b in pos:
                dx[n, c, a, b] += g[n, c, r, q] / count
        return dx[:, :, p : p + H, p : p + W]

    return y, grad


def windows_touch_input(n, k, s, p, d):
    """Every window along an axis of size n covers at least one input element (not only padding)."""
    return all(any(0 <= o * s - p + j * d < n for j in range(k)) for o in range(out_size(n, k, s, p, d)))


@st.composite
def pool_cases(draw, dilation=False, unique=False):
    """(x, kernel, stride, padding, dilation) with square windows that fit: x (N, C, H, W), N 1-2, C 1-2, H, W 1-5."""
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    d = draw(st.integers(1, 2)) if dilation else 1
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    assume(all(out_size(n, k, s, p, d) >= 1 for n in shape[2:]))
    # a dilated window made only of padding outputs -inf in max pooling (as in PyTorch): nothing to differentiate
    assume(all(windows_touch_input(n, k, s, p, d) for n in shape[2:]))
    x = draw(tst.arrays(shape, dtype="float64", unique=unique, margin=0.05, magnitude=3.0).flatmap(tst.layouts))
    return x, k, s, p, d


# ================================================================================================================
# gradients on Hypothesis shapes and windows
# ================================================================================================================
@SETTINGS
@given(case=pool_cases(dilation=True, unique=True))
def test_max_pool2d_gradcheck(device, case):
    x, k, s, p, d = case
    assert tg.gradcheck(lambda t: F.max_pool2d(t, k, s, p, d), [leaf(x, device)])


@SETTINGS
@given(case=pool_cases(unique=True))
def test_max_pool2d_gradcheck_on_a_permuted_view(device, case):
    """The function pools x with H and W swapped (a non-contiguous view), and a rectangular kernel."""
    x, k, s, p, _ = case
    assert tg.gradcheck(lambda t: F.max_pool2d(t.permute(0, 1, 3, 2), (k, 1), (s, 1), (p, 0)), [leaf(x, device)])


@SETTINGS
@given(case=pool_cases(), count_include_pad=st.booleans())
def test_avg_pool2d_gradcheck(device, case, count_include_pad):
    x, k, s, p, _ = case
    assert tg.gradcheck(lambda t: F.avg_pool2d(t, k, s, p, count_include_pad=count_include_pad), [leaf(x, device)])


@SETTINGS
@given(case=pool_cases())
def test_avg_pool2d_gradcheck_on_a_permuted_view(device, case):
    x, k, s, p, _ = case
    assert tg.gradcheck(lambda t: F.avg_pool2d(t.permute(1, 0, 3, 2), (1, k), (1, s), (0, p)), [leaf(x, device)])


@SETTINGS
@given(x=tst.arrays(tst.shapes(min_dims=3, max_dims=4, max_side=4), dtype="float64").flatmap(tst.layouts))
def test_global_avg_pool_gradcheck(device, x):
    assert tg.gradcheck(lambda t: (F.adaptive_avg_pool2d(t, 1), F.global_avg_pool2d(t)), [leaf(x, device)])


# ================================================================================================================
# values and routing against loops
# ================================================================================================================
@SETTINGS
@given(case=pool_cases(dilation=True, unique=True))
def test_max_pool2d_matches_the_loops(device, case):
    x, k, s, p, d = case
    t = leaf(x, device)
    y = F.max_pool2d(t, k, s, p, d)
    y_ref, grad_ref = reference(x, k, s, p, d)
    np.testing.assert_array_equal(y.numpy(), y_ref)
    g = np.arange(1.0, y_ref.size + 1).reshape(y_ref.shape)
    y.backward(Tensor(g, device=device))
    np.testing.assert_allclose(t.grad.numpy(), grad_ref(g), rtol=1e-12)


@SETTINGS
@given(case=pool_cases(), count_include_pad=st.booleans())
def test_avg_pool2d_matches_the_loops(device, case, count_include_pad):
    x, k, s, p, _ = case
    t = leaf(x, device)
    y = F.avg_pool2d(t, k, s, p, count_include_pad=count_include_pad)
    y_ref, grad_ref = reference(x, k, s, p, mode="avg", count_include_pad=count_include_pad)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-12)
    g = np.arange(1.0, y_ref.size + 1).reshape(y_ref.shape)
    y.backward(Tensor(g, device=device))
    np.testing.assert_allclose(t.grad.numpy(), grad_ref(g), rtol=1e-12, atol=1e-12)


def test_max_pool2d_hand_computed(device):
    x = np.array([[1.0, 5.0, 2.0, 0.0],
                  [3.0, 4.0, 7.0, 6.0],
                  [9.0, 8.0, 1.5, 2.5],
                  [0.5, 1.0, 3.5, 4.5]]).reshape(1, 1, 4, 4)
    t = leaf(x, device)
    y = F.max_pool2d(t, 2)
    np.testing.assert_array_equal(y.numpy().reshape(2, 2), [[5.0, 7.0], [9.0, 4.5]])
    y.backward(Tensor(np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 1, 2, 2), device=device))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[2, 0], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(t.grad.numpy().reshape(4, 4), expected)


def test_max_pool2d_overlapping_windows_add_up(device):
    """Kernel 2, stride 1 on a plane whose max is in the middle: all four windows pick it, its gradient is Σ g."""
    x = np.array([[0.0, 0.1, 0.2], [0.3, 9.0, 0.4], [0.5, 0.6, 0.7]]).reshape(1, 1, 3, 3)
    t = leaf(x, device)
    y = F.max_pool2d(t, 2, stride=1)
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 2, 2), 9.0))
    y.backward(Tensor(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2), device=device))
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(t.grad.numpy().reshape(3, 3), expected)


def test_max_pool2d_tie_rule_first_in_row_major_order(device):
    """A window of equal values gives the whole gradient to its top-left element; with the max tied between the
    second row's elements, to the first of them."""
    x = np.array([[2.0, 2.0, 0.0, 1.0],
                  [2.0, 2.0, 3.0, 3.0]]).reshape(1, 1, 2, 4)
    t = leaf(x, device)
    F.max_pool2d(t, 2).backward(Tensor(np.array([5.0, 7.0]).reshape(1, 1, 1, 2), device=device))
    np.testing.assert_array_equal(t.grad.numpy().reshape(2, 4), [[5.0, 0, 0, 0], [0, 0, 7.0, 0]])
    # at a tie gradcheck reports a kink, and accepts the rule as a subgradient
    with pytest.raises(tg.NonDifferentiablePointError):
        tg.gradcheck(lambda u: F.max_pool2d(u, 2), [leaf(x, device)])
    assert tg.gradcheck(lambda u: F.max_pool2d(u, 2), [leaf(x, device)], kinks="allow")


def test_max_pool2d_pads_with_minus_infinity(device):
    """All-negative input with padding: the padding never wins (zero padding would give 0)."""
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    y = F.max_pool2d(Tensor(x, device=device), 2, stride=1, padding=1)
    np.testing.assert_array_equal(y.numpy().reshape(3, 3), [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])


def test_avg_pool2d_hand_computed_and_padding_counts(device):
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    t = leaf(x, device)
    y = F.avg_pool2d(t, 2)
    np.testing.assert_allclose(y.numpy().reshape(2, 2), [[3.5, 5.5], [11.5, 13.5]])
    y.backward(Tensor(np.array([4.0, 8.0, 12.0, 16.0]).reshape(1, 1, 2, 2), device=device))
    np.testing.assert_allclose(t.grad.numpy().reshape(4, 4), np.kron([[1.0, 2.0], [3.0, 4.0]], np.ones((2, 2))))
    # a corner window with padding 1 holds one element and three padded zeros
    corner = F.avg_pool2d(Tensor(x, device=device), 2, padding=1).numpy()[0, 0, 0, 0]
    assert corner == pytest.approx(1.0 / 4)
    corner = F.avg_pool2d(Tensor(x, device=device), 2, padding=1, count_include_pad=False).numpy()[0, 0, 0, 0]
    assert corner == pytest.approx(1.0)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_a_3d_input_is_one_sample(device, pool):
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    y = pool(Tensor(x, device=device), 2, 1, 1)
    assert y.shape == (2, 6, 5)
    np.testing.assert_allclose(y.numpy(), pool(Tensor(x[None], device=device), 2, 1, 1).numpy()[0])


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_float16_in_float16_out(pool):
    x = np.random.default_rng(2).uniform(-2, 2, (2, 3, 5, 5))
    t = Tensor(x.astype(np.float16), requires_grad=True)
    y = pool(t, 3, 2, 1)
    assert y.dtype == np.float16
    y_ref = pool(Tensor(x.astype(np.float16).astype(np.float64)), 3, 2, 1).numpy()
    np.testing.assert_allclose(y.numpy().astype(np.float64), y_ref, rtol=2e-3, atol=2e-3)
    y.sum().backward()
    assert t.grad.dtype == np.float16


# ================================================================================================================
# layers
# ================================================================================================================
def test_layers_shapes_and_values(device):
    x = Tensor(np.random.default_rng(3).standard_normal((2, 3, 8, 6)), device=device)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 3)
    assert nn.MaxPool2d(3, stride=2, padding=1)(x).shape == (2, 3, 4, 3)
    assert nn.AvgPool2d((2, 3))(x).shape == (2, 3, 4, 2)
    np.testing.assert_allclose(nn.AvgPool2d(2, 1, 1)(x).numpy(), F.avg_pool2d(x, 2, 1, 1).numpy())
    g = nn.AdaptiveAvgPool2d((1, 1))(x)
    assert g.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(g.numpy()[..., 0, 0], x.numpy().mean(axis=(2, 3)))
    np.testing.assert_allclose(F.global_avg_pool2d(x).numpy(), x.numpy().mean(axis=(2, 3)))
    assert nn.Flatten()(x).shape == (2, 144)
    assert nn.Flatten(0, 1)(x).shape == (6, 8, 6)
    assert nn.Flatten(2)(x).shape == (2, 3, 48)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert head(x).shape == (2, 3) and list(head.parameters()) == []
    assert "kernel_size=3, stride=2" in repr(nn.MaxPool2d(3, stride=2))


def test_flatten_gradient(device):
    x = np.random.default_rng(4).standard_normal((2, 3, 2))
    assert tg.gradcheck(lambda t: nn.Flatten()(t.permute(2, 1, 0)), [leaf(x, device)])


# ================================================================================================================
# errors
# ================================================================================================================
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda x: F.max_pool2d(x, 5), tg.InputError, ["max_pool2d", "too small", "(1, 2, 4, 4)"]),
        (lambda x: F.avg_pool2d(x, 2, padding=2), tg.InputError, ["avg_pool2d", "padding", "half"]),
        (lambda x: F.max_pool2d(x, 0), tg.InputError, ["max_pool2d", "kernel_size", "at least 1"]),
        (lambda x: F.max_pool2d(x, 2, stride=0), tg.InputError, ["stride", "at least 1"]),
        (lambda x: F.max_pool2d(x, 2.0), TypeError, ["max_pool2d", "kernel_size", "int"]),
        (lambda x: F.max_pool2d(x, (2, 2, 2)), TypeError, ["kernel_size", "pair"]),
        (lambda x: F.avg_pool2d(x.reshape(2, 16), 2), tg.InputError, ["avg_pool2d", "4-D", "(2, 16)"]),
        (lambda x: F.max_pool2d(x.numpy(), 2), TypeError, ["max_pool2d", "Tensor", "ndarray"]),
        (lambda x: F.max_pool2d(Tensor(np.zeros((1, 1, 2, 2), np.int64)), 2), TypeError, ["floating", "int64"]),
        (lambda x: F.adaptive_avg_pool2d(x, 2), tg.InputError, ["adaptive_avg_pool2d", "output_size", "2"]),
        (lambda x: F.avg_pool2d(x, 2, count_include_pad=1), TypeError, ["count_include_pad", "bool"]),
        (lambda x: nn.Flatten(4)(x), tg.InputError, ["Flatten", "start_dim=4", "(1, 2, 4, 4)"]),
        (lambda x: nn.Flatten(2, 1)(x), tg.InputError, ["Flatten", "after"]),
    ],
)
def test_errors_name_the_function_argument_and_shapes(call, error, words):
    x = Tensor(np.zeros((1, 2, 4, 4)), requires_grad=True)
    with pytest.raises(error) as info:
        call(x)
    for word in words:
        assert word in str(info.value)
    assert x.grad is None


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: nn.MaxPool2d(2, padding=2), ["MaxPool2d", "padding", "half"]),
        (lambda: nn.AvgPool2d(0), ["AvgPool2d", "kernel_size"]),
        (lambda: nn.AdaptiveAvgPool2d(3), ["AdaptiveAvgPool2d", "output_size"]),
    ],
)
def test_layer_constructors_raise_value_errors(build, words):
    with pytest.raises(ValueError) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_max_pool2d_gives_minus_infinity_inputs_their_gradient_over_the_padding():
    """An input of -inf still beats the -inf padding around it (as in PyTorch): no gradient is cropped away."""
    x = Tensor(np.full((1, 1, 3, 3), -np.inf), requires_grad=True)
    F.max_pool2d(x, 3, 1, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy().ravel(), [4, 2, 0, 2, 1, 0, 0, 0, 0])
