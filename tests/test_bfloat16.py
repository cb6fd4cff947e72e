"""bfloat16 storage, float32 accumulation, beside float16: ``tg.bfloat16`` is ``ml_dtypes``' bfloat16.

* the dtype: names, tensors, creation functions, ``repr``/``item``/``numpy()``, ``requires_grad``;
* casts: differentiable between bfloat16 and the float dtypes, rounded to nearest even;
* promotion, PyTorch's table: bfloat16 with float16 gives float32, with float32 float32, with integers bfloat16;
* the CPU kernel: exact upcast, one rounding to nearest even, the accuracy contract (within one bfloat16 ulp of the
  float64 product of the same inputs, plus the float32 accumulation bound), which a bfloat16 running sum breaks;
* every float16 path (matmul, sums, softmax, losses, normalization) runs bfloat16 in float32 too;
* autograd through bfloat16 layers against float64; ``Module.bfloat16``; ``amp.MasterWeights(dtype=bfloat16)``
  (no loss scaling: bfloat16 flushes none of the gradients that float16 flushes);
* the strict and CUDA backends refuse bfloat16, naming the device, the op and the dtype.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, amp, dtypes, nn, optim
from tinygrad_edu.backend import get_backend
from tinygrad_edu.backend.cupy_backend import CupyBackend
from tinygrad_edu.backend.kernels import matmul_cpu
from tinygrad_edu.backend.kernels.matmul_cpu import dot_accumulate, matmul_accumulate, narrow, widen_bfloat16
from tinygrad_edu.datasets import digits
from tinygrad_edu.nn import functional as F
from tinygrad_edu.nn import init
from tinygrad_edu.nn.utils import clip_grad_norm_

BF16 = np.dtype(ml_dtypes.bfloat16)
U32 = 2.0**-24  # float32 unit round-off


def bf16(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(BF16)


def round_to_nearest_even(x32: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits by hand: add 0x7FFF plus the lowest kept bit, keep the top 16 bits (finite values)."""
    bits = x32.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def contract_excess(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """How far each element of ``c`` lies outside the contract's bound (<= 0 everywhere when it holds)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = np.matmul(a64, b64)
    accumulation = a.shape[-1] * U32 * np.matmul(np.abs(a64), np.abs(b64))
    one_ulp = np.spacing(np.asarray(np.abs(exact) + accumulation, dtype=BF16)).astype(np.float64)
    return np.abs(c.astype(np.float64) - exact) - (one_ulp + accumulation)


# ---------------------------------------------------------------------------------------------------------------
# the dtype
# ---------------------------------------------------------------------------------------------------------------
def test_the_dtype_is_ml_dtypes_bfloat16_and_a_low_precision_floating_dtype():
    assert tg.bfloat16 == BF16 and tg.bfloat16.name == "bfloat16" and tg.bfloat16.itemsize == 2
    assert np.dtype("bfloat16") == tg.bfloat16  # the name works once tinygrad_edu (ml_dtypes) is imported
    assert dtypes.is_floating(tg.bfloat16) and dtypes.is_floating("bfloat16") and not dtypes.is_floating("int32")
    assert dtypes.is_low_precision(tg.bfloat16) and dtypes.is_low_precision(tg.float16)
    assert not dtypes.is_low_precision(tg.float32) and not dtypes.is_low_precision("bfloat16")  # dtypes only
    assert dtypes.accumulate_dtype(tg.bfloat16) == dtypes.accumulate_dtype(tg.float16) == tg.float32
    assert dtypes.accumulate_dtype(tg.float64) == tg.float64
    assert get_backend("cpu").low_precision == (tg.float16, tg.bfloat16)
    assert get_backend("strict").low_precision == ()


def test_tensors_item_numpy_and_repr():
    t = Tensor([1.0, 2.5, 1 / 3], dtype=tg.bfloat16)
    assert t.dtype == tg.bfloat16 and t.numpy().dtype == BF16
    np.testing.assert_array_equal(t.numpy().astype(np.float64), [1.0, 2.5, 0.333984375])  # 1/3 to 8 bits
    assert t[2].item() == 0.333984375 and type(t[2].item()) is float
    assert "dtype=bfloat16" in repr(t) and "device='cpu'" in repr(t)
    assert Tensor(np.ones(3, BF16)).dtype == tg.bfloat16  # a bfloat16 array keeps its dtype
    assert Tensor(3.0, dtype="bfloat16").dtype == tg.bfloat16
    assert t.tolist() == [1.0, 2.5, 0.333984375]


@pytest.mark.parametrize("make", [
    lambda: tg.zeros(2, 3, dtype=tg.bfloat16, requires_grad=True),
    lambda: tg.ones((2, 3), dtype="bfloat16", requires_grad=True),
    lambda: tg.full((2, 3), 1.5, dtype=tg.bfloat16, requires_grad=True),
    lambda: tg.randn(2, 3, dtype=tg.bfloat16, requires_grad=True),
    lambda: tg.rand(2, 3, dtype=tg.bfloat16, requires_grad=True),
    lambda: tg.zeros_like(Tensor(np.ones((2, 3), BF16)), requires_grad=True),
    lambda: tg.randn_like(Tensor(np.ones((2, 3), np.float32)), dtype=tg.bfloat16, requires_grad=True),
    lambda: tg.arange(6, dtype=tg.bfloat16).reshape(2, 3).requires_grad_(),
    lambda: Tensor(np.ones((2, 3)), dtype=tg.bfloat16, requires_grad=True),
])
def test_creation_functions_and_requires_grad_accept_bfloat16(make):
    t = make()
    assert t.dtype == tg.bfloat16 and t.shape == (2, 3) and t.requires_grad
    (t * 2).sum().backward()
    assert t.grad.dtype == tg.bfloat16
    np.testing.assert_array_equal(t.grad.numpy().astype(np.float32), 2.0)


# ---------------------------------------------------------------------------------------------------------------
# casts
# ---------------------------------------------------------------------------------------------------------------
ALL_BFLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(BF16)  # every bit pattern: ±0, subnormals, inf, NaN


def test_casts_round_to_nearest_even():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(4096).astype(np.float32) * 2.0 ** rng.integers(-30, 30, 4096),
                        np.float32(1) + np.float32(2.0**-8) * np.arange(8, dtype=np.float32),  # ties, both ways
                        np.array([2.0**-130, -2.0**-133 * 1.5, 3e38, 65504, 1e-45], np.float32)])
    got = Tensor(x).bfloat16().numpy().view(np.uint16)
    np.testing.assert_array_equal(got, round_to_nearest_even(x))
    ties = Tensor(np.float32([1 + 2.0**-8, 1 + 3 * 2.0**-8])).bfloat16().numpy().astype(np.float64)
    assert ties.tolist() == [1.0, 1 + 2.0**-6]  # halfway: to the even neighbour
    special = Tensor(np.float32([np.inf, -np.inf, np.nan, 3.4e38])).bfloat16().numpy().astype(np.float64)
    assert special[0] == np.inf and special[1] == -np.inf and np.isnan(special[2]) and special[3] == np.inf


@pytest.mark.parametrize("source", ["float16", "float32", "float64"])
def test_casts_between_bfloat16_and_the_float_dtypes_are_differentiable(source):
    x = Tensor(np.array([0.5, -1.25, 3.0], source), requires_grad=True)
    y = x.bfloat16()
    assert y.dtype == tg.bfloat16 and y.requires_grad
    (y.astype(source) * Tensor(np.array([1.0, 2.0, 4.0], source))).sum().backward()
    assert x.grad.dtype == np.dtype(source)
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0, 4.0])
    z = Tensor(np.ones(3, BF16), requires_grad=True)
    w = z.astype(source)
    (w * 3).sum().backward()
    assert w.dtype == np.dtype(source) and z.grad.dtype == tg.bfloat16
    np.testing.assert_array_equal(z.grad.numpy().astype(np.float64), 3.0)


def test_casts_to_integers_have_no_gradient():
    z = Tensor([1.5, -2.5], dtype=tg.bfloat16, requires_grad=True)
    assert z.long().dtype == np.int64 and not z.long().requires_grad and z.long().tolist() == [1, -2]
    with pytest.raises(TypeError, match="only floating-point tensors can require grad; .* dtype int64"):
        z.long().requires_grad_()


# ---------------------------------------------------------------------------------------------------------------
# promotion: PyTorch's table
# ---------------------------------------------------------------------------------------------------------------
PROMOTION = [  # (other operand, result dtype of bfloat16 (op) other), as torch.promote_types and torch's operators
    (np.ones(2, np.float16), "float32"),
    (np.ones(2, np.float32), "float32"),
    (np.ones(2, np.float64), "float64"),
    (np.ones(2, np.int64), "bfloat16"),
    (np.ones(2, np.int8), "bfloat16"),
    (np.ones(2, np.uint8), "bfloat16"),
    (np.ones(2, np.bool_), "bfloat16"),
    (2.5, "bfloat16"),
    (3, "bfloat16"),
    (np.float64(0.5), "bfloat16"),
    (np.array(2.0, np.float32), "bfloat16"),  # a 0-d tensor promotes only across categories
]


@pytest.mark.parametrize(("other", "expected"), PROMOTION)
def test_promotion_follows_pytorch(other, expected):
    a = Tensor(np.array([1.0, 2.0], BF16), requires_grad=True)
    b = Tensor(other) if isinstance(other, np.ndarray) else other
    for out in (a + b, b * a, a - b, a.maximum(b) if isinstance(b, Tensor) else a + b):
        assert out.dtype == np.dtype(expected), (other, out.dtype)
    if isinstance(b, Tensor) and dtypes.is_floating(b.dtype):
        b.requires_grad_()
        (a * b).sum().backward()
        assert a.grad.dtype == tg.bfloat16 and b.grad.dtype == b.dtype  # each gets its gradient in its own dtype
    assert dtypes.result_type("Add", a, b) == np.dtype(expected)


def test_promotion_of_integers_and_matmul_with_bfloat16():
    assert (Tensor(np.arange(3)) / Tensor(np.ones(3, BF16))).dtype == tg.bfloat16
    assert (Tensor(np.ones((2, 3), BF16)) @ Tensor(np.ones((3, 2), np.float16))).dtype == tg.float32
    assert tg.where(Tensor([True, False]), Tensor(np.ones(2, BF16)), 0.0).dtype == tg.bfloat16
    assert tg.where(Tensor([True, False]), 0.0, Tensor(np.ones(2, BF16))).dtype == tg.bfloat16
    assert Tensor(np.ones(3, BF16)).clip(-0.5, 0.5).dtype == tg.bfloat16  # NumPy's clip would return float32


# ---------------------------------------------------------------------------------------------------------------
# the CPU kernel
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["small", "large contiguous", "large strided"])
def test_widen_is_exact_on_every_bfloat16_bit_pattern(layout):
    src = {"small": ALL_BFLOAT16[:4096].reshape(64, 64),
           "large contiguous": np.tile(ALL_BFLOAT16, 8).reshape(64, -1),
           "large strided": np.tile(ALL_BFLOAT16, 16).reshape(64, -1)[:, ::2]}[layout]
    out = np.empty(src.shape, np.float32)
    widen_bfloat16(src, out)
    np.testing.assert_array_equal(out.view(np.uint32), src.view(np.uint16).astype(np.uint32) << 16)
    np.testing.assert_array_equal(out.view(np.uint32), src.astype(np.float32).view(np.uint32))  # = ml_dtypes' cast


def test_the_kernel_rounds_its_float32_accumulator_once_to_nearest_even():
    rng = np.random.default_rng(1)
    a, b = bf16(rng.standard_normal((40, 700))), bf16(rng.standard_normal((700, 30)))
    acc = matmul_accumulate(a, b, out_dtype=np.float32, block_k=256)
    c = matmul_accumulate(a, b, block_k=256)
    assert c.dtype == BF16 and acc.dtype == np.float32
    np.testing.assert_array_equal(c.view(np.uint16), round_to_nearest_even(acc))
    ties = np.float32([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(2 + 2.0**-7), 2.0**-126 * (1 + 2.0**-8)])
    np.testing.assert_array_equal(narrow(ties, BF16).view(np.uint16), round_to_nearest_even(ties))
    # exact integer products summing to a tie: 257 lies halfway between bfloat16's 256 and 258
    one_row, ones = np.ones((1, 257), BF16), np.ones((257, 1), BF16)
    assert float(matmul_accumulate(one_row, ones)[0, 0]) == 256.0
    assert float(matmul_accumulate(one_row[:, :259 - 2], ones)[0, 0]) == 256.0
    assert float(matmul_accumulate(np.ones((1, 259), BF16), np.ones((259, 1), BF16))[0, 0]) == 260.0


SHAPE_PAIRS = [((7,), (7,)), ((3, 7), (7,)), ((7,), (7, 4)), ((2, 3, 7), (7, 4)), ((3, 7), (2, 7, 4)),
               ((2, 1, 3, 300), (4, 300, 2)), ((0, 3), (3, 4)), ((3, 0), (0, 4))]


@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPE_PAIRS)
@pytest.mark.parametrize("block_k", [None, 128])
def test_shapes_and_dtype_follow_numpy_matmul(shape_a, shape_b, block_k):
    rng = np.random.default_rng(0)
    a, b = bf16(rng.standard_normal(shape_a)), bf16(rng.standard_normal(shape_b))
    c = matmul_accumulate(a, b, block_k=block_k)
    assert c.shape == np.matmul(a.astype(np.float64), b.astype(np.float64)).shape and c.dtype == BF16
    assert np.all(contract_excess(a, b, c) <= 0)


def test_non_contiguous_operands_inf_and_nan():
    rng = np.random.default_rng(2)
    a = bf16(rng.standard_normal((600, 300))).T  # (300, 600), column-major view
    b = bf16(rng.standard_normal((1200, 50)))[::2]  # (600, 50), every other row
    assert np.all(contract_excess(a, b, matmul_accumulate(a, b, block_k=256)) <= 0)
    a = bf16([[1.0, np.inf], [np.nan, 1.0], [1.0, 2.0]])
    b = bf16([[1.0, 0.0], [1.0, 1.0]])
    with np.errstate(invalid="ignore"):  # inf · 0
        expected = (a.astype(np.float64) @ b.astype(np.float64)).astype(BF16)
        np.testing.assert_array_equal(matmul_accumulate(a, b).astype(np.float64), expected.astype(np.float64))


@st.composite
def contract_cases(draw):
    """(A, B) in bfloat16: K up to 4096, values of every scale, including sums that cancel almost to zero."""
    m, n = draw(st.integers(1, 4), label="m"), draw(st.integers(1, 4), label="n")
    k = draw(st.one_of(st.integers(1, 64), st.sampled_from([255, 256, 257, 1000, 2048, 4096])), label="k")
    kind = draw(st.sampled_from(["normal", "wide range", "cancelling", "large sums", "ties"]), label="kind")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    if kind == "wide range":  # magnitudes from 2^-60 to 2^60: far beyond float16's range, inside bfloat16's
        a *= 2.0 ** rng.integers(-60, 61, size=a.shape)
    elif kind == "cancelling":  # the second half of the products cancels the first half, up to small noise
        half = k // 2
        a[:, half:2 * half], b[half:2 * half] = a[:, :half], -b[:half] * (1 + 2.0**-6 * rng.standard_normal((half, n)))
    elif kind == "large sums":  # positive terms near 1: the sum grows to K, where bfloat16's ulp is 2 to 32
        a, b = 1 + np.abs(a) * 0.05, 1 + np.abs(b) * 0.05
    elif kind == "ties":  # small integers: exact products, many sums exactly halfway between bfloat16 neighbours
        a, b = np.round(a * 8), np.round(b * 8)
    return bf16(a), bf16(b)


@given(case=contract_cases())
def test_every_element_is_within_one_bfloat16_ulp_plus_the_float32_accumulation_bound(case):
    a, b = case
    c = matmul_accumulate(a, b)
    assert c.dtype == BF16 and np.all(np.isfinite(c.astype(np.float32)))
    assert np.all(contract_excess(a, b, c) <= 0)
    if a.shape[0] == 1 and b.shape[1] == 1:  # the 1-D path (dot) keeps the same contract
        d = dot_accumulate(a[0], b[:, 0])
        assert d.dtype == BF16 and contract_excess(a[0], b[:, 0], d) <= 0


def test_bfloat16_accumulation_breaks_the_bound_that_float32_accumulation_keeps():
    """Summing 1024 products near 1.05: past 256 a bfloat16 running sum moves in steps of its ulp (2, then 4), so
    each term counts as a whole step or nothing; the float32 accumulator rounds once at the end."""
    rng = np.random.default_rng(5)
    k = 1024
    a, b = bf16(1 + 0.05 * np.abs(rng.standard_normal((2, k)))), bf16(1 + 0.05 * np.abs(rng.standard_normal((k, 2))))
    assert np.all(contract_excess(a, b, matmul_accumulate(a, b)) <= 0)
    naive = np.zeros((2, 2), BF16)
    for j in range(k):  # each product exact (in float32), each partial sum rounded to bfloat16
        naive = (naive.astype(np.float32) + a[:, j:j + 1].astype(np.float32) * b[j:j + 1].astype(np.float32)).astype(BF16)
    assert np.all(contract_excess(a, b, naive) > 0)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(naive.astype(np.float64) - exact) > 50)  # the float32 bound here is about 0.07


SIDE = 300  # each GEMM below sums 300 ones: a bfloat16 running sum stalls at 256, the float32 one reaches 300


def _ones(*shape):
    return Tensor(np.ones(shape, BF16), requires_grad=True)


BF16_GEMMS = {  # name: (build inputs, forward)
    "matmul": (lambda: (_ones(SIDE, SIDE), _ones(SIDE, SIDE)), lambda x, w: x @ w),
    "linear": (lambda: (_ones(SIDE, SIDE), _ones(SIDE, SIDE)), F.linear),
    "conv2d": (lambda: (_ones(SIDE, SIDE, 1, 1), _ones(SIDE, SIDE, 1, 1)), F.conv2d),  # 1x1: K = C_in
}


@pytest.mark.parametrize("name", BF16_GEMMS)
def test_bfloat16_layers_accumulate_in_float32_in_forward_and_both_backward_gemms(name, monkeypatch):
    calls = []
    kernel = matmul_cpu.matmul_accumulate

    def spy(a, b, accumulate_dtype=np.float32, out_dtype=None, block_k=None):
        calls.append((a.dtype, b.dtype, np.dtype(accumulate_dtype)))
        return kernel(a, b, accumulate_dtype, out_dtype, block_k)

    monkeypatch.setattr(matmul_cpu, "matmul_accumulate", spy)
    build, forward = BF16_GEMMS[name]
    x, w = build()
    y = forward(x, w)
    assert y.dtype == tg.bfloat16
    np.testing.assert_array_equal(y.numpy().astype(np.float64), SIDE)
    y.backward(Tensor(np.ones(y.shape, BF16)))
    assert x.grad.dtype == w.grad.dtype == tg.bfloat16
    np.testing.assert_array_equal(x.grad.numpy().astype(np.float64), SIDE)  # G Wᵀ: 300 ones again
    np.testing.assert_array_equal(w.grad.numpy().astype(np.float64), SIDE)
    assert calls.count((BF16, BF16, np.dtype(np.float32))) >= 3  # forward, dL/dx, dL/dW


# ---------------------------------------------------------------------------------------------------------------
# sums, softmax, losses and normalization in float32
# ---------------------------------------------------------------------------------------------------------------
def test_sums_of_bfloat16_accumulate_in_float32():
    x = Tensor(np.ones(1000, BF16), requires_grad=True)
    assert x.sum().item() == 1000.0  # a bfloat16 running sum stops at 256
    assert Tensor(np.ones((3, 1000), BF16)).sum(1).tolist() == [1000.0] * 3
    x.sum().backward()
    assert x.grad.dtype == tg.bfloat16
    broadcast = Tensor(np.ones(4, BF16), requires_grad=True)
    (Tensor(np.ones((1000, 4), BF16)) * broadcast).backward(Tensor(np.ones((1000, 4), BF16)))
    np.testing.assert_array_equal(broadcast.grad.numpy().astype(np.float64), 1000.0)  # unbroadcast sums in float32


def test_var_of_bfloat16_is_computed_in_float32():
    v = tg.ops.Var.apply(Tensor(bf16([1000.0, 1004.0, 1008.0])), correction=1)
    assert v.dtype == tg.bfloat16 and v.item() == 16.0


def test_softmax_log_softmax_and_losses_of_bfloat16_are_computed_in_float32():
    rng = np.random.default_rng(3)
    z = bf16(rng.standard_normal((16, 10)) * 30)
    z64 = z.astype(np.float64)
    p64 = np.exp(z64 - z64.max(1, keepdims=True))
    p64 /= p64.sum(1, keepdims=True)
    for got, expected in ((F.softmax(Tensor(z), dim=1), p64), (F.log_softmax(Tensor(z), dim=1), np.log(p64))):
        assert got.dtype == tg.bfloat16
        ulp = np.spacing(np.abs(expected).astype(BF16)).astype(np.float64)
        float32_error = 2.0**-21  # log Σ exp in float32, where log_softmax is near 0
        assert np.all(np.abs(got.numpy().astype(np.float64) - expected) <= ulp + float32_error)
    big = Tensor(bf16([[3e5, 0.0], [0.0, 3e5]]), requires_grad=True)
    loss = F.cross_entropy(big, Tensor([0, 0]))
    assert loss.dtype == tg.bfloat16 and loss.item() == float(bf16(1.5e5))
    loss.backward()
    assert big.grad.dtype == tg.bfloat16 and np.all(np.isfinite(big.grad.numpy().astype(np.float32)))
    a = Tensor(np.full(1000, 10.0, BF16), requires_grad=True)
    mse = F.mse_loss(a, Tensor(np.zeros(1000, BF16)), reduction="sum")
    assert mse.dtype == tg.bfloat16 and mse.item() == 1e5 - 1e5 % 512  # 100000 to 8 significant bits: 99840
    mse.backward()
    np.testing.assert_array_equal(a.grad.numpy().astype(np.float64), 20.0)


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_normalization_of_bfloat16_computes_its_statistics_in_float32(norm):
    """Values 1000 + 4·k: bfloat16 holds them exactly (its spacing at 1000 is 4) but a bfloat16 sum of 64 of them
    (≈ 64000, spacing 256) does not; in float32 the mean and variance are exact."""
    k = np.arange(64, dtype=np.float64) % 8
    values = bf16(1000 + 4 * k)
    if norm == "batch_norm":
        x = Tensor(values.reshape(64, 1), requires_grad=True)
        y = F.batch_norm(x, None, None, Tensor(np.ones(1, np.float32)), Tensor(np.zeros(1, np.float32)), training=True)
    else:
        x = Tensor(values.reshape(1, 64), requires_grad=True)
        y = F.layer_norm(x, (64,))
    x64 = values.astype(np.float64).ravel()
    expected = (x64 - x64.mean()) / np.sqrt(x64.var() + 1e-5)
    assert y.dtype == tg.bfloat16
    ulp = np.spacing(np.abs(expected).astype(BF16)).astype(np.float64)
    assert np.all(np.abs(y.numpy().astype(np.float64).ravel() - expected) <= ulp)
    y.backward(Tensor(np.ones(y.shape, BF16)))
    assert x.grad.dtype == tg.bfloat16 and np.all(np.abs(x.grad.numpy().astype(np.float64)) < 1e-2)  # Σ ŷ-terms = 0


# ---------------------------------------------------------------------------------------------------------------
# autograd through bfloat16 layers against float64
# ---------------------------------------------------------------------------------------------------------------
def _layer_cases(rng):
    def t(*shape, scale=1.0):
        return rng.standard_normal(shape) * scale

    return {  # name: (function of tensors, input arrays)
        "linear": (lambda x, w, b: F.linear(x, w, b), [t(8, 16), t(5, 16, scale=0.3), t(5)]),
        "matmul batched": (lambda a, b: a @ b, [t(3, 4, 40), t(40, 6)]),
        "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [t(2, 3, 6, 6), t(4, 3, 3, 3, scale=0.3), t(4)]),
        "batch_norm": (lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True), [t(16, 5), t(5), t(5)]),
        "layer_norm": (lambda x, g, b: F.layer_norm(x, (6,), g, b), [t(7, 6), t(6), t(6)]),
        "softmax": (lambda x: F.softmax(x * 4, dim=1), [t(6, 9)]),
        "log_softmax": (lambda x: F.log_softmax(x * 4, dim=1), [t(6, 9)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, Tensor([0, 3, 1, 2, 2, 0])), [t(6, 4)]),
        "mse_loss": (lambda a, b: F.mse_loss(a, b), [t(6, 4), t(6, 4)]),
        "elu": (lambda x: F.elu(x), [t(6, 9)]),
        "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), [t(6, 9)]),
        "prelu": (lambda x, a: F.prelu(x, a), [t(6, 3, 2), t(3, scale=0.2)]),
        "maxout": (lambda x: F.maxout(x, 3), [t(4, 12)]),
        "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), [t(2, 3, 6, 6)]),
        "max_pool2d": (lambda x: F.max_pool2d(x, 2), [t(2, 3, 6, 6)]),
        "tanh sigmoid exp": (lambda x: x.tanh() * x.sigmoid() + (x * 0.5).exp(), [t(6, 9)]),
        "weight_norm": (lambda v, g: F.weight_norm(v, g, dim=0), [t(5, 4), t(5, 1)]),
        "sum and broadcast": (lambda a, b: (a * b).sum(0), [t(30, 4), t(4)]),
    }


@pytest.mark.parametrize("name", list(_layer_cases(np.random.default_rng(0))))
def test_bfloat16_layers_match_float64_forward_and_backward(name):
    """The same bfloat16 inputs through the layer in bfloat16 and in float64, with one random upstream gradient:
    outputs and every input's gradient agree to a few bfloat16 roundings (relative to the float64 values' size).
    The gradients arrive in bfloat16."""
    rng = np.random.default_rng(7)
    fn, arrays = _layer_cases(rng)[name]
    arrays = [bf16(a) for a in arrays]
    low = [Tensor(a, requires_grad=True) for a in arrays]
    high = [Tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    y_low, y_high = fn(*low), fn(*high)
    assert y_low.dtype == tg.bfloat16 and y_high.dtype == tg.float64
    g = bf16(rng.standard_normal(y_high.shape))
    y_low.backward(Tensor(g))
    y_high.backward(Tensor(g.astype(np.float64)))

    def close(got, expected, what):
        error = np.abs(got.astype(np.float64) - expected).max()
        assert error <= 2.0**-5 * max(np.abs(expected).max(), 1e-3), f"{name}: {what} off by {error:.3g}"

    close(y_low.numpy(), y_high.numpy(), "output")
    for i, (lo, hi) in enumerate(zip(low, high)):
        assert lo.grad.dtype == tg.bfloat16
        close(lo.grad.numpy(), hi.grad.numpy(), f"gradient of input {i}")


# ---------------------------------------------------------------------------------------------------------------
# Module.bfloat16 and to(dtype)
# ---------------------------------------------------------------------------------------------------------------
def test_module_bfloat16_halves_the_bytes_keeps_the_parameters_and_leaves_integer_buffers():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    params = list(model.parameters())
    nbytes = sum(p.data.nbytes for p in params)
    model(Tensor(np.ones((3, 4), np.float32))).sum().backward()
    assert model.bfloat16() is model
    assert [p for p in model.parameters()] == params  # the same Parameter objects
    assert all(p.dtype == tg.bfloat16 and p.grad.dtype == tg.bfloat16 for p in params)  # gradients cast too
    assert sum(p.data.nbytes for p in params) * 2 == nbytes
    bn = model[1]
    assert bn.running_mean.dtype == tg.bfloat16 and bn.num_batches_tracked.dtype == np.int64
    out = model(Tensor(np.ones((3, 4)), dtype=tg.bfloat16))
    assert out.dtype == tg.bfloat16
    model.float()
    assert all(p.dtype == tg.float32 for p in params)


@pytest.mark.parametrize("call", [lambda m: m.to(tg.bfloat16), lambda m: m.to("bfloat16"),
                                  lambda m: m.to("cpu", "bfloat16"), lambda m: m.to(dtype=tg.bfloat16),
                                  lambda m: m.to(Tensor(np.ones(1, BF16)))])
def test_to_accepts_bfloat16_in_pytorchs_forms(call):
    model = nn.Linear(3, 2)
    assert call(model) is model and model.weight.dtype == model.bias.dtype == tg.bfloat16


def test_state_dicts_load_across_float32_and_bfloat16():
    model32 = nn.Linear(3, 2)
    model16 = nn.Linear(3, 2).bfloat16()
    model16.load_state_dict(model32.state_dict())
    assert model16.weight.dtype == tg.bfloat16
    np.testing.assert_array_equal(model16.weight.numpy(), model32.weight.numpy().astype(BF16))
    model32.load_state_dict(model16.state_dict())
    assert model32.weight.dtype == tg.float32


# ---------------------------------------------------------------------------------------------------------------
# mixed precision: MasterWeights(dtype=bfloat16), no loss scaling
# ---------------------------------------------------------------------------------------------------------------
def mlp(batchnorm=True, seed=0):
    tg.manual_seed(seed)
    if batchnorm:
        return nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def test_master_weights_in_bfloat16_layout():
    model = mlp()
    original = {name: p.numpy().copy() for name, p in model.named_parameters()}
    master = amp.MasterWeights(model, dtype=tg.bfloat16)
    assert master.dtype == tg.bfloat16 and not master.needs_loss_scaling
    assert amp.MasterWeights(mlp()).needs_loss_scaling  # float16, the default
    assert model[0].weight.dtype == model[3].bias.dtype == tg.bfloat16
    assert {model[1].weight.dtype, model[1].running_var.dtype} == {tg.float32}  # batchnorm stays FP32
    for name, p in model.named_parameters():
        m = dict(master.named_parameters())[name]
        assert m.dtype == tg.float32
        np.testing.assert_array_equal(m.numpy(), original[name])  # unrounded
        np.testing.assert_array_equal(p.numpy(), original[name].astype(p.dtype))  # model = round(master)
    assert "4 BF16 parameters with FP32 masters, 2 kept in FP32" in repr(master)
    x = Tensor(np.random.default_rng(0).random((8, 64)), dtype=tg.bfloat16)
    F.cross_entropy(model(x).float(), Tensor(np.arange(8) % 10)).backward()
    master.copy_grads_to_master()
    assert all(p.grad is not None and p.grad.dtype == tg.float32 for p in master.parameters())
    state = master.state_dict()
    assert state["0.weight"].dtype == np.float32
    other = amp.MasterWeights(mlp(seed=1), dtype="bfloat16")
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.model[0].weight.numpy(), model[0].weight.numpy())


def test_master_weights_keep_updates_that_bfloat16_loses():
    # lr · g = 1e-3 per step, below half the bfloat16 gap at 1.0 (2^-8 ≈ 3.9e-3): a bfloat16 weight never moves
    w16 = Tensor(np.ones(1, BF16), requires_grad=True)
    model = nn.Linear(1, 1, bias=False)
    model.weight.data = np.ones((1, 1), np.float32)
    master = amp.MasterWeights(model, dtype=tg.bfloat16)
    opt16, opt32 = optim.SGD([w16], lr=1e-3), optim.SGD(master.parameters(), lr=1e-3)
    for _ in range(100):
        w16.grad = Tensor(np.ones(1, BF16))
        opt16.step()
        model.weight.grad = Tensor(np.ones((1, 1), BF16))
        master.copy_grads_to_master()
        opt32.step()
        master.copy_master_to_model()
    assert w16.item() == 1.0  # stuck
    assert next(master.parameters()).item() == pytest.approx(0.9, rel=1e-5)
    assert model.weight.item() == float(bf16(0.9))


def _train_digits(dtype, steps=300, batch=64):
    """test_amp's digits run (Linear-BatchNorm1d-ReLU-Linear, SGD with momentum, 300 steps of 64): float32, or a
    ``dtype`` model with FP32 masters, a GradScaler only where ``needs_loss_scaling``."""
    x_train, x_test, y_train, y_test = digits(seed=0)
    model = mlp()
    master = amp.MasterWeights(model, dtype=dtype) if dtype is not None else None
    optimizer = optim.SGD(master.parameters() if master else model.parameters(), lr=0.05, momentum=0.9)
    scaler = amp.GradScaler(enabled=master is not None and master.needs_loss_scaling)
    order = np.concatenate([np.random.default_rng(0).permutation(len(x_train)) for _ in range(14)])
    for step in range(steps):
        rows = order[step * batch:(step + 1) * batch]
        x, y = Tensor(x_train[rows]), Tensor(y_train[rows])
        optimizer.zero_grad()
        scaler.scale(F.cross_entropy(model(x.astype(dtype) if dtype else x).float(), y)).backward()
        if master is not None:
            master.copy_grads_to_master()
        scaler.step(optimizer)
        scaler.update()
        if master is not None:
            master.copy_master_to_model()
    model.eval()
    with tg.no_grad():
        logits = model(Tensor(x_test).astype(dtype) if dtype else Tensor(x_test))
    return float((logits.numpy().argmax(axis=1) == y_test).mean())


def test_bfloat16_mixed_precision_training_matches_float32_on_digits():
    accuracy32, accuracy_bf16 = _train_digits(None), _train_digits(tg.bfloat16)
    assert accuracy32 > 0.9
    assert abs(accuracy_bf16 - accuracy32) <= 0.01


def test_bfloat16_flushes_none_of_the_gradients_that_float16_flushes():
    """test_amp's (and notebook 04's) measurement: an MLP fitted to the digits in float32, then its full-batch weight
    gradients computed in float16 and in bfloat16 from the same rounded weights. float16 flushes more than 5% of the
    nonzero float32 gradients to zero without loss scaling; bfloat16, with float32's exponent range, none: that is why
    a bfloat16 model trains without loss scaling."""
    x_train, _, y_train, _ = digits(seed=0)
    model = mlp(batchnorm=False)
    optimizer = optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    order = np.concatenate([np.random.default_rng(0).permutation(len(x_train)) for _ in range(18)])
    for step in range(400):
        batch = order[step * 64:(step + 1) * 64]
        optimizer.zero_grad()
        F.cross_entropy(model(Tensor(x_train[batch])), Tensor(y_train[batch])).backward()
        optimizer.step()
    x, y = Tensor(x_train), Tensor(y_train)
    flushed = {}
    for dtype in (tg.float16, tg.bfloat16):
        low = mlp(batchnorm=False)
        low.load_state_dict(model.state_dict())
        low.to(dtype)
        reference = mlp(batchnorm=False)  # float32, holding the low-precision model's (rounded) weights
        reference.load_state_dict({n: p.numpy().astype(np.float32) for n, p in low.named_parameters()})
        F.cross_entropy(reference(x), y).backward()
        true = np.concatenate([p.grad.numpy().ravel() for p in reference.parameters()])
        F.cross_entropy(low(x.astype(dtype)).float(), y).backward()
        g = np.concatenate([p.grad.numpy().astype(np.float32).ravel() for p in low.parameters()])
        assert np.isfinite(g).all()
        flushed[dtype.name] = np.mean(g[true != 0] == 0)
    assert flushed["float16"] > 0.05
    assert flushed["bfloat16"] == 0.0


def test_master_weights_errors_name_the_dtype_and_device():
    with pytest.raises(TypeError, match="MasterWeights: dtype must be a low-precision dtype, float16 or bfloat16, "
                                        "got float32"):
        amp.MasterWeights(nn.Linear(2, 2), dtype="float32")
    with pytest.raises(TypeError, match="got 'bogus'"):
        amp.MasterWeights(nn.Linear(2, 2), dtype="bogus")
    model = nn.Linear(2, 2).to("strict")
    with pytest.raises(TypeError, match="MasterWeights: parameter weight is on device 'strict', which has no bfloat16"):
        amp.MasterWeights(model, dtype=tg.bfloat16)
    assert model.weight.dtype == tg.float32  # unchanged


def test_grad_scaler_scales_a_bfloat16_loss_in_float32():
    loss = Tensor(bf16(3.0), requires_grad=True)
    scaled = amp.GradScaler(init_scale=2.0**20).scale(loss)
    assert scaled.dtype == tg.float32 and scaled.item() == 3.0 * 2**20
    scaled.backward()
    assert loss.grad.dtype == tg.bfloat16 and loss.grad.item() == 2.0**20


# ---------------------------------------------------------------------------------------------------------------
# backends without bfloat16, and errors that name the op and dtype
# ---------------------------------------------------------------------------------------------------------------
def test_the_strict_backend_refuses_bfloat16_naming_the_dtype():
    with pytest.raises(TypeError, match="the 'strict' backend has no dtype bfloat16"):
        Tensor([1.0, 2.0], dtype=tg.bfloat16, device="strict")
    with pytest.raises(TypeError, match="the 'strict' backend has no dtype bfloat16"):
        Tensor(np.ones(2, BF16)).to("strict")
    with pytest.raises(TypeError, match="the 'strict' backend has no dtype bfloat16"):
        tg.zeros(2, dtype=tg.bfloat16, device="strict")
    t = Tensor([1.0, 2.0], device="strict")
    with pytest.raises(TypeError, match="astype: device 'strict' has no bfloat16"):
        t.bfloat16()
    with pytest.raises(TypeError, match="astype: device 'strict' has no float16"):
        t.half()
    assert not get_backend("strict").has_dtype(tg.bfloat16) and get_backend("cpu").has_dtype(tg.bfloat16)


def test_modules_refuse_bfloat16_on_the_strict_device_and_change_nothing():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).to("strict")
    for call, message in ((lambda: model.bfloat16(), "Sequential.bfloat16: device 'strict' has no bfloat16"),
                          (lambda: model.to(tg.bfloat16), "Sequential.to: device 'strict' has no bfloat16")):
        with pytest.raises(TypeError, match=message):
            call()
        assert all(p.dtype == tg.float32 and p.device == "strict" for p in model.parameters())
    on_cpu = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).bfloat16()
    with pytest.raises(TypeError, match="Sequential.to: device 'strict' has no bfloat16"):
        on_cpu.to("strict")  # a move is checked before anything moves
    assert all(p.device == "cpu" and p.dtype == tg.bfloat16 for p in on_cpu.parameters())


def test_the_cuda_backend_refuses_bfloat16_without_touching_a_gpu():
    """CupyBackend's refusal, checked on an instance made without __init__ (no CuPy, no GPU here). On a GPU this
    would be the same code path; what CuPy itself does with bfloat16 is not tested here."""
    backend = CupyBackend.__new__(CupyBackend)
    backend.name = "cuda:0"
    for call in (lambda: backend.dtype(tg.bfloat16), lambda: backend.dtype("bfloat16"),
                 lambda: backend.from_host(np.ones(2, BF16))):
        with pytest.raises(TypeError, match="device 'cuda:0' has no dtype bfloat16 .* use float16 on CUDA, or "
                                            "bfloat16 on the CPU"):
            call()
    assert backend.dtype("float16") == np.float16 and not backend.has_dtype(tg.bfloat16)
    assert backend.bfloat16 is None


def test_errors_name_the_op_and_the_dtype():
    ints = Tensor(np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="softmax: input must be a floating-point tensor, got dtype int64"):
        F.softmax(ints, dim=1)
    with pytest.raises(TypeError, match="batch_norm: weight must be floating point, got dtype int64"):
        F.batch_norm(Tensor(np.ones((4, 3), BF16)), None, None, Tensor(np.ones(3, np.int64)), training=True)
    with pytest.raises(TypeError, match="prelu: input and weight must have the same dtype, got bfloat16 and float32"):
        F.prelu(Tensor(np.ones((2, 3), BF16)), Tensor(np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="Linear.to: dtype must be a floating-point dtype"):
        nn.Linear(2, 2).to(dtype="int16")


def test_mean_var_std_norm_and_max_of_bfloat16_accumulate_in_float32():
    x = Tensor(np.ones(1000, BF16), requires_grad=True)
    assert x.mean().dtype == tg.bfloat16 and x.mean().item() == 1.0
    x.mean().backward()
    assert x.grad.dtype == tg.bfloat16
    v = Tensor(np.array([1000.0, 1004.0, 1008.0], BF16))
    assert v.var().item() == 16.0 and v.std().item() == 4.0
    assert Tensor(np.full(1000, 3.0, BF16)).norm().item() == float(np.float32(3 * np.sqrt(1000)).astype(BF16))
    m = Tensor(np.array([[1.0, 3.0], [2.0, 0.5]], BF16), requires_grad=True)
    values, indices = m.max(1)
    assert values.requires_grad and indices.tolist() == [1, 0]
    values.sum().backward()
    assert m.grad.numpy().astype(np.float32).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert F.adaptive_avg_pool2d(Tensor(np.ones((1, 2, 3, 3), BF16)), 1).dtype == tg.bfloat16


def test_in_place_copy_init_optimizer_state_and_clipping_take_bfloat16():
    t = Tensor(np.zeros(3, BF16))
    t.copy_(Tensor(np.ones(3, np.float32)))
    assert t.dtype == tg.bfloat16 and t.tolist() == [1.0] * 3
    layer = nn.Linear(3, 2).bfloat16()
    init.kaiming_normal_(layer.weight)
    assert layer.weight.dtype == tg.bfloat16
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(Tensor(np.ones((4, 3), BF16))).float().sum().backward()
    opt.step()
    opt.load_state_dict(opt.state_dict())
    g = Tensor(np.full(1000, 1.0, BF16))
    p = Tensor(np.zeros(1000, BF16), requires_grad=True)
    p.grad = g
    assert float(clip_grad_norm_([p], 1e9)) == pytest.approx(np.sqrt(1000), rel=1e-2)  # summed in float32


def test_anomaly_mode_sees_nan_in_bfloat16():
    z = Tensor(np.array([0.0], np.float32)).bfloat16().requires_grad_()
    with pytest.raises(tg.AnomalyError), np.errstate(all="ignore"), tg.detect_anomaly():
        (z.log() * 0).sum().backward()


def test_weight_norm_linear_in_bfloat16():
    layer = nn.WeightNormLinear(4, 3, dtype="bfloat16")
    assert layer.weight_v.dtype == layer.weight_g.dtype == tg.bfloat16
