"""The gradient checker itself: it passes right gradients, catches wrong ones, and tells kinks from errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Function, Tensor, nn
from tinygrad_edu.testing import strategies as tst


def leaf(array, device="cpu", dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True, device=device)


class Scale(Function):
    """y = k x with a (possibly wrong) backward factor: the smallest op to plant an error in."""

    @staticmethod
    def forward(ctx, x, k, backward_k):
        ctx.backward_k = backward_k
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.backward_k, None, None


def test_right_gradients_pass_with_tiny_relative_errors(device):
    x = leaf(np.linspace(-1.5, 1.5, 12).reshape(3, 4), device)
    report = tg.check_gradients(lambda t: (t.tanh() * t).exp().sum(axis=1), [x])
    assert report.passed and report.max_rel_error < 1e-7 and report.max_abs_error < 1e-7


def test_wrong_gradient_is_reported_with_index_values_and_tolerances(device):
    x = leaf([[0.5, -1.0], [2.0, 0.25]], device)
    with pytest.raises(tg.GradcheckError) as info:
        tg.gradcheck(lambda t: Scale.apply(t, 3.0, 2.9), [x])
    message = str(info.value)
    assert "input 0 (shape (2, 2), dtype float64" in message and f"device {x.device}" in message
    assert "index (" in message and "analytic" in message and "numeric" in message and "rel err" in message
    assert "atol=1e-05, rtol=0.001" in message


def test_second_input_is_named():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with pytest.raises(tg.GradcheckError, match="input 1 "):
        tg.gradcheck(lambda x, y: x * 2 + Scale.apply(y, 1.0, 1.01), [a, b])


def test_the_upstream_gradient_is_random_not_a_sum():
    """A backward that is wrong only by a constant shift per row passes a summed check, not this one."""

    class CenterRows(Function):  # y = x - mean(x) over axis 1: the rows of dL/dx must have zero sum
        @staticmethod
        def forward(ctx, x):
            return x - ctx.xp.mean(x, axis=1, keepdims=True)

        @staticmethod
        def backward(ctx, g):
            return g  # wrong: forgets "- mean(g)"; with g = ones (a summed check) the error is invisible

    x = leaf(np.arange(6.0).reshape(2, 3))
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(CenterRows.apply, [x])


@pytest.mark.parametrize("fn, at", [(lambda t: t.relu(), 0.0), (lambda t: t.abs(), 0.0),
                                    (lambda t: t.clip(-1.0, 1.0), 1.0), (lambda t: t.maximum(0.5), 0.5)],
                         ids=["relu", "abs", "clip", "maximum"])
def test_kinks_are_told_apart_from_errors(fn, at):
    x = leaf([at + 3e-7, -0.7, 1.7])  # the first element sits within eps of the kink
    with pytest.raises(tg.NonDifferentiablePointError, match="KINK: one-sided derivatives") as info:
        tg.gradcheck(fn, [x])
    assert not isinstance(info.value, tg.GradcheckError)
    assert tg.gradcheck(fn, [x], kinks="allow")  # the analytic value lies between the one-sided derivatives


def test_a_wrong_gradient_at_a_kink_is_still_wrong_with_kinks_allowed():
    class BadRelu(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return ctx.xp.maximum(x, 0.0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2.0 * ctx.xp.astype(x > 0, g.dtype)  # slope 2: outside [0, 1] at the kink, wrong elsewhere

    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(BadRelu.apply, [leaf([1e-7, 0.8])], kinks="allow")


def test_directional_mode_checks_large_inputs_and_catches_errors(device):
    x = leaf(np.random.default_rng(0).standard_normal((40, 30)), device)
    assert tg.gradcheck(lambda t: (t.tanh() @ t.T).sigmoid(), [x], directions=3)
    with pytest.raises(tg.GradcheckError, match="direction \\("):
        tg.gradcheck(lambda t: Scale.apply(t.tanh(), 2.0, 2.02), [x], directions=2)


@pytest.mark.parametrize("dtype, atol, rtol", [(np.float32, 1e-4, 1e-2), (np.float16, 5e-2, 5e-2)])
def test_low_precision_inputs_are_checked_against_float64_numerics(dtype, atol, rtol):
    x = leaf(np.linspace(-1, 1, 6), dtype=dtype)
    report = tg.check_gradients(lambda t: (t * t).tanh() * 3.0, [x], atol=atol, rtol=rtol)
    assert report.inputs[0].dtype == str(np.dtype(dtype)) and report.passed
    assert x.grad is None  # the user's tensors are left alone


def test_stochastic_ops_are_checked_with_their_randomness_held_fixed(device):
    class Dropout(Function):
        @staticmethod
        def forward(ctx, x):
            mask = ctx.backend.bernoulli(tuple(x.shape), 0.5, x.dtype) / 0.5
            ctx.save_for_backward(mask)
            return x * mask

        @staticmethod
        def backward(ctx, g):
            (mask,) = ctx.saved_tensors
            return g * mask

    x = leaf(np.linspace(0.5, 2.0, 20), device)
    assert tg.gradcheck(Dropout.apply, [x])


def test_module_gradients_inputs_and_every_parameter(device):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(device)
    x = Tensor(np.random.default_rng(1).standard_normal((5, 3)), device=device)
    assert tg.gradcheck_module(model, x, atol=1e-3, rtol=1e-2)  # float32 parameters, float64 numerics
    assert all(p.grad is None for p in model.parameters())  # the module's own gradients are untouched


def test_module_check_catches_a_wrong_layer():
    class BadTanh(nn.Module):
        def forward(self, x):
            return Scale.apply(x, 1.0, 1.1).tanh()

    model = nn.Sequential(nn.Linear(3, 3), BadTanh(), nn.Linear(3, 1))
    with pytest.raises(tg.GradcheckError, match="input 0 "):
        tg.gradcheck_module(model, Tensor(np.ones((2, 3))), atol=1e-3, rtol=1e-2)


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="no input tensor has requires_grad=True"):
        tg.gradcheck(lambda t: t * 2, [Tensor([1.0])])
    with pytest.raises(ValueError, match="kinks must be"):
        tg.gradcheck(lambda t: t * 2, [leaf([1.0])], kinks="ignore")


@settings(max_examples=15)
@given(x=tst.arrays(tst.shapes(max_dims=3, max_side=4), magnitude=3.0, avoid=[0.0], margin=0.05))
def test_property_relu_sigmoid_chain_passes_away_from_kinks(x):
    assert tg.gradcheck(lambda t: (t.relu() * t.sigmoid()).sum(axis=-1) if t.ndim else t.relu(), [leaf(x)])


@settings(max_examples=10)
@given(data=st.data())
def test_property_planted_errors_are_always_caught(data):
    x = data.draw(tst.arrays(tst.shapes(min_dims=1, max_dims=2, max_side=4), magnitude=2.0))
    factor = data.draw(st.sampled_from([0.9, 1.05, -1.0, 0.0]))
    if not np.any(np.abs(x) > 0.1):
        x = x + 1.0
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(lambda t: Scale.apply(t.tanh() + 1.0, 2.0, 2.0 * factor), [leaf(x)])


def test_zero_tolerances_with_exactly_zero_gradients_report_no_error():
    x = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    report = tg.check_gradients(lambda t: t * t * t, [x], atol=0.0, rtol=0.0)  # d/dx x³ at 0 is exactly 0 both ways
    assert report.inputs[0].max_rel_error < 1e-6


def test_module_check_names_the_parameters_and_says_what_it_compares():
    class Bad(tg.Function):  # forward 2x, backward 2.1x: every gradient behind it is 5% off
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2.1

    class BadLayer(nn.Module):
        def forward(self, x):
            return Bad.apply(x)

    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), BadLayer(), nn.Linear(3, 1)).double()
    x = Tensor(np.random.default_rng(2).standard_normal((4, 3)))
    with pytest.raises(tg.GradcheckError) as error:
        tg.gradcheck_module(model, x, atol=1e-6, rtol=1e-3)
    message = str(error.value)
    for name in ("input 0 (shape (4, 3)", "0.weight (shape (3, 3)", "0.bias (shape (3,)"):
        assert f"\n{name}" in message, message  # each failing tensor by its name, on a line of its own
    assert "2.weight" not in message  # after the bad layer: right
    assert "uᵀJ" in message and "random upstream gradient u (seed 0)" in message


def test_report_repr_is_a_readable_summary_per_input():
    x, w = leaf(np.linspace(-1, 1, 5)), leaf(np.linspace(0.5, 1, 5))
    report = tg.check_gradients(lambda a, b: (a * b).tanh(), [x, w], names=["x", "w"])
    lines = repr(report).splitlines()
    assert lines[0].startswith("GradcheckReport: passed, 2 input(s) checked; max abs error")
    assert "uᵀJ" in lines[1]
    assert lines[2].startswith("  x (shape (5,), dtype float64, device cpu): passed; max abs error")
    assert lines[3].startswith("  w (shape (5,)") and len(lines) == 4
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        tg.check_gradients(lambda a: a * 2, [x], names=["x", "w"])


def test_module_check_leaves_the_module_as_it_found_it():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    before = {name: b.numpy().copy() for name, b in model.named_buffers()}
    weights = {name: p.numpy().copy() for name, p in model.named_parameters()}
    assert tg.gradcheck_module(model, Tensor(np.random.default_rng(3).standard_normal((6, 3))))
    for name, b in model.named_buffers():  # running statistics and the batch count: as before the check
        np.testing.assert_array_equal(b.numpy(), before[name], err_msg=name)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.numpy(), weights[name], err_msg=name)
        assert p.grad is None
