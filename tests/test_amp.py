"""Mixed-precision training: ``amp.GradScaler``, ``amp.MasterWeights``, ``nn.utils.clip_grad_norm_``, ``datasets.digits``.

* the scaler's growth/backoff sequence, hand-checked and (where PyTorch is installed) step by step against
  ``torch.amp.GradScaler``; the float32 ceiling of the scale; static mode; state_dict round trips; errors;
* a skipped step (inf/NaN gradients) leaves the FP16 model, the FP32 masters and the optimizer state (SGD momentum,
  Adam moments and step counts) bit for bit as they were;
* unscale before clipping: the clip sees the true norm;
* master weights: layout (FP16 model, FP32 batchnorm, unrounded masters), small updates that FP16 alone loses;
* flush to zero: late in training a real network's FP16 gradients underflow without loss scaling, not with it;
* training: an MLP on scikit-learn's 8×8 digits in mixed precision reaches the float32 run's test accuracy.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, amp, nn, optim
from tinygrad_edu.datasets import digits
from tinygrad_edu.nn import functional as F


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def one_param_step(scaler, optimizer, param, overflow):
    """One scaler iteration with a hand-set gradient: finite (1.0 · scale) or inf."""
    value = np.inf if overflow else scaler.get_scale()
    param.grad = Tensor(np.full(param.shape, value, np.float32), device=param.device)
    scaler.step(optimizer)
    scaler.update()


def mlp(batchnorm=True, seed=0):
    tg.manual_seed(seed)
    if batchnorm:
        return nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def snapshot(*arrays_or_tensors):
    """Bytes and dtypes of everything given: equality means bit for bit."""
    out = []
    for a in arrays_or_tensors:
        a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
        out.append((a.dtype.str, a.shape, a.tobytes()))
    return out


def optimizer_snapshot(optimizer):
    state = optimizer.state_dict()["state"]
    return {k: {name: v if isinstance(v, int) else snapshot(v) for name, v in entry.items()}
            for k, entry in state.items()}


def mixed_step(model, master, optimizer, scaler, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x.half()).float(), y)
    scaler.scale(loss).backward()
    master.copy_grads_to_master()
    result = scaler.step(optimizer)
    scaler.update()
    master.copy_master_to_model()
    return loss, result


# ----------------------------------------------------------------------------------------------------------------
# GradScaler: the scale's schedule
# ----------------------------------------------------------------------------------------------------------------
def test_defaults_are_pytorchs():
    scaler = amp.GradScaler()
    assert scaler.get_scale() == 2.0**16 and scaler.is_enabled() and scaler.is_dynamic()
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (2.0, 0.5, 2000)
    assert scaler.state_dict() == {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                   "growth_interval": 2000, "_growth_tracker": 0, "dynamic": True}


def test_growth_and_backoff_sequence_hand_checked():
    # growth_interval 3: ×2 after three finite steps in a row; ×0.5 (and the count restarts) on every overflow
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    scaler = amp.GradScaler(init_scale=8.0, growth_interval=3)
    overflow = [0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    expected_scale = [8, 8, 16, 16, 8, 8, 8, 16, 8, 4, 4, 4, 8, 8, 8, 16]
    expected_tracker = [1, 2, 0, 1, 0, 1, 2, 0, 0, 0, 1, 2, 0, 1, 2, 0]
    scales, trackers, steps_taken = [], [], 0
    for o in overflow:
        one_param_step(scaler, opt, p, o)
        scales.append(scaler.get_scale())
        trackers.append(scaler._get_growth_tracker())
    steps_taken = -int(p.numpy()[0])  # each finite step moves p by -lr · (unscaled grad 1.0)
    assert scales == expected_scale
    assert trackers == expected_tracker
    assert steps_taken == overflow.count(0)


def test_sequence_matches_torch_gradscaler():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    overflow = (rng.random(60) < 0.25).tolist()
    p = Tensor(np.zeros(3, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    ours = amp.GradScaler(init_scale=2.0**10, growth_factor=4.0, backoff_factor=0.25, growth_interval=2)
    tp = torch.nn.Parameter(torch.zeros(3))
    topt = torch.optim.SGD([tp], lr=0.1)
    theirs = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_factor=4.0, backoff_factor=0.25,
                                  growth_interval=2)
    for o in overflow:
        theirs.scale(torch.ones(()))
        tp.grad = torch.full((3,), float("inf") if o else theirs.get_scale())
        theirs.step(topt)
        theirs.update()
        one_param_step(ours, opt, p, o)
        assert ours.get_scale() == theirs.get_scale()
        assert ours._get_growth_tracker() == theirs._get_growth_tracker()
    np.testing.assert_array_equal(p.numpy(), tp.detach().numpy())
    theirs_state = theirs.state_dict()
    assert {k: v for k, v in ours.state_dict().items() if k != "dynamic"} == theirs_state
    fresh = amp.GradScaler()
    fresh.load_state_dict(theirs_state)  # a PyTorch state dict loads as is
    assert fresh.get_scale() == theirs.get_scale() and fresh.is_dynamic()


def test_growth_stops_below_float32_overflow():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.0)
    scaler = amp.GradScaler(init_scale=2.0**127, growth_interval=1)
    one_param_step(scaler, opt, p, False)
    assert scaler.get_scale() == 2.0**127  # 2^128 is inf in float32: kept, and the count restarts
    assert scaler._get_growth_tracker() == 0


def test_static_mode_keeps_its_scale_and_still_skips():
    p = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    scaler = amp.GradScaler(init_scale=1024.0, dynamic=False)
    assert not scaler.is_dynamic()
    for o in [0] * 5 + [1] + [0] * 3:
        before = p.numpy().copy()
        one_param_step(scaler, opt, p, o)
        assert scaler.get_scale() == 1024.0
        np.testing.assert_array_equal(p.numpy(), before if o else before - 1.0)
    scaler.update(new_scale=512.0)  # an explicit new scale is still honoured
    assert scaler.get_scale() == 512.0
    assert scaler.state_dict()["dynamic"] is False


def test_update_with_new_scale_and_errors():
    p = Tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    scaler = amp.GradScaler(init_scale=4.0, growth_interval=1)
    with pytest.raises(RuntimeError, match="No inf checks were recorded"):
        scaler.update()
    scaler.update(new_scale=Tensor(32.0))
    assert scaler.get_scale() == 32.0
    p.grad = Tensor(np.ones(1, np.float32))
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    scaler.update()
    assert scaler.get_scale() == 64.0
    for kwargs in ({"growth_factor": 1.0}, {"backoff_factor": 1.0}, {"growth_interval": 0}, {"init_scale": -1.0}):
        with pytest.raises(ValueError):
            amp.GradScaler(**kwargs)
    with pytest.raises(TypeError, match="growth_interval"):
        amp.GradScaler(growth_interval=2.5)
    with pytest.raises(ValueError, match="new_scale"):
        scaler.update(new_scale=0.0)
    with pytest.raises(TypeError, match="outputs must be a Tensor"):
        scaler.scale(3.0)


def test_state_dict_round_trip_continues_identically():
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    a = amp.GradScaler(init_scale=256.0, growth_factor=3.0, backoff_factor=0.25, growth_interval=4)
    for o in [0, 0, 1, 0, 0]:
        one_param_step(a, opt, p, o)
    state = a.state_dict()
    assert state == {"scale": 64.0, "growth_factor": 3.0, "backoff_factor": 0.25, "growth_interval": 4,
                     "_growth_tracker": 2, "dynamic": True}
    b = amp.GradScaler()
    b.load_state_dict(state)
    assert b.state_dict() == state
    for o in [0, 0, 0, 1, 0]:
        one_param_step(a, opt, p, o)
        one_param_step(b, opt, p, o)
        assert a.state_dict() == b.state_dict()
    with pytest.raises(RuntimeError, match="empty"):
        b.load_state_dict({})
    with pytest.raises(KeyError, match="_growth_tracker"):
        b.load_state_dict({"scale": 2.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 1})


def test_disabled_scaler_is_a_pass_through():
    p = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    scaler = amp.GradScaler(enabled=False)
    loss = (p * p).sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    loss.backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(p.numpy(), [-1.0, -1.0])  # p - 1.0 · 2p
    scaler.load_state_dict({})  # ignored when disabled, as in PyTorch


def test_scale_multiplies_in_float32_and_backprops_scaled_fp16_gradients():
    x = Tensor(np.array([[1.0, 2.0], [3.0, -1.0]], np.float16))
    w = Tensor(np.array([0.5, 0.25], np.float16), requires_grad=True)
    loss = (x @ w).sum()  # float16: 2.25 (a loss of 2.25 · 2^16 would overflow float16)
    scaler = amp.GradScaler()
    scaled = scaler.scale(loss)
    assert scaled.dtype == np.float32 and scaled.item() == 2.25 * 2.0**16
    assert scaler.scale([loss.float(), loss.float()])[1].item() == 2.25 * 2.0**16
    scaler = amp.GradScaler(init_scale=2.0**10)
    loss = (x @ w).float().sum()
    scaler.scale(loss).backward()
    assert w.grad.dtype == np.float16
    np.testing.assert_array_equal(w.grad.numpy(), np.array([4.0, 1.0], np.float16) * 2**10)


def test_two_optimizers_back_off_once_and_an_fp16_loss_overflows_at_2_16():
    p, q = (Tensor(np.zeros(1, np.float32), requires_grad=True) for _ in range(2))
    opt_p, opt_q = optim.SGD([p], lr=1.0), optim.SGD([q], lr=1.0)
    scaler = amp.GradScaler(init_scale=64.0)
    p.grad, q.grad = Tensor(np.array([64.0], np.float32)), Tensor(np.array([np.inf], np.float32))
    scaler.step(opt_p)
    scaler.step(opt_q)
    scaler.update()
    assert scaler.get_scale() == 32.0  # one overflow anywhere: one backoff
    assert p.item() == -1.0 and q.item() == 0.0  # each optimizer skips only on its own overflow, as in PyTorch
    # a float16 loss receives the gradient S in float16: inf at S = 2^16, so the first step is skipped
    w16 = Tensor(np.ones(2, np.float16), requires_grad=True)
    model = nn.Linear(2, 1, bias=False)
    master = amp.MasterWeights(model)
    opt = optim.SGD(master.parameters(), lr=0.1)
    scaler = amp.GradScaler()
    for expected_scale in (2.0**15, 2.0**15):
        opt.zero_grad()
        scaler.scale(model(w16.detach()[None, :]).sum()).backward()  # an FP16 loss
        master.copy_grads_to_master()
        scaler.step(opt)
        scaler.update()
        assert scaler.get_scale() == expected_scale


def test_unscaling_fp16_gradients_is_refused():
    w = Tensor(np.ones(2, np.float16), requires_grad=True)
    w.grad = Tensor(np.ones(2, np.float16))
    with pytest.raises(ValueError, match="FP16 gradients.*MasterWeights"):
        amp.GradScaler().unscale_(optim.SGD([w], lr=0.1))


def test_scaler_on_every_device(device):
    """The scaler's array work runs through ctx-free array-API calls only: it works on the strict device."""
    p = Tensor(np.array([1.0, -2.0], np.float32), requires_grad=True, device=device)
    q = Tensor(np.array([3.0], np.float32), requires_grad=True, device=device)
    opt = optim.SGD([p, q], lr=0.5)
    scaler = amp.GradScaler(init_scale=4.0, growth_interval=1)
    scaler.scale((p * p).sum() + q.sum()).backward()
    np.testing.assert_array_equal(p.grad.numpy(), [8.0, -16.0])
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(p.numpy(), [0.0, 0.0])  # p - 0.5 · 2p
    np.testing.assert_array_equal(q.numpy(), [2.5])
    assert scaler.get_scale() == 8.0
    q.grad = Tensor(np.array([np.nan], np.float32), device=device)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(q.numpy(), [2.5])
    assert scaler.get_scale() == 4.0


# ----------------------------------------------------------------------------------------------------------------
# a skipped step touches nothing
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_optimizer", [
    lambda params: optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4),
    lambda params: optim.Adam(params, lr=1e-3, weight_decay=1e-4),
], ids=["sgd-momentum", "adam"])
@pytest.mark.parametrize("cause", ["overflow", "nan"])
def test_skipped_step_leaves_weights_state_and_masters_bit_identical(make_optimizer, cause):
    x_train, _, y_train, _ = digits(seed=0)
    x, y = Tensor(x_train[:32]), Tensor(y_train[:32])
    model = mlp(batchnorm=True)
    master = amp.MasterWeights(model)
    optimizer = make_optimizer(master.parameters())
    scaler = amp.GradScaler(init_scale=2.0**10, growth_interval=1)
    mixed_step(model, master, optimizer, scaler, x, y)  # a good step: momentum / Adam moments now exist
    assert scaler.get_scale() == 2.0**11

    model_before = snapshot(*model.parameters(), *[b for _, b in model.named_buffers() if b.dtype.kind == "f"])
    masters_before = snapshot(*master.parameters())
    state_before = optimizer_snapshot(optimizer)
    assert state_before  # the optimizer has state to protect

    optimizer.zero_grad()
    loss = F.cross_entropy(model(x.half()).float(), y)
    if cause == "overflow":  # a scale so large that the float16 backward overflows: a real inf
        scaler.update(new_scale=2.0**40)
        scaler.scale(loss).backward()
        master.copy_grads_to_master()
    else:
        scaler.scale(loss).backward()
        master.copy_grads_to_master()
        first = next(master.parameters())
        first.grad.data[0, 0] = np.nan
    scale = scaler.get_scale()
    assert scaler.step(optimizer) is None
    scaler.update()
    master.copy_master_to_model()
    assert scaler.get_scale() == scale / 2 and scaler._get_growth_tracker() == 0

    assert snapshot(*master.parameters()) == masters_before
    assert optimizer_snapshot(optimizer) == state_before
    # the batchnorm running statistics did move (a forward pass in training mode), so compare the parameters
    n = len(list(model.parameters()))
    assert snapshot(*model.parameters()) == model_before[:n]


# ----------------------------------------------------------------------------------------------------------------
# unscale before clipping
# ----------------------------------------------------------------------------------------------------------------
def test_unscale_before_clipping_sees_the_true_norm():
    x_train, _, y_train, _ = digits(seed=0)
    x, y = Tensor(x_train[:64]), Tensor(y_train[:64])
    reference = mlp(batchnorm=False)
    F.cross_entropy(reference(x), y).backward()
    true_norm = np.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in reference.parameters()))

    model = mlp(batchnorm=False)
    master = amp.MasterWeights(model)
    optimizer = optim.SGD(master.parameters(), lr=1.0)
    scaler = amp.GradScaler()  # 2^16
    scaler.scale(F.cross_entropy(model(x.half()).float(), y)).backward()
    master.copy_grads_to_master()
    scaler.unscale_(optimizer)
    max_norm = true_norm / 4
    total = nn.utils.clip_grad_norm_(master.parameters(), max_norm)
    assert total.dtype == np.float32
    np.testing.assert_allclose(total.item(), true_norm, rtol=2e-3)  # FP16 forward/backward: ~1e-3 relative
    clipped = [p.grad.numpy().copy() for p in master.parameters()]
    clipped_norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in clipped))
    np.testing.assert_allclose(clipped_norm, max_norm, rtol=1e-5)
    before = [p.numpy().copy() for p in master.parameters()]
    scaler.step(optimizer)  # must not unscale a second time
    for w0, g, p in zip(before, clipped, master.parameters()):
        np.testing.assert_allclose(p.numpy(), w0 - g, rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_formula_and_norm_types(device):
    a = np.array([[3.0, -4.0], [0.0, 12.0]], np.float32)
    b = np.array([-84.0], np.float32)
    params = [Tensor(a, requires_grad=True, device=device), Tensor(b, requires_grad=True, device=device),
              Tensor(np.ones(3, np.float32), requires_grad=True, device=device)]  # no grad: skipped
    for norm_type, expected in ((2.0, 85.0), (1.0, 103.0), (float("inf"), 84.0)):
        params[0].grad, params[1].grad = Tensor(a, device=device), Tensor(b, device=device)
        total = nn.utils.clip_grad_norm_(params, 10.0, norm_type=norm_type)
        assert total.item() == pytest.approx(expected, rel=1e-6)
        coef = 10.0 / (expected + 1e-6)
        np.testing.assert_allclose(params[0].grad.numpy(), a * coef, rtol=1e-6)
        np.testing.assert_allclose(params[1].grad.numpy(), b * coef, rtol=1e-6)
    params[0].grad = Tensor(a, device=device)
    params[1].grad = Tensor(b, device=device)
    assert nn.utils.clip_grad_norm_(params[:2], 1000.0).item() == pytest.approx(85.0)  # small norm: unchanged
    np.testing.assert_allclose(params[0].grad.numpy(), a, rtol=1e-6)
    params[1].grad = Tensor(np.array([np.inf], np.float32), device=device)
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(params[:2], 1.0, error_if_nonfinite=True)
    assert nn.utils.clip_grad_norm_(Tensor(np.ones(2, np.float32), device=device), 1.0).item() == 0.0


def test_clip_grad_norm_of_fp16_gradients_accumulates_in_fp32():
    w = Tensor(np.zeros(4, np.float16), requires_grad=True)
    w.grad = Tensor(np.full(4, 300.0, np.float16))  # Σ g² = 360000: inf in float16
    total = nn.utils.clip_grad_norm_([w], 60.0)
    assert total.dtype == np.float32 and total.item() == pytest.approx(600.0)
    assert w.grad.dtype == np.float16
    np.testing.assert_allclose(w.grad.numpy().astype(np.float32), 30.0, rtol=1e-3)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=s).astype(np.float32) for s in ((5, 3), (7,), (2, 2, 2))]
    for norm_type in (2.0, 1.0, 3.0, float("inf")):
        ours = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
        theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for o, t, g in zip(ours, theirs, grads):
            o.grad, t.grad = Tensor(g), torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ours, 0.5, norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type)
        assert total.item() == pytest.approx(expected.item(), rel=1e-6)
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------------------------
# master weights
# ----------------------------------------------------------------------------------------------------------------
def test_master_weights_layout():
    model = mlp(batchnorm=True)
    original = {name: p.numpy().copy() for name, p in model.named_parameters()}
    linear_bytes = model[0].weight.data.nbytes
    master = amp.MasterWeights(model)
    assert model[0].weight.dtype == np.float16 and model[3].bias.dtype == np.float16
    assert model[0].weight.data.nbytes * 2 == linear_bytes  # half the memory
    bn = model[1]
    assert {bn.weight.dtype, bn.bias.dtype, bn.running_mean.dtype, bn.running_var.dtype} == {np.dtype(np.float32)}
    masters = dict(master.named_parameters())
    assert list(masters) == [name for name, _ in model.named_parameters()]
    assert masters["1.weight"] is bn.weight  # FP32 layers are their own masters
    for name, p in model.named_parameters():
        assert masters[name].dtype == np.float32
        np.testing.assert_array_equal(masters[name].numpy(), original[name])  # unrounded
        np.testing.assert_array_equal(p.numpy(), original[name].astype(np.float16))  # model = round(master)
    assert "2 kept in FP32" in repr(master)


def test_master_weights_keep_updates_that_fp16_loses():
    # lr · g = 1e-4 per step, below half the FP16 gap at 1.0 (2^-11 ≈ 4.9e-4): an FP16 weight never moves
    w16 = Tensor(np.ones(1, np.float16), requires_grad=True)
    model = nn.Linear(1, 1, bias=False)
    model.weight.data = np.ones((1, 1), np.float32)
    master = amp.MasterWeights(model)
    opt16 = optim.SGD([w16], lr=1e-4)
    opt32 = optim.SGD(master.parameters(), lr=1e-4)
    for _ in range(100):
        w16.grad = Tensor(np.ones(1, np.float16))
        opt16.step()
        model.weight.grad = Tensor(np.ones((1, 1), np.float16))
        master.copy_grads_to_master()
        opt32.step()
        master.copy_master_to_model()
    assert w16.item() == 1.0  # stuck
    assert next(master.parameters()).item() == pytest.approx(0.99, rel=1e-5)  # 100 updates of 1e-4
    assert model.weight.item() == float(np.float16(0.99))


def test_master_weights_grads_state_dict_and_errors():
    model = mlp(batchnorm=True)
    master = amp.MasterWeights(model)
    x = Tensor(np.random.default_rng(0).random((8, 64)).astype(np.float16))
    model(x).float().sum().backward()
    assert model[0].weight.grad.dtype == np.float16
    master.copy_grads_to_master()
    assert model[0].weight.grad is None  # moved
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in master.parameters())
    master.zero_grad()
    assert all(p.grad is None for p in master.parameters())

    state = master.state_dict()
    assert state["0.weight"].dtype == np.float32 and "1.running_mean" in state
    other = amp.MasterWeights(mlp(batchnorm=True, seed=1))
    other.load_state_dict(state)
    for (_, a), (_, b) in zip(master.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(other.model[0].weight.numpy(), model[0].weight.numpy())
    with pytest.raises(KeyError, match="missing keys"):
        other.load_state_dict({k: v for k, v in state.items() if k != "0.bias"})
    with pytest.raises(TypeError, match="must be a Module"):
        amp.MasterWeights([Tensor(1.0)])


def test_master_weights_need_a_device_with_float16():
    model = nn.Linear(2, 2).to("strict")
    with pytest.raises(TypeError, match="no float16"):
        amp.MasterWeights(model)
    assert model.weight.dtype == np.float32  # unchanged


# ----------------------------------------------------------------------------------------------------------------
# datasets.digits
# ----------------------------------------------------------------------------------------------------------------
def test_digits_split():
    x_train, x_test, y_train, y_test = digits(test_fraction=0.25, seed=3)
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and set(np.unique(y_test)) == set(range(10))
    again = digits(test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again[1], x_test)
    assert not np.array_equal(digits(test_fraction=0.25, seed=4)[1], x_test)
    xs, _, _, _ = digits(standardize=True)
    assert abs(float(xs.mean())) < 1e-5 and xs.dtype == np.float32
    with pytest.raises(ValueError, match="test_fraction"):
        digits(test_fraction=1.5)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"tinygrad_edu\[datasets\]"):
        digits()


# ----------------------------------------------------------------------------------------------------------------
# flush to zero: what loss scaling is for
# ----------------------------------------------------------------------------------------------------------------
def test_loss_scaling_rescues_gradients_that_fp16_flushes_to_zero():
    """Late in training the gradients are small. An MLP (64-128-10, ReLU) trained in float32 with SGD (lr 0.3,
    momentum 0.9, batches of 64) for 400 steps fits the digits' training set (loss ≈ 0.002); its gradient over the
    whole training set (mean cross-entropy, the realistic full-batch loss) is then computed in FP16 from the same
    weights. A weight gradient counts as flushed when its float32 value is nonzero and the FP16 backward gives 0.
    Measured: 9.2% of the nonzero gradients are under 2^-24 and 8.1% flush without scaling; scaled by 2^16, 0.8%
    still flush, all of them under 2^-40 (out of reach of any scale that keeps the large gradients finite), and
    none of the gradients that the scale brings into FP16's range."""
    x_train, _, y_train, _ = digits(seed=0)
    model = mlp(batchnorm=False)
    optimizer = optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    order = np.concatenate([np.random.default_rng(0).permutation(len(x_train)) for _ in range(18)])
    for step in range(400):
        batch = order[step * 64 : (step + 1) * 64]
        optimizer.zero_grad()
        F.cross_entropy(model(Tensor(x_train[batch])), Tensor(y_train[batch])).backward()
        optimizer.step()
    x, y = Tensor(x_train), Tensor(y_train)
    master = amp.MasterWeights(model)
    reference = mlp(batchnorm=False)  # float32, holding the FP16 model's (rounded) weights
    reference.load_state_dict({name: p.numpy().astype(np.float32) for name, p in model.named_parameters()})
    F.cross_entropy(reference(x), y).backward()
    true = np.concatenate([p.grad.numpy().ravel() for p in reference.parameters()])
    nonzero = true != 0

    def fp16_gradients(scale):
        master.zero_grad()
        amp.GradScaler(init_scale=scale).scale(F.cross_entropy(model(x.half()).float(), y)).backward()
        g = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
        assert np.isfinite(g).all()
        return g

    flushed = np.mean(fp16_gradients(1.0)[nonzero] == 0)
    assert np.mean(np.abs(true[nonzero]) < 2.0**-24) > 0.05
    assert flushed > 0.05
    scale = 2.0**16
    g = fp16_gradients(scale)
    flushed_scaled = np.mean(g[nonzero] == 0)
    assert flushed_scaled < 0.015 and flushed_scaled < flushed / 5
    reachable = nonzero & (np.abs(true) * scale >= 2.0**-23)  # at least the smallest FP16 value after scaling
    assert np.count_nonzero(g[reachable] == 0) == 0


# ----------------------------------------------------------------------------------------------------------------
# training: mixed precision matches float32
# ----------------------------------------------------------------------------------------------------------------
def train_digits(mixed, steps=300, batch=64):
    x_train, x_test, y_train, y_test = digits(seed=0)
    model = mlp(batchnorm=True)
    master = amp.MasterWeights(model) if mixed else None
    optimizer = optim.SGD(master.parameters() if mixed else model.parameters(), lr=0.05, momentum=0.9)
    scaler = amp.GradScaler()
    order = np.concatenate([np.random.default_rng(0).permutation(len(x_train)) for _ in range(14)])
    for step in range(steps):
        rows = order[step * batch : (step + 1) * batch]
        x, y = Tensor(x_train[rows]), Tensor(y_train[rows])
        if mixed:
            mixed_step(model, master, optimizer, scaler, x, y)
        else:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    with tg.no_grad():
        x = Tensor(x_test)
        logits = model(x.half() if mixed else x)
    assert logits.dtype == (np.float16 if mixed else np.float32)
    return float((logits.numpy().argmax(axis=1) == y_test).mean()), scaler


def test_mixed_precision_training_matches_float32_on_digits():
    """Linear-BatchNorm1d-ReLU-Linear, SGD with momentum, 300 steps of 64 from the same seed and batches: FP16
    model with FP32 masters and dynamic loss scaling (starting at 2^16) against float32 throughout. The FP16
    matmuls go through the backend's float32-accumulating kernel."""
    accuracy32, _ = train_digits(mixed=False)
    accuracy16, scaler = train_digits(mixed=True)
    assert accuracy32 > 0.9
    assert abs(accuracy16 - accuracy32) <= 0.01
    assert scaler.get_scale() >= 2.0**15  # at most one backoff
