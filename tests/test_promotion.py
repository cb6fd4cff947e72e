"""The dtype promotion rule (tinygrad_edu/dtypes.py), on every device.

The expected dtypes are written here independently of the implementation, from PyTorch's rule: categories
bool < integer < floating; within a category the wider dtype; Python numbers and 0-d tensors only promote across
categories; ``/`` of integers gives float32. Values must equal float64 math cast to the result dtype.
"""

from __future__ import annotations

import itertools
import operator
import warnings

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.dtypes import result_type

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32", "float64"]
CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}

# torch facts checked by hand against PyTorch's documentation (torch.result_type), a spot check of `expected`
TORCH_FACTS = [
    ("float16", "float32", "float32"), ("int64", "float16", "float16"), ("bool", "int32", "int32"),
    ("uint8", "int8", "int16"), ("int8", "int32", "int32"), ("bool", "float64", "float64"), ("bool", "bool", "bool"),
]


def expected(op: str, a: str, b: str) -> np.dtype | None:
    """The result dtype, or None where the rule raises TypeError."""
    da, db = np.dtype(a), np.dtype(b)
    ca, cb = CATEGORY[da.kind], CATEGORY[db.kind]
    out = (da if ca > cb else db) if ca != cb else np.promote_types(da, db)
    if out.kind == "b" and op in ("sub", "pow", "matmul"):
        return None
    if op == "div" and out.kind != "f":
        return np.dtype("float32")
    return out


def values(dtype: str, role: str) -> np.ndarray:
    """Small values: a - b >= 0 (uint), b > 0 (division), b <= 2 (powers), all exact in float16."""
    if dtype == "bool":
        return np.array([True, False, True]) if role == "a" else np.array([True, True, True])
    return np.array([3, 4, 5] if role == "a" else [1, 2, 2]).astype(dtype)


OPS = {
    "add": (operator.add, np.add), "sub": (operator.sub, np.subtract), "mul": (operator.mul, np.multiply),
    "div": (operator.truediv, np.divide), "pow": (operator.pow, np.power),
    "maximum": (tg.maximum, np.maximum), "minimum": (tg.minimum, np.minimum),
    "where": (lambda a, b: tg.where(tg.Tensor([True, False, True], device=a.device), a, b),
              lambda a, b: np.where([True, False, True], a, b)),
    "matmul": (operator.matmul, np.matmul),
}


def _skip_float16(device, *dtypes):
    if device == "strict" and "float16" in dtypes:
        pytest.skip("the strict backend has no float16")


def test_expected_agrees_with_torch_facts():
    for a, b, out in TORCH_FACTS:
        assert expected("add", a, b) == np.dtype(out) and expected("add", b, a) == np.dtype(out)
        assert result_type("Add", tg.Tensor(np.zeros(2, a)), tg.Tensor(np.zeros(2, b))) == np.dtype(out)


@pytest.mark.parametrize("a,b", list(itertools.product(DTYPES, DTYPES)))
def test_rule_table_values_and_dtypes(device, a, b):
    _skip_float16(device, a, b)
    x_np, y_np = values(a, "a"), values(b, "b")
    x, y = tg.Tensor(x_np, device=device), tg.Tensor(y_np, device=device)
    for name, (op, ref) in OPS.items():
        out_dtype = expected(name if name != "where" else "add", a, b)
        if out_dtype is None:
            with pytest.raises(TypeError, match="bool"):
                op(x, y)
            continue
        z = op(x, y)
        assert z.dtype == out_dtype, (name, a, b)
        assert z.device == device
        want = np.asarray(ref(x_np.astype(np.float64), y_np.astype(np.float64))).astype(out_dtype)
        np.testing.assert_array_equal(z.numpy(), want, err_msg=f"{name}({a}, {b})")


FLOATS = ["float16", "float32", "float64"]


@pytest.mark.parametrize("a,b", list(itertools.product(FLOATS + ["int32", "bool"], FLOATS)))
def test_gradients_come_back_in_each_inputs_dtype(device, a, b):
    _skip_float16(device, a, b)
    for name, (op, _) in OPS.items():
        x = tg.Tensor(values(a, "a"), device=device, requires_grad=a in FLOATS)
        y = tg.Tensor(values(b, "b"), device=device, requires_grad=True)
        z = op(x, y)
        assert z.dtype == expected("add", a, b)
        z.sum().backward() if z.ndim else z.backward()
        assert y.grad.dtype == np.dtype(b), (name, a, b)
        if a in FLOATS:
            assert x.grad.dtype == np.dtype(a), (name, a, b)


def test_a_float16_input_of_a_float32_result_gets_the_right_gradient():
    x = tg.Tensor(np.array([1.5, -2.0], np.float16), requires_grad=True)
    w = tg.Tensor(np.array([0.25, 3.0], np.float32), requires_grad=True)
    (x * w).sum().backward()
    assert x.grad.dtype == np.float16 and w.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0.25, 3.0], np.float16))
    np.testing.assert_array_equal(w.grad.numpy(), np.array([1.5, -2.0], np.float32))


# tensor dtype, Python scalar -> result dtype (PyTorch: a number changes the dtype only across categories)
SCALAR_CASES = [
    ("float16", 2.5, "float16"), ("float16", 2, "float16"), ("float16", True, "float16"),
    ("float32", 2.5, "float32"), ("float64", 2, "float64"),
    ("int8", 2, "int8"), ("int8", 2.5, "float32"), ("int32", True, "int32"), ("uint8", 3, "uint8"),
    ("int64", 2.5, "float32"), ("bool", 2, "int64"), ("bool", 2.5, "float32"), ("bool", True, "bool"),
]


@pytest.mark.parametrize("dtype,scalar,out", SCALAR_CASES)
def test_python_scalars_promote_only_across_categories(device, dtype, scalar, out):
    _skip_float16(device, dtype)
    x_np = values(dtype, "a")
    x = tg.Tensor(x_np, device=device)
    mask = [True, False, True]
    scalar_ops = [
        (operator.add, np.add), (operator.mul, np.multiply), (lambda a, s: s * a, lambda a, s: s * a),
        (tg.maximum, np.maximum),
        (lambda a, s: tg.where(tg.Tensor(mask, device=device), a, s), lambda a, s: np.where(mask, a, s)),
    ]
    for op, ref in scalar_ops:
        z = op(x, scalar)
        assert z.dtype == np.dtype(out), (dtype, scalar)
        want = np.asarray(ref(x_np.astype(np.float64), float(scalar))).astype(out)
        np.testing.assert_array_equal(z.numpy(), want)
    div = x / scalar if scalar is not True else x / 1
    assert div.dtype == (np.dtype(dtype) if dtype.startswith("float") else np.float32)


def test_zero_dim_tensors_promote_like_python_numbers():
    v = tg.Tensor(np.ones(3, np.float16))
    assert (v * tg.Tensor(np.float64(2.0))).dtype == np.float16  # same category: the n-d tensor decides
    assert (tg.Tensor(np.arange(3)) * tg.Tensor(np.float64(2.0))).dtype == np.float64  # across: the 0-d one
    assert (tg.Tensor(np.float16(1.0)) * tg.Tensor(np.float64(2.0))).dtype == np.float64  # both 0-d: wider


def test_float16_times_a_scalar_stays_float16_and_rounds_once():
    x = tg.Tensor(np.array([1.0, 3.0, 1000.0], np.float16))
    z = x * 2.5
    assert z.dtype == np.float16
    np.testing.assert_array_equal(z.numpy(), (np.array([1.0, 3.0, 1000.0]) * 2.5).astype(np.float16))


def test_errors_where_mixing_is_not_allowed(device):
    b = tg.Tensor([True, False], device=device)
    with pytest.raises(TypeError, match="Sub: not supported for two bool operands"):
        _ = b - b
    with pytest.raises(TypeError, match="Sub: not supported for two bool operands"):
        _ = b - True
    with pytest.raises(TypeError, match="Neg: negation of a bool tensor"):
        _ = -b
    with pytest.raises(TypeError, match="MatMul: not supported for two bool operands"):
        _ = b @ b
    i = tg.Tensor(np.array([1, 2], np.int8), device=device)
    with pytest.raises(tg.InputError, match="does not fit the tensor's dtype int8"):
        _ = i + 1000
    with pytest.raises(tg.InputError, match="negative integer powers"):
        _ = i ** -1
    assert (i.float() ** -1).dtype == np.float32
    if device == "cpu":  # the strict backend does not map uint64 (see its _names)
        u = tg.Tensor(np.array([1, 2], np.uint64), device=device)
        with pytest.raises(TypeError, match="no integer dtype holds both uint64 and int8"):
            _ = u + i


def test_device_mixing_is_an_error_before_any_conversion():
    a = tg.Tensor(np.ones(2, np.float32), device="cpu")
    b = tg.Tensor(np.ones(2, np.float64), device="strict")
    for op in (operator.add, operator.mul, operator.matmul, tg.maximum):
        with pytest.raises(RuntimeError, match="expected all tensors on one device"):
            op(a, b)
    with pytest.raises(RuntimeError, match="expected all tensors on one device"):
        tg.where(tg.Tensor([True, False]), a, b)


def test_layers_follow_the_rule_through_their_ops():
    """A float64 input to a float32 Linear: the product promotes, and the weight's gradient stays float32."""
    layer = tg.nn.Linear(3, 2)
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)  # float64
    y = x @ layer.weight.T + layer.bias
    assert y.dtype == np.float64
    y.sum().backward()
    assert layer.weight.grad.dtype == np.float32 and x.grad.dtype == np.float64


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: b * a, lambda a, b: tg.maximum(a, b),
                                lambda a, b: a @ b, lambda a, b: tg.where(tg.Tensor([True, False]), a, b)])
def test_mixing_devices_is_the_error_alone_without_a_dtype_warning(op):
    """Comparing an array_api_strict dtype with a NumPy one warns (UserWarning): no such comparison happens before
    the device check."""
    a, b = tg.Tensor([1.0, 2.0]), tg.Tensor([1.0, 2.0], device="strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="expected all tensors on one device"):
            op(a, b)
