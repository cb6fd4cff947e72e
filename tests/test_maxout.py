"""Maxout: ``F.maxout`` (the max over groups of consecutive pieces) and ``nn.Maxout`` (a linear layer, then maxout).

* gradients: ``gradcheck`` in float64 on Hypothesis shapes, pieces and axes, values tie-free (``unique=True``), with
  non-contiguous layouts and a permute inside the checked function;
* the grouping (group k = entries [k·pieces, (k+1)·pieces)) and the tie rule (the first maximal piece gets the whole
  gradient), tested directly; at a tie ``gradcheck`` reports a kink, and accepts the rule with kinks="allow";
* ``nn.Maxout``: the layout of its weight, its initialization, and what a max of affine pieces can encode (|x| from
  two opposite pieces, ReLU from a piece and a zero piece);
* errors that name the layer, the argument and the shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import registry
from tinygrad_edu.testing import strategies as tst

SETTINGS = settings(max_examples=15, deadline=None)


def leaf(array, device):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def reference(x: np.ndarray, pieces: int, dim: int) -> np.ndarray:
    """Maxout in NumPy: axis ``dim`` reshaped to (K, pieces), the max over the pieces."""
    dim %= x.ndim
    return x.reshape(x.shape[:dim] + (-1, pieces) + x.shape[dim + 1 :]).max(axis=dim + 1)


@st.composite
def maxout_cases(draw, max_dims: int = 3):
    """(x, pieces, dim): x with axis ``dim`` of size K·pieces, values 0.05 apart (no ties), maybe non-contiguous."""
    shape = list(draw(tst.shapes(min_dims=1, max_dims=max_dims, max_side=3)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    pieces = draw(st.integers(1, 3))
    shape[dim] *= pieces
    x = draw(tst.arrays(tuple(shape), dtype="float64", unique=True, margin=0.05).flatmap(tst.layouts))
    return x, pieces, dim


# ================================================================================================================
# gradients and values on Hypothesis shapes
# ================================================================================================================
@SETTINGS
@given(case=maxout_cases())
def test_maxout_gradcheck(device, case):
    x, pieces, dim = case
    assert tg.gradcheck(lambda t: F.maxout(t, pieces, dim=dim), [leaf(x, device)])


@SETTINGS
@given(case=maxout_cases())
def test_maxout_gradcheck_on_a_permuted_view(device, case):
    """The function sees x with its axes reversed (a non-contiguous view); the grouping follows the view."""
    x, pieces, dim = case
    view_dim = x.ndim - 1 - dim % x.ndim  # the same axis, counted in the reversed view
    reverse = tuple(reversed(range(x.ndim)))
    assert tg.gradcheck(lambda t: F.maxout(t.permute(reverse), pieces, dim=view_dim), [leaf(x, device)])


@SETTINGS
@given(case=maxout_cases(max_dims=4))
def test_maxout_values_and_routing(device, case):
    """Forward matches NumPy; backward puts each g_k on exactly one piece of group k, the one that attained the max."""
    x, pieces, dim = case
    t = leaf(x, device)
    y = F.maxout(t, pieces, dim=dim)
    np.testing.assert_array_equal(y.numpy(), reference(x, pieces, dim))
    g = np.arange(1.0, y.numel() + 1).reshape(y.shape)  # every g_k distinct and nonzero
    y.backward(Tensor(g, device=device))
    dx = t.grad.numpy()
    axis = dim % x.ndim
    groups_dx = dx.reshape(x.shape[:axis] + (-1, pieces) + x.shape[axis + 1 :])
    np.testing.assert_array_equal((groups_dx != 0).sum(axis=axis + 1), 1)  # one piece per group
    np.testing.assert_array_equal(groups_dx.sum(axis=axis + 1), g)  # carrying all of g_k
    winners = np.where(dx != 0, x, np.nan)  # the x that received gradient are the maxima
    np.testing.assert_array_equal(np.nanmax(winners.reshape(groups_dx.shape), axis=axis + 1), y.numpy())


@pytest.mark.parametrize("seed", range(5))
def test_registry_entry_passes_in_float32_and_float16(seed):
    for dtype in (np.float32, np.float16):
        _, report = registry.REGISTRY["maxout"].check(seed, dtype, "cpu")
        assert report.passed, report.describe()


# ================================================================================================================
# the grouping and the tie rule, by hand
# ================================================================================================================
def test_groups_are_consecutive_pieces(device):
    x = Tensor([[1.0, 5.0, 3.0, 2.0, 0.0, 4.0]], device=device)
    np.testing.assert_array_equal(F.maxout(x, 2).numpy(), [[5.0, 3.0, 4.0]])  # groups {1, 5} {3, 2} {0, 4}
    np.testing.assert_array_equal(F.maxout(x, 3).numpy(), [[5.0, 4.0]])  # groups {1, 5, 3} {2, 0, 4}
    np.testing.assert_array_equal(F.maxout(x, 6).numpy(), [[5.0]])
    np.testing.assert_array_equal(F.maxout(x, 1).numpy(), x.numpy())  # one piece per group: the identity
    np.testing.assert_array_equal(F.maxout(x, 2, dim=-1).numpy(), [[5.0, 3.0, 4.0]])
    columns = Tensor([[1.0, 2.0], [7.0, 0.0], [3.0, 9.0], [4.0, 8.0]], device=device)
    np.testing.assert_array_equal(F.maxout(columns, 2, dim=0).numpy(), [[7.0, 2.0], [4.0, 9.0]])


def test_gradient_goes_to_the_winning_piece(device):
    x = leaf([[1.0, 5.0, 3.0, 2.0, 0.0, 4.0]], device)
    F.maxout(x, 2).backward(Tensor([[10.0, 20.0, 30.0]], dtype=np.float64, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 10.0, 20.0, 0.0, 0.0, 30.0]])


def test_ties_route_the_whole_gradient_to_the_first_maximal_piece(device):
    x = leaf([[2.0, 2.0, -1.0, 3.0, 3.0, 3.0]], device)
    F.maxout(x, 3).backward(Tensor([[4.0, -5.0]], dtype=np.float64, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[4.0, 0.0, 0.0, -5.0, 0.0, 0.0]])
    z = leaf([[0.0, 0.0]], device)  # all pieces tied (at zero, the sign of zero does not matter)
    F.maxout(z, 2).backward(Tensor([[1.0]], dtype=np.float64, device=device))
    np.testing.assert_array_equal(z.grad.numpy(), [[1.0, 0.0]])


def test_gradcheck_reports_a_tie_as_a_kink(device):
    """At a tie the central difference measures g / 2 for each tied piece (one side moves the max, the other does
    not); the rule's g and 0 are the one-sided derivatives, so both are valid subgradients."""
    x = [[1.0, 1.0, -0.5, 0.25]]
    with pytest.raises(tg.NonDifferentiablePointError, match="KINK"):
        tg.gradcheck(lambda t: F.maxout(t, 2), [leaf(x, device)])
    assert tg.gradcheck(lambda t: F.maxout(t, 2), [leaf(x, device)], kinks="allow")
    report = tg.check_gradients(lambda t: F.maxout(t, 2), [leaf(x, device)])
    tied = sorted((m.index, m.analytic / m.numeric) for _, m in report.mismatches)
    assert [index for index, _ in tied] == [(0, 0), (0, 1)]  # only the tied pieces disagree
    assert tied[0][1] == pytest.approx(2.0)  # the first piece gets g, the central difference measured g / 2


# ================================================================================================================
# nn.Maxout
# ================================================================================================================
def test_module_layout_and_forward(device):
    module = nn.Maxout(3, 2, pieces=4, device=device)
    assert module.weight.shape == (8, 3) and module.bias.shape == (8,)
    assert [n for n, _ in module.named_parameters()] == ["weight", "bias"]
    assert module.weight.device == device and module.weight.dtype == np.float32
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    y = module(Tensor(x, device=device)).numpy()
    assert y.shape == (5, 2)
    units = x @ module.weight.numpy().T + module.bias.numpy()  # (5, 8): row k·4 + j is piece j of output k
    np.testing.assert_allclose(y, units.reshape(5, 2, 4).max(axis=-1), rtol=1e-6)
    assert nn.Maxout(3, 2, 4, bias=False).bias is None
    assert repr(module) == "Maxout(in_features=3, out_features=2, pieces=4, bias=True)"
    # leading batch axes, as Linear: (2, 5, 3) -> (2, 5, 2)
    assert module(Tensor(np.stack([x, x]), device=device)).shape == (2, 5, 2)


def test_module_is_initialized_like_linear():
    tg.manual_seed(0)
    module = nn.Maxout(100, 20, pieces=3)
    bound = 1 / np.sqrt(100)
    for p in (module.weight.numpy(), module.bias.numpy()):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.95 * bound  # uniform on [-bound, bound]
        assert abs(p.mean()) < 0.1 * bound
    np.testing.assert_allclose(module.weight.numpy().std(), bound / np.sqrt(3), rtol=0.05)  # std of U(-b, b)


def test_opposite_pieces_give_the_absolute_value(device):
    """Two pieces x_i and -x_i per output: max(x_i, -x_i) = |x_i| (Goodfellow et al.: maxout can encode |x|)."""
    d = 4
    module = nn.Maxout(d, d, pieces=2, dtype="float64", device=device)
    eye = np.eye(d)
    module.load_state_dict({"weight": np.stack([eye, -eye], axis=1).reshape(2 * d, d), "bias": np.zeros(2 * d)})
    x = np.random.default_rng(2).standard_normal((6, d))
    np.testing.assert_array_equal(module(Tensor(x, device=device)).numpy(), np.abs(x))
    relu = nn.Maxout(d, d, pieces=2, dtype="float64", device=device)  # pieces x_i and 0: max(x_i, 0) = relu
    relu.load_state_dict({"weight": np.stack([eye, 0 * eye], axis=1).reshape(2 * d, d), "bias": np.zeros(2 * d)})
    np.testing.assert_array_equal(relu(Tensor(x, device=device)).numpy(), np.maximum(x, 0))


def test_module_gradcheck_and_a_training_step(device):
    rng = np.random.default_rng(3)
    module = nn.Maxout(3, 2, pieces=3, dtype="float64", device=device)
    x = Tensor(rng.standard_normal((4, 3)), device=device)
    assert tg.gradcheck_module(module, x)  # random weights: no ties
    target = Tensor(np.array([0, 1, 1, 0]), device=device)
    opt = optim.SGD(module.parameters(), lr=0.5)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(module(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ================================================================================================================
# errors
# ================================================================================================================
def test_pieces_must_divide_the_axis(device):
    x = Tensor(np.zeros((2, 5, 3)), device=device)
    with pytest.raises(ValueError, match=r"maxout: axis dim=1 of the input \(shape \(2, 5, 3\)\) has size 5, which is "
                                         r"not divisible by pieces=2"):
        F.maxout(x, 2)
    with pytest.raises(ValueError, match=r"maxout: axis dim=-1 of the input \(shape \(2, 5, 3\)\) has size 3"):
        F.maxout(x, 2, dim=-1)


def test_bad_pieces_and_axes(device):
    x = Tensor(np.zeros((2, 4)), device=device)
    with pytest.raises(ValueError, match="maxout: pieces must be at least 1, got 0"):
        F.maxout(x, 0)
    with pytest.raises(TypeError, match="maxout: pieces must be an int, got float"):
        F.maxout(x, 2.0)
    with pytest.raises(ValueError, match=r"maxout: dim=2 is out of range for an input of shape \(2, 4\)"):
        F.maxout(x, 2, dim=2)
    with pytest.raises(ValueError, match=r"maxout: dim=1 is out of range for an input of shape \(4,\)"):
        F.maxout(Tensor(np.zeros(4), device=device), 2)  # the default dim=1 needs two axes
    with pytest.raises(TypeError, match="maxout: input must be a floating-point tensor, got dtype int64"):
        F.maxout(Tensor(np.arange(4), device=device), 2, dim=0)
    with pytest.raises(ValueError, match="Maxout: pieces must be a positive int, got 0"):
        nn.Maxout(3, 2, 0)
    with pytest.raises(ValueError, match=r"linear: input of shape \(5, 4\) does not match weight of shape \(6, 3\)"):
        nn.Maxout(3, 2, 3, device=device)(Tensor(np.zeros((5, 4), dtype=np.float32), device=device))
