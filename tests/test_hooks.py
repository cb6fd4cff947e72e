"""Hooks with PyTorch's names and documented behaviour: Tensor.register_hook, retain_grad, Module's forward pre-hooks,
forward hooks and full backward hooks, each returning a handle with remove()."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.autograd import hooks
from tinygrad_edu.jit import JitWarning, jit


def _x(values=(1.0, 2.0, 3.0)):
    return Tensor(np.array(values, np.float64), requires_grad=True)


def test_a_hook_sees_the_gradient_and_may_replace_it():
    x = _x()
    y = x * 2.0
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    y.register_hook(lambda g: g * 3.0)
    (y * Tensor(np.array([1.0, 10.0, 100.0]))).sum().backward()
    assert np.array_equal(seen[0], [1.0, 10.0, 100.0])
    assert np.array_equal(x.grad.numpy(), [6.0, 60.0, 600.0])  # replaced before flowing on


def test_hooks_run_in_registration_order_each_on_the_previous_result():
    x = _x()
    y = x * 1.0
    order = []
    y.register_hook(lambda g: (order.append("first"), g + 1.0)[1])
    y.register_hook(lambda g: (order.append(("second", g.numpy().tolist())), None)[1])
    y.sum().backward()
    assert order == ["first", ("second", [2.0, 2.0, 2.0])]
    assert np.array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_a_hook_runs_once_on_the_sum_of_every_path():
    x = _x()
    y = x * 1.0
    calls = []
    y.register_hook(lambda g: calls.append(g.numpy().copy()))
    (y * 2.0 + y * 3.0).sum().backward()
    assert len(calls) == 1 and np.array_equal(calls[0], [5.0, 5.0, 5.0])


def test_a_removed_hook_is_not_called_and_removing_twice_is_harmless():
    x = _x()
    y = x * 1.0
    calls = []
    handle = y.register_hook(lambda g: calls.append(1))
    handle.remove()
    handle.remove()
    y.sum().backward()
    assert calls == []
    z = x * 1.0
    with z.register_hook(lambda g: calls.append(2)):
        pass
    z.sum().backward()
    assert calls == []


def test_a_leaf_hook_sees_this_passs_gradient_before_it_is_added_to_grad():
    x = _x()
    seen = []
    x.register_hook(lambda g: (seen.append(g.numpy().copy()), g * 10.0)[1])
    (x * 1.0).sum().backward()
    (x * 2.0).sum().backward()
    assert np.array_equal(seen[0], [1.0, 1.0, 1.0]) and np.array_equal(seen[1], [2.0, 2.0, 2.0])
    assert np.array_equal(x.grad.numpy(), [30.0, 30.0, 30.0])  # 10·1 + 10·2


def test_a_hook_needs_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        Tensor(np.ones(3)).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        _x().register_hook(3)


def test_retain_grad_keeps_a_non_leafs_gradient_and_adds_it_up():
    x = _x()
    y = x * 2.0
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    assert np.array_equal(y.grad.numpy(), [4.0, 8.0, 12.0])  # 2y
    loss.backward()
    assert np.array_equal(y.grad.numpy(), [8.0, 16.0, 24.0])
    x.retain_grad()  # a leaf: nothing to do
    assert not x.retains_grad


def test_a_retained_gradient_is_the_one_after_the_hooks():
    x = _x()
    y = x * 2.0
    y.retain_grad()  # registered first, still applied after the hooks (PyTorch 2)
    y.register_hook(lambda g: g * 10.0)
    (y * y).sum().backward()
    assert np.array_equal(y.grad.numpy(), [40.0, 80.0, 120.0])
    assert np.array_equal(x.grad.numpy(), [80.0, 160.0, 240.0])


def test_a_hook_does_not_keep_its_tensor_or_graph_alive():
    x = _x()
    y = x * 2.0
    y.register_hook(lambda g: g)
    before = len(hooks.active)
    del y
    gc.collect()
    assert len(hooks.active) == before - 1


def test_a_failing_hook_changes_nothing():
    x = _x()
    (x * 1.0).sum().backward()
    y = x * 2.0

    def bad(g):
        raise ValueError("no")

    y.register_hook(bad)
    with pytest.raises(ValueError, match="no"):
        (y * 1.0).sum().backward()
    assert np.array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    wrong = x * 1.0
    wrong.register_hook(lambda g: Tensor(np.ones(2)))
    with pytest.raises(RuntimeError, match="expected None or a Tensor of shape"):
        wrong.sum().backward()


def _layer():
    tg.manual_seed(0)
    return nn.Linear(3, 2, dtype=tg.float64)


def test_forward_pre_hook_and_forward_hook_replace_arguments_and_output():
    layer = _layer()
    x = Tensor(np.ones((4, 3)))
    plain = layer(x).numpy()
    expected = layer(x * 2.0).numpy() + 1.0
    calls = []
    pre = layer.register_forward_pre_hook(lambda m, args: (calls.append("pre"), (args[0] * 2.0,))[1])
    post = layer.register_forward_hook(lambda m, args, out: (calls.append("post"), out + 1.0)[1])
    assert np.allclose(layer(x).numpy(), expected) and calls == ["pre", "post"]
    pre.remove()
    post.remove()
    assert np.array_equal(layer(x).numpy(), plain) and calls == ["pre", "post"]  # removed: not called


def test_full_backward_hook_gets_and_may_replace_the_input_gradient():
    layer = _layer()
    x = Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    g = np.arange(8.0).reshape(4, 2)
    seen = {}

    def hook(module, grad_input, grad_output):
        seen["module"], seen["in"], seen["out"] = module, grad_input[0].numpy(), grad_output[0].numpy()
        return (grad_input[0] * 0.5,)

    handle = layer.register_full_backward_hook(hook)
    (layer(x) * Tensor(g)).sum().backward()
    assert seen["module"] is layer
    assert np.allclose(seen["out"], g) and np.allclose(seen["in"], g @ layer.weight.numpy())
    assert np.allclose(x.grad.numpy(), 0.5 * g @ layer.weight.numpy())
    handle.remove()
    x.grad = None
    (layer(x) * Tensor(g)).sum().backward()
    assert np.allclose(x.grad.numpy(), g @ layer.weight.numpy())


def test_full_backward_hook_with_an_input_that_needs_no_gradient_gets_none():
    layer = _layer()
    seen = []
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go[0].shape)))
    layer(Tensor(np.ones((4, 3)))).sum().backward()
    assert seen == [((None,), (4, 2))]
    assert layer.weight.grad is not None


def test_hooks_are_not_replayed_by_jit():
    layer = _layer()
    layer.register_forward_hook(lambda m, args, out: None)

    @jit
    def step(x):
        layer(x).sum().backward()

    with pytest.warns(JitWarning, match="hook"):
        step(Tensor(np.ones((4, 3))))


def test_a_hook_registered_after_capture_makes_jit_capture_again():
    layer = _layer()
    calls = []

    @jit
    def step(x):
        layer.zero_grad()
        layer(x).sum().backward()

    x = Tensor(np.ones((4, 3)))
    for _ in range(3):
        step(x)
    assert step.stats["replays"] == 1
    layer.weight.register_hook(lambda g: calls.append(1))
    with pytest.warns(JitWarning, match="hook"):
        step(x)
    assert calls == [1]


def test_the_same_sequence_as_pytorch():
    """Where torch is installed: hooks, a replacing hook, retain_grad and a module's full backward hook give the
    gradients PyTorch gives for the same sequence."""
    torch = pytest.importorskip("torch")
    w0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    xs = np.array([[1.0, 2.0, -3.0], [0.5, -1.0, 2.0]])

    def run(lib):
        if lib == "torch":
            layer = torch.nn.Linear(3, 2, bias=False).double()
            with torch.no_grad():
                layer.weight.copy_(torch.tensor(w0))
            x = torch.tensor(xs, requires_grad=True)
        else:
            layer = nn.Linear(3, 2, bias=False, dtype=tg.float64)
            layer.weight.data[...] = w0
            x = Tensor(xs, requires_grad=True)
        seen = []
        layer.register_full_backward_hook(lambda m, gi, go: (seen.append(go[0].detach().numpy().copy()),
                                                             (gi[0] * 2.0,))[1])
        y = layer(x)
        y.retain_grad()
        y.register_hook(lambda g: g + 1.0)
        z = y * y
        z.register_hook(lambda g: g * 3.0)
        z.sum().backward()
        return x.grad.numpy(), layer.weight.grad.numpy(), y.grad.numpy(), seen[0]

    for ours, theirs in zip(run("tinygrad"), run("torch")):
        assert np.allclose(ours, theirs, rtol=1e-12, atol=0)


def test_backward_from_a_leaf_runs_its_hooks():
    w = _x((1.0, 2.0))
    w.register_hook(lambda g: g * 10.0)
    w.backward(np.ones(2))
    assert np.array_equal(w.grad.numpy(), [10.0, 10.0])  # as PyTorch
