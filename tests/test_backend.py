"""Backends, device strings, the default-device flag, and the kernel hook."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor
from tinygrad_edu.backend import canonical_device, get_backend


def test_device_strings():
    assert canonical_device("CPU") == "cpu"
    assert canonical_device("cuda") == "cuda:0"
    assert canonical_device("cuda:3") == "cuda:3"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        canonical_device("tpu")


def test_env_var_selects_the_default_device():
    code = "import tinygrad_edu as tg; t = tg.Tensor([1.0]); print(t.device, tg.get_default_device())"
    env = {**os.environ, "TINYGRAD_EDU_DEVICE": "strict"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["strict", "strict"]


def test_env_var_is_read_when_needed_and_a_bad_value_names_it(monkeypatch):
    """Before: ``unknown device 'gpu'``, without a word on where 'gpu' came from."""
    from tinygrad_edu.backend import ENV_VAR, device_from_environment

    for value in ("", "  "):  # empty: unset
        monkeypatch.setenv(ENV_VAR, value)
        assert device_from_environment() is None and tg.get_default_device() == "cpu"
    monkeypatch.setenv(ENV_VAR, "CUDA:1")
    assert device_from_environment() == "cuda:1"
    monkeypatch.setenv(ENV_VAR, "gpu")
    message = "^TINYGRAD_EDU_DEVICE='gpu': unknown device 'gpu': expected 'cpu', 'cuda', 'cuda:N' or 'strict'$"
    for call in (tg.get_default_device, get_backend, lambda: tg.zeros(2)):
        with pytest.raises(ValueError, match=message):
            call()
    assert get_backend("cpu").name == "cpu"  # an explicit device never reads the variable


@pytest.mark.skipif(tg.cuda_is_available(), reason="CUDA is available here")
def test_cuda_from_the_env_var_without_gpu_names_the_variable(monkeypatch):
    from tinygrad_edu.backend import ENV_VAR

    with pytest.raises(tg.DeviceUnavailableError) as direct:
        get_backend("cuda")
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(tg.DeviceUnavailableError) as info:
        get_backend()
    assert str(info.value) == f"TINYGRAD_EDU_DEVICE='cuda': {direct.value}"


def test_default_device_context_manager_restores_the_default(monkeypatch):
    from tinygrad_edu.backend import ENV_VAR, default_device

    monkeypatch.setenv(ENV_VAR, "gpu")  # a bad variable is not read inside the block
    with default_device("strict") as name:
        assert name == "strict" and Tensor([1.0]).device == "strict"
        with default_device("cpu"):
            assert Tensor([1.0]).device == "cpu"
        assert tg.get_default_device() == "strict"
    monkeypatch.delenv(ENV_VAR)
    assert tg.get_default_device() == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"), default_device("tpu"):
        pass
    with default_device(None) as name:
        assert name == "cpu"


def test_set_default_device_moves_new_tensors_and_modules():
    from tinygrad_edu import nn

    try:
        tg.set_default_device("strict")
        assert Tensor([1.0]).device == "strict"
        assert tg.zeros(2, 3).device == "strict"
        assert nn.Linear(2, 3).weight.device == "strict"
    finally:
        tg.set_default_device(None)
    assert Tensor([1.0]).device == tg.get_default_device()


@pytest.mark.skipif(tg.cuda_is_available(), reason="CUDA is available here")
def test_cuda_without_gpu_says_why_and_how_to_fix():
    with pytest.raises(tg.DeviceUnavailableError) as info:
        tg.set_default_device("cuda")
    message = str(info.value)
    try:
        import cupy  # noqa: F401

        assert "sees no CUDA GPU" in message
    except ImportError:
        assert "CuPy, which is not installed" in message and "tinygrad_edu[cuda12]" in message
    assert tg.get_default_device() == "cpu"  # nothing changed


def test_strict_arrays_refuse_silent_conversion_to_numpy():
    """The strict backend behaves like a GPU: its arrays cannot be read as NumPy without an explicit transfer."""
    t = Tensor([1.0, 2.0], device="strict")
    with pytest.raises(RuntimeError, match="Can't convert"):
        np.asarray(t.data)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_to_moves_between_devices_and_gradients_come_back():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x.to("strict")
    assert y.device == "strict" and x.to("cpu") is x
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_module_to_moves_parameters_in_place():
    from tinygrad_edu import nn

    model = nn.Linear(3, 2)
    weight = model.weight
    before = weight.numpy()
    model.to("strict")
    assert model.weight is weight and weight.device == "strict"
    np.testing.assert_array_equal(weight.numpy(), before)
    out = model(Tensor(np.ones((4, 3), dtype=np.float32), device="strict"))
    assert out.device == "strict"


def test_manual_seed_makes_random_tensors_reproducible(device):
    tg.manual_seed(123)
    a = tg.randn(5, device=device).numpy()
    tg.manual_seed(123)
    b = tg.randn(5, device=device).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, tg.randn(5, device=device).numpy())


def test_backend_random_numbers_have_the_right_distribution(device):
    backend = get_backend(device)
    u = backend.to_host(backend.uniform((20000,), -1.0, 3.0, np.float32))
    assert u.dtype == np.float32 and u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 0.05
    n = backend.to_host(backend.normal((20000,), 2.0, 0.5, np.float64))
    assert abs(n.mean() - 2.0) < 0.02 and abs(n.std() - 0.5) < 0.02
    b = backend.to_host(backend.bernoulli((20000,), 0.3, np.float32))
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.02


def test_scatter_add_adds_repeated_indices(device):
    backend = get_backend(device)
    target = backend.from_host(np.zeros(4))
    index = backend.from_host(np.array([0, 2, 2, 2]))
    backend.scatter_add(target, (index,), backend.from_host(np.array([1.0, 2.0, 3.0, 4.0])))
    np.testing.assert_array_equal(backend.to_host(target), [1.0, 0.0, 9.0, 0.0])


@pytest.mark.parametrize("shapes", [((33, 300), (300, 17)), ((2, 5, 600), (600, 3)), ((300,), (300, 4)), ((520,), (520,))])
def test_cpu_matmul_kernel_accumulates_float16_in_float32(shapes):
    from tinygrad_edu.backend.kernels.matmul_cpu import matmul_accumulate

    rng = np.random.default_rng(0)
    a = rng.standard_normal(shapes[0]).astype(np.float16)
    b = rng.standard_normal(shapes[1]).astype(np.float16)
    out = matmul_accumulate(a, b, np.float32)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert out.dtype == np.float16 and out.shape == exact.shape
    # one rounding to float16 at the end: within half an ulp of float16 plus float32 accumulation error
    np.testing.assert_allclose(out.astype(np.float64), exact, rtol=2e-3, atol=2e-3)


def test_float16_matmul_op_uses_float32_accumulation():
    """Summing 4096 products of 1 ± tiny in float16 would stall at 2048; float32 accumulation reaches 4096."""
    a = Tensor(np.ones((1, 4096), dtype=np.float16))
    b = Tensor(np.ones((4096, 1), dtype=np.float16))
    out = a @ b
    assert out.dtype == tg.float16 and out.item() == 4096.0


def test_kernel_sources_are_found_and_missing_ones_named():
    from tinygrad_edu.backend import kernels

    with pytest.raises(FileNotFoundError, match="no kernel source 'nope.cu'"):
        kernels.source("nope.cu")
