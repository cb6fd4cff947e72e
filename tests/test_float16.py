"""float16 storage, float32 accumulation: reductions and losses must not overflow or flush to zero."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor
from tinygrad_edu.nn import functional as F


def test_mean_of_many_float16_values_is_accumulated_in_float32():
    assert Tensor(np.full(1000, 100.0, np.float16)).mean().item() == 100.0  # the float16 sum would be inf
    assert Tensor(np.full(70000, 0.5, np.float16)).mean().item() == 0.5  # 70000 itself is inf in float16
    x = Tensor(np.full(70000, 1.0, np.float16), requires_grad=True)
    x.mean().backward()
    assert x.grad.dtype == tg.float16
    np.testing.assert_allclose(x.grad.numpy()[:3].astype(np.float64), 1 / 70000, rtol=1e-2)


def test_sum_and_var_of_float16_accumulate_in_float32():
    x = np.full(4096, 1.0, np.float16)
    x[::2] = 1.0009766  # 1 + 2^-10: a float16 running sum stalls at 2048 past which 1 is below half an ulp
    assert Tensor(x).sum().item() == pytest.approx(float(x.astype(np.float64).sum()), rel=1e-3)
    v = Tensor(np.array([1000.0, 1001.0, 1002.0], np.float16)).var()
    assert v.dtype == tg.float16 and v.item() == 1.0


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss_of_float16_is_computed_in_float32(reduction):
    a = Tensor(np.full(1000, 10.0, np.float16), requires_grad=True)
    loss = F.mse_loss(a, Tensor(np.zeros(1000, np.float16)), reduction=reduction)
    assert loss.dtype == tg.float16
    assert loss.item() == (100.0 if reduction == "mean" else np.inf)  # 1e5 does not fit in float16: honest inf
    loss.backward()
    expected = 2 * 10.0 / 1000 if reduction == "mean" else 20.0
    np.testing.assert_allclose(a.grad.numpy()[:3].astype(np.float64), expected, rtol=1e-3)


def test_cross_entropy_of_float16_logits():
    logits = Tensor(np.array([[30000.0, 0.0], [0.0, 30000.0]], np.float16), requires_grad=True)
    loss = F.cross_entropy(logits, Tensor([0, 0]))
    assert loss.dtype == tg.float16 and loss.item() == 15000.0
    loss.backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


def test_var_with_too_few_elements_is_nan_not_a_crash():
    x = Tensor(np.ones((3, 1)), requires_grad=True)
    v = x.var(axis=1)
    assert np.all(np.isnan(v.numpy()))
    v.sum().backward()
    assert np.all(np.isnan(x.grad.numpy()))
    with pytest.raises(TypeError, match="Var: needs a floating-point tensor, got dtype int64"):
        Tensor([1, 2, 4]).var()


# ---------------------------------------------------------------------------------------------------------------
# float16 products: the kernel in the forward pass and in both backward GEMMs
# ---------------------------------------------------------------------------------------------------------------
SIDE = 2304  # every GEMM below sums 2304 ones: a float16 running sum stalls at 2048, the float32 one reaches 2304


def _ones(*shape):
    return Tensor(np.ones(shape, np.float16), requires_grad=True)


FLOAT16_GEMMS = {  # name: (build inputs, forward)
    "matmul": (lambda: (_ones(SIDE, SIDE), _ones(SIDE, SIDE)), lambda x, w: x @ w),
    "linear": (lambda: (_ones(SIDE, SIDE), _ones(SIDE, SIDE)), F.linear),
    "conv2d": (lambda: (_ones(SIDE, SIDE, 1, 1), _ones(SIDE, SIDE, 1, 1)), F.conv2d),  # 1x1: K = C_in
}


@pytest.mark.parametrize("name", FLOAT16_GEMMS)
def test_float16_layers_accumulate_in_float32_in_forward_and_both_backward_gemms(name, monkeypatch):
    from tinygrad_edu.backend.kernels import matmul_cpu

    calls = []
    kernel = matmul_cpu.matmul_accumulate
    monkeypatch.setattr(matmul_cpu, "matmul_accumulate", lambda a, b, *args, **kw: calls.append(a.shape) or kernel(
        a, b, *args, **kw))
    build, forward = FLOAT16_GEMMS[name]
    x, w = build()
    y = forward(x, w)
    assert y.dtype == tg.float16 and np.all(y.numpy() == SIDE)  # forward: sums over the input features
    y.backward(Tensor(np.ones(y.shape, np.float16)))
    assert x.grad.dtype == w.grad.dtype == tg.float16
    assert np.all(x.grad.numpy() == SIDE)  # dL/dx = G Wᵀ: sums over the output features
    assert np.all(w.grad.numpy() == SIDE)  # dL/dW = Gᵀ X (or Xᵀ G): sums over the batch
    assert len(calls) >= 3


def _graph_bytes(dtype) -> int:
    """Bytes held after the forward pass of a 3-layer MLP (batch 256, width 512): weights, activations, graph."""
    import tracemalloc

    rng = np.random.default_rng(0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    x = Tensor(rng.standard_normal((256, 512)).astype(dtype))
    ws = [Tensor((rng.standard_normal((512, 512)) / 23).astype(dtype), requires_grad=True) for _ in range(3)]
    h = x
    for w in ws:
        h = F.relu(F.linear(h, w))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del h
    return held


def test_float16_tensors_and_graphs_take_half_the_memory_of_float32():
    ratio = _graph_bytes(np.float16) / _graph_bytes(np.float32)
    assert 0.45 < ratio < 0.55, ratio
