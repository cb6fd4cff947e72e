"""Softmax and log-softmax (``F.softmax``, ``F.log_softmax``, ``nn.Softmax``, ``nn.LogSoftmax``): hand-derived
backwards against finite differences, values against a NumPy float64 reference, stability with huge logits, float16
computed in float32, the zero-sum property of the gradient, and the errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import InputError, Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import strategies as tst

OPS = {"softmax": F.softmax, "log_softmax": F.log_softmax}


def leaf(array, device="cpu", dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True, device=device)


def reference(op: str, x: np.ndarray, dim: int) -> np.ndarray:
    """The formulas in float64 NumPy, max-shifted."""
    x = np.asarray(x, dtype=np.float64)
    axis = dim if x.ndim else None
    shifted = x - np.max(x, axis=axis, keepdims=True)
    log_sum = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return np.exp(shifted - log_sum) if op == "softmax" else shifted - log_sum


@st.composite
def cases(draw, magnitude=2.0, min_dims=0):
    """x (0 to 4 axes, sides 1 to 4: size-1 axes and 0-d included), a dim (negative ones too), and a permutation of
    x's axes: the leaf is stored permuted and permuted back inside the function (a non-contiguous view)."""
    shape = draw(tst.shapes(min_dims=min_dims, max_dims=4, max_side=4))
    x = draw(tst.arrays(shape, magnitude=magnitude))
    ndim = max(len(shape), 1)
    dim = draw(st.integers(-ndim, ndim - 1))
    order = tuple(draw(st.permutations(range(len(shape)))))
    return x, dim, order


# -- gradients ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=15)
@given(case=cases())
def test_gradients(device, op, case):
    x, dim, order = case
    inverse = tuple(int(i) for i in np.argsort(order))
    stored = leaf(np.transpose(x, order), device)
    assert tg.gradcheck(lambda t: OPS[op](t.permute(*inverse) if t.ndim else t, dim=dim), [stored])


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=15)
@given(case=cases(min_dims=1), seed=st.integers(0, 2**16))
def test_each_row_of_the_input_gradient_sums_to_zero(op, case, seed):
    """Adding a constant to a row changes neither softmax nor log_softmax, so dL/dx sums to 0 along dim."""
    x, dim, _ = case
    t = leaf(x)
    y = OPS[op](t, dim=dim)
    y.backward(Tensor(np.random.default_rng(seed).standard_normal(x.shape)))
    np.testing.assert_allclose(t.grad.numpy().sum(axis=dim), 0.0, atol=1e-12)


def test_backward_by_hand():
    # y = softmax([0, ln 2, ln 3]) = [1, 2, 3]/6; with g = [1, 0, 0]: Σ g y = 1/6, dx = y ⊙ (g - 1/6)
    y = np.array([1.0, 2.0, 3.0]) / 6
    x = leaf(np.log([1.0, 2.0, 3.0]))
    F.softmax(x, dim=0).backward(Tensor(np.array([1.0, 0.0, 0.0])))
    np.testing.assert_allclose(x.grad.numpy(), y * (np.array([1.0, 0.0, 0.0]) - 1 / 6), rtol=1e-12)
    # log_softmax with g = [1, 1, 1]: Σ g = 3, dx = g - 3 y
    x = leaf(np.log([1.0, 2.0, 3.0]))
    F.log_softmax(x, dim=0).backward(Tensor(np.ones(3)))
    np.testing.assert_allclose(x.grad.numpy(), 1 - 3 * y, rtol=1e-12, atol=1e-15)


# -- values ------------------------------------------------------------------------------------------------------
def test_values_by_hand(device):
    x = Tensor(np.log([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]]), device=device)
    expected = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]]) / np.array([[6.0], [4.0]])
    np.testing.assert_allclose(F.softmax(x, dim=1).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x, dim=-1).numpy(), np.log(expected), rtol=1e-12)
    # over the columns: column 0 is [1, 1] -> [1/2, 1/2]
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy()[:, 0], [0.5, 0.5], rtol=1e-12)
    # a 0-d input is its own row; a size-1 axis too
    assert F.softmax(Tensor(np.array(3.0), device=device), dim=0).item() == 1.0
    assert F.log_softmax(Tensor(np.array(3.0), device=device), dim=-1).item() == 0.0
    np.testing.assert_array_equal(F.softmax(x[:, :1], dim=1).numpy(), 1.0)


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=15)
@given(case=cases(magnitude=30.0))
def test_forward_matches_numpy_float64(device, op, case):
    x, dim, order = case
    inverse = tuple(int(i) for i in np.argsort(order))
    stored = Tensor(np.transpose(x, order), device=device)
    out = OPS[op](stored.permute(*inverse) if x.ndim else stored, dim=dim)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), reference(op, x, dim), rtol=1e-12, atol=1e-300)


@settings(max_examples=15)
@given(case=cases(min_dims=1, magnitude=20.0))
def test_log_softmax_is_the_log_of_softmax(case):
    x, dim, _ = case
    with np.errstate(divide="ignore"):
        logs = np.log(F.softmax(Tensor(x), dim=dim).numpy())
    log_softmax = F.log_softmax(Tensor(x), dim=dim).numpy()
    finite = np.isfinite(logs)  # softmax may underflow to 0 where log_softmax stays finite (its point)
    np.testing.assert_allclose(log_softmax[finite], logs[finite], rtol=1e-10, atol=1e-12)
    assert np.all(np.isfinite(log_softmax))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_huge_logits_are_stable(dtype):
    x = np.array([[1e4, 1e4 - 1, -1e4], [-1e4, -1e4, -1e4], [1e4, 0.0, 1e4]], dtype=dtype)
    y = F.softmax(Tensor(x), dim=1).numpy()
    z = F.log_softmax(Tensor(x), dim=1).numpy()
    assert y.dtype == z.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(z))
    np.testing.assert_allclose(y.astype(np.float64).sum(axis=1), 1.0, rtol=2e-3)
    np.testing.assert_allclose(y, reference("softmax", x, 1), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(z, reference("log_softmax", x, 1), rtol=1e-3)
    np.testing.assert_array_equal(y[1], np.float16(1 / 3) if dtype == "float16" else np.float32(1 / 3))


def test_float16_is_computed_in_float32_and_rounded_once():
    """e^12 ≈ 1.6e5 overflows float16 (max 65504): a float16 exp gives inf; the float32 computation does not."""
    x = np.array([[12.0, 0.0, -3.0], [11.5, 11.0, 12.0]], dtype=np.float16)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(x[0, 0]))
    for op in sorted(OPS):
        out = OPS[op](Tensor(x), dim=1)
        assert out.dtype == np.float16
        # the float64 reference rounded to float16, within one float16 ulp (rtol 1e-3) or, for log_softmax's values
        # near 0 (-6.4e-6 = -log(1 + e^-12 + ...)), within float32's ulp at 1, 1.2e-7, the error of its log
        expected = reference(op, x.astype(np.float64), 1).astype(np.float16)
        np.testing.assert_allclose(out.numpy().astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=2.4e-7)


@pytest.mark.parametrize("op", sorted(OPS))
def test_float16_backward_sums_in_float32_and_returns_float16(op):
    rng = np.random.default_rng(1)
    x64 = rng.uniform(-6, 12, size=(4, 64))
    g = rng.standard_normal((4, 64))
    grads = {}
    for dtype in (np.float16, np.float64):
        t = leaf(x64.astype(np.float16).astype(dtype), dtype=dtype)
        OPS[op](t, dim=-1).backward(Tensor(g.astype(np.float16).astype(dtype)))
        assert t.grad.dtype == dtype
        grads[dtype] = t.grad.numpy().astype(np.float64)
    np.testing.assert_allclose(grads[np.float16], grads[np.float64], rtol=2e-3, atol=2e-3)


def test_dtype_keyword_casts_the_input_first():
    x = leaf(np.array([[12.0, 0.0, 1.0]]), dtype=np.float16)
    y = F.softmax(x, dim=1, dtype=tg.float32)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), reference("softmax", x.numpy(), 1), rtol=1e-6)
    y.sum().backward()
    assert x.grad.dtype == np.float16  # the cast is differentiable: the gradient comes back in the input's dtype
    assert F.log_softmax(Tensor(np.ones((2, 2), np.float32)), 1, dtype="float64").dtype == np.float64


# -- modules -----------------------------------------------------------------------------------------------------
def test_modules_match_the_functions(device):
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 4)), device=device)
    np.testing.assert_array_equal(nn.Softmax(dim=1)(x).numpy(), F.softmax(x, dim=1).numpy())
    np.testing.assert_array_equal(nn.LogSoftmax(-1)(x).numpy(), F.log_softmax(x, dim=-1).numpy())
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)" and repr(nn.LogSoftmax()) == "LogSoftmax(dim=None)"
    assert list(nn.Softmax(1).parameters()) == []
    with pytest.raises(TypeError, match="Softmax: dim must be an int or None, got float"):
        nn.Softmax(1.0)
    with pytest.raises(TypeError, match="LogSoftmax: dim must be an int or None, got str"):
        nn.LogSoftmax("1")


def test_module_gradients(device):
    x = leaf(np.random.default_rng(3).uniform(-2, 2, (2, 3)), device)
    assert tg.gradcheck_module(nn.Softmax(dim=0), x)
    assert tg.gradcheck_module(nn.LogSoftmax(dim=1), x)


# -- dim=None: PyTorch's deprecated implicit choice --------------------------------------------------------------
@pytest.mark.parametrize(("ndim", "axis"), [(0, 0), (1, 0), (2, 1), (3, 0), (4, 1)])
@pytest.mark.parametrize("op", sorted(OPS))
def test_dim_none_follows_pytorch_and_warns(op, ndim, axis):
    x = np.random.default_rng(4).standard_normal((2,) * ndim)
    with pytest.warns(UserWarning, match=f"Implicit dimension choice for {op} has been deprecated") as record:
        out = OPS[op](Tensor(x))
    assert record[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_allclose(out.numpy(), reference(op, x, axis), rtol=1e-12)


def test_module_dim_none_warns_at_the_callers_line():
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax") as record:
        nn.Softmax()(Tensor(np.ones((2, 3))))
    assert record[0].filename == __file__


def test_explicit_dim_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.softmax(Tensor(np.ones((2, 3))), dim=1)
        F.log_softmax(Tensor(np.ones((2, 3))), 0)


# -- errors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", sorted(OPS))
def test_errors_name_the_op_the_argument_and_what_came(op):
    fn = OPS[op]
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(InputError, match=rf"{op}: dim=2 is out of range for an input of shape \(2, 3\) "
                                         r"\(expected -2 <= dim < 2\)"):
        fn(x, dim=2)
    with pytest.raises(InputError, match=rf"{op}: dim=-3 is out of range for an input of shape \(2, 3\)"):
        fn(x, dim=-3)
    with pytest.raises(InputError, match=rf"{op}: dim=1 is out of range for an input of shape \(\) "
                                         r"\(expected -1 <= dim <= 0\)"):
        fn(Tensor(np.array(1.0)), dim=1)
    with pytest.raises(TypeError, match=f"{op}: dim must be an int, got float"):
        fn(x, dim=1.0)
    with pytest.raises(TypeError, match=f"{op}: input must be a floating-point tensor, got dtype int64"):
        fn(Tensor(np.arange(3)), dim=0)
    with pytest.raises(TypeError, match=f"{op}: dtype must be a floating-point dtype such as 'float32', got int32"):
        fn(x, dim=0, dtype="int32")
    with pytest.raises(TypeError, match=f"{op}: input must be a Tensor, got ndarray"):
        fn(np.ones(3), dim=0)
