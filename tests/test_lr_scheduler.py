"""Learning-rate schedules (closed forms, and PyTorch's values where torch is installed) and the lr range test."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.datasets import disc
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD, Adam, lr_finder
from tinygrad_edu.optim.lr_scheduler import CosineAnnealingWarmRestarts, OneCycleLR, StepLR


def sgd(lr=0.1, momentum=0.9, groups=1):
    params = [tg.Tensor(np.ones(3), requires_grad=True) for _ in range(groups)]
    return SGD([{"params": [p]} for p in params], lr=lr, momentum=momentum)


def run(scheduler, steps, **step_kwargs):
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step(**step_kwargs)
        lrs.append(scheduler.get_last_lr()[0])
    return np.array(lrs)


# -- closed forms ---------------------------------------------------------------------------------------------------
def test_step_lr_closed_form():
    opt = sgd(lr=0.5)
    scheduler = StepLR(opt, step_size=3, gamma=0.2)
    lrs = run(scheduler, 10)
    np.testing.assert_allclose(lrs, [0.5 * 0.2 ** (t // 3) for t in range(11)], rtol=1e-14)
    assert opt.param_groups[0]["lr"] == lrs[-1] and opt.param_groups[0]["initial_lr"] == 0.5


def sgdr(t, T_0, T_mult, eta_min, base):  # noqa: N803
    """The lr of SGDR at integer epoch t, by walking the cycles."""
    T_i, start = T_0, 0
    while t >= start + T_i:
        start += T_i
        T_i *= T_mult
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t - start) / T_i)) / 2


@pytest.mark.parametrize("T_0, T_mult, eta_min", [(5, 1, 0.0), (3, 2, 0.01), (2, 3, 0.001)])
def test_cosine_warm_restarts_closed_form(T_0, T_mult, eta_min):  # noqa: N803
    scheduler = CosineAnnealingWarmRestarts(sgd(lr=0.1), T_0=T_0, T_mult=T_mult, eta_min=eta_min)
    lrs = run(scheduler, 30)
    np.testing.assert_allclose(lrs, [sgdr(t, T_0, T_mult, eta_min, 0.1) for t in range(31)], rtol=1e-12)
    restarts = [t for t in range(1, 31) if lrs[t] > lrs[t - 1]]  # the lr jumps back up only at a restart
    expected, start, T_i = [], 0, T_0
    while start + T_i <= 30:
        start += T_i
        expected.append(start)
        T_i *= T_mult
    assert restarts == expected
    assert lrs[restarts[0]] == pytest.approx(0.1)


def test_cosine_warm_restarts_fractional_epochs():
    scheduler = CosineAnnealingWarmRestarts(sgd(lr=1.0), T_0=2, T_mult=2)
    for epoch, (t_cur, t_i) in [(0.5, (0.5, 2)), (2.5, (0.5, 4)), (7.0, (1.0, 8)), (1.0, (1.0, 2))]:
        scheduler.step(epoch)
        assert (scheduler.T_cur, scheduler.T_i) == pytest.approx((t_cur, t_i))
        assert scheduler.get_last_lr()[0] == pytest.approx((1 + math.cos(math.pi * t_cur / t_i)) / 2)


def one_cycle(t, total, max_lr, pct=0.3, div=25.0, final_div=1e4, strategy="cos"):
    """The lr of OneCycleLR at step t: up from max_lr/div to max_lr at step pct·total − 1, then down."""
    def anneal(a, b, p):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p)) if strategy == "cos" else a + (b - a) * p

    up_end = pct * total - 1
    low, high = max_lr / div, max_lr
    if t <= up_end:
        return anneal(low, high, t / up_end)
    return anneal(high, low / final_div, (t - up_end) / (total - 1 - up_end))


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_one_cycle_closed_form(strategy):
    opt = sgd(lr=123.0)  # ignored: OneCycleLR starts at max_lr / div_factor
    scheduler = OneCycleLR(opt, max_lr=0.4, total_steps=50, anneal_strategy=strategy)
    lrs = run(scheduler, 49)
    np.testing.assert_allclose(lrs, [one_cycle(t, 50, 0.4, strategy=strategy) for t in range(50)], rtol=1e-12)
    assert lrs[0] == pytest.approx(0.4 / 25) and lrs.max() == pytest.approx(0.4)
    assert int(np.argmax(lrs)) == 14 and lrs[-1] == pytest.approx(0.4 / 25 / 1e4)
    # momentum cycles the other way: 0.95 at the ends, 0.85 at the peak
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="total number of steps is 50"):
        scheduler.step()
        scheduler.step()


def test_one_cycle_momentum_and_adam_betas():
    opt = sgd()
    scheduler = OneCycleLR(opt, max_lr=1.0, total_steps=20, pct_start=0.5)
    momenta = [opt.param_groups[0]["momentum"]]
    for _ in range(19):
        scheduler.step()
        momenta.append(opt.param_groups[0]["momentum"])
    assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85)
    assert int(np.argmin(momenta)) == 9
    adam = Adam([tg.Tensor(np.ones(2), requires_grad=True)], lr=1.0, betas=(0.9, 0.999))
    OneCycleLR(adam, max_lr=1.0, total_steps=10)
    assert adam.param_groups[0]["betas"] == (0.95, 0.999)


def test_per_group_max_lr_and_state_dict():
    opt = sgd(groups=2)
    scheduler = OneCycleLR(opt, max_lr=[1.0, 0.1], total_steps=10, cycle_momentum=False)
    for _ in range(3):
        scheduler.step()
    a, b = scheduler.get_last_lr()
    assert a == pytest.approx(10 * b)
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 3
    other = OneCycleLR(sgd(groups=2), max_lr=[1.0, 0.1], total_steps=10, cycle_momentum=False)
    other.load_state_dict(state)
    other.step()
    scheduler.step()
    assert other.get_last_lr() == scheduler.get_last_lr()


def test_errors():
    opt = sgd()
    with pytest.raises(ValueError, match="step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_0"):
        CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="T_mult"):
        CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr"):
        OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10)
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR([], step_size=2)


# -- against PyTorch --------------------------------------------------------------------------------------------------
def torch_lrs(make, steps, lr=0.1, momentum=0.9, groups=1, **step_kwargs):
    torch = pytest.importorskip("torch")
    params = [torch.nn.Parameter(torch.ones(3)) for _ in range(groups)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=lr, momentum=momentum)
    scheduler = make(torch.optim.lr_scheduler, opt)
    lrs, momenta = [scheduler.get_last_lr()[0]], [opt.param_groups[0]["momentum"]]
    for _ in range(steps):
        opt.step()
        scheduler.step(**step_kwargs)
        lrs.append(scheduler.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
    return np.array(lrs), np.array(momenta)


CASES = [
    (lambda m, o: m.StepLR(o, step_size=4, gamma=0.5), 20),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.002), 40),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3), 20),
    (lambda m, o: m.OneCycleLR(o, max_lr=0.8, total_steps=37), 36),
    (lambda m, o: m.OneCycleLR(o, max_lr=0.8, total_steps=40, pct_start=0.25, anneal_strategy="linear",
                               div_factor=10.0, final_div_factor=100.0, three_phase=True), 39),
]


@pytest.mark.parametrize("make, steps", CASES)
def test_matches_pytorch(make, steps):
    import tinygrad_edu.optim.lr_scheduler as ours

    expected_lrs, expected_momenta = torch_lrs(make, steps)
    opt = sgd()
    scheduler = make(ours, opt)
    momenta = [opt.param_groups[0]["momentum"]]
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
    np.testing.assert_allclose(lrs, expected_lrs, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(momenta, expected_momenta, rtol=1e-10)


# -- the lr range test -------------------------------------------------------------------------------------------------
def disc_setup(n=1024, batch=64):
    x, y = disc(n)
    batches = [(tg.Tensor(x[i:i + batch]), tg.Tensor(y[i:i + batch])) for i in range(0, n, batch)]
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    return model, batches


def test_lr_finder_on_the_disc_problem():
    model, batches = disc_setup()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    # one ordinary step first, so that the optimizer has state (momentum buffers) to restore
    loss = F.cross_entropy(model(batches[0][0]), batches[0][1])
    loss.backward()
    opt.step()
    opt.zero_grad()
    weights = {k: v.copy() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    buffers = {i: s["momentum_buffer"].copy() for i, s in opt.state_dict()["state"].items()}

    result = lr_finder(model, opt, F.cross_entropy, batches, start_lr=1e-4, end_lr=100.0, num_steps=100)
    lrs, losses, suggested, diverged = result
    assert diverged and len(lrs) < 100  # stopped early
    assert losses[-1] > 4.0 * min(losses[:-1])
    assert np.all(np.diff(lrs) > 0)  # geometric: monotone in lr, constant ratio
    np.testing.assert_allclose(np.diff(np.log(lrs)), math.log(1e6) / 99, rtol=1e-10)
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[0] < suggested < lrs[-1]
    # restored exactly: the same Parameter objects with the same values, the optimizer's lr and momentum buffers
    assert list(model.parameters()) == params
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])
    assert opt.param_groups[0]["lr"] == 0.01
    for i, s in opt.state_dict()["state"].items():
        np.testing.assert_array_equal(s["momentum_buffer"], buffers[i])
    assert all(p.grad is None for p in params)


def test_lr_finder_runs_to_the_end_without_divergence_and_cycles_batches():
    model, batches = disc_setup(n=256)
    opt = SGD(model.parameters(), lr=0.01)
    lrs, losses, suggested, diverged = lr_finder(model, opt, F.cross_entropy, batches, start_lr=1e-5, end_lr=1e-2,
                                                 num_steps=20, smoothing=0.0)
    assert not diverged and len(lrs) == len(losses) == 20  # 4 batches, cycled 5 times
    assert lrs[-1] == pytest.approx(1e-2) and opt.state == {}
    assert suggested > 0


def test_lr_finder_restores_after_an_error():
    model, batches = disc_setup(n=128)
    before = model.state_dict()
    opt = SGD(model.parameters(), lr=0.01)
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return F.cross_entropy(out, y)

    with pytest.raises(RuntimeError, match="boom"):
        lr_finder(model, opt, loss_fn, batches, num_steps=10)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert opt.param_groups[0]["lr"] == 0.01


def test_lr_finder_errors():
    model, batches = disc_setup(n=128)
    opt = SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="end_lr must be > start_lr"):
        lr_finder(model, opt, F.cross_entropy, batches, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        lr_finder(model, opt, F.cross_entropy, batches, num_steps=1)
    with pytest.raises(ValueError, match="no mini-batch"):
        lr_finder(model, opt, F.cross_entropy, [])
