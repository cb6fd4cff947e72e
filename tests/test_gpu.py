"""CUDA backend (CuPy): run wherever CuPy sees a GPU; skipped elsewhere (gpu marker)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu.nn import functional as F

pytestmark = pytest.mark.gpu


def test_cuda_tensors_live_on_the_gpu_and_come_back():
    import cupy

    t = Tensor([1.0, 2.0], device="cuda")
    assert t.device == "cuda:0" and isinstance(t.data, cupy.ndarray)
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert Tensor(cupy.ones(3)).device == "cuda:0"  # a CuPy array stays on its GPU


def test_env_flag_moves_a_script_to_the_gpu():
    code = "import tinygrad_edu as tg; print(tg.Tensor([1.0]).device, tg.nn.Linear(2, 2).weight.device)"
    env = {**os.environ, "TINYGRAD_EDU_DEVICE": "cuda"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cuda:0", "cuda:0"]


def test_training_on_cuda_matches_cpu():
    x, y = tg.datasets.disc(256)
    initial = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2)).state_dict()
    losses, finals = [], []
    for device in ("cpu", "cuda"):
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        model.load_state_dict(initial)
        model.to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        xs, ys = Tensor(x, device=device), Tensor(y, device=device)
        for _ in range(20):
            loss = F.cross_entropy(model(xs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
        finals.append(model.state_dict())
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for name in finals[0]:
        np.testing.assert_allclose(finals[0][name], finals[1][name], rtol=1e-3, atol=1e-5)


def test_float16_matmul_on_gpu_accumulates_in_float32():
    a = Tensor(np.ones((1, 4096), dtype=np.float16), device="cuda")
    b = Tensor(np.ones((4096, 1), dtype=np.float16), device="cuda")
    out = a @ b
    assert out.dtype == tg.float16 and out.item() == 4096.0


def test_mixing_cpu_and_cuda_names_both_devices():
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        Tensor([1.0]) + Tensor([1.0], device="cuda")
