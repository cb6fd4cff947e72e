"""tinygrad_edu.jit: a captured and replayed training step gives the eager step's numbers bit for bit, captures
again when the signature changes, and refuses (warning, or JitError when strict) whatever it could not replay."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, amp, nn
from tinygrad_edu.datasets import disc
from tinygrad_edu.jit import JitError, JitWarning, jit
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD, Adam

STEPS = 50


def _model(batchnorm: bool, dropout: float, depth: int = 4, device: str = "cpu") -> nn.Sequential:
    tg.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(2, 32, device=device)]
    for _ in range(depth):
        layers.append(nn.Linear(32, 32, device=device))
        if batchnorm:
            layers.append(nn.BatchNorm1d(32, device=device))
        layers.append(nn.ReLU())
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(32, 2, device=device))
    return nn.Sequential(*layers)


def _batches(n: int = STEPS, batch: int = 64):
    x, y = disc(n * batch, seed=3)
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(n)]


def _state(model, optimizer, extra=None) -> dict:
    state = {f"model.{k}": np.array(v) for k, v in model.state_dict().items()}
    for k, entry in optimizer.state_dict()["state"].items():
        for name, value in entry.items():
            state[f"opt.{k}.{name}"] = np.array(value)
    if extra is not None:
        state.update(extra)
    return state


def _step_of(model, optimizer):
    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _train(use_jit: bool, optimizer_name: str, batchnorm: bool, dropout: float, device: str = "cpu"):
    model = _model(batchnorm, dropout, device=device)
    params = list(model.parameters())
    optimizer = SGD(params, lr=0.1, momentum=0.9) if optimizer_name == "sgd" else Adam(params, lr=1e-2)
    step = _step_of(model, optimizer)
    run = jit(step) if use_jit else step
    tg.manual_seed(7)  # the dropout masks: one stream, drawn in the same order by both
    losses = [run(Tensor(x, device=device), Tensor(y, device=device)).numpy().item() for x, y in _batches()]
    return losses, _state(model, optimizer), run


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
@pytest.mark.parametrize("batchnorm,dropout", [(False, 0.0), (True, 0.0), (True, 0.2)])
def test_jitted_training_is_bit_identical_to_eager(optimizer_name, batchnorm, dropout):
    eager_losses, eager_state, _ = _train(False, optimizer_name, batchnorm, dropout)
    jit_losses, jit_state, step = _train(True, optimizer_name, batchnorm, dropout)
    assert step.stats == {"captures": 2, "replays": STEPS - 2, "eager": 0}
    assert jit_losses == eager_losses
    assert eager_state.keys() == jit_state.keys()
    for key in eager_state:
        assert np.array_equal(eager_state[key], jit_state[key]), key
    if batchnorm:
        assert int(jit_state["model.2.num_batches_tracked"]) == STEPS  # the host call ran at every replay


def test_jitted_training_on_strict_is_bit_identical():
    eager_losses, eager_state, _ = _train(False, "sgd", True, 0.2, device="strict")
    jit_losses, jit_state, step = _train(True, "sgd", True, 0.2, device="strict")
    assert step.stats["replays"] == STEPS - 2 and jit_losses == eager_losses
    assert all(np.array_equal(eager_state[k], jit_state[k]) for k in eager_state)


def _train_mixed(use_jit: bool):
    model = _model(True, 0.1)
    master = amp.MasterWeights(model)
    optimizer = SGD(master.parameters(), lr=0.1, momentum=0.9)
    scaler = amp.GradScaler(init_scale=2.0**40, growth_interval=5)  # overflows first: skipped steps, then growth

    def step(x, y):
        optimizer.zero_grad()
        with np.errstate(over="ignore", invalid="ignore"):
            loss = F.cross_entropy(model(x.half()).float(), y)
            scaler.scale(loss).backward()
        master.copy_grads_to_master()
        scaler.step(optimizer)
        scaler.update()
        master.copy_master_to_model()
        return loss

    run = jit(step) if use_jit else step
    tg.manual_seed(7)
    losses, scales = [], []
    for x, y in _batches():
        losses.append(run(Tensor(x), Tensor(y)).numpy().item())
        scales.append(scaler.get_scale())
    return losses, scales, _state(model, optimizer, {f"master.{k}": v for k, v in master.state_dict().items()}), run


def test_jitted_mixed_precision_with_skipped_steps_is_bit_identical():
    eager_losses, eager_scales, eager_state, _ = _train_mixed(False)
    jit_losses, jit_scales, jit_state, step = _train_mixed(True)
    assert step.stats["replays"] == STEPS - 2
    skipped_in_replay = sum(b < a for a, b in zip(jit_scales[2:], jit_scales[3:]))
    grown_in_replay = sum(b > a for a, b in zip(jit_scales[2:], jit_scales[3:]))
    assert skipped_in_replay >= 1 and grown_in_replay >= 1  # the replays both skipped steps and grew the scale
    assert jit_scales == eager_scales
    assert np.array_equal(np.array(jit_losses), np.array(eager_losses), equal_nan=True)
    for key in eager_state:
        assert np.array_equal(eager_state[key], jit_state[key]), key


def test_signature_changes_capture_again():
    model = _model(True, 0.0)
    step = jit(_step_of(model, SGD(model.parameters(), lr=0.1)))

    (x, y), = _batches(1, 64)
    for _ in range(3):
        step(Tensor(x), Tensor(y))
    assert step.stats == {"captures": 2, "replays": 1, "eager": 0}
    for _ in range(3):  # another batch size
        step(Tensor(x[:32]), Tensor(y[:32]))
    assert step.stats == {"captures": 4, "replays": 2, "eager": 0}
    step(Tensor(x), Tensor(y))  # the first signature is still cached
    assert step.stats["replays"] == 3
    model.eval()  # another training flag: batchnorm normalizes with its running statistics, and counts nothing
    with tg.no_grad():
        pass
    step(Tensor(x), Tensor(y))
    assert step.stats["captures"] == 5
    model.train()
    model[0].weight.requires_grad_(False)  # a parameter stops training: capture again (its gradient is not computed)
    step(Tensor(x), Tensor(y))
    assert step.stats["captures"] == 6 and model[0].weight.grad is None


def test_replay_reads_the_current_inputs_and_returns_a_plain_tensor():
    model = _model(False, 0.0)

    @jit
    def forward(x):
        with tg.no_grad():
            return model(x)

    (x, _), (x2, _) = _batches(2, 16)
    for _ in range(3):
        out = forward(Tensor(x))
    expected = model(Tensor(x2)).numpy()
    got = forward(Tensor(x2))
    assert forward.stats["replays"] == 2
    assert np.array_equal(got.numpy(), expected) and not got.requires_grad and got.grad_fn is None
    assert out.shape == (16, 2)


def test_graph_lists_the_replayed_program():
    _, _, step = _train(True, "sgd", True, 0.2)
    graph = step.graph
    assert graph[0] == "host Optimizer.zero_grad()"
    assert graph[1].startswith("%0 = LinearFunction(arg0, 0.weight[32, 2], 0.bias[32])")
    assert any(line.startswith("host _BatchNorm._count_batch()") for line in graph)
    assert any("DropoutFunction(%" in line for line in graph)
    assert any(line.startswith("backward from %") and "LinearFunction.backward(%0)" in line for line in graph)
    assert graph[-1] == "host SGD.step()"


def _broken(body):
    model = _model(False, 0.0)
    optimizer = SGD(model.parameters(), lr=0.1)

    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        body(model, loss, x)
        loss.backward()
        optimizer.step()
        return loss

    return step


BREAKERS = {
    "item": (lambda model, loss, x: loss.item() > 1 and None, "read on the host"),
    "bool": (lambda model, loss, x: bool(loss > 0), "read on the host"),
    "in-place": (lambda model, loss, x: (x * 1.0).add_(1.0), "changed in place"),
    "host tensor": (lambda model, loss, x: (x + Tensor(np.ones(2, np.float32))).sum(), "made anew inside the step"),
}


@pytest.mark.parametrize("name", list(BREAKERS))
def test_what_cannot_be_replayed_runs_eagerly_with_a_warning(name):
    body, message = BREAKERS[name]
    step = jit(_broken(body))
    (x, y), = _batches(1, 64)
    with pytest.warns(JitWarning, match=message):
        for _ in range(4):
            step(Tensor(x), Tensor(y))
    assert step.stats["replays"] == 0 and step.stats["eager"] >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per signature, not at every call
        step(Tensor(x), Tensor(y))


def test_strict_raises_instead():
    step = jit(_broken(BREAKERS["item"][0]), strict=True)
    (x, y), = _batches(1, 64)
    with pytest.raises(JitError, match="read on the host"):
        step(Tensor(x), Tensor(y))


def test_stochastic_depth_is_not_replayed():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.StochasticDepth(nn.Linear(8, 8), survival_prob=0.5), nn.Linear(8, 2))

    @jit
    def step(x):
        return model(x).sum()

    with pytest.warns(JitWarning, match="stochastic depth"):
        step(Tensor(np.ones((4, 2), np.float32)))


def test_a_returned_tensor_without_its_backward_is_refused():
    model = _model(False, 0.0)
    step = jit(lambda x: model(x).sum())
    with pytest.warns(JitWarning, match="backward has not run"):
        step(Tensor(np.ones((4, 2), np.float32)))


def test_memory_of_a_long_jitted_run_stays_flat():
    model = _model(True, 0.1, depth=2)
    step = jit(_step_of(model, SGD(model.parameters(), lr=0.05, momentum=0.9)))

    (x, y), = _batches(1, 64)
    xt, yt = Tensor(x), Tensor(y)
    for _ in range(50):
        step(xt, yt)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            step(xt, yt)
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert step.stats["replays"] == 2048
    assert growth < 2**20, growth


# -- what the review of the first version found: each a silent difference or a crash before ----------------------------
def test_python_state_in_the_step_is_replayed_or_refused():
    """Module.zero_grad and a scheduler's step are host calls (replayed); a bare .grad assignment is refused."""
    from tinygrad_edu.optim.lr_scheduler import StepLR

    def run(use_jit):
        tg.manual_seed(0)
        m = nn.Linear(3, 1)
        opt = SGD(m.parameters(), lr=0.1)
        scheduler = StepLR(opt, step_size=1, gamma=0.5)

        def step(x):
            m.zero_grad()
            m(x).sum().backward()
            opt.step()
            scheduler.step()

        run_step = jit(step) if use_jit else step
        for _ in range(5):
            run_step(Tensor(np.ones((2, 3), np.float32)))
        return m.weight.numpy().copy(), opt.param_groups[0]["lr"], run_step

    eager, jitted = run(False), run(True)
    assert np.array_equal(eager[0], jitted[0]) and eager[1] == jitted[1] == 0.1 * 0.5**5
    assert jitted[2].stats["replays"] == 3
    w = Tensor(np.ones(2, np.float32), requires_grad=True)

    @jit
    def bare(x):
        w.grad = None
        (w * x).sum().backward()

    with pytest.warns(JitWarning, match=r"\.grad was assigned"):
        bare(Tensor(np.ones(2, np.float32)))


def test_arguments_that_cannot_key_or_feed_a_program_run_eagerly():
    w = Tensor(np.ones(3, np.float32), requires_grad=True)

    @jit
    def square(h):
        (h * h).sum().backward()

    with pytest.warns(JitWarning, match="not a leaf"):
        for _ in range(4):
            w.grad = None
            square(w * 2.0)
    assert np.array_equal(w.grad.numpy(), [8.0, 8.0, 8.0])  # the backward went on into w, as eager

    @jit
    def scaled(x, s):
        return x * s[0]

    x = Tensor(np.ones(2, np.float32))
    with pytest.warns(JitWarning, match="unhashable"):
        values = [scaled(x, [v]).numpy()[0] for v in (1.0, 1.0, 2.0, 3.0)]
    assert values == [1.0, 1.0, 2.0, 3.0]

    @jit
    def add(a, b):
        return a * 2.0 + b

    a, b = Tensor(np.full(2, 10.0, np.float32)), Tensor(np.ones(2, np.float32))
    add(x, x), add(x, x)
    assert add(a, b).numpy().tolist() == [21.0, 21.0]  # another aliasing of the arguments: another signature


def test_a_replaced_buffer_array_captures_again():
    model = _model(True, 0.0, depth=1)
    step = jit(_step_of(model, SGD(model.parameters(), lr=0.1)))
    (x, y), = _batches(1, 64)
    start = model.state_dict()
    for _ in range(3):
        step(Tensor(x), Tensor(y))
    model.load_state_dict(start)  # new arrays for the running statistics
    step(Tensor(x), Tensor(y))
    assert step.stats["captures"] == 3
    assert not np.array_equal(model[2].running_mean.numpy(), start["2.running_mean"])


def test_a_refused_first_capture_leaves_the_graph_usable_and_namedtuples_come_back():
    from collections import namedtuple

    model = _model(False, 0.0, depth=1)
    forward = jit(lambda x: model(x).sum())
    with pytest.warns(JitWarning, match="backward has not run"):
        forward(Tensor(np.ones((4, 2), np.float32))).backward()  # the eager graph is intact
    assert model[0].weight.grad is not None
    Pair = namedtuple("Pair", "a b")
    pair = jit(lambda x: Pair(x * 2.0, x + 1.0))
    for _ in range(3):
        out = pair(Tensor(np.ones(2, np.float32)))
    assert isinstance(out, Pair) and out.b.numpy().tolist() == [2.0, 2.0]


def test_an_upstream_gradient_that_is_not_a_tensor_is_refused():
    w = Tensor(np.ones((2, 2), np.float32), requires_grad=True)

    @jit
    def step(x):
        (x @ w).backward(np.ones((2, 2)))

    with pytest.warns(JitWarning, match="not a tensor"):
        for _ in range(3):
            step(Tensor(np.ones((2, 2), np.float32)))
