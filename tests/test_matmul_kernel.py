"""The CPU float16 kernel (``kernels/matmul_cpu.py``): exact upcasts, NumPy's matmul semantics, the accuracy contract.

The contract: every element of a float16 product is within 1 float16 ulp of the float64 product of the same float16
inputs, plus the float32 accumulation bound K·2^-24·Σ_k |a_ik b_kj|. float16 accumulation breaks it.
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_edu.backend.kernels import matmul_cpu
from tinygrad_edu.backend.kernels.matmul_cpu import dot_accumulate, matmul_accumulate, widen_float16

U32 = 2.0**-24  # float32 unit round-off


def contract_excess(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """How far each element of ``c`` lies outside the contract's bound (<= 0 everywhere when it holds)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = np.matmul(a64, b64)
    accumulation = a.shape[-1] * U32 * np.matmul(np.abs(a64), np.abs(b64))
    # c = fl16(s) with |s - exact| <= accumulation, so |c - s| <= half a float16 ulp of |exact| + accumulation
    one_ulp = np.spacing(np.asarray(np.abs(exact) + accumulation, dtype=np.float16)).astype(np.float64)
    return np.abs(c.astype(np.float64) - exact) - (one_ulp + accumulation)


def fp16_accumulated_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A @ B with a float16 running sum: each product exact (an FMA), each partial sum rounded to float16."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float16)
    for k in range(a.shape[1]):
        acc = (acc.astype(np.float32) + a[:, k:k + 1].astype(np.float32) * b[k:k + 1, :].astype(np.float32)).astype(
            np.float16)
    return acc


# ---------------------------------------------------------------------------------------------------------------
# the upcast
# ---------------------------------------------------------------------------------------------------------------
ALL_FLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)  # every bit pattern: ±0, subnormals, inf, NaN


@pytest.mark.parametrize("layout", ["small", "large contiguous", "large strided"])
def test_widen_is_exact_on_every_float16_bit_pattern(layout):
    src = {"small": ALL_FLOAT16[:4096].reshape(64, 64),  # converted in the calling thread
           "large contiguous": np.tile(ALL_FLOAT16, 8).reshape(64, -1),  # flat pieces on all cores
           "large strided": np.tile(ALL_FLOAT16, 16).reshape(64, -1)[:, ::2]}[layout]  # rows on all cores
    out = np.empty(src.shape, np.float32)
    widen_float16(src, out)
    np.testing.assert_array_equal(out.view(np.uint32), src.astype(np.float32).view(np.uint32))  # NaN payloads too


def test_matmul_propagates_inf_and_nan_like_float64():
    a = np.array([[1.0, np.inf], [np.nan, 1.0], [1.0, 2.0]], np.float16)
    b = np.array([[1.0, 0.0], [1.0, 1.0]], np.float16)
    with np.errstate(invalid="ignore"):  # inf · 0
        expected = a.astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_array_equal(matmul_accumulate(a, b), expected.astype(np.float16))


# ---------------------------------------------------------------------------------------------------------------
# NumPy's matmul semantics
# ---------------------------------------------------------------------------------------------------------------
SHAPE_PAIRS = [
    ((7,), (7,)), ((3, 7), (7,)), ((7,), (7, 4)), ((2, 3, 7), (7, 4)), ((3, 7), (2, 7, 4)),
    ((2, 1, 3, 300), (4, 300, 2)), ((0, 3), (3, 4)), ((3, 0), (0, 4)), ((2, 0, 5), (5, 3)), ((0,), (0,)),
]


@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPE_PAIRS)
@pytest.mark.parametrize("block_k", [None, 128, 1000])
def test_shapes_and_dtype_follow_numpy_matmul(shape_a, shape_b, block_k):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a).astype(np.float16), rng.standard_normal(shape_b).astype(np.float16)
    c = matmul_accumulate(a, b, block_k=block_k)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert c.shape == expected.shape and c.dtype == np.float16
    assert np.all(contract_excess(a, b, c) <= 0)
    c32 = matmul_accumulate(a, b, out_dtype=np.float32, block_k=block_k)
    assert c32.dtype == np.float32 and np.all(np.abs(c32 - expected) <= a.shape[-1] * U32 * 8 + 1e-6)


def test_non_contiguous_operands():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((600, 300)).astype(np.float16).T  # (300, 600), column-major view
    b = rng.standard_normal((1200, 50)).astype(np.float16)[::2]  # (600, 50), every other row
    c = matmul_accumulate(a, b, block_k=256)
    assert np.all(contract_excess(a, b, c) <= 0)


def test_other_dtypes_go_through_the_same_blocks():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 700)).astype(np.float32), rng.standard_normal((700, 3)).astype(np.float32)
    c = matmul_accumulate(a, b, accumulate_dtype=np.float64, block_k=128)
    assert c.dtype == np.float32
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-6, atol=1e-6)


def test_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not align"):
        matmul_accumulate(np.ones((2, 3), np.float16), np.ones((4, 5), np.float16))
    with pytest.raises(ValueError, match=r"dot: expected two 1-D arrays of the same length, got shapes \(3,\)"):
        dot_accumulate(np.ones(3, np.float16), np.ones(4, np.float16))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        matmul_accumulate(np.float16(1.0), np.ones(3, np.float16))


def test_calls_from_many_threads_at_once_agree():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((512, 512)).astype(np.float16), rng.standard_normal((512, 512)).astype(np.float16)
    expected, results = matmul_accumulate(a, b), [None] * 4

    def run(i):
        results[i] = matmul_accumulate(a, b)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None and np.array_equal(r, expected) for r in results)


def test_no_float32_copy_of_a_whole_operand():
    """Peak extra memory: two float32 K-blocks, the float32 accumulator and one partial product, not A or B."""
    rng = np.random.default_rng(4)
    m, k, n = 64, 16384, 64
    a, b = rng.standard_normal((m, k)).astype(np.float16), rng.standard_normal((k, n)).astype(np.float16)
    tracemalloc.start()
    matmul_accumulate(a, b)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole_a32 = m * k * 4  # 4 MiB
    blocks = 4 * matmul_cpu.BLOCK_K * (m + n) + 3 * 4 * m * n  # 512 KiB + 48 KiB
    assert peak <= blocks + 64 * 1024 < whole_a32 / 4


# ---------------------------------------------------------------------------------------------------------------
# the accuracy contract
# ---------------------------------------------------------------------------------------------------------------
@st.composite
def contract_cases(draw):
    """(A, B) in float16: K up to 4096, values of every scale, including sums that cancel almost to zero."""
    m, n = draw(st.integers(1, 4), label="m"), draw(st.integers(1, 4), label="n")
    k = draw(st.one_of(st.integers(1, 64), st.sampled_from([511, 512, 513, 1000, 2048, 4096])), label="k")
    kind = draw(st.sampled_from(["normal", "wide range", "cancelling", "large sums", "ties"]), label="kind")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    if kind == "wide range":  # magnitudes from 2^-12 to 2^6
        a *= 2.0 ** rng.integers(-12, 7, size=a.shape)
    elif kind == "cancelling":  # the second half of the products cancels the first half, up to small noise
        half = k // 2
        a[:, half:2 * half], b[half:2 * half] = a[:, :half], -b[:half] * (1 + 2.0**-9 * rng.standard_normal((half, n)))
    elif kind == "large sums":  # positive terms near 1: the sum grows to K, where float16's ulp is 2 to 4
        a, b = 1 + np.abs(a) * 0.01, 1 + np.abs(b) * 0.01
    elif kind == "ties":  # integers: exact products, many results exactly halfway between float16 neighbours
        a, b = np.round(a * 4), np.round(b * 4)
    scale = max(1.0, float(np.abs(a).max() * np.abs(b).max() * k) / 30000)  # keep results below float16's max
    return (a / scale).astype(np.float16), b.astype(np.float16)


@given(case=contract_cases())
def test_every_element_is_within_one_float16_ulp_plus_the_float32_accumulation_bound(case):
    a, b = case
    c = matmul_accumulate(a, b)
    assert np.all(np.isfinite(c))
    assert np.all(contract_excess(a, b, c) <= 0)
    if a.shape[0] == 1 and b.shape[1] == 1:  # the 1-D path (dot) keeps the same contract
        d = matmul_accumulate(a[0], b[:, 0])
        assert contract_excess(a[0], b[:, 0], d) <= 0


def test_float16_accumulation_breaks_the_bound_that_float32_accumulation_keeps():
    """Summing 4096 products near 1.02: past 2048 a float16 running sum moves in steps of its ulp, 2, so every term
    counts as 2 (or 0); the error grows with every step instead of staying at one final rounding."""
    rng = np.random.default_rng(5)
    k = 4096
    a = (1 + 0.01 * np.abs(rng.standard_normal((2, k)))).astype(np.float16)
    b = (1 + 0.01 * np.abs(rng.standard_normal((k, 2)))).astype(np.float16)
    assert np.all(contract_excess(a, b, matmul_accumulate(a, b)) <= 0)
    naive = fp16_accumulated_matmul(a, b)
    assert np.all(contract_excess(a, b, naive) > 0)  # every element outside the bound
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(naive - exact) > 30)  # the float32 accumulator's error bound here is about 5


def test_blocks_add_their_partial_products_in_float32():
    """Many blocks along K: the partial products are added in float32, not rounded to float16 between blocks."""
    k = 4096
    a, b = np.full((1, k), 1.0, np.float16), np.full((k, 1), 1.0 + 2.0**-10, np.float16)
    exact = float((a.astype(np.float64) @ b.astype(np.float64))[0, 0])  # 4100.0
    assert float(matmul_accumulate(a, b, block_k=128)[0, 0]) == float(np.float16(exact))
    assert float(matmul_accumulate(a, b, out_dtype=np.float32, block_k=128)[0, 0]) == exact
