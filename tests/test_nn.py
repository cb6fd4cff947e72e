"""Modules, the fused linear layer, losses and SGD, against NumPy written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.nn import functional as F


def leaf(array, device):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


@given(batch=st.sampled_from([(), (3,), (2, 3)]), n_in=st.integers(1, 4), n_out=st.integers(1, 4), bias=st.booleans())
def test_linear_gradients(device, batch, n_in, n_out, bias):
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal(batch + (n_in,)), device)
    w = leaf(rng.standard_normal((n_out, n_in)), device)
    inputs = [x, w] + ([leaf(rng.standard_normal(n_out), device)] if bias else [])
    assert tg.gradcheck(F.linear, inputs)


def test_linear_matches_numpy_and_validates_shapes(device):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    out = F.linear(Tensor(x, device=device), Tensor(w, device=device), Tensor(b, device=device))
    np.testing.assert_allclose(out.numpy(), x @ w.T + b, rtol=1e-12)
    with pytest.raises(ValueError, match=r"linear: input of shape \(5, 3\) does not match weight of shape \(4, 2\)"):
        F.linear(Tensor(x, device=device), Tensor(w[:, :2], device=device))


def test_cross_entropy_value_and_gradient(device):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4)) * 3
    target = np.array([0, 3, 1, 1, 2, 0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = -(shifted[np.arange(6), target] - np.log(np.exp(shifted).sum(axis=1)))
    for reduction, value in [("mean", expected.mean()), ("sum", expected.sum()), ("none", expected)]:
        out = F.cross_entropy(Tensor(logits, device=device), Tensor(target, device=device), reduction=reduction)
        np.testing.assert_allclose(out.numpy(), value, rtol=1e-12)
        t = Tensor(target, device=device)
        assert tg.gradcheck(lambda z, r=reduction, t=t: F.cross_entropy(z, t, reduction=r), [leaf(logits, device)])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor(np.array([[1000.0, 0.0], [0.0, -1000.0]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(logits, Tensor([0, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and np.all(np.isfinite(logits.grad.numpy()))
    np.testing.assert_allclose(loss.item(), 500.0, rtol=1e-6)


def test_cross_entropy_rejects_bad_targets():
    logits = Tensor(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"target values must be in \[0, 3\)"):
        F.cross_entropy(logits, Tensor([0, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, Tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="expected logits \\(N, C\\) and target \\(N,\\)"):
        F.cross_entropy(logits, Tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, Tensor([0, 1]), reduction="avg")


def test_mse_loss(device):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(F.mse_loss(Tensor(a, device=device), Tensor(b, device=device)).item(), ((a - b) ** 2).mean())
    for reduction in ("mean", "sum", "none"):
        assert tg.gradcheck(lambda x, y, r=reduction: F.mse_loss(x, y, reduction=r), [leaf(a, device), leaf(b, device)])


def _numpy_sgd(p, grads, lr, momentum, dampening, weight_decay, nesterov):
    """PyTorch's SGD update rule written out, for reference."""
    buf = None
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


@pytest.mark.parametrize(
    "options",
    [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True), dict(momentum=0.5, dampening=0.3, weight_decay=0.1)],
)
def test_sgd_follows_pytorchs_update_rule(options):
    rng = np.random.default_rng(4)
    start = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p = nn.Parameter(Tensor(start))
    opt = optim.SGD([p], lr=0.1, **options)
    for g in grads:
        p.grad = Tensor(g)
        opt.step()
    full = dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False) | options
    np.testing.assert_allclose(p.numpy(), _numpy_sgd(start, grads, 0.1, **full), rtol=1e-12)


def test_sgd_rejects_bad_hyperparameters():
    p = nn.Parameter(Tensor([1.0]))
    with pytest.raises(ValueError, match="lr, momentum and weight_decay must be >= 0"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([Tensor([1.0])], lr=0.1)


def test_module_registry_modes_and_state_dict():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight"]
    assert all(p.requires_grad for p in model.parameters())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())

    state = model.state_dict()
    other = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    other.load_state_dict(state)
    x = Tensor(np.random.randn(5, 3).astype(np.float32))
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_load_state_dict_checks_everything_before_changing_anything():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = model.state_dict()
    bad = dict(before)
    bad["1.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"1.weight has shape \(3, 3\) in the state, \(2, 4\) in the module"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in before.items() if k != "0.bias"}
    with pytest.raises(KeyError, match="missing keys \\['0.bias'\\]"):
        model.load_state_dict(missing)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_zero_grad_and_a_training_step_reduce_the_loss(device):
    tg.manual_seed(0)
    x, y = (Tensor(a, device=device) for a in tg.datasets.disc(200))
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)).to(device)
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]
