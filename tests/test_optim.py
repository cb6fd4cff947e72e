"""Optimizers: Adam, AdamW and SGD against their update rules written out in NumPy and against torch.optim (when
PyTorch is installed), in-place updates with state allocated once, state_dict round trips, parameter groups, errors.
(The original SGD tests live in tests/test_nn.py.)"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.nn import functional as F

STEPS = 6


def _grads(shape=(3, 4), steps=STEPS, seed=0):
    """Gradients whose size shrinks and grows again, so that AMSGrad's running maximum matters."""
    rng = np.random.default_rng(seed)
    scales = [3.0, 0.1, 1.0, 0.05, 2.0, 0.3, 1.5, 0.2][:steps]
    return [s * rng.standard_normal(shape) for s in scales]


def _param(value, device, dtype=np.float64):
    return nn.Parameter(Tensor(np.asarray(value, dtype=dtype), device=device))


def _run(opt_class, start, grads, device, dtype=np.float64, **options):
    """The parameter after one step per gradient (fed as .grad, as a backward pass would)."""
    p = _param(start, device, dtype)
    opt = opt_class([p], **options)
    for g in grads:
        p.grad = Tensor(np.asarray(g, dtype=dtype), device=device)
        opt.step()
    return p.numpy()


# ------------------------------------------------------------------------------------------------------------------
# the update rules written out in NumPy (PyTorch's documented algorithms)
# ------------------------------------------------------------------------------------------------------------------
def numpy_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    beta1, beta2 = betas
    m = v = v_max = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def numpy_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    b = None
    for g in grads:
        d = g + weight_decay * p
        if momentum:
            b = d.copy() if b is None else momentum * b + (1 - dampening) * d
            d = d + momentum * b if nesterov else b
        p = p - lr * d
    return p


ADAM_OPTIONS = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.3),
    dict(lr=0.1, amsgrad=True),
    dict(lr=0.05, amsgrad=True, weight_decay=0.2, betas=(0.5, 0.9), eps=1e-3),
]
SGD_OPTIONS = [
    dict(),
    dict(weight_decay=0.1),
    dict(momentum=0.9),
    dict(momentum=0.9, weight_decay=0.1),
    dict(momentum=0.5, dampening=0.3),
    dict(momentum=0.5, dampening=0.3, weight_decay=0.1),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.9, nesterov=True, weight_decay=0.1),
]


@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=str)
def test_adam_follows_pytorchs_update_rule(device, options):
    start, grads = np.random.default_rng(1).standard_normal((3, 4)), _grads()
    got = _run(optim.Adam, start, grads, device, **options)
    np.testing.assert_allclose(got, numpy_adam(start, grads, **options), rtol=1e-12, atol=1e-14)


def test_amsgrad_changes_the_trajectory_on_these_gradients():
    start, grads = np.zeros((3, 4)), _grads()
    assert not np.allclose(numpy_adam(start, grads, lr=0.1, amsgrad=True), numpy_adam(start, grads, lr=0.1))


@pytest.mark.parametrize("options", [dict(lr=0.1), dict(lr=0.1, weight_decay=0.5, amsgrad=True)], ids=str)
def test_adamw_decays_the_weights_apart_from_the_gradient(device, options):
    start, grads = np.random.default_rng(2).standard_normal((3, 4)), _grads()
    got = _run(optim.AdamW, start, grads, device, **options)
    full = dict(weight_decay=1e-2) | options  # AdamW's default decay is PyTorch's 1e-2
    np.testing.assert_allclose(got, numpy_adam(start, grads, decoupled=True, **full), rtol=1e-12, atol=1e-14)
    assert not np.allclose(got, numpy_adam(start, grads, **full))  # L2-in-the-gradient is another rule


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=str)
def test_sgd_follows_pytorchs_update_rule_on_every_device(device, options):
    start, grads = np.random.default_rng(3).standard_normal((3, 4)), _grads()
    got = _run(optim.SGD, start, grads, device, lr=0.1, **options)
    np.testing.assert_allclose(got, numpy_sgd(start, grads, 0.1, **options), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt_class, options", [(optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                                                 (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                                 (optim.Adam, dict(lr=0.1, weight_decay=0.1, amsgrad=True))])
def test_a_zero_dimensional_parameter_is_updated(device, opt_class, options):
    grads = [np.array(g) for g in (0.5, -2.0, 0.25)]
    got = _run(opt_class, 1.5, grads, device, **options)
    reference = numpy_sgd if opt_class is optim.SGD else numpy_adam
    assert got.shape == ()
    np.testing.assert_allclose(got, reference(np.array(1.5), grads, **options), rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# against torch.optim on the same gradients
# ------------------------------------------------------------------------------------------------------------------
TORCH_CASES = [("SGD", dict(lr=0.1) | o) for o in SGD_OPTIONS] + [("Adam", o) for o in ADAM_OPTIONS] + [
    ("AdamW", dict(lr=0.1)), ("AdamW", dict(lr=0.1, weight_decay=0.3, amsgrad=True))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, options", TORCH_CASES, ids=str)
def test_trajectories_match_torch_optim(name, options, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    starts = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [[g.astype(dtype) for g in _grads(s.shape, seed=i)] for i, s in enumerate(starts)]
    ours = [_param(s, "cpu", dtype) for s in starts]
    theirs = [torch.tensor(s, requires_grad=True) for s in starts]
    # two groups, the second with half the learning rate; the first group's lr changes halfway (a schedule)
    lr = options["lr"]
    rest = {k: v for k, v in options.items() if k != "lr"}
    opt = getattr(optim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": lr / 2}], lr=lr, **rest)
    ref = getattr(torch.optim, name)([{"params": theirs[:1]}, {"params": theirs[1:], "lr": lr / 2}], lr=lr, **rest)
    for step in range(STEPS):
        if step == STEPS // 2:
            opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = lr / 3
        for p, t, g in zip(ours, theirs, grads):
            p.grad, t.grad = Tensor(g[step]), torch.tensor(g[step])
        opt.step()
        ref.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------------
# in place: the state is allocated once, a step allocates at most its documented temporaries
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_class, options, keys", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1), ["momentum_buffer"]),
    (optim.Adam, dict(amsgrad=True, weight_decay=0.1), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    (optim.AdamW, dict(), ["exp_avg", "exp_avg_sq"]),
])
def test_state_buffers_and_parameters_are_updated_in_place(opt_class, options, keys):
    params = [_param(np.ones((4, 3)), "cpu"), _param(np.ones(3), "cpu")]
    opt = opt_class(params, **options)
    ids = None
    for g in _grads((4, 3), steps=4):
        grads = [g, g[0]]
        for p, gi in zip(params, grads):
            p.grad = Tensor(gi)
        before = [(id(p.data), p.data.copy()) for p in params]
        opt.step()
        now = [[id(opt.state[p][k]) for k in keys] for p in params]
        assert ids is None or now == ids  # the same arrays at every step
        ids = now
        for p, (data_id, old), gi in zip(params, before, grads):
            assert id(p.data) == data_id and not np.array_equal(p.data, old)  # the parameter's own array, changed
            np.testing.assert_array_equal(p.grad.data, gi)  # the gradient is read, never written
    assert set(opt.state[params[0]]) == set(keys) | ({"step"} if opt_class is not optim.SGD else set())


def _peak_bytes_of_a_step(opt, p, grad):
    p.grad = Tensor(grad)
    opt.step()  # the first step allocates the state
    tracemalloc.start()
    try:
        opt.step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("opt_class, options, temporaries", [
    *[(optim.SGD, dict(lr=0.1) | o, 1) for o in SGD_OPTIONS],
    (optim.Adam, dict(), 2),
    (optim.AdamW, dict(), 2),
    (optim.Adam, dict(weight_decay=0.1), 2),
    (optim.Adam, dict(amsgrad=True, weight_decay=0.1), 2),
], ids=str)
def test_a_step_allocates_only_its_documented_temporaries(opt_class, options, temporaries):
    """tracemalloc sees NumPy's array buffers: the peak of a step is its temporaries alive at once (each the size of
    p). SGD: one (the old code held g + λ·p and λ·p or η·d together: two); Adam: two."""
    p = _param(np.ones(100_000), "cpu")
    opt = opt_class([p], **options)
    peak = _peak_bytes_of_a_step(opt, p, np.full(100_000, 0.5))
    assert peak < (temporaries + 0.5) * p.data.nbytes, f"{peak / p.data.nbytes:.2f} parameter sizes"


# ------------------------------------------------------------------------------------------------------------------
# training, groups, saving and loading
# ------------------------------------------------------------------------------------------------------------------
def test_adam_trains_the_disc_problem(device):
    tg.manual_seed(0)
    x, y = (Tensor(a, device=device) for a in tg.datasets.disc(200))
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)).to(device)
    opt = optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(80):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    accuracy = float(np.mean(np.argmax(model(x).numpy(), axis=1) == y.numpy()))
    assert losses[-1] < 0.4 * losses[0] and accuracy > 0.9, (losses[0], losses[-1], accuracy)


def test_zero_grad_sets_to_none_or_zeroes_in_place():
    p = _param([1.0, 2.0], "cpu")
    opt = optim.Adam([p])
    p.grad = Tensor([3.0, 4.0], dtype=p.dtype)
    array = p.grad.data
    opt.zero_grad(set_to_none=False)
    assert p.grad.data is array and np.array_equal(array, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_have_their_own_hyperparameters_and_add_param_group_fills_defaults():
    a, b, c = (_param(np.zeros(2), "cpu") for _ in range(3))
    opt = optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5, "betas": (0.5, 0.9)}], lr=0.1)
    opt.add_param_group({"params": [c], "amsgrad": True})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5, 0.1]
    assert [g["amsgrad"] for g in opt.param_groups] == [False, False, True]
    assert opt.param_groups[1]["eps"] == 1e-8
    grads = _grads((2,), steps=3)
    for g in grads:
        for p in (a, b, c):
            p.grad = Tensor(g)
        opt.step()
    np.testing.assert_allclose(a.numpy(), numpy_adam(np.zeros(2), grads, lr=0.1), rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), numpy_adam(np.zeros(2), grads, lr=0.5, betas=(0.5, 0.9)), rtol=1e-12)
    np.testing.assert_allclose(c.numpy(), numpy_adam(np.zeros(2), grads, lr=0.1, amsgrad=True), rtol=1e-12)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Adam: lr must be >= 0, got -1"):
        opt.add_param_group({"params": [_param([0.0], "cpu")], "lr": -1})
    assert len(opt.param_groups) == 3


def _trained(opt_class, options, device="cpu", steps=3):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(device)
    opt = opt_class(model.parameters(), **options)
    rng = np.random.default_rng(5)
    for _ in range(steps):
        for p in model.parameters():
            p.grad = Tensor(rng.standard_normal(p.shape), dtype=np.float32, device=device)
        opt.step()
    return model, opt


@pytest.mark.parametrize("opt_class, options", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                                 (optim.Adam, dict(lr=0.1, amsgrad=True, weight_decay=0.1)),
                                                 (optim.AdamW, dict(lr=0.1))])
def test_state_dict_round_trip_continues_identically(device, opt_class, options):
    """Saved on the CPU after 3 steps, loaded into a fresh optimizer of a copy of the model on ``device``: the next
    steps are those of the uninterrupted run; a fresh optimizer (no load) takes other steps."""
    model, opt = _trained(opt_class, options)
    opt.param_groups[0]["lr"] = 0.05  # hyper-parameters travel with the state
    saved = opt.state_dict()
    assert all(isinstance(v, (np.ndarray, int)) for entry in saved["state"].values() for v in entry.values())
    assert saved["param_groups"][0]["params"] == list(range(4))
    copies = []
    for load in (True, False):
        copy, other = _trained(opt_class, dict(options, lr=0.05), steps=0)
        copy.load_state_dict(model.state_dict())
        copy.to(device)
        if load:
            other.param_groups[0]["lr"] = 1.0
            other.load_state_dict(saved)
            assert other.param_groups[0]["lr"] == 0.05
        copies.append((copy, other))
    for entry in saved["state"].values():  # the optimizer does not share the saved arrays
        for v in entry.values():
            if isinstance(v, np.ndarray):
                v[...] = np.nan
    rng = np.random.default_rng(6)
    for _ in range(3):
        for p, *qs in zip(model.parameters(), *(c.parameters() for c, _ in copies)):
            p.grad = Tensor(rng.standard_normal(p.shape), dtype=np.float32)
            for q in qs:
                q.grad = Tensor(p.grad, device=device)
        for o in [opt] + [o for _, o in copies]:
            o.step()
    (loaded, _), (fresh, _) = copies
    for p, q in zip(model.parameters(), loaded.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=0 if device in ("cpu", "strict") else 1e-6)
    assert not all(np.allclose(p.numpy(), r.numpy()) for p, r in zip(model.parameters(), fresh.parameters()))


def test_load_state_dict_checks_everything_before_changing_anything():
    model, opt = _trained(optim.Adam, dict(lr=0.1, amsgrad=True))
    saved = opt.state_dict()
    before = opt.state_dict()

    def bad(change):
        state = {"state": {i: dict(e) for i, e in saved["state"].items()},
                 "param_groups": [dict(g, params=list(g["params"])) for g in saved["param_groups"]]}
        change(state)
        return state

    cases = [
        (lambda s: s["state"][3].update(exp_avg=np.zeros(5)), r"parameter 3: exp_avg has shape \(5,\) in the state, \(2,\)"),
        (lambda s: s["state"][1].update(momentum_buffer=np.zeros(4)), r"unknown state entries \['momentum_buffer'\]"),
        (lambda s: s["state"][1].pop("exp_avg_sq"), r"missing \['exp_avg_sq'\]"),
        (lambda s: s["state"][0].update(step=-1), "step must be an int >= 0"),
        (lambda s: s["state"].update({9: {}}), "state for parameter 9, which no group lists"),
        (lambda s: s["param_groups"][0]["params"].pop(), "group 0 has 3 parameters in the state, 4 in the optimizer"),
        (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "2 parameter groups in the state, 1"),
        (lambda s: s["param_groups"][0].update(betas=(0.9, 1.0)), r"Adam: betas\[1\] must be in \[0, 1\), got 1.0"),
        (lambda s: s["param_groups"][0].pop("eps"), r"lacks the hyper-parameters \['eps'\]"),
    ]
    for change, message in cases:
        state = bad(change)
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict(state)
        after = opt.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for k, entry in before["state"].items():
            for name, value in entry.items():
                np.testing.assert_array_equal(after["state"][k][name], value)
    with pytest.raises(ValueError, match="expected a dict with keys 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_bad_hyperparameters_name_the_optimizer_and_the_argument():
    p = _param([1.0], "cpu")
    cases = [
        (optim.Adam, dict(lr=-1e-3), r"Adam: lr must be >= 0, got -0.001"),
        (optim.AdamW, dict(lr=-1.0), "AdamW: lr must be >= 0"),
        (optim.Adam, dict(betas=(1.0, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
        (optim.Adam, dict(betas=(0.9, -0.1)), r"Adam: betas\[1\] must be in \[0, 1\), got -0.1"),
        (optim.Adam, dict(betas=(0.9,)), r"Adam: betas must be a pair \(beta1, beta2\)"),
        (optim.Adam, dict(eps=-1e-8), "Adam: eps must be >= 0, got -1e-08"),
        (optim.Adam, dict(weight_decay=-0.1), "Adam: weight_decay must be >= 0"),
        (optim.Adam, dict(lr=float("nan")), "Adam: lr must be >= 0, got nan"),
        (optim.SGD, dict(lr=0.1, momentum=-0.5), "SGD: lr, momentum and weight_decay must be >= 0, got momentum=-0.5"),
        (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov momentum needs"),
    ]
    for opt_class, options, message in cases:
        with pytest.raises(ValueError, match=message):
            opt_class([p], **options)
    with pytest.raises(TypeError, match="Adam: lr must be a real number, got '0.1'"):
        optim.Adam([p], lr="0.1")
    with pytest.raises(TypeError, match="Adam: params must be an iterable of Tensors"):
        optim.Adam(p)
    with pytest.raises(ValueError, match="Adam: got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="more than once"):
        optim.Adam([p, p])
    with pytest.raises(TypeError, match="require grad"):
        optim.Adam([Tensor([1.0])])
