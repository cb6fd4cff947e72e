"""Fuzzing: Hypothesis drives random sequences of ops and layers, valid and invalid.

Every step either gives a correct result (finite, and equal to a float64 NumPy reference where one is cheap) or
raises one of the documented errors (README, "Errors you may meet"): ``InputError``/ValueError, TypeError,
IndexError, or the device RuntimeError. Never another exception, never a NaN from valid finite input. At the end,
a backward through the whole sequence gives finite gradients in each leaf's dtype.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F

DOCUMENTED = (ValueError, TypeError, IndexError)  # InputError is a ValueError


def _tol(dtype):
    return {"float16": 2e-2, "float32": 1e-4, "float64": 1e-10}[np.dtype(dtype).name]


def _check_documented(exc: BaseException) -> None:
    if isinstance(exc, DOCUMENTED):
        return
    if isinstance(exc, RuntimeError) and "device" in str(exc):
        return
    raise AssertionError(f"undocumented exception {type(exc).__name__}: {exc}") from exc


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Run:
    """The fuzzed sequence: the current tensor, its leaves, and the draw function."""

    def __init__(self, draw, x: tg.Tensor):
        self.draw, self.x, self.leaves = draw, x, [x]

    def tensor(self, shape, dtype=None, positive=False, grad=True):
        dtype = dtype or self.x.dtype
        values = self.draw(st.lists(st.floats(-2, 2, width=16), min_size=math.prod(shape), max_size=math.prod(shape)))
        a = np.asarray(values, np.float64).reshape(shape)
        if positive:
            a = np.abs(a) + 1
        if np.dtype(dtype).kind != "f":
            a = np.round(a)
        t = tg.Tensor(a.astype(dtype), device=self.x.device, requires_grad=grad and np.dtype(dtype).kind == "f")
        if t.requires_grad:
            self.leaves.append(t)
        return t


# Each step returns (valid, result_fn, reference_fn or None). reference_fn gets the float64 values of the current
# tensor (and of any drawn operand, bound in its closure).
def step_unary(r: Run):
    name = r.draw(st.sampled_from(["relu", "tanh", "sigmoid", "abs", "neg", "exp", "log1", "sqrt1"]))
    fns = {
        "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
        "tanh": (lambda t: t.tanh(), np.tanh),
        "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        "abs": (lambda t: t.abs(), np.abs),
        "neg": (lambda t: -t, np.negative),
        "exp": (lambda t: t.clip(-4, 4).exp(), lambda a: np.exp(np.clip(a, -4, 4))),
        "log1": (lambda t: (t.abs() + 1).log(), lambda a: np.log(np.abs(a) + 1)),
        "sqrt1": (lambda t: (t.abs() + 1).sqrt(), lambda a: np.sqrt(np.abs(a) + 1)),
    }
    return True, *fns[name]


def step_binary(r: Run):
    x = r.x
    op = r.draw(st.sampled_from(["+", "-", "*", "/", "maximum", "minimum", "where"]))
    mode = r.draw(st.sampled_from(["same", "broadcast", "scalar", "mismatch"]))
    dtypes = ["float32", "float64", "int32", "bool"] + (["float16"] if x.device == "cpu" else [])
    dtype = r.draw(st.sampled_from(dtypes))
    if mode == "scalar":
        other = r.draw(st.sampled_from([2, 0.5, -1.5, True]))
        y_np = np.float64(other)
    else:
        if mode == "same":
            shape = x.shape
        elif mode == "broadcast":
            shape = tuple(r.draw(st.sampled_from([1, n])) for n in x.shape[r.draw(st.integers(0, x.ndim)):])
        else:
            shape = x.shape[:-1] + (x.shape[-1] + 1,) if x.ndim else (2,)
        if dtype == "bool":
            other = tg.Tensor(np.asarray(r.draw(st.lists(st.booleans(), min_size=math.prod(shape),
                                                         max_size=math.prod(shape)))).reshape(shape),
                              device=x.device)
        else:
            other = r.tensor(shape, dtype, positive=op == "/")
        y_np = other.numpy().astype(np.float64)
    if op == "/" and dtype == "bool" and mode != "scalar":  # keep divisors away from zero
        other = other.float() + 1
        y_np = y_np + 1
    fns = {
        "+": (lambda t: t + other, lambda a: a + y_np), "-": (lambda t: t - other, lambda a: a - y_np),
        "*": (lambda t: t * other, lambda a: a * y_np), "/": (lambda t: t / other, lambda a: a / y_np),
        "maximum": (lambda t: tg.maximum(t, other), lambda a: np.maximum(a, y_np)),
        "minimum": (lambda t: tg.minimum(other, t), lambda a: np.minimum(y_np, a)),
        "where": (lambda t: tg.where(t > 0, t, other), lambda a: np.where(a > 0, a, y_np)),
    }
    try:
        valid = mode == "scalar" or np.broadcast_shapes(x.shape, other.shape) is not None
    except ValueError:
        valid = False
    return valid, *fns[op]


def step_reduce(r: Run):
    name = r.draw(st.sampled_from(["sum", "mean", "max", "min"]))
    axis = r.draw(st.one_of(st.none(), st.integers(-r.x.ndim - 2, r.x.ndim + 1)))
    valid = axis is None or -max(r.x.ndim, 1) <= axis < max(r.x.ndim, 1)
    ref_axis = None if r.x.ndim == 0 else axis
    return valid, lambda t: getattr(t, name)(axis=axis), lambda a: getattr(np, name)(a, axis=ref_axis)


def step_shape(r: Run):
    x = r.x
    kind = r.draw(st.sampled_from(["reshape", "bad_reshape", "permute", "bad_permute", "index", "bad_index"]))
    if kind == "reshape":
        return True, lambda t: t.reshape(-1, 1), lambda a: a.reshape(-1, 1)
    if kind == "bad_reshape":
        return False, lambda t: t.reshape(x.numel() + 1), None
    if kind in ("permute", "bad_permute"):
        dims = r.draw(st.permutations(range(x.ndim)))
        if kind == "bad_permute":
            dims = list(dims) + [0]
        return kind == "permute", lambda t: t.permute(dims), lambda a: np.transpose(a, dims)
    if x.ndim == 0:
        return False, lambda t: t[0], None
    i = r.draw(st.integers(-x.shape[0] - 2, x.shape[0] + 1))
    valid = -x.shape[0] <= i < x.shape[0]
    return valid, lambda t: t[i], lambda a: a[i]


def _matrix(r: Run):
    """The current tensor as a 2-D (N, K) matrix."""
    x = r.x
    return x.reshape(x.shape[0], -1) if x.ndim >= 2 else x.reshape(1, -1)


def step_linear(r: Run):
    r.x = _matrix(r)
    k = r.x.shape[1]
    out = r.draw(st.integers(1, 3))
    bad = r.draw(st.booleans())
    w = r.tensor((out, k + 1 if bad else k), r.draw(st.sampled_from([r.x.dtype.name, "float64"])))
    b = r.tensor((out,), w.dtype)
    w_np, b_np = w.numpy().astype(np.float64), b.numpy().astype(np.float64)
    return not bad, lambda t: F.linear(t, w, b), lambda a: a @ w_np.T + b_np


def step_batch_norm(r: Run):
    r.x = _matrix(r)
    n, c = r.x.shape
    training = r.draw(st.booleans())
    eps = r.draw(st.sampled_from([1e-5, 1e-3, 0.0, -1.0]))
    mean = tg.Tensor(np.zeros(c, np.float32), device=r.x.device)
    var = tg.Tensor(np.ones(c, np.float32), device=r.x.device)
    valid = eps > 0 and (not training or n > 1)

    def ref(a):
        if training:
            return (a - a.mean(0)) / np.sqrt(a.var(0) + eps)
        return a / np.sqrt(1 + eps)

    return valid, lambda t: F.batch_norm(t, mean, var, training=training, eps=eps), ref


def step_dropout(r: Run):
    p = r.draw(st.sampled_from([0.0, 0.3, 0.5, 1.5, -0.1, 1.0]))
    training = r.draw(st.booleans())
    return 0 <= p < 1, lambda t: F.dropout(t, p, training), (None if training and p > 0 else (lambda a: a))


def step_softmax(r: Run):
    x = r.x
    dim = r.draw(st.integers(-x.ndim - 1, x.ndim))
    valid = -max(x.ndim, 1) <= dim < max(x.ndim, 1)  # a 0-d input takes dim 0 or -1, as in PyTorch
    return valid, lambda t: F.softmax(t, dim=dim), lambda a: _softmax(a, dim) if a.ndim else np.ones_like(a)


def step_conv2d(r: Run):
    r.x = r.x.reshape(1, 1, 1, -1) if r.x.ndim != 4 else r.x
    c = r.x.shape[1]
    bad = r.draw(st.sampled_from(["none", "channels", "stride", "padding", "dtype"]))
    kw = min(2, r.x.shape[3])
    dtype = "float64" if bad == "dtype" and r.x.dtype != np.float64 else r.x.dtype.name
    w = r.tensor((2, c + (bad == "channels"), 1, kw), dtype)
    stride = 0 if bad == "stride" else 1
    padding = -1 if bad == "padding" else (0, r.draw(st.integers(0, 1)))
    valid = bad == "none" or (bad == "dtype" and dtype == r.x.dtype.name)
    return valid, lambda t: F.conv2d(t, w, stride=stride, padding=padding), None


STEPS = [step_unary, step_binary, step_reduce, step_shape, step_linear, step_batch_norm, step_dropout,
         step_softmax, step_conv2d]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_programs_give_correct_values_or_documented_errors(data):
    device = data.draw(st.sampled_from(["cpu", "strict"]))
    dtype = data.draw(st.sampled_from(["float32", "float64"] + (["float16"] if device == "cpu" else [])))
    shape = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4)))
    steps = data.draw(st.lists(st.sampled_from(STEPS), min_size=3, max_size=8))
    x0 = tg.Tensor(np.zeros(shape, dtype), device=device)
    r = Run(data.draw, x0)
    r.leaves = []
    r.x = r.tensor(shape, dtype)
    for step in steps:
        before = r.x
        valid, fn, ref = step(r)
        x_in = r.x
        try:
            out = fn(x_in)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            _check_documented(exc)
            assert not valid, f"{step.__name__} raised {type(exc).__name__} on valid input: {exc}"
            r.x = before
            continue
        assert valid, f"{step.__name__} accepted invalid input and returned {out.shape} {out.dtype}"
        values = out.numpy()
        assert out.dtype.kind == "f"
        assert np.all(np.isfinite(values)), f"{step.__name__} returned non-finite values from finite input"
        if ref is not None:
            want = np.asarray(ref(x_in.numpy().astype(np.float64)))
            tol = _tol(out.dtype)
            np.testing.assert_allclose(values.astype(np.float64), want, rtol=tol, atol=tol,
                                       err_msg=step.__name__)
        scale = float(np.max(np.abs(values))) if values.size else 0.0
        r.x = out / scale if scale > 10 else out  # keep magnitudes safe for float16
    if r.x.requires_grad:
        r.x.sum().backward()
        for leaf in r.leaves:
            if leaf.grad is not None:
                assert leaf.grad.dtype == leaf.dtype
                assert np.all(np.isfinite(leaf.grad.numpy()))


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_documented_errors_change_nothing(device):
    """An invalid call leaves its inputs as they were (values, grad, graph)."""
    x = tg.Tensor(np.ones((2, 3), np.float32), device=device, requires_grad=True)
    before = x.numpy().copy()
    for bad in (lambda: x + tg.Tensor(np.ones(4, np.float32), device=device), lambda: F.dropout(x, 1.5),
                lambda: x.reshape(7), lambda: F.softmax(x, dim=5), lambda: x[9]):
        with pytest.raises(DOCUMENTED):
            bad()
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None and x.is_leaf
