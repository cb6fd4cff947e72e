"""PyTorch's names, keywords and semantics on the Tensor: ``dim``/``keepdim`` (with NumPy's ``axis``/``keepdims`` as
aliases, never both), ``max(dim)`` → ``(values, indices)``, ``amax``/``amin``, ``argmax``/``argmin``, and the other
methods a deep-learning course uses. Values are checked against hand-computed numbers (and NumPy where it agrees
with PyTorch), the differentiable ones with ``gradcheck`` in float64 (a random upstream gradient), on every device.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import InputError, Tensor, gradcheck

RNG = np.random.default_rng(0)


def leaf(array, device: str) -> Tensor:
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def distinct(shape, seed: int = 0) -> np.ndarray:
    """float64 values in [-2, 2] at least 0.1 apart (no ties, so max and min are differentiable)."""
    n = math.prod(shape)
    values = (np.random.default_rng(seed).permutation(n) - n / 2) * 0.1 + 0.05
    return values.reshape(shape)


def grad_of(fn, array, device: str, upstream=None) -> np.ndarray:
    x = leaf(array, device)
    out = fn(x)
    out.backward(np.ones(out.shape) if upstream is None else upstream)
    return x.grad.numpy()


# -- the defect: PyTorch's keywords ---------------------------------------------------------------------------------
def test_the_calls_from_the_defect(device):
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a, device=device)
    np.testing.assert_array_equal(x.sum(dim=0).numpy(), a.sum(axis=0))
    np.testing.assert_allclose(x.mean(dim=(0, 2)).numpy(), a.mean(axis=(0, 2)))
    v = x.var(dim=-1, keepdim=True)
    assert v.shape == (2, 3, 1)
    np.testing.assert_allclose(v.numpy(), a.var(axis=-1, keepdims=True, ddof=1))
    values, indices = x.max(dim=1)
    np.testing.assert_array_equal(values.numpy(), a.max(axis=1))
    np.testing.assert_array_equal(indices.numpy(), np.full((2, 4), 2))
    assert indices.dtype == tg.int64


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "amin", "prod", "norm"])
@pytest.mark.parametrize("dim", [0, -1, (0, 2), (-1, 0), None])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_take_dim_and_axis_alike(device, name, dim, keepdim):
    a = distinct((2, 3, 4))
    x = Tensor(a, device=device)
    by_dim = getattr(x, name)(dim=dim, keepdim=keepdim)
    by_axis = getattr(x, name)(axis=dim, keepdims=keepdim)
    mixed = getattr(x, name)(dim=dim, keepdims=keepdim)  # each name may take either spelling on its own
    reference = {
        "sum": np.sum, "mean": np.mean, "amax": np.amax, "amin": np.amin, "prod": np.prod,
        "var": lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1),
        "std": lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims, ddof=1),
        "norm": lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims)),
    }[name](a, axis=dim, keepdims=keepdim)
    for out in (by_dim, by_axis, mixed):
        assert out.shape == np.shape(reference)
        np.testing.assert_allclose(out.numpy(), reference, rtol=1e-12, atol=1e-12)


def test_keepdim_shapes_and_negative_dims_follow_pytorch():
    x = Tensor(np.ones((2, 3, 4)))
    assert x.sum(dim=1, keepdim=True).shape == (2, 1, 4)
    assert x.sum(dim=(0, 2), keepdim=True).shape == (1, 3, 1)
    assert x.sum(dim=-2).shape == (2, 4)
    assert x.sum(keepdim=True).shape == (1, 1, 1)
    assert x.max(dim=-1, keepdim=True).values.shape == (2, 3, 1)
    assert x.max(dim=-1, keepdim=True).indices.shape == (2, 3, 1)
    assert x.argmax(dim=0, keepdim=True).shape == (1, 3, 4)
    assert x.argmax(keepdim=True).shape == (1, 1, 1)
    assert x.all(dim=(0, 1)).shape == (4,) and x.any(dim=-1, keepdim=True).shape == (2, 3, 1)
    assert x.sum(0, True).shape == (1, 3, 4)  # positionally (dim, keepdim), as PyTorch


# -- both spellings at once ---------------------------------------------------------------------------------------
x23 = Tensor(np.ones((2, 3)))
BOTH_DIMS = {
    "sum": lambda: x23.sum(dim=0, axis=0),
    "mean": lambda: x23.mean(dim=0, axis=1),
    "var": lambda: x23.var(dim=0, axis=0),
    "std": lambda: x23.std(dim=0, axis=0),
    "max": lambda: x23.max(dim=0, axis=0),
    "min": lambda: x23.min(dim=0, axis=0),
    "amax": lambda: x23.amax(dim=0, axis=0),
    "amin": lambda: x23.amin(dim=0, axis=0),
    "argmax": lambda: x23.argmax(dim=0, axis=0),
    "argmin": lambda: x23.argmin(dim=0, axis=0),
    "prod": lambda: x23.prod(dim=0, axis=0),
    "norm": lambda: x23.norm(dim=0, axis=0),
    "all": lambda: x23.all(dim=0, axis=0),
    "any": lambda: x23.any(dim=0, axis=0),
    "split": lambda: x23.split(1, dim=0, axis=0),
    "chunk": lambda: x23.chunk(2, dim=0, axis=0),
    "squeeze": lambda: x23.squeeze(dim=0, axis=0),
    "unsqueeze": lambda: x23.unsqueeze(dim=0, axis=0),
    "cat": lambda: tg.cat([x23, x23], dim=0, axis=0),
    "stack": lambda: tg.stack([x23, x23], dim=0, axis=0),
    "split ": lambda: tg.split(x23, 1, dim=0, axis=0),
    "softmax": lambda: F.softmax(x23, dim=0, axis=0),
    "log_softmax": lambda: F.log_softmax(x23, dim=0, axis=0),
    "crelu": lambda: F.crelu(x23, dim=0, axis=0),
    "maxout": lambda: F.maxout(x23, 1, dim=0, axis=0),
}


@pytest.mark.parametrize("method", BOTH_DIMS)
def test_dim_and_axis_together_is_a_type_error_naming_the_method(method):
    with pytest.raises(TypeError, match=rf"^{method.strip()}\(\): got both dim=0 and its NumPy alias axis=\d; pass only one"):
        BOTH_DIMS[method]()


@pytest.mark.parametrize("method", ["sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin",
                                    "prod", "norm", "all", "any"])
def test_keepdim_and_keepdims_together_is_a_type_error(method):
    with pytest.raises(TypeError, match=rf"^{method}\(\): got both keepdim=True and its NumPy alias keepdims=False"):
        getattr(x23, method)(dim=0, keepdim=True, keepdims=False)


def test_bad_dims_name_the_method_and_the_argument():
    with pytest.raises(ValueError, match=r"^axis 2 is out of range for a tensor with 2 dimension\(s\) in sum\(\)"):
        x23.sum(dim=2)
    with pytest.raises(ValueError, match=r"axis -3 is out of range .* in amax\(\)"):
        x23.amax(dim=(0, -3))
    with pytest.raises(ValueError, match=r"repeated axis in \(0, -2\) in mean\(\)"):
        x23.mean(dim=(0, -2))
    with pytest.raises(TypeError, match=r"^var\(\): dim must be an int or a tuple of ints, got 1.5"):
        x23.var(dim=1.5)
    with pytest.raises(TypeError, match=r"^sum\(\): keepdim must be a bool, got int"):
        x23.sum(dim=0, keepdim=1)
    with pytest.raises(ValueError, match=r"^argmax\(\): dim=2 is out of range for a tensor with 2 dimension"):
        x23.argmax(dim=2)
    with pytest.raises(TypeError, match=r"^argmin\(\): dim must be an int, got tuple"):
        x23.argmin(dim=(0, 1))
    with pytest.raises(TypeError, match=r"^max\(\): dim must be a single int.*amax\(dim\)"):
        x23.max(dim=(0, 1))
    with pytest.raises(ValueError, match=r"^split\(\): dim=-3 is out of range"):
        x23.split(1, dim=-3)
    with pytest.raises(TypeError, match=r"^unsqueeze\(\): missing the dim argument"):
        x23.unsqueeze()
    with pytest.raises(TypeError, match=r"^var\(\): got both correction=0 and unbiased=True"):
        x23.var(correction=0, unbiased=True)


def test_errors_are_raised_before_anything_changes(device):
    x = leaf(np.ones((2, 3)), device)
    for call in (lambda: x.sum(dim=0, axis=0), lambda: x.max(dim=(0, 1)), lambda: x.norm(p=3),
                 lambda: x.masked_fill(x, 0.0), lambda: x.repeat(2), lambda: x.chunk(0)):
        with pytest.raises((TypeError, ValueError)):
            call()
    assert x._version == 0 and x.grad is None and x.is_leaf
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 3)))


# -- max and min: values, or (values, indices) --------------------------------------------------------------------
TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 2.0], [0.5, -4.0, 0.5, -4.0]])


def test_max_dim_returns_values_and_the_first_index_at_ties(device):
    result = Tensor(TIES, device=device).max(dim=1)
    assert type(result).__name__ == "max" and result._fields == ("values", "indices")
    values, indices = result
    np.testing.assert_array_equal(values.numpy(), [3.0, 2.0, 0.5])
    np.testing.assert_array_equal(indices.numpy(), [1, 0, 0])  # PyTorch: the index of the first maximal value
    assert indices.dtype == tg.int64 and not indices.requires_grad
    values, indices = Tensor(TIES, device=device).min(dim=0)
    np.testing.assert_array_equal(values.numpy(), [0.5, -4.0, -1.0, -4.0])
    np.testing.assert_array_equal(indices.numpy(), [2, 2, 1, 2])
    assert type(Tensor(TIES).min(dim=0)).__name__ == "min"


def test_max_dim_sends_the_whole_gradient_to_the_returned_index(device):
    """PyTorch: max(dim)/min(dim) propagate the gradient only to a single index; amax/amin share it among ties."""
    g = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(grad_of(lambda t: t.max(dim=1).values, TIES, device, g),
                                  [[0, 10, 0, 0], [20, 0, 0, 0], [30, 0, 0, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: t.min(dim=1).values, TIES, device, g),
                                  [[0, 0, 0, 10], [0, 0, 20, 0], [0, 30, 0, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amax(dim=1), TIES, device, g),
                                  [[0, 5, 5, 0], [20 / 3, 20 / 3, 0, 20 / 3], [15, 0, 15, 0]])
    np.testing.assert_array_equal(grad_of(lambda t: t.amin(dim=1), TIES, device, g),
                                  [[0, 0, 0, 10], [0, 0, 20, 0], [0, 15, 0, 15]])
    # max(axis=) (NumPy's alias) and max() keep the shared gradient, as amax and PyTorch's max() do
    np.testing.assert_array_equal(grad_of(lambda t: t.max(axis=1), TIES, device, g),
                                  grad_of(lambda t: t.amax(dim=1), TIES, device, g))
    np.testing.assert_array_equal(grad_of(lambda t: t.max(), TIES, device),
                                  [[0, 0.5, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_max_forms(device):
    x = Tensor(TIES, device=device)
    assert x.max().shape == () and x.max().item() == 3.0 and x.min().item() == -4.0
    assert x.max(axis=1).shape == (3,)  # NumPy's axis: values only
    values, indices = x.max(1)  # positional: PyTorch's dim, (values, indices)
    np.testing.assert_array_equal(indices.numpy(), TIES.argmax(axis=1))
    np.testing.assert_array_equal(values.numpy(), TIES.max(axis=1))
    assert x.max(axis=(0, 1), keepdims=True).shape == (1, 1)
    np.testing.assert_array_equal(x.max(Tensor(np.full((3, 4), 1.5), device=device)).numpy(), np.maximum(TIES, 1.5))
    np.testing.assert_array_equal(x.min(Tensor([0.0, 0.0, 0.0, 0.0], device=device)).numpy(), np.minimum(TIES, 0.0))
    values, indices = x.max(dim=0, keepdim=True)
    assert values.shape == indices.shape == (1, 4)
    values, indices = x.max(dim=-1)
    np.testing.assert_array_equal(indices.numpy(), [1, 0, 0])
    with pytest.raises(TypeError, match=r"max\(other\): the elementwise max with a tensor takes no dim"):
        x.max(x, keepdim=True)
    with pytest.raises(InputError, match=r"^max: cannot reduce over an empty dim: the tensor has shape \(3, 0\)"):
        Tensor(np.zeros((3, 0)), device=device).max(dim=1)
    values, indices = Tensor(np.zeros((0, 3)), device=device).max(dim=1)  # nothing to reduce over no rows
    assert values.shape == indices.shape == (0,)
    with pytest.raises(InputError, match=r"^amin: cannot reduce over an empty dim"):
        Tensor(np.zeros((3, 0)), device=device).amin(dim=(0, 1))
    assert Tensor(np.zeros((0, 3)), device=device).amax(dim=1).shape == (0,)


def test_max_dim_of_0d_int_bool_and_nan(device):
    values, indices = Tensor(2.5, device=device).max(dim=0)
    assert values.shape == indices.shape == () and values.item() == 2.5 and indices.item() == 0
    values, indices = Tensor([[3, 7, 7], [1, 0, 1]], device=device).max(dim=1)
    assert values.dtype == tg.int64 and values.tolist() == [7, 1] and indices.tolist() == [1, 0]
    values, indices = Tensor([[False, True, True], [False, False, False]], device=device).max(dim=1)
    assert values.dtype == tg.bool_ and values.tolist() == [True, False] and indices.tolist() == [1, 0]
    values, indices = Tensor([[1.0, np.nan, 5.0, np.nan]], device=device).max(dim=1)
    assert np.isnan(values.numpy()[0]) and indices.tolist() == [1]  # NaN propagates, as in PyTorch


def test_max_dim_of_float16_keeps_its_dtype():
    x = Tensor(np.array([[1.0, 60000.0, -3.0]], np.float16), requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.dtype == tg.float16 and values.tolist() == [60000.0] and indices.tolist() == [1]
    values.backward(np.array([2.0], np.float16))
    assert x.grad.dtype == tg.float16 and x.grad.tolist() == [[0.0, 2.0, 0.0]]


def test_argmax_and_argmin(device):
    x = Tensor(TIES, device=device)
    assert x.argmax().item() == 1 and x.argmin().item() == 9  # first of the flattened ties
    assert x.argmax().dtype == tg.int64 and not x.argmax().requires_grad
    assert x.argmax(dim=1).tolist() == [1, 0, 0] and x.argmin(dim=0).tolist() == [2, 2, 1, 2]
    assert x.argmax(dim=-1, keepdim=True).tolist() == [[1], [0], [0]]
    assert x.argmax(axis=0).tolist() == [1, 0, 0, 1]
    assert Tensor(4.0, device=device).argmax(dim=0).item() == 0
    assert Tensor([False, True, True], device=device).argmax().item() == 1
    assert tg.argmax(x, dim=1).tolist() == [1, 0, 0] and tg.argmin(x).item() == 9


# -- the other reductions -----------------------------------------------------------------------------------------
def test_reductions_against_hand_computed_values(device):
    x = Tensor([[1.0, 2.0, 3.0, 6.0], [-2.0, 0.0, 2.0, 4.0]], device=device)
    assert x.sum().item() == 16.0 and x.sum(dim=1).tolist() == [12.0, 4.0]
    assert x.mean(dim=1).tolist() == [3.0, 1.0]
    assert x.var(dim=1).tolist() == pytest.approx([14 / 3, 20 / 3])  # Σ(x - m)² / (n - 1)
    assert x.var(dim=1, correction=0).tolist() == pytest.approx([3.5, 5.0])
    assert x.var(dim=1, unbiased=False).tolist() == pytest.approx([3.5, 5.0])
    assert x.std(dim=1).tolist() == pytest.approx([math.sqrt(14 / 3), math.sqrt(20 / 3)])
    assert x.std(dim=1, correction=0).tolist() == pytest.approx([math.sqrt(3.5), math.sqrt(5.0)])
    assert x.prod(dim=1).tolist() == [36.0, 0.0] and x.prod().item() == 0.0
    assert x.prod(dim=0).tolist() == [-2.0, 0.0, 6.0, 24.0]
    assert x.norm().item() == pytest.approx(math.sqrt(74.0)) and x.norm(dim=1).tolist() == pytest.approx([50**0.5, 24**0.5])
    assert x.norm(p=1, dim=1).tolist() == [12.0, 8.0]
    assert x.norm(p=math.inf, dim=0).tolist() == [2.0, 2.0, 3.0, 6.0]
    assert x.norm(p=-math.inf, dim=1).tolist() == [1.0, 0.0]
    assert x.amax(dim=(0, 1)).item() == 6.0 and x.amin(dim=0).tolist() == [-2.0, 0.0, 2.0, 4.0]
    assert x.all().item() is False and x.all(dim=1).tolist() == [True, False]
    assert x.any(dim=0).tolist() == [True, True, True, True] and (x > 5).any().item() is True


def test_reduction_dtypes_follow_pytorch(device):
    b = Tensor([[True, False, True]], device=device)
    assert b.sum().dtype == tg.int64 and b.sum().item() == 2 and b.sum(dim=1).tolist() == [2]
    i = Tensor([[2, 3], [4, 5]], dtype="int32", device=device)
    assert i.prod().dtype == tg.int64 and i.prod().item() == 120 and i.prod(dim=0).tolist() == [8, 15]
    assert b.prod().dtype == tg.int64 and b.prod().item() == 0
    assert i.sum(dtype="float64").dtype == tg.float64 and i.mean(dtype="float32").item() == 3.5
    assert Tensor(np.ones(3, np.float32), device=device).sum(dtype="float64").dtype == tg.float64
    with pytest.raises(TypeError, match=r"^Mean: needs a floating-point tensor, got dtype int32"):
        i.mean()
    with pytest.raises(TypeError, match=r"^Var: needs a floating-point tensor, got dtype int32"):
        i.var()
    with pytest.raises(TypeError, match=r"^norm: needs a floating-point tensor"):
        i.norm()
    with pytest.raises(ValueError, match=r"^norm\(\): p=3 is not supported"):
        Tensor([1.0]).norm(p=3)


def test_empty_reductions(device):
    e = Tensor(np.zeros((2, 0)), device=device)
    assert e.sum(dim=1).tolist() == [0.0, 0.0] and e.prod(dim=1).tolist() == [1.0, 1.0]
    assert e.prod().item() == 1.0 and e.all().item() is True and e.any().item() is False
    with pytest.raises(InputError, match="argmax: cannot reduce over an empty dim"):
        e.argmax()


def test_norm_of_the_zero_vector_has_gradient_zero_as_in_pytorch(device):
    np.testing.assert_array_equal(grad_of(lambda t: t.norm(), np.zeros(3), device), np.zeros(3))
    np.testing.assert_allclose(grad_of(lambda t: t.norm(dim=1), [[0.0, 0.0], [3.0, 4.0]], device),
                               [[0.0, 0.0], [0.6, 0.8]], rtol=1e-15)
    np.testing.assert_array_equal(grad_of(lambda t: t.norm(p=1), [0.0, -2.0, 3.0], device), [0.0, -1.0, 1.0])


def test_prod_gradient_through_zeros(device):
    """dL/dxᵢ = g · Π_{j≠i} xⱼ, also where some x is 0 (no division by x)."""
    np.testing.assert_array_equal(grad_of(lambda t: t.prod(), [2.0, 0.0, 3.0, 5.0, -1.0], device),
                                  [0.0, -30.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(grad_of(lambda t: t.prod(dim=1), [[2.0, 0.0, 0.0], [1.0, 2.0, 3.0]], device),
                                  [[0.0, 0.0, 0.0], [6.0, 3.0, 2.0]])


def test_std_of_a_constant_has_a_nan_gradient_as_in_pytorch():
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(grad_of(lambda t: t.std(), [2.0, 2.0, 2.0], "cpu")).all()


# -- gradchecks (float64, random upstream) -----------------------------------------------------------------------
GRADCHECKS = {
    "max(dim)": (lambda t: t.max(dim=1).values, (3, 4)),
    "max(dim, keepdim)": (lambda t: t.max(dim=-1, keepdim=True).values * t, (2, 3, 4)),
    "min(dim)": (lambda t: t.min(dim=0).values, (3, 4)),
    "max(axis)": (lambda t: t.max(axis=(0, 2)), (2, 3, 4)),
    "amax": (lambda t: t.amax(dim=(0, -1), keepdim=True), (2, 3, 4)),
    "amin": (lambda t: t.amin(dim=1), (2, 3, 4)),
    "sum(dim)": (lambda t: t.sum(dim=(0, 2)), (2, 3, 4)),
    "mean(dim)": (lambda t: t.mean(dim=-1, keepdim=True), (2, 3, 4)),
    "var(dim)": (lambda t: t.var(dim=(0, 2), keepdim=True), (2, 3, 4)),
    "std": (lambda t: (t.std(dim=1), t.std(correction=0)), (3, 4)),
    "prod": (lambda t: (t.prod(), t.prod(dim=1, keepdim=True), t.prod(dim=(0, 2))), (2, 3, 5)),
    "norm": (lambda t: (t.norm(), t.norm(dim=1), t.norm(p=1, dim=0), t.norm(p=math.inf, dim=-1)), (3, 4)),
    "masked_fill": (lambda t: t.masked_fill(t > 0.3, -1.5), (3, 4)),
    "where": (lambda t: t.where(t < 0.3, t * t), (3, 4)),
    "repeat": (lambda t: t.repeat(2, 1, 3), (3, 2)),
    "chunk": (lambda t: t.chunk(2, dim=1), (2, 5)),
    "split(dim)": (lambda t: t.split([1, 3], dim=-1), (2, 4)),
    "expand_as": (lambda t: t.expand_as(Tensor(np.ones((2, 3, 4)), device=t.device)), (3, 1)),
    "t": (lambda t: t.t() @ t, (3, 2)),
    "clone": (lambda t: t.clone() * t, (3,)),
    "clamp_min/max": (lambda t: (t.clamp_min(0.22), t.clamp_max(-0.33)), (3, 4)),
    "squeeze(tuple)": (lambda t: t.squeeze((0, 2)), (1, 3, 1, 2)),
    "cat/stack(dim)": (lambda t: (tg.cat([t, t * 2], dim=1), tg.stack([t, t], axis=-1)), (2, 3)),
    "float": (lambda t: t.float().double() * t, (3,)),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_gradcheck(device, name):
    fn, shape = GRADCHECKS[name]
    assert gradcheck(fn, [leaf(distinct(shape, seed=len(name)), device)])


def test_gradcheck_masked_fill_value_tensor(device):
    x = distinct((3, 4))
    mask = Tensor(x > 0, device=device)
    assert gradcheck(lambda t, v: t.masked_fill(mask, v), [leaf(x, device), leaf(0.7, device)])


def test_gradcheck_prod_with_a_zero(device):
    x = distinct((2, 5))
    x[0, 2] = 0.0
    assert gradcheck(lambda t: t.prod(dim=1), [leaf(x, device)])


# -- shapes ---------------------------------------------------------------------------------------------------------
def test_shape_methods(device):
    a = np.arange(6.0).reshape(2, 3)
    x = Tensor(a, device=device)
    assert x.t().tolist() == a.T.tolist() and Tensor([1.0, 2.0]).t().shape == (2,) and Tensor(1.0).t().shape == ()
    with pytest.raises(ValueError, match=r"^t\(\): expects a tensor with <= 2 dimensions, got 3"):
        Tensor(np.ones((1, 2, 3))).t()
    assert x.repeat(2, 2).tolist() == np.tile(a, (2, 2)).tolist()
    assert x.repeat(2, 1, 1).shape == (2, 2, 3) and x.repeat((1, 2)).tolist() == np.tile(a, (1, 2)).tolist()
    with pytest.raises(ValueError, match=r"^repeat\(\): expected at least 2 non-negative repeat counts"):
        x.repeat(2)
    assert [p.tolist() for p in Tensor(np.arange(5.0), device=device).chunk(3)] == [[0.0, 1.0], [2.0, 3.0], [4.0]]
    assert len(Tensor(np.arange(6.0)).chunk(4)) == 3  # ceil(6 / 4) = 2 per piece: 3 pieces, as PyTorch
    assert [p.shape for p in x.chunk(2, dim=-1)] == [(2, 2), (2, 1)] and len(tg.chunk(x, 2, axis=0)) == 2
    with pytest.raises(ValueError, match=r"^chunk\(\): chunks must be a positive int, got 0"):
        x.chunk(0)
    assert [p.shape for p in x.split(2, dim=1)] == [(2, 2), (2, 1)] and [p.shape for p in x.split(1, axis=0)] == [(1, 3)] * 2
    assert [p.shape for p in tg.split(x, [1, 2], dim=-1)] == [(2, 1), (2, 2)]
    assert [p.shape for p in Tensor(np.zeros((0, 2))).split(2)] == [(0, 2)]  # one empty piece, as PyTorch
    assert x.flatten().shape == (6,) and Tensor(np.ones((2, 3, 4))).flatten(1).shape == (2, 12)
    assert Tensor(np.ones((2, 3, 4))).flatten(0, -2).shape == (6, 4) and Tensor(1.0).flatten().shape == (1,)
    with pytest.raises(ValueError, match=r"^flatten\(\): start_dim=2 comes after end_dim=1"):
        Tensor(np.ones((2, 3, 4))).flatten(2, 1)
    with pytest.raises(ValueError, match=r"^flatten\(\): start_dim=3 is out of range"):
        Tensor(np.ones((2, 3, 4))).flatten(3)
    y = Tensor(np.ones((1, 3, 1, 2)))
    assert y.squeeze().shape == (3, 2) and y.squeeze(0).shape == (3, 1, 2) and y.squeeze(1).shape == (1, 3, 1, 2)
    assert y.squeeze((0, 2)).shape == (3, 2) and y.squeeze(axis=-2).shape == (1, 3, 2)
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(axis=-1).shape == (2, 3, 1)
    assert x.view(-1).shape == (6,) and x.reshape(3, -1).shape == (3, 2) and x.permute(1, 0).shape == (3, 2)
    assert x.transpose(0, 1).tolist() == a.T.tolist()
    assert x.unsqueeze(1).expand(2, 4, 3).shape == (2, 4, 3) and x.expand_as(Tensor(np.ones((5, 2, 3)))).shape == (5, 2, 3)


def test_cat_stack_split_take_dim_and_axis(device):
    a, b = Tensor(np.ones((2, 3)), device=device), Tensor(np.zeros((2, 3)), device=device)
    assert tg.cat([a, b], dim=1).shape == (2, 6) and tg.cat([a, b], axis=1).shape == (2, 6)
    assert tg.cat([a, b]).shape == (4, 3) and tg.concatenate([a, b], -1).shape == (2, 6)
    assert tg.stack([a, b], dim=-1).shape == (2, 3, 2) and tg.stack([a, b], axis=1).shape == (2, 2, 3)
    assert tg.stack([a, b], 2).shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"^stack: dim 3 is out of range for 2-dimensional tensors"):
        tg.stack([a, b], dim=3)


def test_functional_dim_takes_its_axis_alias():
    x = Tensor(distinct((2, 4)))
    np.testing.assert_array_equal(F.softmax(x, axis=0).numpy(), F.softmax(x, dim=0).numpy())
    np.testing.assert_array_equal(F.log_softmax(x, axis=-1).numpy(), F.log_softmax(x, dim=-1).numpy())
    np.testing.assert_array_equal(F.crelu(x, axis=0).numpy(), F.crelu(x, dim=0).numpy())
    assert F.crelu(x).shape == (2, 8)  # the default dim is still 1
    np.testing.assert_array_equal(F.maxout(x, 2, axis=1).numpy(), F.maxout(x, 2).numpy())
    assert F.maxout(x, 2, axis=0).shape == (1, 4)


# -- elementwise, comparisons, conversions, copies -------------------------------------------------------------------
def test_operator_and_comparison_methods(device):
    a, b = Tensor([1.0, 2.0, 3.0], device=device), Tensor([3.0, 2.0, 1.0], device=device)
    assert a.add(b).tolist() == [4.0, 4.0, 4.0] and a.sub(1).tolist() == [0.0, 1.0, 2.0]
    assert a.mul(b).tolist() == [3.0, 4.0, 3.0] and a.div(2).tolist() == [0.5, 1.0, 1.5]
    assert a.pow(2).tolist() == [1.0, 4.0, 9.0] and a.neg().tolist() == [-1.0, -2.0, -3.0]
    assert a.eq(b).tolist() == [False, True, False] and a.ne(b).tolist() == [True, False, True]
    assert a.lt(b).tolist() == [True, False, False] and a.gt(2).tolist() == [False, False, True]
    assert a.le(b).tolist() == [True, True, False] and a.ge(b).tolist() == [False, True, True]
    assert a.abs().tolist() == [1.0, 2.0, 3.0] and a.clamp(1.5, 2.5).tolist() == [1.5, 2.0, 2.5]
    assert a.clamp_min(2.0).tolist() == [2.0, 2.0, 3.0] and a.clamp_max(2.0).tolist() == [1.0, 2.0, 2.0]
    assert a.where(a > 1.5, b).tolist() == [3.0, 2.0, 3.0] and a.where(a > 1.5, 0).tolist() == [0.0, 2.0, 3.0]


def test_masked_fill(device):
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    mask = Tensor([[True, False], [False, True]], device=device)
    assert x.masked_fill(mask, 0.0).tolist() == [[0.0, 2.0], [3.0, 0.0]]
    assert x.masked_fill(Tensor([False, True], device=device), -1).tolist() == [[1.0, -1.0], [3.0, -1.0]]
    assert Tensor([1, 2, 3], device=device).masked_fill(Tensor([True, False, True], device=device), 7).tolist() == [7, 2, 7]
    assert x.masked_fill(mask, Tensor(9.0, device=device)).tolist() == [[9.0, 2.0], [3.0, 9.0]]
    assert x.masked_fill(mask, 0.0).dtype == tg.float32
    with pytest.raises(TypeError, match=r"^masked_fill\(\): mask must be a boolean tensor, got dtype float32"):
        x.masked_fill(x, 0.0)
    with pytest.raises(ValueError, match=r"^masked_fill\(\): value must be a number or a 0-d tensor, got a tensor"):
        x.masked_fill(mask, Tensor([1.0, 2.0], device=device))
    with pytest.raises(TypeError, match=r"^masked_fill\(\): value must be a number or a 0-d tensor, got str"):
        x.masked_fill(mask, "a")


def test_size_dim_numel_item_tolist(device):
    x = Tensor(np.ones((2, 3, 4)), device=device)
    assert x.size() == (2, 3, 4) and x.size(1) == 3 and x.size(-1) == 4 and x.dim() == 3 and x.numel() == 24
    assert Tensor(2.5, device=device).item() == 2.5 and Tensor([[1, 2]], device=device).tolist() == [[1, 2]]
    assert Tensor(1.0).dim() == 0 and Tensor(1.0).tolist() == 1.0


def test_casts_and_to(device):
    x = Tensor([1.5, -2.5], requires_grad=True, device=device)
    assert x.double().dtype == tg.float64 and x.float() is x and x.long().dtype == tg.int64
    assert x.int().dtype == tg.int32 and x.int().tolist() == [1, -2] and x.bool().dtype == tg.bool_
    assert x.double().requires_grad and not x.long().requires_grad
    assert x.to(tg.float64).dtype == tg.float64 and x.to(dtype="float64").dtype == tg.float64
    other = Tensor([1], device="cpu")
    y = x.to(other)
    assert y.dtype == tg.int64 and y.device == "cpu"
    assert x.to(device).dtype == tg.float32 and x.to(device, tg.float64).dtype == tg.float64
    if device != "strict":  # float16 lives on the CPU and CUDA backends
        assert x.half().dtype == tg.float16
    with pytest.raises(TypeError, match=r"to\(\): got a tensor to take the device and dtype from, and a dtype"):
        x.to(other, tg.float64)


def test_clone_detach_contiguous(device):
    x = Tensor([1.0, 2.0], requires_grad=True, device=device)
    c = x.clone()
    assert c.requires_grad and not c.is_leaf and c.tolist() == [1.0, 2.0]
    with tg.no_grad():
        c.add_(1.0)
    assert x.tolist() == [1.0, 2.0] and x._version == 0  # its own memory and its own version counter
    d = x.detach()
    assert not d.requires_grad and d.tolist() == [1.0, 2.0]
    assert x.contiguous() is x
    (x.clone() * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_like_factories(device):
    x = Tensor(np.ones((2, 3), np.float64), device=device)
    z = tg.zeros_like(x)
    assert z.shape == (2, 3) and z.dtype == tg.float64 and z.device == x.device and z.tolist() == [[0.0] * 3] * 2
    assert tg.ones_like(x, dtype="float32").dtype == tg.float32 and tg.ones_like(x).tolist() == [[1.0] * 3] * 2
    f = tg.full_like(x, 7, requires_grad=True)
    assert f.tolist() == [[7.0] * 3] * 2 and f.requires_grad and f.dtype == tg.float64
    assert tg.full_like(Tensor([1, 2], device=device), 3.7).tolist() == [3, 3]  # converted to int64, as PyTorch
    assert tg.zeros_like(x, device="cpu").device == "cpu"
    r, n = tg.rand_like(x), tg.randn_like(x, dtype="float32")
    assert r.shape == n.shape == (2, 3) and r.dtype == tg.float64 and n.dtype == tg.float32
    assert ((r.numpy() >= 0) & (r.numpy() < 1)).all()
