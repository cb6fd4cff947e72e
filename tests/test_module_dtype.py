"""``Module.half()``, ``float()``, ``double()`` and ``to(device, dtype)``: in-place casts of floating-point parameters
(the same Parameter objects, gradients cast too) and buffers, integer buffers left alone, PyTorch's argument forms,
and errors that change nothing."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.nn import functional as F


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


def nbytes(model: nn.Module) -> int:
    return sum(p.data.nbytes for p in model.parameters())


def dtypes(model: nn.Module) -> dict[str, str]:
    return {name: str(t.dtype) for name, t in list(model.named_parameters()) + list(model.named_buffers())}


def test_half_halves_the_parameter_bytes_and_float_restores():
    model = mlp()
    before = nbytes(model)
    values = [p.numpy().copy() for p in model.parameters()]
    assert model.half() is model
    assert nbytes(model) * 2 == before
    assert all(p.dtype == np.float16 for p in model.parameters())
    assert model.float() is model
    assert nbytes(model) == before and all(p.dtype == np.float32 for p in model.parameters())
    for p, v in zip(model.parameters(), values):  # values rounded to float16 once
        np.testing.assert_array_equal(p.numpy(), v.astype(np.float16).astype(np.float32))
    assert model.double() is model and nbytes(model) == 2 * before
    assert all(p.dtype == np.float64 and p.requires_grad for p in model.parameters())


def test_the_parameter_objects_stay_the_same_and_an_optimizer_still_steps_them():
    model = mlp()
    ids = [id(p) for p in model.parameters()]
    sgd = optim.SGD(model.parameters(), lr=0.5)
    model.half()
    assert [id(p) for p in model.parameters()] == ids
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float16))
    before = [p.numpy().copy() for p in model.parameters()]
    model(x).sum().backward()
    sgd.step()
    for p, b in zip(model.parameters(), before):
        assert p.dtype == np.float16 and p.grad.dtype == np.float16
        np.testing.assert_array_equal(p.numpy(), (b - np.float16(0.5) * p.grad.numpy()).astype(np.float16))


def test_existing_gradients_are_cast_too():
    model = nn.Linear(2, 3)
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    grad = model.weight.grad
    expected = grad.numpy().astype(np.float16)
    model.half()
    assert model.weight.grad is grad and grad.dtype == np.float16  # as PyTorch: the grad is cast, not dropped
    np.testing.assert_array_equal(grad.numpy(), expected)


def test_batchnorm_buffers_are_cast_and_num_batches_tracked_stays_int():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model.half()
    assert dtypes(model) == {
        "0.weight": "float16", "0.bias": "float16", "1.weight": "float16", "1.bias": "float16",
        "1.running_mean": "float16", "1.running_var": "float16", "1.num_batches_tracked": "int64",
    }
    model.to(dtype="float64")
    assert dtypes(model)["1.running_var"] == "float64" and dtypes(model)["1.num_batches_tracked"] == "int64"
    np.testing.assert_array_equal(model[1].running_var.numpy(), 1.0)


def test_float16_forward_and_backward_after_half():
    model = mlp().half()
    x = Tensor(np.random.default_rng(1).standard_normal((5, 3)).astype(np.float16))
    out = model(x)
    assert out.dtype == np.float16
    loss = F.cross_entropy(out.float(), Tensor(np.array([0, 1, 1, 0, 1])))
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float16 for p in model.parameters())
    assert all(np.all(np.isfinite(p.grad.numpy())) for p in model.parameters())
    # against the same model in float64 (its float16 weights, upcast)
    reference = mlp()
    for p, q in zip(reference.parameters(), model.parameters()):
        p.data = q.data.astype(np.float64)
    reference.double()
    F.cross_entropy(reference(Tensor(x.numpy().astype(np.float64))), Tensor(np.array([0, 1, 1, 0, 1]))).backward()
    for p, q in zip(reference.parameters(), model.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize(
    "call",
    [lambda m: m.to(tg.float16), lambda m: m.to(dtype="float16"), lambda m: m.to("cpu", "float16"),
     lambda m: m.to(device="cpu", dtype=np.float16), lambda m: m.to("float16"), lambda m: m.to(np.float16),
     lambda m: m.to(Tensor(np.ones(1, np.float16)))],
)
def test_to_accepts_pytorchs_forms(call):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert call(model) is model
    assert dtypes(model)["0.weight"] == dtypes(model)["1.running_mean"] == "float16"
    assert next(model.parameters()).device == "cpu"


def test_to_a_device_keeps_its_behaviour():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model(Tensor(np.ones((2, 2), np.float32))).sum().backward()
    params = list(model.parameters())
    assert model.to("strict") is model
    assert list(model.parameters()) == params  # the same objects
    assert all(t.device == "strict" for _, t in list(model.named_parameters()) + list(model.named_buffers()))
    assert all(p.grad is None for p in params)  # a move drops the gradients, as before
    assert model.to() is model
    model.to("strict", tg.float64)
    assert dtypes(model)["0.weight"] == "float64" and dtypes(model)["1.num_batches_tracked"] == "int64"
    model.to("cpu", "float32")
    assert next(model.parameters()).device == "cpu" and dtypes(model)["1.running_var"] == "float32"


def test_shared_parameters_are_cast_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    model.half()
    assert layer.weight.dtype == np.float16
    model.double()
    np.testing.assert_array_equal(model[0].weight.numpy(), layer.weight.numpy())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.to(dtype="int64"), TypeError,
         r"Sequential.to: dtype must be a floating-point dtype \(float16, float32 or float64\), got 'int64'"),
        (lambda m: m.to(tg.int32), TypeError, r"Sequential.to: dtype must be a floating-point dtype .*got dtype\('int32'\)"),
        (lambda m: m.to(dtype="bogus"), TypeError, r"Sequential.to: dtype must be a floating-point dtype .*got 'bogus'"),
        (lambda m: m.to("tpu"), ValueError, r"Sequential.to: unknown device 'tpu'"),
        (lambda m: m.to("strict", "float16"), TypeError, r"Sequential.to: device 'strict' has no float16"),
        (lambda m: m.to(Tensor(np.arange(2))), TypeError, r"Sequential.to: dtype must be a floating-point dtype"),
    ],
)
def test_bad_arguments_name_the_method_and_what_came_and_change_nothing(call, error, message):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    before = dtypes(model)
    with pytest.raises(error, match=message):
        call(model)
    assert dtypes(model) == before and next(model.parameters()).device == "cpu"


def test_half_on_a_device_without_float16_names_the_method_and_changes_nothing():
    model = nn.Linear(2, 3).to("strict")
    with pytest.raises(TypeError, match="Linear.half: device 'strict' has no float16"):
        model.half()
    assert model.weight.dtype == np.float32
    model.double()  # the other casts work there
    assert model.weight.dtype == np.float64 and model.weight.device == "strict"
