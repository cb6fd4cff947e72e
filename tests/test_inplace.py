"""In-place safety: the version counter, and backward refusing to run on saved tensors changed in place."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import InplaceModificationError, Tensor, nn, no_grad, optim
from tinygrad_edu.nn import functional as F

VERSION_ERROR = r"modified by an inplace operation: \[{op} input {k} of shape \({shape}\), dtype {dtype}\] " \
                r"is at version {now}; expected version {then}"


def _leaf(values, device, dtype="float32"):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


# -- the counter ----------------------------------------------------------------------------------------------------
def test_version_counts_inplace_changes(device):
    t = Tensor([1.0, 2.0, 3.0], device=device)
    assert t._version == 0
    t.add_(1.0)
    t.mul_(2.0)
    t.sub_(Tensor([1.0, 1.0, 1.0], device=device), alpha=2)
    t.div_(2.0)
    assert t._version == 4
    np.testing.assert_allclose(t.numpy(), [1.0, 2.0, 3.0])
    t.clamp_(min=1.5, max=2.5)
    np.testing.assert_allclose(t.numpy(), [1.5, 2.0, 2.5])
    t.fill_(7.0)
    t.zero_()
    t.copy_(Tensor([4.0, 5.0, 6.0], device=device))
    np.testing.assert_allclose(t.numpy(), [4.0, 5.0, 6.0])
    t.data = t.data * 1  # assigning .data counts too
    assert t._version == 9


def test_views_and_detach_share_the_counter(device):
    w = Tensor(np.ones((2, 3), np.float32), device=device)
    views = [w.T, w.reshape(6), w.detach(), w[0], w.expand(2, 2, 3)]
    w.add_(1.0)
    assert [v._version for v in views] == [1] * 5
    views[0].mul_(3.0)  # a view written in place bumps its base
    assert w._version == 2
    np.testing.assert_allclose(w.numpy(), np.full((2, 3), 6.0))


def test_inplace_on_a_tensor_that_requires_grad_needs_no_grad():
    w = _leaf([1.0, 2.0], "cpu")
    with pytest.raises(RuntimeError, match=r"add_: this tensor \(a leaf, shape \(2,\)\) requires grad.*no_grad"):
        w.add_(1.0)
    assert w._version == 0 and w.numpy().tolist() == [1.0, 2.0]  # changed nothing
    with no_grad():
        w.add_(1.0)
    assert w._version == 1 and w.numpy().tolist() == [2.0, 3.0]


def test_inplace_rejects_shapes_and_dtypes_that_do_not_fit():
    t = Tensor([1, 2, 3])
    with pytest.raises(TypeError, match=r"mul_: a floating result can't be written in place into a tensor of dtype int64"):
        t.mul_(0.5)
    s = Tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"add_: the result has shape \(2, 2\), which does not fit"):
        s.add_(Tensor([[1.0], [2.0]]))
    with pytest.raises(ValueError, match=r"clamp_: min \(2\) is greater than max \(1\)"):
        s.clamp_(2, 1)
    with pytest.raises(TypeError, match=r"fill_: value must be a Python number, got str"):
        s.fill_("1")
    assert t._version == 0 and s._version == 0


# -- backward refuses --------------------------------------------------------------------------------------------------
def test_optimizer_step_between_forward_and_backward_raises(device):
    tg.manual_seed(0)
    layer = nn.Linear(3, 2, device=device)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = Tensor(np.ones((4, 3), np.float32), device=device)
    loss = layer(x).sum()
    loss.backward(retain_graph=True)
    opt.step()  # updates weight and bias in place
    with pytest.raises(InplaceModificationError,
                       match=VERSION_ERROR.format(op="LinearFunction", k=1, shape="2, 3", dtype="float32",
                                                  now=1, then=0)):
        loss.backward()


def test_adam_step_between_forward_and_backward_raises():
    w = _leaf(np.ones((2, 2)), "cpu")
    w.grad = Tensor(np.ones((2, 2), np.float32))
    y = (Tensor(np.ones((3, 2), np.float32)) @ w).sum()  # MatMul saves w
    optim.Adam([w], lr=0.1).step()
    with pytest.raises(InplaceModificationError, match=r"\[MatMul input 1 of shape \(2, 2\).*version 1; expected version 0"):
        y.backward()


def test_modifying_a_saved_input_raises(device):
    x = _leaf([1.0, 2.0, 3.0], device)
    y = x.exp() * x  # Mul saves both inputs
    with no_grad():
        x.mul_(2.0)
    with pytest.raises(InplaceModificationError, match=r"\[Mul input 1 of shape \(3,\), dtype float32\]"):
        y.sum().backward()


def test_modifying_a_saved_output_raises():
    x = _leaf([1.0, 2.0], "cpu")
    y = x.exp()  # Exp saves its output
    with no_grad():
        y.add_(1.0)
    with pytest.raises(InplaceModificationError, match=r"\[Exp output 0 of shape \(2,\)"):
        y.sum().backward()


def test_modifying_through_a_view_raises(device):
    w = _leaf(np.arange(6.0).reshape(2, 3), device)
    x = Tensor(np.ones((4, 3), np.float32), device=device)
    y = (x @ w.T).sum()  # MatMul saves the view w.T
    with no_grad():
        w.sub_(1.0)
    with pytest.raises(InplaceModificationError, match=r"\[MatMul input 1 of shape \(3, 2\)"):
        y.backward()


def test_assigning_data_of_a_saved_tensor_raises():
    x = _leaf([1.0, 2.0], "cpu")
    y = (x * x).sum()
    x.data = x.data * 3
    with pytest.raises(InplaceModificationError, match=r"Mul input 0"):
        y.backward()


def test_init_of_a_saved_parameter_raises():
    layer = nn.Linear(2, 2)
    loss = layer(Tensor(np.ones((1, 2), np.float32))).sum()
    nn.init.zeros_(layer.weight)
    with pytest.raises(InplaceModificationError, match=r"LinearFunction input 1"):
        loss.backward()


def test_master_weights_copy_to_a_saved_model_raises():
    model = nn.Linear(2, 2).half()
    masters = tg.amp.MasterWeights(model)
    loss = model(Tensor(np.ones((1, 2), np.float16))).float().sum()
    masters.copy_master_to_model()
    with pytest.raises(InplaceModificationError, match=r"LinearFunction input 1 of shape \(2, 2\), dtype float16"):
        loss.backward()


def test_modifying_a_tensor_that_was_not_saved_is_fine(device):
    x = _leaf([1.0, 2.0, 3.0], device)
    b = Tensor([5.0, 5.0, 5.0], device=device)
    y = (x + b).sum()  # Add saves nothing: changing b cannot change dL/dx
    b.mul_(10.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, 1.0])


def test_second_backward_after_modification_raises():
    x = _leaf([1.0, 2.0], "cpu")
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    with no_grad():
        x.add_(1.0)
    with pytest.raises(InplaceModificationError, match=r"is at version 1; expected version 0"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # the failed backward added nothing


def test_gradient_is_never_silently_wrong():
    """Train-step orders: backward before step gives the exact gradient; step before backward always raises."""
    rng = np.random.default_rng(0)
    x_np, w_np = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    w = _leaf(w_np, "cpu")
    loss = (Tensor(x_np) @ w).relu().sum()
    loss.backward(retain_graph=True)
    expected = x_np.T @ ((x_np @ w_np) > 0).astype(np.float32)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)
    for change in (lambda: w.add_(1.0), lambda: w.copy_(Tensor(w_np)), lambda: w.zero_(), lambda: w.fill_(2.0)):
        with no_grad():
            change()
        with pytest.raises(InplaceModificationError):
            loss.backward(retain_graph=True)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)  # no wrong gradient was added


def test_training_loop_in_the_right_order_runs(device):
    tg.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4, device=device), nn.BatchNorm1d(4, device=device), nn.ReLU(), nn.Linear(4, 2, device=device))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = Tensor(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32), device=device)
    before = [p._version for p in model.parameters()]
    for _ in range(3):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
    assert [p._version - v for p, v in zip(model.parameters(), before)] == [3] * len(before)  # one per step
    assert np.isfinite(loss.item())


def test_error_message_names_everything():
    x = _leaf([[1.0, 2.0]], "cpu")
    y = F.linear(Tensor([[3.0, 4.0]]), x).sum()
    with no_grad():
        x.add_(1.0)
    with pytest.raises(InplaceModificationError) as info:
        y.backward()
    message = str(info.value)
    assert re.search(VERSION_ERROR.format(op="LinearFunction", k=1, shape="1, 2", dtype="float32", now=1, then=0),
                     message)
    assert "optimizer.step()" in message and "run backward before changing it" in message
    assert isinstance(info.value, RuntimeError)
