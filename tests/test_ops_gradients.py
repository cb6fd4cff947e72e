"""Property tests of every primitive differentiable op, on every device (the ``device`` fixture).

For each op, on inputs drawn with ``tinygrad_edu.testing.strategies``:

* the gradient: ``gradcheck`` (a random upstream gradient, central differences) on float64 leaves;
* the forward value: float32 inputs against the NumPy reference computed in float64 (float16 on "cpu" for a few ops);
* the conventions at kinks and ties (relu'(0) = 0, tied maxima share the gradient ...), asserted directly;
* the error messages of shape and device mismatches.

Values are kept at least a margin away from kinks (``avoid=``) and ties, so finite differences are meaningful; the
dedicated kink/tie tests check the documented conventions there instead. Shapes stay small (gradcheck evaluates the
op twice per input element).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tinygrad_edu import Tensor, gradcheck
from tinygrad_edu.ops import GetItem
from tinygrad_edu.testing import strategies as tst

# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
F32 = {"rtol": 1e-5, "atol": 1e-6}  # float32 forward vs float64 reference, for O(1) values
F16 = {"rtol": 2e-3, "atol": 1e-3}  # float16: one or two roundings of a result accumulated in float32

def small_shapes(device: str, max_dims: int = 3, max_side: int = 3, min_dims_: int | None = None):
    """Shapes for gradcheck: small sides, so two evaluations per element stay cheap."""
    return tst.shapes(min_dims=min_dims_ or 0, max_dims=max_dims, max_side=max_side)


def leaf(array, device: str) -> Tensor:
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def other_device(device: str) -> str:
    return "strict" if device == "cpu" else "cpu"


def as_float32(*arrays: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The float32 inputs, and their exact values in float64 (for the reference)."""
    low = [np.asarray(a, dtype=np.float32) for a in arrays]
    return low, [a.astype(np.float64) for a in low]


def assert_forward(out: Tensor, expected: np.ndarray, dtype=np.float32, rtol=F32["rtol"], atol=F32["atol"]) -> None:
    """``out`` has ``dtype`` and the reference's shape and values (within tolerances scaled by the values)."""
    assert out.dtype == np.dtype(dtype), f"dtype {out.dtype}, expected {np.dtype(dtype)}"
    got = out.numpy()
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=atol)


def check_op(device: str, fn, reference, arrays: list[np.ndarray], **gradcheck_kwargs) -> None:
    """gradcheck ``fn`` on float64 leaves, then compare its float32 forward value with ``reference`` in float64."""
    gradcheck(fn, [leaf(a, device) for a in arrays], **gradcheck_kwargs)
    low, exact = as_float32(*arrays)
    out = fn(*[Tensor(a, device=device) for a in low])
    assert_forward(out, reference(*exact))


def anywhere(shape):
    return tst.arrays(shape)


def positive(shape):
    return tst.positive_arrays(shape)


def away_from(*kinks: float):
    """Values at least 0.05 from each kink: far beyond gradcheck's eps."""
    return lambda shape: tst.arrays(shape, avoid=kinks, margin=0.05)


@st.composite
def distinct_arrays(draw, shape) -> np.ndarray:
    """Values at least 0.15 apart (a shuffled ladder plus jitter): max/min reductions never tie."""
    size = math.prod(shape)
    rungs = np.array(draw(st.permutations(range(size))), dtype=np.float64)
    jitter = draw(tst.arrays(shape=(size,), magnitude=0.05))
    return np.asarray(((rungs - size / 2) * 0.25 + jitter).reshape(shape))


@st.composite
def separated_pair(draw, shape_a, shape_b) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays with |a - b| >= 0.1 wherever they meet by broadcasting: maximum/minimum never tie.

    a = integer + 0.25 ± 0.2 and b = integer + 0.75 ± 0.2, so a - b is always at least 0.1 from an integer (0 included).
    """
    ints = st.integers(-2, 1)
    a = draw(hnp.arrays(np.int64, shape_a, elements=ints)) + 0.25 + draw(tst.arrays(shape_a, magnitude=0.2))
    b = draw(hnp.arrays(np.int64, shape_b, elements=ints)) + 0.75 + draw(tst.arrays(shape_b, magnitude=0.2))
    return np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)


def axes(ndim: int):
    """A reduction's ``axis``: None, an int (negative too) or a tuple of distinct axes (possibly empty)."""
    if ndim == 0:
        return st.none()
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(single, unique_by=lambda a: a % ndim, max_size=ndim).map(tuple)
    return st.one_of(st.none(), single, several)


def reduced_count(shape: tuple[int, ...], axis) -> int:
    if axis is None:
        return math.prod(shape)
    axis = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axis)


# ----------------------------------------------------------------------------------------------------------------
# elementwise ops of one tensor (scalar operands included): gradient and forward value
# ----------------------------------------------------------------------------------------------------------------
# name: (fn of a Tensor, NumPy reference, strategy of values for a shape)
UNARY = {
    "neg": (lambda x: -x, np.negative, anywhere),
    "exp": (Tensor.exp, np.exp, anywhere),
    "log": (Tensor.log, np.log, positive),
    "sqrt": (Tensor.sqrt, np.sqrt, positive),
    "tanh": (Tensor.tanh, np.tanh, anywhere),
    "sigmoid": (Tensor.sigmoid, lambda a: 1 / (1 + np.exp(-a)), lambda shape: tst.arrays(shape, magnitude=8.0)),
    "relu": (Tensor.relu, lambda a: np.maximum(a, 0.0), away_from(0.0)),
    "abs": (Tensor.abs, np.abs, away_from(0.0)),
    "clip": (lambda x: x.clip(-0.5, 1.0), lambda a: np.clip(a, -0.5, 1.0), away_from(-0.5, 1.0)),
    "clip_min_only": (lambda x: x.clip(min=0.25), lambda a: np.maximum(a, 0.25), away_from(0.25)),
    "clip_max_only": (lambda x: x.clamp(max=-0.25), lambda a: np.minimum(a, -0.25), away_from(-0.25)),
    "maximum_scalar": (lambda x: x.maximum(0.5), lambda a: np.maximum(a, 0.5), away_from(0.5)),
    "minimum_scalar": (lambda x: tg.minimum(0.5, x), lambda a: np.minimum(0.5, a), away_from(0.5)),
    "where_scalar": (lambda x: tg.where(x > 0.5, x, -1.0), lambda a: np.where(a > 0.5, a, -1.0), away_from(0.5)),
    "where_scalar_first": (lambda x: tg.where(x > 0.5, 2.0, x), lambda a: np.where(a > 0.5, 2.0, a), away_from(0.5)),
    "add_scalar": (lambda x: x + 1.5, lambda a: a + 1.5, anywhere),
    "radd_scalar": (lambda x: 1.5 + x, lambda a: 1.5 + a, anywhere),
    "sub_scalar": (lambda x: x - 0.5, lambda a: a - 0.5, anywhere),
    "rsub_scalar": (lambda x: 2 - x, lambda a: 2 - a, anywhere),
    "mul_scalar": (lambda x: x * -3.0, lambda a: a * -3.0, anywhere),
    "rmul_scalar": (lambda x: 0.5 * x, lambda a: 0.5 * a, anywhere),
    "div_scalar": (lambda x: x / 4.0, lambda a: a / 4.0, anywhere),
    "rdiv_scalar": (lambda x: 1.0 / x, lambda a: 1.0 / a, positive),
    "pow_int": (lambda x: x**3, lambda a: a**3, anywhere),
    "pow_zero": (lambda x: x**0, lambda a: a**0, anywhere),
    "pow_negative_float": (lambda x: x**-1.5, lambda a: a**-1.5, positive),
    "pow_half": (lambda x: x**0.5, np.sqrt, positive),
    "rpow": (lambda x: 2.0**x, lambda a: 2.0**a, anywhere),
    "rpow_int_base_below_one": (lambda x: 0.5**x, lambda a: 0.5**a, anywhere),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_op(device, name, data):
    fn, reference, values = UNARY[name]
    x = data.draw(values(small_shapes(device, max_dims=4)), label="x")
    check_op(device, fn, reference, [x])


# ----------------------------------------------------------------------------------------------------------------
# binary ops with broadcasting
# ----------------------------------------------------------------------------------------------------------------
def independent(values_a, values_b):
    return lambda shape_a, shape_b: st.tuples(values_a(shape_a), values_b(shape_b))


# name: (fn of two Tensors, NumPy reference, strategy of the pair of values for a pair of shapes)
BINARY = {
    "add": (lambda a, b: a + b, np.add, independent(anywhere, anywhere)),
    "sub": (lambda a, b: a - b, np.subtract, independent(anywhere, anywhere)),
    "mul": (lambda a, b: a * b, np.multiply, independent(anywhere, anywhere)),
    "div": (lambda a, b: a / b, np.divide, independent(anywhere, positive)),
    "div_negative_divisor": (lambda a, b: a / -b, lambda a, b: a / -b, independent(anywhere, positive)),
    "pow": (lambda a, b: a**b, np.power, independent(positive, anywhere)),
    "maximum": (tg.maximum, np.maximum, separated_pair),
    "minimum": (tg.minimum, np.minimum, separated_pair),
    "maximum_method_swapped": (lambda a, b: b.maximum(a), lambda a, b: np.maximum(b, a), separated_pair),
    "minimum_method_swapped": (lambda a, b: b.minimum(a), lambda a, b: np.minimum(b, a), separated_pair),
}


@pytest.mark.parametrize("name", BINARY)
@given(data=st.data())
def test_binary_op_with_broadcasting(device, name, data):
    fn, reference, values = BINARY[name]
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(min_dims=0, max_dims=3, max_side=3), label="shapes")
    a, b = data.draw(values(shape_a, shape_b), label="a, b")
    check_op(device, fn, reference, [a, b])


def sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reference gradient of an input broadcast to ``g.shape``: sum the new leading axes and the grown size-1 axes."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1:
            g = g.sum(axis=i, keepdims=True)
    return g


@given(data=st.data())
def test_binary_op_gradient_of_one_input_only(device, data):
    """An input that does not require grad gets none, and the other one's gradient is still right."""
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(min_dims=0, max_dims=3, max_side=3))
    a, b = data.draw(tst.arrays(shape_a)), data.draw(tst.positive_arrays(shape_b))
    constant = Tensor(b, device=device)
    gradcheck(lambda x: x * constant + x / constant - constant**x, [leaf(a, device)])
    x = leaf(a, device)
    (x * constant).sum().backward()
    assert constant.grad is None and not constant.requires_grad
    expected = sum_to_shape(np.broadcast_to(b, np.broadcast_shapes(shape_a, shape_b)), shape_a)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


@given(data=st.data())
def test_where_with_broadcasting(device, data):
    shape_c, shape_a, shape_b = data.draw(
        tst.broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), label="shapes"
    )
    condition = data.draw(hnp.arrays(np.bool_, shape_c), label="condition")
    a, b = data.draw(tst.arrays(shape_a), label="a"), data.draw(tst.arrays(shape_b), label="b")
    cond = Tensor(condition, device=device)
    check_op(device, lambda x, y: tg.where(cond, x, y), lambda x, y: np.where(condition, x, y), [a, b])


# ----------------------------------------------------------------------------------------------------------------
# matmul
# ----------------------------------------------------------------------------------------------------------------
@st.composite
def matmul_shapes(draw, kind: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    m, k, n = (draw(st.integers(1, 3), label=s) for s in "mkn")
    batch_a, batch_b = draw(tst.broadcastable_shapes(min_dims=1, max_dims=2, max_side=3), label="batch shapes")
    return {
        "2d@2d": ((m, k), (k, n)),
        "batched@batched": (batch_a + (m, k), batch_b + (k, n)),
        "batched@2d": (batch_a + (m, k), (k, n)),
        "2d@batched": ((m, k), batch_b + (k, n)),
        "1d@2d": ((k,), (k, n)),
        "2d@1d": ((m, k), (k,)),
        "1d@1d": ((k,), (k,)),
        "1d@batched": ((k,), batch_b + (k, n)),
        "batched@1d": (batch_a + (m, k), (k,)),
    }[kind]


MATMUL_KINDS = ["2d@2d", "batched@batched", "batched@2d", "2d@batched", "1d@2d", "2d@1d", "1d@1d", "1d@batched", "batched@1d"]


@pytest.mark.parametrize("kind", MATMUL_KINDS)
@given(data=st.data())
def test_matmul(device, kind, data):
    shape_a, shape_b = data.draw(matmul_shapes(kind), label="shapes")
    a, b = data.draw(tst.arrays(shape_a), label="a"), data.draw(tst.arrays(shape_b), label="b")
    gradcheck(lambda x, y: x @ y, [leaf(a, device), leaf(b, device)])
    low, exact = as_float32(a, b)
    k = a.shape[-1]
    out = Tensor(low[0], device=device) @ Tensor(low[1], device=device)
    assert_forward(out, np.matmul(*exact), atol=1e-6 * k * 4)


@given(data=st.data())
def test_matmul_on_transposed_and_strided_operands(device, data):
    """Non-contiguous operands made inside the graph: a transposed matrix, every other column."""
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    a, b = data.draw(tst.arrays((k, m))), data.draw(tst.arrays((k, 2 * n)))
    gradcheck(lambda x, y: x.T @ y[:, ::2], [leaf(a, device), leaf(b, device)])
    out = Tensor(a, device=device).T @ Tensor(b, device=device)[:, ::2]
    assert_forward(out, a.T @ b[:, ::2], dtype=np.float64, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------------------------------------------
# name: (fn(x, axis, keepdims), NumPy reference, strategy of values for a shape, smallest count of reduced elements)
REDUCTIONS = {
    "sum": (lambda x, ax, kd: x.sum(axis=ax, keepdims=kd), lambda a, ax, kd: np.sum(a, axis=ax, keepdims=kd), anywhere, 0),
    "mean": (lambda x, ax, kd: x.mean(ax, kd), lambda a, ax, kd: np.mean(a, axis=ax, keepdims=kd), anywhere, 1),
    "max": (lambda x, ax, kd: x.max(axis=ax, keepdims=kd), lambda a, ax, kd: np.max(a, axis=ax, keepdims=kd), distinct_arrays, 1),
    "min": (lambda x, ax, kd: x.min(axis=ax, keepdims=kd), lambda a, ax, kd: np.min(a, axis=ax, keepdims=kd), distinct_arrays, 1),
    "var_correction_0": (
        lambda x, ax, kd: x.var(ax, kd, correction=0),
        lambda a, ax, kd: np.var(a, axis=ax, keepdims=kd, ddof=0),
        anywhere,
        1,
    ),
    "var_correction_1": (
        lambda x, ax, kd: x.var(axis=ax, keepdims=kd),  # the default correction is 1
        lambda a, ax, kd: np.var(a, axis=ax, keepdims=kd, ddof=1),
        anywhere,
        2,
    ),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reduction(device, name, data):
    fn, reference, values, min_count = REDUCTIONS[name]
    shape = data.draw(small_shapes(device, max_dims=4), label="shape")
    axis = data.draw(axes(len(shape)), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    count = reduced_count(shape, axis)
    assume(count >= min_count)  # no mean/max of nothing, var with n - correction > 0
    x = data.draw(values(shape), label="x")
    gradcheck(lambda t: fn(t, axis, keepdims), [leaf(x, device)])
    (low,), (exact,) = as_float32(x)
    out = fn(Tensor(low, device=device), axis, keepdims)
    assert_forward(out, reference(exact, axis, keepdims), atol=1e-6 * max(count, 1) * 4)


@pytest.mark.parametrize("name", ["sum", "max", "var_correction_0"])
@given(data=st.data())
def test_reduction_after_permute_and_strided_slice(device, name, data):
    """Reductions of non-contiguous views made inside the graph."""
    fn, reference, values, _ = REDUCTIONS[name]
    shape = data.draw(small_shapes(device, min_dims_=2, max_dims=3), label="shape")
    x = data.draw(values(shape), label="x")
    dims = tuple(reversed(range(len(shape))))
    gradcheck(lambda t: fn(t.permute(*dims)[::2], 0, False), [leaf(x, device)])
    out = fn(Tensor(x, device=device).permute(*dims)[::2], 0, False)
    assert_forward(out, reference(np.transpose(x, dims)[::2], 0, False), dtype=np.float64, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# movement ops: reshape, transpose, permute, expand, flatten, unsqueeze, squeeze, pad, basic indexing, split
# ----------------------------------------------------------------------------------------------------------------
@st.composite
def reshape_args(draw, shape, device):
    size = math.prod(shape)
    return (draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1, *shape), (*shape, 1), (size, 1, -1)])),)


@st.composite
def transpose_args(draw, shape, device):
    assume(len(shape) >= 2)  # below two dims transpose returns the tensor itself
    ndim = len(shape)
    return draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))


@st.composite
def permute_args(draw, shape, device):
    return (tuple(draw(st.permutations(range(len(shape))))),)


@st.composite
def expand_args(draw, shape, device):
    """A target with new leading axes and size-1 axes grown; -1 keeps a size."""
    leading = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    grown = tuple(draw(st.integers(1, 3)) if n == 1 else draw(st.sampled_from([n, -1])) for n in shape)
    return (leading + grown,)


@st.composite
def flatten_args(draw, shape, device):
    ndim = max(len(shape), 1)
    start = draw(st.integers(0, ndim - 1))
    end = draw(st.integers(start, ndim - 1))
    return draw(st.sampled_from([start, start - ndim])), draw(st.sampled_from([end, end - ndim]))


@st.composite
def unsqueeze_args(draw, shape, device):
    return (draw(st.integers(-len(shape) - 1, len(shape))),)


@st.composite
def squeeze_args(draw, shape, device):
    if not shape:
        return (None,)
    return (draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))),)


@st.composite
def pad_args(draw, shape, device):
    pairs = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
    return (draw(st.sampled_from([pairs, 1])),)


@st.composite
def basic_index_args(draw, shape, device):
    return (draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True)),)


@st.composite
def split_args(draw, shape, device):
    assume(len(shape) >= 1)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if draw(st.booleans()):
        return draw(st.integers(1, n + 1)), axis
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    sections = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
    return sections, axis


def _expand_reference(a, shape):
    kept = (None,) * (len(shape) - a.ndim) + a.shape
    return np.broadcast_to(a, tuple(k if n == -1 else n for n, k in zip(shape, kept)))


def _flatten_reference(a, start, end):
    if a.ndim == 0:
        return a.reshape(1)
    start, end = start % a.ndim, end % a.ndim
    return a.reshape(a.shape[:start] + (-1,) + a.shape[end + 1 :])


def _pad_reference(a, pad_width):
    return a.copy() if a.ndim == 0 else np.pad(a, pad_width)  # np.pad refuses the empty pad_width of a 0-d array


def _squeeze_reference(a, dim):
    if dim is None:
        return np.squeeze(a)
    return np.squeeze(a, dim) if a.shape[dim] == 1 else a


def _split_reference(a, size_or_sections, axis):
    n = a.shape[axis]
    if isinstance(size_or_sections, int):
        return np.split(a, list(range(size_or_sections, n, size_or_sections)), axis=axis)
    return np.split(a, list(np.cumsum(size_or_sections)[:-1]), axis=axis)


# name: (strategy of args for a shape and a device, fn(tensor, *args), NumPy reference(array, *args))
MOVEMENT = {
    "reshape": (reshape_args, lambda t, s: t.reshape(s), lambda a, s: np.reshape(a, s)),
    "view_varargs": (reshape_args, lambda t, s: t.view(*s), lambda a, s: np.reshape(a, s)),
    "transpose": (transpose_args, lambda t, i, j: t.transpose(i, j), lambda a, i, j: np.swapaxes(a, i, j)),
    "T": (lambda shape, device: st.just(()), lambda t: t.T, lambda a: a.T),
    "permute": (permute_args, lambda t, dims: t.permute(*dims), lambda a, dims: np.transpose(a, dims)),
    "expand": (expand_args, lambda t, s: t.expand(s), _expand_reference),
    "flatten": (flatten_args, lambda t, i, j: t.flatten(i, j), _flatten_reference),
    "unsqueeze": (unsqueeze_args, lambda t, d: t.unsqueeze(d), np.expand_dims),
    "squeeze": (squeeze_args, lambda t, d: t.squeeze(d), _squeeze_reference),
    "pad": (pad_args, lambda t, p: t.pad(p), _pad_reference),
    "getitem_basic": (basic_index_args, lambda t, i: t[i], lambda a, i: a[i]),
    "split": (split_args, lambda t, s, ax: tg.split(t, s, axis=ax), _split_reference),
    "split_method": (split_args, lambda t, s, ax: t.split(s, ax), _split_reference),
}


@pytest.mark.parametrize("name", MOVEMENT)
@given(data=st.data())
def test_movement_op(device, name, data):
    args_for, fn, reference = MOVEMENT[name]
    shape = data.draw(small_shapes(device, max_dims=4), label="shape")
    args = data.draw(args_for(shape, device), label="args")
    x = data.draw(tst.arrays(shape), label="x")
    gradcheck(lambda t: fn(t, *args), [leaf(x, device)])
    # movement ops copy values: the float32 forward must be exact
    (low,), _ = as_float32(x)
    out, expected = fn(Tensor(low, device=device), *args), reference(low, *args)
    outs, expecteds = (out, expected) if isinstance(out, tuple) else ((out,), (expected,))
    assert len(outs) == len(expecteds)
    for o, e in zip(outs, expecteds):
        assert o.dtype == np.float32
        np.testing.assert_array_equal(o.numpy(), e)


@pytest.mark.parametrize(
    "index",
    [(None,), (slice(None), None), (None, Ellipsis, -1), (Ellipsis, None), (0, None, slice(None, None, -1))],
    ids=["leading", "middle", "with_ellipsis", "trailing", "with_int_and_reversed_slice"],
)
def test_getitem_newaxis(device, index):
    x = np.arange(6.0).reshape(2, 3)
    gradcheck(lambda t: t[index] * t[index], [leaf(x, device)])
    np.testing.assert_array_equal(Tensor(x, device=device)[index].numpy(), x[index])


@given(data=st.data())
def test_getitem_negative_steps_and_indices(device, data):
    """Reversed and strided slices with negative starts, then an op on the (non-contiguous) view."""
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(tst.arrays(shape), label="x")
    index = tuple(data.draw(st.sampled_from([slice(None, None, -1), slice(-1, None, -2), -1, slice(-3, None, 2)])) if n >= 3
                  else data.draw(st.sampled_from([slice(None, None, -1), -1, 0])) for n in shape)
    check_op(device, lambda t: t[index].exp(), lambda a: np.exp(a[index]), [x])


# ----------------------------------------------------------------------------------------------------------------
# integer-array indexing (repeated indices: the backward is a scatter-add) and boolean masks
# ----------------------------------------------------------------------------------------------------------------
@st.composite
def repeated_integer_index(draw, shape) -> tuple[np.ndarray, ...]:
    """One integer array per axis (negative entries too), the same length, with at least one repeated position."""
    length = draw(st.integers(1, 4))
    columns = [draw(hnp.arrays(np.int64, (length,), elements=st.integers(-n, n - 1))) for n in shape]
    # repeat the first position at the end: some element is picked (at least) twice
    return tuple(np.concatenate([c, c[:1]]) for c in columns)


def scatter_add_reference(shape, index, upstream) -> np.ndarray:
    expected = np.zeros(shape)
    np.add.at(expected, index, upstream)
    return expected


@given(data=st.data())
def test_integer_array_index_with_repeats_adds_gradients(device, data):
    """GetItem on integer arrays (one per axis, as the array API allows), called as the op itself."""
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3), label="shape")
    index = data.draw(repeated_integer_index(shape), label="index")
    x = data.draw(tst.arrays(shape), label="x")
    t = leaf(x, device)
    device_index = tuple(t.backend.asarray(i) for i in index)
    gradcheck(lambda v: GetItem.apply(v, index=device_index), [t])
    out = GetItem.apply(t, index=device_index)
    np.testing.assert_array_equal(out.numpy(), x[index])
    upstream = data.draw(tst.arrays(out.shape), label="upstream")
    out.backward(upstream)
    # a plain assignment would keep only one of the repeated position's gradients
    np.testing.assert_allclose(t.grad.numpy(), scatter_add_reference(shape, index, upstream), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape, index",
    [((4,), [0, 0, 2]), ((4,), np.array([-1, 3, 3])), ((3, 4), ([0, 0, -1], [1, 1, 3])), ((3, 4), (1, [3, 3, 0])),
     ((3, 2), [2, 0, 2])],
    ids=["list", "ndarray", "list_per_axis", "int_and_list", "rows"],  # indices the array API allows: every axis indexed
)
def test_integer_array_index_through_getitem(device, shape, index):
    x = np.arange(float(math.prod(shape))).reshape(shape)
    t = leaf(x, device)
    out = t[index]
    np.testing.assert_array_equal(out.numpy(), x[index])
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(t.grad.numpy(), scatter_add_reference(x.shape, index, np.ones(out.shape)))


@given(data=st.data())
def test_integer_array_index_after_ellipsis_on_cpu(data):
    """``x[..., idx]`` (NumPy allows an integer array after an ellipsis; the array API standard does not)."""
    shape = data.draw(small_shapes("cpu", min_dims_=1, max_dims=3), label="shape")
    last = shape[-1]
    picks = data.draw(st.lists(st.integers(-last, last - 1), min_size=1, max_size=4), label="picks")
    picks = picks + picks[:1]
    x = data.draw(tst.arrays(shape), label="x")
    check_op("cpu", lambda t: t[..., picks], lambda a: a[..., picks], [x])


@given(data=st.data())
def test_boolean_mask_index(device, data):
    """A boolean mask (over all axes or the leading ones) picks each element at most once: the op itself."""
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3), label="shape")
    mask_dims = data.draw(st.integers(1, len(shape)), label="mask dims")
    mask = data.draw(hnp.arrays(np.bool_, shape[:mask_dims]), label="mask")
    x = data.draw(tst.arrays(shape), label="x")
    t = leaf(x, device)
    device_index = (t.backend.asarray(mask),)
    gradcheck(lambda v: GetItem.apply(v, index=device_index), [t])
    np.testing.assert_array_equal(GetItem.apply(t, index=device_index).numpy(), x[mask])


def test_boolean_mask_through_getitem(device):
    x = np.array([[-1.0, 2.0, 0.5], [3.0, -4.0, 1.5]])
    t = leaf(x, device)
    out = t[t > 0.0]  # a mask Tensor, as in x[x > 0]
    np.testing.assert_array_equal(out.numpy(), x[x > 0])
    out.backward(np.arange(1.0, 5.0))
    np.testing.assert_array_equal(t.grad.numpy(), [[0.0, 1.0, 2.0], [3.0, 0.0, 4.0]])


# ----------------------------------------------------------------------------------------------------------------
# functions of several tensors: concatenate, stack
# ----------------------------------------------------------------------------------------------------------------
@given(data=st.data())
def test_concatenate(device, data):
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3), label="shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="sizes along axis")
    arrays = [data.draw(tst.arrays(shape[: axis % len(shape)] + (n,) + shape[axis % len(shape) + 1 :])) for n in sizes]
    check_op(device, lambda *ts: tg.concatenate(ts, axis=axis), lambda *a: np.concatenate(a, axis=axis), arrays)
    check_op(device, lambda *ts: tg.cat(list(ts), axis), lambda *a: np.concatenate(a, axis=axis), arrays)


@given(data=st.data())
def test_stack(device, data):
    shape = data.draw(small_shapes(device, max_dims=3), label="shape")
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    count = data.draw(st.integers(1, 3), label="count")
    arrays = [data.draw(tst.arrays(shape)) for _ in range(count)]
    check_op(device, lambda *ts: tg.stack(ts, axis=axis), lambda *a: np.stack(a, axis=axis), arrays)


@given(data=st.data())
def test_same_tensor_used_twice_accumulates(device, data):
    """One leaf reaching the output along several paths (concatenated with itself, through split pieces)."""
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3), label="shape")
    x = data.draw(tst.arrays(shape), label="x")
    check_op(device, lambda t: tg.concatenate([t, t * t, t], axis=0), lambda a: np.concatenate([a, a * a, a]), [x])
    check_op(device, lambda t: sum(p.exp() for p in tg.split(t, 1, axis=0)) * t[:1],
             lambda a: np.exp(a).sum(axis=0, keepdims=True) * a[:1], [x])


# ----------------------------------------------------------------------------------------------------------------
# non-contiguous inputs (tst.layouts) on cpu, and views made inside the graph on every device
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["exp", "sigmoid", "relu", "mul_scalar", "pow_int", "clip"])
@given(data=st.data())
def test_unary_op_on_non_contiguous_input(name, data):
    fn, reference, values = UNARY[name]
    x = data.draw(values(small_shapes("cpu", min_dims_=1, max_dims=3)), label="x")
    laid_out = data.draw(tst.layouts(x), label="layout")
    note(f"contiguous: {laid_out.flags.c_contiguous}, strides: {laid_out.strides}")
    check_op("cpu", fn, reference, [laid_out])


@given(data=st.data())
def test_binary_ops_and_reductions_on_non_contiguous_inputs(data):
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(min_dims=1, max_dims=3, max_side=3), label="shapes")
    a = data.draw(tst.layouts(data.draw(tst.arrays(shape_a))), label="a")
    b = data.draw(tst.layouts(data.draw(tst.positive_arrays(shape_b))), label="b")
    check_op("cpu", lambda x, y: (x * y - x / y).sum(axis=-1), lambda x, y: (x * y - x / y).sum(axis=-1), [a, b])
    check_op("cpu", lambda x, y: (x + y).mean(axis=0, keepdims=True), lambda x, y: (x + y).mean(axis=0, keepdims=True), [a, b])


@given(data=st.data())
def test_matmul_on_non_contiguous_inputs(data):
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    a = data.draw(tst.layouts(data.draw(tst.arrays((2, m, k)))), label="a")
    b = data.draw(tst.layouts(data.draw(tst.arrays((k, n)))), label="b")
    gradcheck(lambda x, y: x @ y, [leaf(a, "cpu"), leaf(b, "cpu")])
    low, exact = as_float32(a, b)
    assert_forward(Tensor(low[0]) @ Tensor(low[1]), exact[0] @ exact[1], atol=4e-6 * k)


@pytest.mark.parametrize(
    "name, fn, reference",
    [
        ("exp of a transpose", lambda t: t.permute(1, 0).exp(), lambda a: np.exp(a.T)),
        ("tanh of every other row", lambda t: t[::2].tanh(), lambda a: np.tanh(a[::2])),
        ("reversed columns times the matrix", lambda t: t[:, ::-1] * t, lambda a: a[:, ::-1] * a),
        ("sum of a transpose", lambda t: t.T.sum(axis=1), lambda a: a.T.sum(axis=1)),
        ("max of a strided view", lambda t: t[:, ::2].max(axis=0), lambda a: a[:, ::2].max(axis=0)),
        ("pad of a transpose", lambda t: t.T.pad(((1, 0), (0, 1))), lambda a: np.pad(a.T, ((1, 0), (0, 1)))),
        ("expand of a column", lambda t: t[:, :1].expand(3, 4) * t, lambda a: np.broadcast_to(a[:, :1], (3, 4)) * a),
    ],
)
@settings(max_examples=10)
@given(data=st.data())
def test_op_on_a_view_made_in_the_graph(device, name, fn, reference, data):
    x = data.draw(distinct_arrays((3, 4)), label="x")  # distinct: max has no ties
    check_op(device, fn, reference, [x])


# ----------------------------------------------------------------------------------------------------------------
# dtype and device conversions
# ----------------------------------------------------------------------------------------------------------------
@given(data=st.data())
def test_astype_float32_gradient(device, data):
    x = data.draw(tst.arrays(small_shapes(device)), label="x")
    # the forward rounds to float32: central differences need a wider step and tolerance
    gradcheck(lambda t: t.astype(np.float32).exp(), [leaf(x, device)], eps=1e-3, atol=1e-3)
    t = leaf(x, device)
    y = t.astype(tg.float32)
    assert y.dtype == np.float32 and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), x.astype(np.float32))
    upstream = data.draw(tst.arrays(y.shape, dtype="float32"), label="upstream")
    (y * Tensor(upstream, device=device)).sum().backward()
    assert t.grad.dtype == np.float64  # the gradient is cast back to the input's dtype
    np.testing.assert_array_equal(t.grad.numpy(), upstream.astype(np.float64))


@pytest.mark.parametrize("cast", [lambda t: t.astype(np.float16), Tensor.half], ids=["astype", "half"])
@given(x=tst.arrays(tst.shapes(max_dims=3, max_side=3), dtype="float32"))
def test_cast_to_float16_and_back_on_cpu(cast, x):
    t = Tensor(x, requires_grad=True)
    y = cast(t)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y.numpy(), x.astype(np.float16))
    z = y.double() * 3.0
    z.sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad.numpy(), np.full(x.shape, 3.0, dtype=np.float32))


def test_cast_to_integer_is_not_differentiable(device):
    t = leaf([1.5, -2.5], device)
    y = t.astype(np.int64)
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), [1, -2])


@given(data=st.data())
def test_to_other_device(device, data):
    other = other_device(device)
    x = data.draw(tst.arrays(small_shapes(device)), label="x")
    gradcheck(lambda t: t.to(other).exp() * 2.0, [leaf(x, device)])
    t = leaf(x, device)
    y = t.to(other)
    assert y.device == Tensor(x, device=other).device and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), x)
    upstream = data.draw(tst.arrays(y.shape), label="upstream")
    y.backward(upstream)
    assert t.grad.device == t.device  # moved back
    np.testing.assert_array_equal(t.grad.numpy(), upstream)
    assert t.to(device) is t and t.to(t.device) is t


@pytest.mark.parametrize(
    "make",
    [lambda: Tensor(np.array(2.0), device="strict"), lambda: Tensor(2.0, device="strict"),
     lambda: Tensor(np.array(2.0)).to("strict")],
    ids=["from_0d_array", "from_float", "to_strict"],
)
def test_0d_tensor_keeps_its_shape(make):
    assert make().shape == ()


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reduction_of_0d_tensor_over_axis_0(device, name):
    """``arguments.axes`` accepts axis 0 (and -1) for a 0-d tensor, as PyTorch does."""
    t = leaf(np.array(1.5), device)
    assert t.shape == ()
    out = getattr(t, name)(axis=0)
    assert out.shape == () and out.item() == 1.5
    out.backward()
    assert t.grad.item() == 1.0


# ----------------------------------------------------------------------------------------------------------------
# float16 forward values (cpu only: "strict" has no float16)
# ----------------------------------------------------------------------------------------------------------------
FLOAT16_OPS = {
    "add": (lambda a, b: a + b, np.add, True),
    "mul": (lambda a, b: a * b, np.multiply, True),
    "matmul": (lambda a, b: a @ b, np.matmul, False),
    "sum": (lambda a, b: (a.sum(axis=0), b.sum()), lambda a, b: (a.sum(axis=0), b.sum()), True),
    "mean": (lambda a, b: (a.mean(axis=-1, keepdims=True), b.mean()), lambda a, b: (a.mean(axis=-1, keepdims=True), b.mean()), True),
}


@pytest.mark.parametrize("name", FLOAT16_OPS)
@given(data=st.data())
def test_float16_forward_on_cpu(name, data):
    fn, reference, broadcast = FLOAT16_OPS[name]
    shapes = tst.broadcastable_shapes(min_dims=1, max_dims=4, max_side=4) if broadcast else matmul_shapes("batched@batched")
    shape_a, shape_b = data.draw(shapes, label="shapes")
    a = data.draw(tst.arrays(shape_a, dtype="float16"), label="a")
    b = data.draw(tst.arrays(shape_b, dtype="float16"), label="b")
    out = fn(Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))
    expected = reference(a.astype(np.float64), b.astype(np.float64))
    outs, expecteds = (out, expected) if isinstance(out, tuple) else ((out,), (expected,))
    for o, e in zip(outs, expecteds):
        # sums and products are accumulated in float32 and rounded to float16 once (mean: twice)
        assert_forward(o, e, dtype=np.float16, **F16)


def test_float16_gradients_stay_float16_on_cpu():
    a = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float16), requires_grad=True)
    b = Tensor(np.array([0.5, -1.0], dtype=np.float16), requires_grad=True)
    ((a @ b) * a.sum(axis=1) + a.mean()).sum().backward()
    assert a.grad.dtype == np.float16 and b.grad.dtype == np.float16
    # d/db sum_i (a b)_i s_i = a^T s, s = row sums = [3, 7]
    np.testing.assert_allclose(b.grad.numpy().astype(np.float64), [1 * 3 + 3 * 7, 2 * 3 + 4 * 7], rtol=1e-3)


# ----------------------------------------------------------------------------------------------------------------
# kinks and ties: the documented conventions, asserted directly (not by finite differences)
# ----------------------------------------------------------------------------------------------------------------
def grad_of(fn, values, device, upstream):
    t = leaf(values, device)
    fn(t).backward(np.asarray(upstream, dtype=np.float64))
    return t.grad.numpy()


def test_relu_gradient_at_zero_is_zero(device):
    grad = grad_of(Tensor.relu, [-1.0, 0.0, -0.0, 2.0], device, [5.0, 7.0, 9.0, 11.0])
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0, 11.0])


def test_abs_gradient_at_zero_is_zero(device):
    grad = grad_of(Tensor.abs, [-1.0, 0.0, -0.0, 2.0], device, [5.0, 7.0, 9.0, 11.0])
    np.testing.assert_array_equal(grad, [-5.0, 0.0, 0.0, 11.0])


@pytest.mark.parametrize(
    "bounds, expected",
    [((0.0, 1.0), [0.0, 2.0, 3.0, 4.0, 0.0]), ((0.0, None), [0.0, 2.0, 3.0, 4.0, 5.0]),
     ((None, 1.0), [1.0, 2.0, 3.0, 4.0, 0.0]), ((0.5, 0.5), [0.0, 0.0, 3.0, 0.0, 0.0])],
    ids=["both", "min_only", "max_only", "min_equals_max"],
)
def test_clip_passes_gradient_on_the_closed_interval(device, bounds, expected):
    grad = grad_of(lambda t: t.clip(*bounds), [-0.5, 0.0, 0.5, 1.0, 1.5], device, [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("op", [tg.maximum, tg.minimum, Tensor.maximum, Tensor.minimum])
def test_maximum_minimum_split_the_gradient_at_ties(device, op):
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([1.0, 5.0, 3.0], device)
    op(a, b).backward(np.array([2.0, 4.0, 6.0]))
    wins = [0.0, 4.0, 0.0] if op in (tg.maximum, Tensor.maximum) else [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(a.grad.numpy(), np.array([1.0, 4.0, 3.0]) - wins)
    np.testing.assert_array_equal(b.grad.numpy(), np.array([1.0, 0.0, 3.0]) + wins)


def test_maximum_tie_split_with_broadcasting(device):
    a, b = leaf([[1.0, 2.0], [2.0, 3.0]], device), leaf([2.0], device)
    tg.maximum(a, b).backward(np.array([[1.0, 2.0], [4.0, 8.0]]))
    np.testing.assert_array_equal(a.grad.numpy(), [[0.0, 1.0], [2.0, 8.0]])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0 + 1.0 + 2.0])  # its own win, then two halves


def test_maximum_with_a_tied_scalar(device):
    a = leaf([0.5, 1.0, 2.0], device)
    a.maximum(1.0).backward(np.array([2.0, 2.0, 2.0]))
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 1.0, 2.0])


@pytest.mark.parametrize(
    "name, values, expected",
    [("max", [1.0, 3.0, 3.0], [0.0, 0.5, 0.5]), ("min", [2.0, 1.0, 1.0, 5.0], [0.0, 0.5, 0.5, 0.0]),
     ("max", [4.0, 4.0, 4.0, 4.0], [0.25] * 4), ("min", [-1.0, 0.0], [1.0, 0.0])],
    ids=["max_pair", "min_pair", "max_all_tied", "min_no_tie"],
)
def test_max_min_reduction_ties_share_the_gradient(device, name, values, expected):
    t = leaf(values, device)
    getattr(t, name)().backward()
    np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_max_reduction_ties_over_an_axis_with_keepdims(device):
    t = leaf([[1.0, 3.0, 3.0], [4.0, 4.0, 4.0]], device)
    t.max(axis=1, keepdims=True).backward(np.array([[2.0], [3.0]]))
    np.testing.assert_array_equal(t.grad.numpy(), [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    t = leaf([[1.0, 3.0, 3.0], [4.0, 4.0, 4.0]], device)
    t.min(axis=0).backward(np.array([2.0, 4.0, 8.0]))
    np.testing.assert_array_equal(t.grad.numpy(), [[2.0, 4.0, 8.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_min_reduction_with_many_ties(device, name, data):
    """Values from {-1, 0, 1} tie often: each extremum gets g / (number of tied extrema), the rest 0."""
    shape = data.draw(small_shapes(device, min_dims_=1, max_dims=3), label="shape")
    axis = data.draw(axes(len(shape)), label="axis")
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 0.0, 1.0])), label="x")
    t = leaf(x, device)
    out = getattr(t, name)(axis=axis, keepdims=True)
    upstream = data.draw(tst.positive_arrays(out.shape), label="upstream")
    out.backward(upstream)
    extreme = getattr(np, name)(x, axis=axis, keepdims=True)
    is_extreme = x == extreme
    ties = np.sum(is_extreme, axis=axis, keepdims=True)
    np.testing.assert_allclose(t.grad.numpy(), np.where(is_extreme, upstream / ties, 0.0), rtol=1e-12)
    np.testing.assert_allclose(np.sum(t.grad.numpy(), axis=axis, keepdims=True), upstream, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# errors: shapes, devices; comparisons are off the tape
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((2, 3), (4, 2)), ((3,), (4,)), ((2, 3), (2,)), ((2, 2, 3), (3, 3, 2)), ((5, 2, 3), (4, 3, 1))],
    ids=["inner", "vectors", "matrix_vector", "batch", "batch_3d"],
)
def test_matmul_shape_mismatch_names_op_and_shapes(device, shape_a, shape_b):
    a, b = Tensor(np.ones(shape_a), device=device), Tensor(np.ones(shape_b), device=device)
    with pytest.raises(ValueError, match="MatMul") as info:
        a @ b
    assert str(shape_a) in str(info.value) and str(shape_b) in str(info.value)


def test_matmul_of_a_0d_operand_raises(device):
    with pytest.raises(ValueError, match="MatMul"):
        Tensor(np.ones((2, 2)), device=device) @ Tensor(np.ones((1, 1)), device=device).sum()


@pytest.mark.parametrize(
    "op_name, fn",
    [("Add", lambda a, b: a + b), ("Sub", lambda a, b: a - b), ("Mul", lambda a, b: a * b),
     ("Div", lambda a, b: a / b), ("Pow", lambda a, b: a**b), ("Maximum", tg.maximum), ("Minimum", tg.minimum)],
)
@pytest.mark.parametrize("shape_a, shape_b", [((2, 3), (4,)), ((2, 1, 3), (2, 2)), ((3,), (2,))])
def test_broadcast_mismatch_names_op_and_shapes(device, op_name, fn, shape_a, shape_b):
    a, b = Tensor(np.ones(shape_a), device=device), Tensor(np.ones(shape_b), device=device)
    with pytest.raises(ValueError, match=op_name) as info:
        fn(a, b)
    assert str(shape_a) in str(info.value) and str(shape_b) in str(info.value)


@pytest.mark.parametrize(
    "target, fragments",
    [((4, 5), ["(2, 3)", "(4, 5)"]), ((-1, 4), ["(2, 3)", "(-1, 4)"]), ((7,), ["(2, 3)", "(7,)"]), ((-1, -1), ["(-1, -1)"])],
)
def test_reshape_mismatch_names_op_and_shapes(device, target, fragments):
    t = Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match="reshape") as info:
        t.reshape(target)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    "fn",
    [lambda a, b: a + b, lambda a, b: b - a, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a**b,
     lambda a, b: a @ b, tg.maximum, tg.minimum, lambda a, b: tg.concatenate([a, b]),
     lambda a, b: tg.stack([a, b]), lambda a, b: tg.where(a > 0, a, b)],
    ids=["add", "rsub", "mul", "div", "pow", "matmul", "maximum", "minimum", "concatenate", "stack", "where"],
)
def test_mixing_devices_raises_naming_both(device, fn):
    a = Tensor(np.ones((2, 2)), requires_grad=True, device=device)
    b = Tensor(np.ones((2, 2)), requires_grad=True, device=other_device(device))
    with pytest.raises(RuntimeError) as info:
        fn(a, b)
    assert a.device in str(info.value) and b.device in str(info.value)


def test_comparison_on_mixed_devices_names_both(device):
    a = Tensor(np.ones(2), device=device)
    b = Tensor(np.ones(2), device=other_device(device))
    with pytest.raises(RuntimeError) as info:
        _ = a < b
    assert a.device in str(info.value) and b.device in str(info.value)


COMPARISONS = {
    "<": (lambda a, b: a < b, np.less), "<=": (lambda a, b: a <= b, np.less_equal),
    ">": (lambda a, b: a > b, np.greater), ">=": (lambda a, b: a >= b, np.greater_equal),
    "==": (lambda a, b: a == b, np.equal), "!=": (lambda a, b: a != b, np.not_equal),
}


@pytest.mark.parametrize("op", COMPARISONS)
@settings(max_examples=10)
@given(data=st.data())
def test_comparisons_are_boolean_and_off_the_tape(device, op, data):
    fn, reference = COMPARISONS[op]
    shape_a, shape_b = data.draw(tst.broadcastable_shapes(min_dims=0, max_dims=3, max_side=3))
    # values from a small set, so == and != see both outcomes
    a = data.draw(hnp.arrays(np.float64, shape_a, elements=st.sampled_from([-1.0, 0.0, 0.5])), label="a")
    b = data.draw(hnp.arrays(np.float64, shape_b, elements=st.sampled_from([-1.0, 0.0, 0.5])), label="b")
    ta, tb = leaf(a, device), leaf(b, device)
    for out, expected in [(fn(ta, tb), reference(a, b)), (fn(ta, 0.0), reference(a, 0.0)), (fn(ta, b), reference(a, b))]:
        assert out.requires_grad is False and out.grad_fn is None
        assert out.dtype == np.bool_
        np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("index", [(slice(None), [2, 0, 2]), ([1, 1],), (slice(None), slice(None), [0, 0]),
                                   (Ellipsis, [1, 0, 1])], ids=["axis1", "rows", "axis2", "after_ellipsis"])
def test_integer_array_along_one_axis_is_a_take(device, index):
    """One 1-D integer array among full slices picks along one axis (``take``), on every backend, repeats adding up."""
    x = np.arange(24.0).reshape(2, 3, 4)
    t = leaf(x, device)
    out = t[index]
    np.testing.assert_array_equal(out.numpy(), x[index])
    gradcheck(lambda v: v[index] * 1.5, [leaf(x, device)])
    out.backward(np.ones(out.shape))
    expected = np.zeros_like(x)
    np.add.at(expected, index, 1.0)
    np.testing.assert_array_equal(t.grad.numpy(), expected)
