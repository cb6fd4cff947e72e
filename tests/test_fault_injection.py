"""Faults change nothing: a backward, an optimizer step or a forward that fails leaves every parameter, gradient,
buffer and optimizer state bit for bit as it was (README: "an invalid call changes nothing").

Faults are injected where they hurt most: in the middle of a backward walk, after some leaves' gradients are already
known; in the last parameter an optimizer steps; in a layer after a batchnorm that has already updated its running
statistics.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim


class FailsOnce(tg.Function):
    """Identity whose backward raises the first time it runs (a bug that a retry does not meet)."""

    failures = 0

    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        if FailsOnce.failures == 0:
            FailsOnce.failures += 1
            raise RuntimeError("injected fault")
        return g


class FailOnce(nn.Module):
    def forward(self, x):
        return FailsOnce.apply(x)


def snapshot(model: nn.Module, optimizer: optim.Optimizer | None = None) -> dict:
    """Copies of every parameter, gradient, buffer and optimizer state entry."""
    state = {f"param {n}": p.numpy().copy() for n, p in model.named_parameters()}
    state |= {f"grad {n}": None if p.grad is None else np.array(p.grad.numpy() if isinstance(p.grad, Tensor) else p.grad)
              for n, p in model.named_parameters()}
    state |= {f"buffer {n}": b.numpy().copy() for n, b in model.named_buffers()}
    if optimizer is not None:
        for k, entries in optimizer.state_dict()["state"].items():
            state |= {f"optimizer {k} {key}": np.array(value, copy=True) for key, value in entries.items()}
    return state


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        if value is None:
            assert after[key] is None, key
        else:
            np.testing.assert_array_equal(after[key], value, err_msg=key)


def model_and_data(seed: int = 0):
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), FailOnce(), nn.Linear(5, 2))
    x = Tensor(np.random.default_rng(seed).standard_normal((8, 3)).astype(np.float32))
    y = Tensor(np.arange(8) % 2)
    return model, x, y


def test_a_failing_backward_changes_no_gradient_and_frees_nothing():
    FailsOnce.failures = 1  # the first step's backward works
    model, x, y = model_and_data()
    tg.nn.functional.cross_entropy(model(x), y).backward()  # gradients to accumulate into
    FailsOnce.failures = 0
    loss = tg.nn.functional.cross_entropy(model(x), y)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="injected fault"):  # raised after the last Linear's gradients were known
        loss.backward()
    assert_same(before, snapshot(model))
    loss.backward()  # the graph is still whole: a retry works, and adds the gradients once
    expected_model, ex, ey = model_and_data()
    FailsOnce.failures = 1
    for _ in range(2):
        tg.nn.functional.cross_entropy(expected_model(ex), ey).backward()
    for (name, p), q in zip(model.named_parameters(), expected_model.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=name)


def test_an_inplace_error_mid_walk_leaves_grads_and_graph_alone():
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.full(3, 2.0), requires_grad=True)
    c = Tensor(np.full(3, 3.0))
    loss = (b * c).sum() + (a * 2.0).sum()  # the walk reaches a's branch, then Mul(b, c)
    with tg.no_grad():
        c.add_(1.0)  # c was saved by Mul(b, c)
    for _ in range(2):  # the second time the same error, not "a second time": nothing was freed
        with pytest.raises(tg.InplaceModificationError, match=r"\[Mul input 1 of shape \(3,\)"):
            loss.backward()
        assert a.grad is None and b.grad is None


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=0.01)], ids=["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("bad", ["shape", "dtype", "not a tensor"])
def test_a_bad_gradient_fails_the_step_before_anything_changes(make, bad):
    FailsOnce.failures = 1
    model, x, y = model_and_data()
    optimizer = make(model.parameters())
    for _ in range(2):  # momentum buffers and Adam's moments exist
        optimizer.zero_grad()
        tg.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    optimizer.zero_grad()
    tg.nn.functional.cross_entropy(model(x), y).backward()
    last = list(model.parameters())[-1]
    # assigning .grad refuses all three (as PyTorch): write the slot, as a bug inside the library could
    if bad == "shape":
        last._grad = Tensor(np.ones((7,), np.float32))
    elif bad == "dtype":
        last._grad = Tensor(np.ones(last.shape, np.float64))
    else:
        last._grad = np.ones(last.shape, np.float32)
    before = snapshot(model, optimizer)
    with pytest.raises((ValueError, TypeError), match=r"\.step: the gradient of parameter 5 \(shape \(2,\), float32"):
        optimizer.step()
    assert_same(before, snapshot(model, optimizer))


@pytest.mark.parametrize(("value", "error", "message"), [
    (np.ones((2,), np.float32), TypeError, r"assigned grad must be a Tensor or None, got ndarray"),
    (Tensor(np.ones((3,), np.float32)), ValueError, r"assigned grad has shape \(3,\), float32 on cpu; the tensor has "
                                                    r"shape \(2,\), float32 on cpu"),
    (Tensor(np.ones((2,), np.float64)), ValueError, r"assigned grad has shape \(2,\), float64"),
    (Tensor(np.ones((2,), np.float32), device="strict"), ValueError, r"float32 on strict; the tensor has"),
])
def test_assigning_a_gradient_that_does_not_fit_is_refused(value, error, message):
    p = nn.Linear(3, 2).bias
    p.grad = Tensor(np.full(2, 7.0, np.float32))
    with pytest.raises(error, match=message):
        p.grad = value
    np.testing.assert_array_equal(p.grad.numpy(), [7.0, 7.0])  # unchanged


def test_a_failing_forward_puts_back_the_running_statistics_a_layer_before_it_changed():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(4, 2))  # 5 -> 4: a shape bug
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = Tensor(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32))
    before = snapshot(model, optimizer)
    with pytest.raises(tg.InputError, match=r"linear: input of shape \(8, 5\) does not match weight of shape"):
        model(x)  # the batchnorm ran (and updated its running statistics) before the last Linear refused
    assert_same(before, snapshot(model, optimizer))
    setattr(model, "3", nn.Linear(5, 2))  # fixed: the same call now works and counts one batch
    model(x)
    assert int(model[1].num_batches_tracked.item()) == 1
