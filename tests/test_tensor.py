"""The Tensor and the tape: construction, dtypes, backward, graph freeing, custom Functions, errors."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Function, Tensor, no_grad


# -- construction and dtypes ---------------------------------------------------------------------------------------
def test_python_floats_default_to_float32_and_arrays_keep_their_dtype(device):
    assert Tensor([1.0, 2.0], device=device).dtype == tg.float32
    assert Tensor(3.0, device=device).dtype == tg.float32
    assert Tensor([1, 2], device=device).dtype == tg.int64
    assert Tensor(np.zeros(3), device=device).dtype == tg.float64
    assert Tensor(np.zeros(3), dtype="float32", device=device).dtype == tg.float32


def test_tensor_copies_its_data(device):
    host = np.arange(4.0)
    t = Tensor(host, device=device)
    host[0] = 100.0
    assert t.numpy()[0] == 0.0
    assert t.device == ("cuda:0" if device == "cuda" else device)
    assert t.shape == (4,) and t.ndim == 1 and t.numel() == 4 and len(t) == 4
    assert t.size() == (4,) and t.size(0) == 4 and t.size(-1) == 4


def test_integer_tensors_cannot_require_grad(device):
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2, 3], requires_grad=True, device=device)


def test_item_numpy_and_repr():
    t = Tensor([[2.5]], requires_grad=True)
    assert t.item() == 2.5
    assert isinstance(t.numpy(), np.ndarray)
    assert "requires_grad=True" in repr(t)
    with pytest.raises(ValueError, match="one-element"):
        Tensor([1.0, 2.0]).item()


def test_half_float_double_casts_are_differentiable():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.half()
    assert y.dtype == tg.float16
    (y.double() * 2).sum().backward()
    assert x.grad.dtype == tg.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


# -- backward --------------------------------------------------------------------------------------------------------
def test_chain_rule_on_a_diamond_graph_accumulates_both_paths(device):
    x = Tensor([1.5, -2.0], requires_grad=True, device=device)
    a = x * 3
    b = x * x
    (a + b).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * np.array([1.5, -2.0]))


def test_gradients_accumulate_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_same_tensor_used_twice_in_one_op():
    x = Tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.item() == 6.0
    y = Tensor([3.0], requires_grad=True)
    (y + y).sum().backward()
    assert y.grad.item() == 2.0


def test_aliased_gradients_are_not_shared_between_leaves():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(np.array([1.0, 1.0], dtype=np.float32))
    assert a.grad.data is not b.grad.data
    a.grad.data[0] = 7.0
    assert b.grad.numpy()[0] == 1.0


def test_backward_from_an_intermediate_tensor(device):
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    h = x.exp()
    y = h * 2
    h.backward(grad=Tensor([1.0, 1.0, 1.0], device=device))
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Exp a second time"):
        y.sum().backward()  # goes through exp again, whose saved arrays the first backward freed


def test_backward_on_non_scalar_without_grad_says_so():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element outputs.*shape \\(2,\\)"):
        (x * 2).backward()


def test_backward_with_wrong_grad_shape():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="grad has shape"):
        (x * 2).backward(np.ones(3))


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_second_backward_raises_unless_retain_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()

    x2 = Tensor([1.0, 2.0], requires_grad=True)
    y2 = (x2 * x2).sum()
    y2.backward(retain_graph=True)
    y2.backward()
    np.testing.assert_allclose(x2.grad.numpy(), [4.0, 8.0])


def test_no_grad_records_nothing_and_works_as_decorator():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert tg.is_grad_enabled()

    @no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad


def test_detach_cuts_the_tape():
    x = Tensor([2.0], requires_grad=True)
    y = (x * x).detach()
    assert not y.requires_grad and y.is_leaf


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_graph_is_released_after_backward():
    """After backward, the saved arrays are freed and the graph dies with its output."""
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    y = (x * x).exp()
    ctx_ref = weakref.ref(y.grad_fn)
    y.sum().backward()
    assert y.grad_fn._saved is None
    del y
    gc.collect()
    assert ctx_ref() is None


def test_training_loop_memory_is_flat():
    """Thousands of steps leave no graph behind: the number of live tracked objects does not grow."""
    from tinygrad_edu import nn, optim

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = Tensor(np.random.randn(16, 4).astype(np.float32))
    target = Tensor(np.random.randint(0, 2, 16))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()

    for _ in range(50):
        step()
    gc.collect()
    tracemalloc.start()  # NumPy reports its array buffers to tracemalloc
    try:
        before_objects = sum(issubclass(type(o), (Tensor, Function)) for o in gc.get_objects())
        before_bytes = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            step()
        gc.collect()
        after_bytes = tracemalloc.get_traced_memory()[0]
        after_objects = sum(issubclass(type(o), (Tensor, Function)) for o in gc.get_objects())
    finally:
        tracemalloc.stop()
    assert after_objects <= before_objects + 2
    assert after_bytes - before_bytes < 64 * 1024, f"memory grew by {after_bytes - before_bytes} bytes in 2000 steps"


# -- custom Functions ------------------------------------------------------------------------------------------------
class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x * x * grad


class ScaleBy(Function):
    """Two inputs, one a Python number: its gradient is None."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.k, None


def test_user_function_is_checked_by_gradcheck(device):
    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True, device=device)
    assert tg.gradcheck(Cube.apply, [x])
    assert tg.gradcheck(lambda t: ScaleBy.apply(t, 3.0), [x])
    assert x.grad is None  # gradcheck leaves the user's tensors alone


def test_wrong_user_backward_is_caught_by_gradcheck():
    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * x * grad

    x = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    with pytest.raises(tg.GradcheckError, match="(?s)input 0.*analytic"):
        tg.gradcheck(WrongCube.apply, [x])


def test_user_backward_returning_wrong_shape_is_reported():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad[:1]

    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="BadShape.backward returned a gradient of shape \\(1,\\)"):
        BadShape.apply(x).sum().backward()


def test_needs_input_grad():
    seen = {}

    class Probe(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad):
            seen["needs"] = ctx.needs_input_grad
            return grad, None

    Probe.apply(Tensor([1.0], requires_grad=True), Tensor([2.0])).sum().backward()
    assert seen["needs"] == (True, False)


# -- errors ------------------------------------------------------------------------------------------------------------
def test_mixing_devices_names_both():
    a = Tensor([1.0], device="cpu")
    b = Tensor([1.0], device="strict")
    with pytest.raises(RuntimeError, match="cpu and strict"):
        a + b


def test_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"MatMul: shapes \(2, 3\) and \(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"Add: .*\(3,\) float64 and \(4,\) float64"):
        Tensor(np.ones(3)) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4, 2\)"):
        Tensor(np.ones((2, 3))).reshape(4, 2)


def test_second_backward_through_ops_without_saved_arrays_also_raises():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x + x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])  # the failed call added nothing


def test_keeping_the_losses_does_not_keep_the_graphs():
    """A common habit, ``losses.append(loss)``: after backward the graph must not hold the activations."""
    from tinygrad_edu import nn, optim

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = Tensor(np.random.randn(128, 64).astype(np.float32))
    target = Tensor(np.random.randint(0, 2, 128))
    losses = []

    def step():
        loss = nn.functional.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss)

    for _ in range(5):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            step()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200 * 4 * 1024, f"{grown} bytes kept by 200 losses"  # a few small objects each, no activations


def test_leaf_gradients_are_writable_arrays():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    x.sum().backward()
    x.grad.data += 1.0  # not a read-only broadcast view
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_numpy_scalars_act_as_python_numbers(device):
    x = Tensor([1.0, 4.0], device=device)
    y = x / np.sqrt(np.float64(4.0)) * np.float32(3.0)
    assert y.dtype == tg.float32
    np.testing.assert_allclose(y.numpy(), [1.5, 6.0])


def test_axis_errors_are_clear():
    t = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"transpose: axis 5 is out of range for a tensor of shape \(2, 3\)"):
        t.transpose(0, 5)
    with pytest.raises(ValueError, match=r"squeeze: axis 5 is out of range"):
        t.squeeze(5)
    with pytest.raises(ValueError, match=r"unsqueeze: axis 4 is out of range"):
        t.unsqueeze(4)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor with 2 dimension\(s\) in sum\(\)"):
        t.sum(axis=2)
    with pytest.raises(ValueError, match=r"max\(\): dim=-3 is out of range for a tensor with 2 dimension\(s\)"):
        t.max(dim=-3)
    with pytest.raises(TypeError, match=r"mean\(\): got both dim=0 and its NumPy alias axis=1"):
        t.mean(dim=0, axis=1)


def test_clip_rejects_tensor_bounds_with_a_hint():
    with pytest.raises(TypeError, match="maximum\\(\\)/minimum\\(\\)"):
        Tensor([1.0, 2.0]).clip(Tensor([1.5, 1.5]))


def test_where_checks_its_condition(device):
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True, device=device)
    out = tg.where(x > 0, 1.0, 0.0)  # two numbers: a float32 tensor
    assert out.dtype == tg.float32
    np.testing.assert_array_equal(out.numpy(), [1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="condition must be a boolean tensor, got dtype float32"):
        tg.where(x.float(), x, 0.0)
    other = "strict" if device == "cpu" else "cpu"
    with pytest.raises(RuntimeError, match="Where: expected all tensors on one device"):
        tg.where(Tensor([True, False, True], device=other), x, 0.0)


def test_numpy_asarray_converts_cpu_tensors_and_refuses_device_tensors():
    t = tg.Tensor([1.0, 2.0])
    a = np.asarray(t)
    assert a.dtype == np.float32 and a.tolist() == [1.0, 2.0]
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    with pytest.raises(TypeError, match=r"tensor on device 'strict' to a NumPy array implicitly: call \.numpy\(\)"):
        np.asarray(tg.Tensor([1.0, 2.0], device="strict"))
