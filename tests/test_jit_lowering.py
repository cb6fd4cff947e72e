"""The jit's lowering (``autograd/lowering.py``): a replayed op makes the array calls its forward and backward made
at capture. Every op of the gradient registry, jitted, gives the eager outputs and gradients bit for bit at each
call, with new input values at each call (an op that branched on its values would show); what cannot be lowered is
replayed as whole calls of forward and backward, and says why."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_jit import _step_of

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.autograd import Function
from tinygrad_edu.jit import JitWarning, jit
from tinygrad_edu.optim import SGD
from tinygrad_edu.testing.registry import entries

CALLS = 5


def _outputs(out):
    return out if isinstance(out, tuple) else (out,)


def _run(entry, arrays_per_call, upstreams, use_jit):
    """Each call: fresh leaves from the arrays, loss = Σ <upstream, output>, backward. Returns (loss, grads) per call
    and the jitted function."""

    def step(*tensors):
        xs, us = tensors[:len(tensors) - len(upstreams)], tensors[len(tensors) - len(upstreams):]
        loss = None
        for o, u in zip(_outputs(entry.fn(*xs)), us):
            term = (o * u).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        return loss

    run = jit(step) if use_jit else step
    results = []
    for i, arrays in enumerate(arrays_per_call):
        leaves = [Tensor(a, requires_grad=True) for a in arrays]
        tg.manual_seed(100 + i)  # random ops: the same draws in both runs
        loss = run(*leaves, *[Tensor(u) for u in upstreams])
        results.append((loss.numpy().copy(), [None if t.grad is None else t.grad.numpy().copy() for t in leaves]))
    return results, run


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.name)
def test_every_registered_op_replays_bit_identically_with_new_values(entry):
    rng = np.random.default_rng(0)
    first = entry.make_inputs(rng)  # then the same values in other places: where a max or a kink falls moves
    arrays_per_call = [first] + [[rng.permutation(a.ravel()).reshape(a.shape) for a in first] for _ in range(CALLS - 1)]
    tg.manual_seed(99)
    outputs = _outputs(entry.fn(*[Tensor(a) for a in arrays_per_call[0]]))
    upstreams = [rng.standard_normal(o.shape) for o in outputs]
    eager, _ = _run(entry, arrays_per_call, upstreams, use_jit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JitWarning)
        jitted, run = _run(entry, arrays_per_call, upstreams, use_jit=True)
    for call, ((loss_e, grads_e), (loss_j, grads_j)) in enumerate(zip(eager, jitted)):
        assert np.array_equal(loss_e, loss_j, equal_nan=True), (entry.name, call)
        for k, (a, b) in enumerate(zip(grads_e, grads_j)):
            assert (a is None) == (b is None), (entry.name, call, k)
            assert a is None or (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)), (entry.name, call, k)


def test_the_mlp_step_is_lowered_to_array_calls():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    step = jit(_step_of(model, SGD(model.parameters(), lr=0.1)), strict=True)
    x, y = Tensor(np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)), Tensor(np.arange(8) % 2)
    for _ in range(3):
        step(x, y)
    source = step.source
    assert "_forward_" not in source and "_backward_" not in source  # no op is called whole
    assert "matmul_" in source and "maximum_" in source  # its NumPy calls, one per line
    assert all("[lowered: " in line for line in step.graph if line.startswith("%"))


class _Branchy(Function):
    """y = 2x where Σx > 0, else 3x: its calls depend on the values (read on the host)."""

    lowerable = True  # (a promise the test breaks on purpose: the trace must notice)

    @staticmethod
    def forward(ctx, x):
        ctx.factor = 2.0 if float(x.sum()) > 0 else 3.0
        return x * ctx.factor

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor


_DRAWS = np.random.default_rng(0)


class _HostNoise(Function):
    """y = x + noise drawn from a generator of its own (an array from outside the traced calls)."""

    lowerable = True  # (a promise the test breaks on purpose: the trace must notice)

    @staticmethod
    def forward(ctx, x):
        return x + _DRAWS.standard_normal(x.shape)

    @staticmethod
    def backward(ctx, g):
        return g


class _Layout(Function):
    """y = x (copied), by a path chosen from the memory layout."""

    lowerable = True  # (a promise the test breaks on purpose: the trace must notice)

    @staticmethod
    def forward(ctx, x):
        return x.copy() if x.flags.c_contiguous else ctx.xp.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, g):
        return g


@pytest.mark.parametrize("op,reason", [(_Branchy, "reads an array on the host (float())"),
                                       (_HostNoise, "an array made outside the traced calls"),
                                       (_Layout, "reads an array on the host (flags)")])
def test_an_op_whose_calls_may_change_is_replayed_whole(op, reason):
    def step(x):
        y = op.apply(x)
        y.sum().backward()
        return y

    jitted = jit(step)
    values = [np.array([1.0, 2.0]), np.array([-1.0, -2.0]), np.array([3.0, -1.0]), np.array([-5.0, 1.0])]
    state = _DRAWS.bit_generator.state
    eager = []
    for v in values:
        x = Tensor(v, requires_grad=True)
        eager.append((step(x).numpy(), x.grad.numpy()))
    _DRAWS.bit_generator.state = state  # the same draws for the jitted run
    for v, (y_e, g_e) in zip(values, eager):
        x = Tensor(v, requires_grad=True)
        assert np.array_equal(jitted(x).numpy(), y_e) and np.array_equal(x.grad.numpy(), g_e)
    assert jitted.stats["replays"] == 2
    (line,) = [line for line in jitted.graph if line.startswith("%0")]
    assert "whole forward/backward" in line and reason in line, line


class _Keeper(Function):
    """Keeps an array on the context beside the saved ones."""

    lowerable = True  # (a promise the test breaks on purpose: the trace must notice)

    @staticmethod
    def forward(ctx, x):
        ctx.doubled = x * 2
        ctx.save_for_backward(x)
        return ctx.doubled + 1

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 + 0 * x


def test_contexts_hold_real_arrays_after_the_capture():
    contexts = []

    def step(x):
        y = _Keeper.apply(x)
        contexts.append(y._ctx)
        y.sum().backward(retain_graph=False)
        return y

    jitted = jit(step)
    for v in ([1.0, 2.0], [3.0, 4.0]):
        jitted(Tensor(np.array(v), requires_grad=True))
    for ctx in contexts:  # the captured calls' contexts: no traced value left, the class's own backward
        assert type(ctx.doubled) is np.ndarray and "backward" not in vars(ctx)
    x = Tensor(np.array([5.0, 6.0]), requires_grad=True)
    assert np.array_equal(jitted(x).numpy(), [11.0, 13.0]) and np.array_equal(x.grad.numpy(), [2.0, 2.0])


def test_a_kernel_call_is_one_call_of_the_lowered_op():
    a = Tensor(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float16), requires_grad=True)
    b = Tensor(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float16), requires_grad=True)

    def step(a, b):
        y = a @ b
        y.float().sum().backward()
        return y

    eager = step(a, b).numpy()
    grads = a.grad.numpy(), b.grad.numpy()
    jitted = jit(step, strict=True)
    for _ in range(3):
        a.grad = b.grad = None
        assert np.array_equal(jitted(a, b).numpy(), eager)
        assert np.array_equal(a.grad.numpy(), grads[0]) and np.array_equal(b.grad.numpy(), grads[1])
    assert "matmul_accumulate_" in jitted.source  # the compiled float16 kernel, called once per product


def _compare(op, values, before=None, **kwargs):
    """The op applied to each of ``values`` (one array per call) eagerly and jitted: outputs and gradients bit for
    bit (``before(k)`` runs before call k). Returns the jitted function."""
    def step(x):
        y = op.apply(x, **kwargs)
        (y * y).sum().backward()
        return y

    runs = []
    for use_jit in (False, True):
        run = jit(step) if use_jit else step
        out = []
        for k, v in enumerate(values):
            if before is not None:
                before(k)
            x = Tensor(np.array(v, dtype=np.float64), requires_grad=True)
            out.append((run(x).numpy().copy(), x.grad.numpy().copy()))
        runs.append(out)
    for (y_e, g_e), (y_j, g_j) in zip(*runs):
        assert np.array_equal(y_e, y_j) and np.array_equal(g_e, g_j)
    return run


def _op(forward, backward):
    return type("Op", (Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward),
                                    "lowerable": True})


def _whole_because(run) -> str:
    (line,) = [line for line in run.graph if line.startswith("%0 ")]
    assert "whole forward/backward" in line, line
    return line


def test_a_function_defined_outside_the_library_is_replayed_whole_unless_it_opts_in():
    class Double(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    assert not Double.lowerable and nn.Linear and tg.nn.functional.LinearFunction.lowerable
    run = _compare(Double, [[1.0, 2.0]] * 4)
    assert "without lowerable = True" in _whole_because(run)
    Double.lowerable = True
    run = _compare(Double, [[1.0, 2.0]] * 4)
    assert "[lowered: " in run.graph[0]


def _mean_of_positives_forward(ctx, x):
    positive = x[x > 0]
    ctx.mask, ctx.n = x > 0, positive.size  # the size depends on the values
    return positive.sum() / positive.size


def _mean_of_positives_backward(ctx, g):
    return ctx.xp.astype(ctx.mask, g.dtype) * (g / ctx.n)


def test_a_result_whose_shape_depends_on_the_values_is_replayed_whole():
    values = [[1.0, 2.0, -1.0, -2.0], [3.0, -1.0, 5.0, -7.0], [1.0, 2.0, 3.0, -1.0], [4.0, -1.0, -1.0, -1.0]]
    run = _compare(_op(_mean_of_positives_forward, _mean_of_positives_backward), values)
    assert "shape depends on the values" in _whole_because(run)


def test_two_gradients_that_are_one_array_are_copied_as_in_the_engine():
    add_both = _op(lambda ctx, a, b: a + b, lambda ctx, g: (g, ctx.xp.asarray(g)))  # asarray(g) is g itself
    triple_in_place = _op(lambda ctx, x: x * 3, lambda ctx, g: g.__imul__(3))  # (updates its upstream in place)

    def step(x):
        y = add_both.apply(triple_in_place.apply(x), x * 1)
        y.sum().backward()
        return y

    jitted = jit(step)
    for k in range(4):
        x = Tensor(np.arange(3.0) + k, requires_grad=True)
        jitted(x)
        assert np.array_equal(x.grad.numpy(), [4.0, 4.0, 4.0])  # 3 + 1, with eager's copy
    assert jitted.stats["replays"] == 2


def test_a_list_argument_changed_between_calls_is_not_frozen():
    chosen = [0, 1]

    def pick_forward(ctx, x):
        ctx.index = list(chosen), x.shape
        return x[chosen]

    def pick_backward(ctx, g):
        index, shape = ctx.index
        out = ctx.xp.zeros(shape, dtype=g.dtype)
        out[index] = g
        return out

    def choose(k):
        chosen[:] = [k % 3, (k + 1) % 3]

    run = _compare(_op(pick_forward, pick_backward), [[1.0, 2.0, 3.0]] * 5, before=choose)
    assert "traced different array calls" in _whole_because(run)


def test_ufunc_methods_and_python_protocols_on_traced_arrays():
    def scatter_forward(ctx, x):  # ctx.xp.maximum.reduce and ctx.xp.add.at through the traced namespace
        out = ctx.xp.zeros(x.shape, dtype=x.dtype)
        ctx.xp.add.at(out, ctx.xp.argmax(x), ctx.xp.maximum.reduce(x))
        return out + x

    run = _compare(_op(scatter_forward, lambda ctx, g: g), [[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]] * 2)
    assert "[lowered: " in run.graph[0]
    rounded = _op(lambda ctx, x: x * round(x.max(), 1), lambda ctx, g: g)
    assert "round()" in _whole_because(_compare(rounded, [[1.26, 2.0]] * 4))
    fraction = _op(lambda ctx, x: divmod(x, 1.0)[1], lambda ctx, g: g)
    assert "divmod" in _whole_because(_compare(fraction, [[1.25, 2.5]] * 4))


_RAMPS: dict = {}


def test_an_array_an_op_keeps_outside_its_context_goes_on_working():
    def ramp_forward(ctx, x):
        ramp = _RAMPS.setdefault(x.shape, ctx.xp.arange(x.shape[0], dtype=x.dtype))  # kept after the capture
        return x + ramp

    op = _op(ramp_forward, lambda ctx, g: g)

    def step(x):
        y = op.apply(x)
        y.sum().backward()
        return y

    jitted = jit(step)  # the first capture caches a traced array; the second finds it and replays the op whole
    for k in range(4):
        assert np.array_equal(jitted(Tensor(np.full(3, float(k)), requires_grad=True)).numpy(), k + np.arange(3.0))
    assert "another op" in _whole_because(jitted)
    assert np.array_equal(op.apply(Tensor(np.zeros(3))).numpy(), [0.0, 1.0, 2.0])  # eagerly, after the jit


def test_computed_counts_and_sizes_are_not_frozen():
    def balanced_forward(ctx, x, labels):  # one weight per class present: bincount's length is the largest label + 1
        counts = ctx.xp.bincount(ctx.xp.astype(labels, ctx.xp.int64))
        ctx.scale = 1.0 / counts.size
        return x * ctx.scale

    op = _op(balanced_forward, lambda ctx, g: (g * ctx.scale, None))

    def step(x, labels):
        y = op.apply(x, labels)
        y.sum().backward()
        return y

    jitted = jit(step)
    for labels in ([0, 1, 0, 1], [0, 1, 1, 0], [0, 3, 1, 2], [0, 0, 0, 0], [5, 0, 1, 2]):
        x = Tensor(np.ones(4), requires_grad=True)
        y = jitted(x, Tensor(np.array(labels, dtype=np.float64)))
        assert np.array_equal(y.numpy(), np.ones(4) / (max(labels) + 1))
    assert "bincount gives a result whose shape depends on the values" in _whole_because(jitted)


def test_an_index_array_in_an_option_is_compared_by_identity():
    def step(x, index):
        y = x[index]
        (y * y).sum().backward()
        return y

    jitted, data = jit(step), np.arange(12.0).reshape(4, 3)
    with pytest.warns(JitWarning, match="other options"):  # (an index made anew at each call: runs eagerly)
        for k in (1, 1, 2, 3, 0):  # one element: == between two such arrays says True, whatever they hold
            x = Tensor(data, requires_grad=True)
            assert np.array_equal(jitted(x, Tensor(np.array([k]))).numpy(), data[[k]])
            assert np.array_equal(x.grad.numpy()[k], 2 * data[k])


def test_the_callers_error_handling_holds_after_an_errstate_block_in_the_step():
    def step(x):
        with np.errstate(divide="ignore"):
            y = x * 2
        loss = (y * y).sum()  # overflows float32
        loss.backward()
        return loss

    jitted = jit(step)
    with np.errstate(over="ignore"):
        for _ in range(3):
            jitted(Tensor(np.full(3, 1e20, np.float32), requires_grad=True))
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):  # as eagerly
        jitted(Tensor(np.full(3, 1e20, np.float32), requires_grad=True))
    assert jitted.stats["replays"] == 2


def test_a_bfloat16_convolution_is_replayed():
    tg.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1).bfloat16()
    x = Tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5))).bfloat16()

    def step(x):
        conv.zero_grad()
        loss = conv(x).float().sum()
        loss.backward()
        return loss

    eager = [step(x).numpy().copy(), conv.weight.grad.float().numpy().copy()]
    jitted = jit(step, strict=True)
    for _ in range(4):
        assert np.array_equal(jitted(x).numpy(), eager[0])
        assert np.array_equal(conv.weight.grad.float().numpy(), eager[1])
