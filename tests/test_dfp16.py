"""DFP16 (Das et al. 2018): the format's conversions, the INT16 matrix product with INT32 chunks, the training
Function and the model converter.

* conversions: the paper's shared exponent, round half to even (ties), the carry, zeros, subnormals, NaN/inf refused;
  the compiled kernel (AVX2 and portable) and the NumPy fallback give the same integers, bit for bit;
* the product: chunks of two products never overflow INT32 (adversarial mantissas ±32767 that overflow an unchunked
  INT32 sum), bit-exact against Python integers, the float32 combination bit-exact against a reference written
  here, the accuracy contract against float64, the same bits on every path and in threads; down-conversion;
* ``DFP16LinearFunction``: forward and backward against their formulas on the dequantized operands (finite
  differences cannot check a quantized forward); ``convert``/``revert``; errors that name the op.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sysconfig
import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
from tinygrad_edu import InputError, Tensor, nn, optim
from tinygrad_edu.amp import dfp16 as amp_dfp16
from tinygrad_edu.backend.kernels import compile_cpu, dfp16
from tinygrad_edu.backend.kernels.dfp16 import DFP16
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import registry

U = 2.0**-24  # float32 unit round-off
module = dfp16.kernel()
needs_extension = pytest.mark.skipif(module is None, reason="kernels/dfp16.c could not be compiled here")


# ---------------------------------------------------------------------------------------------------------------
# the three paths: compiled with AVX2, compiled portable code, NumPy fallback
# ---------------------------------------------------------------------------------------------------------------
def paths() -> list[str]:
    """The paths this machine has: the NumPy fallback, the compiled portable code, AVX2, AVX-512 (the product's)."""
    found = ["numpy"]
    if module is not None:
        found.append("portable")
        for name, setter, probe in (("avx2", module.set_avx2, module.has_avx2),
                                    ("avx512", module.set_avx512, module.has_avx512)):
            previous = setter(True)
            if probe():
                found.append(name)
            setter(previous)
    return found


@contextlib.contextmanager
def on_path(name: str):
    """Run the block on one path: the NumPy fallback (``dfp16.compiled = None``) or the compiled module with its
    vector code switched off (portable), limited to AVX2, or with AVX-512 (its conversions stay AVX2)."""
    saved = dfp16.compiled
    if module is not None:
        previous = module.set_avx2(name in ("avx2", "avx512")), module.set_avx512(name == "avx512")
    if name == "numpy":
        dfp16.compiled = None
    try:
        yield
    finally:
        dfp16.compiled = saved
        if module is not None:
            module.set_avx2(previous[0])
            module.set_avx512(previous[1])


def on_every_path(fn):
    """``{path: fn()}`` for every path available here."""
    results = {}
    for name in paths():
        with on_path(name):
            results[name] = fn()
    return results


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(f"u{a.itemsize}") if a.dtype.kind == "f" else a


def all_identical(results: dict) -> bool:
    """Every path's result has the same dtype, shape and bits (DFP16: mantissas and exponent) as the first."""
    first = next(iter(results.values()))
    for value in results.values():
        if isinstance(first, DFP16):
            if value.exponent != first.exponent or not np.array_equal(value.mantissa, first.mantissa):
                return False
        elif isinstance(first, tuple):
            if value[1] != first[1] or not np.array_equal(value[0], first[0]):
                return False
        elif value.dtype != first.dtype or value.shape != first.shape or not np.array_equal(bits(value), bits(first)):
            return False
    return True


def round_half_even(value: Fraction) -> int:
    return round(value)  # Fraction.__round__: to nearest, ties to even


def reference_quantize(x: np.ndarray) -> tuple[list[int], int]:
    """The paper's definition in exact arithmetic: E = floor(log2 max|x|) - 14 (+1 on the carry), m = rhe(x 2^-E)."""
    values = [Fraction(float(v)) for v in x.ravel()]
    top = max((abs(v) for v in values), default=Fraction(0))
    if top == 0:
        return [0] * len(values), 0
    e_max = math.floor(math.log2(top))
    while Fraction(2) ** e_max > top:  # guard against log2's rounding
        e_max -= 1
    while Fraction(2) ** (e_max + 1) <= top:
        e_max += 1
    exponent = e_max - 14
    if round_half_even(top / Fraction(2) ** exponent) == 2**15:
        exponent += 1
    return [round_half_even(v / Fraction(2) ** exponent) for v in values], exponent


def test_the_kernel_is_compiled_where_a_c_compiler_exists():
    """A compile error would silently fall back to NumPy: where Python's C compiler exists, it must have worked."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) here: the NumPy code is used")
    assert module is not None, compile_cpu.errors.get("dfp16")


def test_without_a_compiler_the_numpy_code_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYGRAD_EDU_COMPILE", "0")
    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_cpu, "_loaded", {})
    monkeypatch.setattr(compile_cpu, "errors", {})
    monkeypatch.setattr(dfp16, "compiled", dfp16._NOT_LOADED)
    assert dfp16.kernel() is None and "turned off" in compile_cpu.errors["dfp16"]
    q = dfp16.quantize(np.array([1.0, -0.25], np.float32))
    assert q.exponent == -14 and q.mantissa.tolist() == [16384, -4096]
    row, column = DFP16(q.mantissa[None], q.exponent), DFP16(q.mantissa[:, None], q.exponent)
    np.testing.assert_array_equal(dfp16.matmul(row, column), [[1.0625]])  # 1 + 1/16


# ---------------------------------------------------------------------------------------------------------------
# float32 -> DFP16
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("max_abs", "expected"), [
    (1.0, -14), (1.5, -14), (2.0, -13), (0.75, -15), (float(np.float32(3e-3)), -23),  # E = floor(log2 max) - (16 - 2)
    (2.0**-149, -163), (2.0**-126 * 0.75, -141),  # subnormal maxima: the exponent of the value itself
    (float(np.finfo(np.float32).max), 114),  # (2 - 2^-23) 2^127 rounds to 2^15 2^113: the carry
    (32767.5 / 16384, -13), (32767.25 / 16384, -14), (32766.5 / 16384, -14),  # carry at 32767.5 (a tie up to even)
    (0.0, 0),
])
def test_the_shared_exponent_comes_from_the_largest_magnitude(max_abs, expected):
    assert dfp16.shared_exponent(max_abs) == expected
    if max_abs:
        x = np.array([max_abs, -max_abs / 3], np.float32)
        assert max_abs == float(x[0])  # each case is a float32 value
        q = dfp16.quantize(x)
        assert q.exponent == expected and 2**14 <= np.abs(q.mantissa).max() <= 2**15 - 1


def test_ties_round_to_even_on_every_path():
    """Scaled values k + 1/2 round to the even neighbour, both signs; the largest value (16384) fixes E = 0."""
    x = np.array([16384, 0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 32766.5 / 2, 1e-30, -0.0, 0.25, 0.75], np.float32)
    expected = [16384, 0, 2, 2, 4, 0, -2, -2, 16383, 0, 0, 0, 1]  # 16383.25 -> 16383
    for name, q in on_every_path(lambda: dfp16.quantize(x)).items():
        assert q.exponent == 0, name
        assert q.mantissa.tolist() == expected, name


def test_the_carry_raises_the_exponent_instead_of_clipping():
    """A largest value whose scaled magnitude rounds to 2^15 (32767.5 and up) takes the exponent one higher: every
    element keeps its half-step bound, and the largest mantissa is then 2^14."""
    x = np.array([32767.5, -32767.75, 1.0, 3.0, -1.5], np.float32)
    for name, q in on_every_path(lambda: dfp16.quantize(x)).items():
        assert q.exponent == 1, name
        assert q.mantissa.tolist() == [16384, -16384, 0, 2, -1], name  # 0.5 -> 0, 1.5 -> 2, -0.75 -> -1
        assert np.all(np.abs(q.to_float64() - x) <= 2.0 ** (q.exponent - 1))
    just_below = np.array([32767.25, 1.0], np.float32)
    assert dfp16.quantize(just_below).exponent == 0 and dfp16.quantize(just_below).mantissa.tolist() == [32767, 1]


def test_nan_and_inf_are_refused_naming_what_and_how_many():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.array([[1.0, bad], [bad, 2.0]], np.float32)
        for name in paths():
            with on_path(name), pytest.raises(ValueError, match=r"dfp16 quantize: the weight holds 2 NaN or infinite "
                                                                r"value\(s\) of 4"):
                dfp16.quantize(x, "the weight")


def test_zeros_negative_zero_and_empty_arrays():
    for name in paths():
        with on_path(name):
            zeros = dfp16.quantize(np.array([0.0, -0.0], np.float32))
            assert zeros.exponent == 0 and zeros.mantissa.tolist() == [0, 0]
            signed = dfp16.quantize(np.array([-0.0, 2.0], np.float32))
            assert signed.mantissa.tolist() == [0, 16384] and not np.signbit(signed.to_float32()[0])  # +0 back
            empty = dfp16.quantize(np.zeros((0, 3), np.float32))
            assert empty.exponent == 0 and empty.shape == (0, 3)
            scalar = dfp16.quantize(np.array(-3.0, np.float32))
            assert scalar.shape == () and scalar.mantissa == -24576 and scalar.exponent == -13


def test_values_below_half_a_step_become_zero():
    """One exponent for all: with max 1.0 the step is 2^-14, so 2^-15 (a tie) rounds to 0 and 2^-15 (1 + 2^-23) to
    one step; the range of a DFP16 tensor is 2^15 from its largest value."""
    x = np.array([1.0, 2.0**-15, 2.0**-15 * (1 + 2.0**-23), 3 * 2.0**-15, 2.0**-20], np.float32)
    q = dfp16.quantize(x)
    assert q.exponent == -14 and q.mantissa.tolist() == [16384, 0, 1, 2, 0]


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="dfp16 quantize: the input must be a float32 NumPy array, got float64"):
        dfp16.quantize(np.ones(3), "the input")
    with pytest.raises(TypeError, match="got list"):
        dfp16.quantize([1.0])


#: float32 of every kind: zeros of both signs, subnormals, tiny and huge normals (no NaN/inf: refused, tested above)
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
#: moderate values near a common scale, where ties and every mantissa bit matter
SCALED = st.builds(lambda n, e: float(np.float32(n * 2.0**e)), st.integers(-65535, 65535), st.integers(-16, -1))


@st.composite
def float32_arrays(draw, elements=FLOAT32):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9), label="shape")
    x = draw(hnp.arrays(np.float32, shape, elements=elements), label="x")
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]), label="layout")
    if layout == "transposed":
        x = x.T
    elif layout == "strided" and x.ndim:
        x = x[..., ::2]
    return x


@given(x=st.one_of(float32_arrays(), float32_arrays(SCALED)))
def test_quantize_follows_the_definition_on_every_path(x):
    """The exact definition (Fractions), the half-step contract, and the same integers on every path; strided,
    transposed, empty and 0-d arrays included."""
    expected, exponent = reference_quantize(x)
    results = on_every_path(lambda: dfp16.quantize(x))
    assert all_identical(results)
    q = results["numpy"]
    assert q.exponent == exponent and q.mantissa.ravel().tolist() == expected and q.shape == x.shape
    if x.size:
        assert np.all(np.abs(q.to_float64() - x.astype(np.float64)) <= 2.0 ** (q.exponent - 1))
        top = int(np.abs(q.mantissa).max())
        assert top == 0 or 2**14 <= top <= 2**15 - 1


@given(x=float32_arrays())
def test_dequantize_rounds_once_and_agrees_on_every_path(x):
    q = dfp16.quantize(x)
    results = on_every_path(lambda: dfp16.dequantize(q))
    assert all_identical(results)
    with np.errstate(over="ignore"):
        assert np.array_equal(bits(results["numpy"]), bits(q.to_float64().astype(np.float32)))


def test_dequantize_on_every_exponent_agrees_on_every_path():
    """Random mantissas at every exponent from -320 to 230 (products add two exponents): subnormal results, results
    past float32's range (inf), and the float32 fast path's edges (-126, 127) included."""
    rng = np.random.default_rng(0)
    mantissa = rng.integers(-32767, 32768, size=(3, 37)).astype(np.int16)
    mantissa[0, :4] = [32767, -32767, 1, 0]
    for exponent in range(-320, 231):
        d = DFP16(mantissa[:, ::2], exponent)  # a strided view: the element-by-element loop too
        results = on_every_path(lambda d=d: dfp16.dequantize(d))
        assert all_identical(results), exponent
        with np.errstate(over="ignore"):
            assert np.array_equal(bits(results["numpy"]), bits(d.to_float64().astype(np.float32))), exponent


def test_the_top_of_float32_dequantizes_to_inf():
    """(2 - 2^-23) 2^127 is within half a step of 2^128: its mantissa carries to 2^14 with E = 114, i.e. 2^128,
    which rounds to inf in float32 (as float16 rounds 65520 to inf); its neighbours stay finite."""
    top = np.finfo(np.float32).max
    q = dfp16.quantize(np.array([top, top / 2, -1.0], np.float32))
    assert q.exponent == 114 and q.mantissa.tolist() == [16384, 8192, 0]
    assert q.to_float32()[0] == np.inf and q.to_float32()[1] == np.float32(2.0**127)


def test_the_dfp16_constructor_checks_its_invariants():
    with pytest.raises(TypeError, match="int16 NumPy array, got ndarray of int32"):
        DFP16(np.zeros(3, np.int32), 0)
    with pytest.raises(ValueError, match="a mantissa is -32768"):
        DFP16(np.array([-32768, 0], np.int16), 0)
    with pytest.raises(ValueError, match=r"exponent 501 is outside \[-500, 500\]"):
        DFP16(np.zeros(3, np.int16), 501)
    with pytest.raises(TypeError, match="exponent must be an int"):
        DFP16(np.zeros(3, np.int16), 1.0)
    d = DFP16(np.arange(6, dtype=np.int16).reshape(2, 3), -3)
    assert d.T.shape == (3, 2) and d.T.exponent == -3 and repr(d) == "DFP16(shape=(2, 3), exponent=-3)"


@needs_extension
def test_the_compiled_functions_check_their_arguments():
    with pytest.raises(ValueError, match="quantize: expected float32 source and int16 destination arrays of one shape"):
        module.quantize(np.ones(3, np.float64), np.zeros(3, np.int16), 0)
    with pytest.raises(ValueError, match="dequantize: expected int16 source and float32 destination"):
        module.dequantize(np.ones(3, np.int32), np.zeros(3, np.float32), 0)
    with pytest.raises(ValueError, match=r"exponent 5000 is outside \[-1000, 1000\]"):
        module.dequantize(np.ones(3, np.int16), np.zeros(3, np.float32), 5000)
    with pytest.raises(ValueError, match="max_abs_bits: expected a float32 array"):
        module.max_abs_bits(np.ones(3, np.int32))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) @ \(4, 5\) -> \(2, 5\) do not fit"):
        module.matmul(np.ones((2, 3), np.int16), np.ones((4, 5), np.int16), np.zeros((2, 5), np.float32), 0, False)
    with pytest.raises(ValueError, match="C-contiguous 2-D int64 output"):
        module.matmul(np.ones((2, 3), np.int16), np.ones((3, 5), np.int16), np.zeros((2, 5), np.float32), 0, True)
    with pytest.raises((BufferError, ValueError), match="read-only"):
        module.dequantize(np.ones(4, np.int16), np.frombuffer(bytes(16), np.float32), 0)
    out = np.zeros(3, np.int16)  # a wrong exponent saturates (and says how many); NaN becomes 0
    assert module.quantize(np.array([1e6, -1e6, np.nan], np.float32), out, 0) == 3 and out.tolist() == [
        32767, -32767, 0]


# ---------------------------------------------------------------------------------------------------------------
# the product: INT32 chunks of two products
# ---------------------------------------------------------------------------------------------------------------
def exact_sums(a: DFP16, b: DFP16) -> np.ndarray:
    """Σ_k m^A_ik m^B_kj with Python integers (no overflow anywhere)."""
    return np.array(a.mantissa.astype(object) @ b.mantissa.astype(object), dtype=np.int64).reshape(
        a.shape[0], b.shape[1])


def float32_combination_reference(a: DFP16, b: DFP16) -> np.ndarray:
    """The definition of combine="float32", element by element: Python-integer chunk sums of two products, each
    converted to float32 and added to a float32 accumulator in order of k, the total scaled by 2^(E_A + E_B)."""
    (m, k), n = a.shape, b.shape[1]
    out = np.zeros((m, n), np.float32)
    scale = math.ldexp(1.0, a.exponent + b.exponent)
    for i in range(m):
        for j in range(n):
            acc = np.float32(0)
            for c in range(0, k, 2):
                chunk = sum(int(a.mantissa[i, kk]) * int(b.mantissa[kk, j]) for kk in range(c, min(c + 2, k)))
                assert abs(chunk) <= dfp16.INT32_MAX
                acc = np.float32(acc + np.float32(chunk))
            with np.errstate(over="ignore"):
                out[i, j] = np.float32(float(acc) * scale)
    return out


def test_two_products_fit_an_int32_accumulator_and_three_do_not():
    assert dfp16.CHUNK == 2
    assert 2 * dfp16.MANTISSA_MAX**2 <= dfp16.INT32_MAX < 3 * dfp16.MANTISSA_MAX**2
    assert 2 * 2**30 > dfp16.INT32_MAX  # why -32768 is excluded: 2 * (-32768)^2 = 2^31 overflows


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 512, 513, 1025, 4099])
@pytest.mark.parametrize("signs", ["all positive", "alternating rows", "mixed"])
def test_adversarial_mantissas_that_overflow_an_unchunked_int32_sum(k, signs):
    """Every mantissa ±32767: three products already exceed 2^31 - 1, so a plain INT32 running sum wraps around
    (shown below with NumPy's int32); the chunked sums are exact, on every path, in both combinations."""
    m, n = 5, 19
    a = np.full((m, k), 32767, np.int16)
    b = np.full((k, n), 32767, np.int16)
    if signs == "alternating rows":
        b[1::2] = -32767
    elif signs == "mixed":
        rng = np.random.default_rng(k)
        a *= rng.choice(np.array([-1, 1], np.int16), size=a.shape)
        b[: (k + 1) // 2] *= -1  # a first half of one sign: the partial sums climb to K/2 · 2^30 before falling
    da, db = DFP16(a, -3), DFP16(b, 2)
    exact = exact_sums(da, db)
    for name, (total, exponent) in on_every_path(lambda: dfp16.matmul_exact(da, db)).items():
        assert exponent == -1 and np.array_equal(total, exact), name
    if k >= 3 and signs == "all positive":
        with np.errstate(over="ignore"):
            wrapped = np.cumsum(a[0].astype(np.int32) * b[:, 0].astype(np.int32), dtype=np.int32)[-1]
        assert int(wrapped) != int(exact[0, 0])  # the unchunked INT32 sum is wrong
    results = on_every_path(lambda: dfp16.matmul(da, db))
    assert all_identical(results)
    if k <= 1025:  # (1025: across a block of the compiled kernel, 1024 k)
        assert np.array_equal(bits(results["numpy"]), bits(float32_combination_reference(da, db)))
    exact_product = exact.astype(np.float64) * 0.5
    c = results["numpy"]
    assert np.all(np.abs(c - exact_product) <= (math.ceil(k / 2) + 1) * U * k * 32767.0**2 * 0.5 + np.spacing(c))
    wide = on_every_path(lambda: dfp16.matmul(da, db, combine="int64"))
    assert all_identical(wide)
    assert np.array_equal(wide["numpy"], (exact.astype(np.float64) * 0.5).astype(np.float32))  # one rounding


@st.composite
def mantissa_pairs(draw):
    """(A, B) DFP16 with shapes around the kernel's edges (odd K, K across a 512-k block, N not a multiple of 16, M
    not a multiple of 4, zero sizes), mantissas anywhere in [-32767, 32767], views of every layout."""
    m = draw(st.integers(0, 9), label="m")
    n = draw(st.sampled_from([0, 1, 5, 15, 16, 17, 33]), label="n")
    k = draw(st.one_of(st.integers(0, 9), st.sampled_from([511, 512, 513, 1023, 1025])), label="k")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    kind = draw(st.sampled_from(["uniform", "extremes", "small"]), label="kind")
    if kind == "extremes":
        a = rng.choice(np.array([-32767, 32767, 0], np.int16), size=(m, k))
        b = rng.choice(np.array([-32767, 32767, 1], np.int16), size=(k, n))
    else:
        high = 32768 if kind == "uniform" else 8
        a = rng.integers(-high + 1, high, size=(m, k)).astype(np.int16)
        b = rng.integers(-high + 1, high, size=(k, n)).astype(np.int16)
    if draw(st.booleans(), label="a transposed"):
        a = np.ascontiguousarray(a.T).T
    if draw(st.booleans(), label="b strided"):
        b = np.repeat(b, 2, axis=1)[:, ::2]
    exponents = draw(st.tuples(st.integers(-160, 110), st.integers(-160, 110)), label="exponents")
    return DFP16(a, exponents[0]), DFP16(b, exponents[1])


@given(pair=mantissa_pairs())
def test_the_product_is_bit_exact_against_integer_and_float32_references_on_every_path(pair):
    a, b = pair
    exact = exact_sums(a, b)
    wide = on_every_path(lambda: dfp16.matmul_exact(a, b))
    assert all_identical(wide)
    assert wide["numpy"][1] == a.exponent + b.exponent and np.array_equal(wide["numpy"][0], exact)
    results = on_every_path(lambda: dfp16.matmul(a, b))
    assert all_identical(results)
    if a.shape[0] * b.shape[1] * a.shape[1] <= 20_000:
        assert np.array_equal(bits(results["numpy"]), bits(float32_combination_reference(a, b)))
    int64 = on_every_path(lambda: dfp16.matmul(a, b, combine="int64"))
    assert all_identical(int64)
    with np.errstate(over="ignore"):  # fl32(T · 2^E) with one rounding: T and the scaling are exact in float64
        expected = (exact.astype(np.float64) * math.ldexp(1.0, a.exponent + b.exponent)).astype(np.float32)
    assert np.array_equal(bits(int64["numpy"]), bits(expected))


def test_large_products_split_over_threads_give_the_same_bits(monkeypatch):
    rng = np.random.default_rng(3)
    a = DFP16(rng.integers(-32767, 32768, size=(300, 700)).astype(np.int16), -20)
    b = DFP16(rng.integers(-32767, 32768, size=(700, 90)).astype(np.int16), -11)
    threaded = dfp16.matmul(a, b), dfp16.matmul_exact(a, b)[0]
    monkeypatch.setattr(dfp16, "PARALLEL_MIN_MACS", 1 << 62)
    assert np.array_equal(bits(dfp16.matmul(a, b)), bits(threaded[0]))
    assert np.array_equal(dfp16.matmul_exact(a, b)[0], threaded[1])


def test_calls_from_many_threads_at_once_agree():
    rng = np.random.default_rng(4)
    a = dfp16.quantize(rng.standard_normal((256, 256)).astype(np.float32))
    b = dfp16.quantize(rng.standard_normal((256, 256)).astype(np.float32))
    expected, results = dfp16.matmul(a, b), [None] * 4

    def run(i):
        results[i] = dfp16.matmul(a, b)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None and np.array_equal(bits(r), bits(expected)) for r in results)


def test_product_errors_name_the_op():
    d = DFP16(np.ones((2, 3), np.int16), 0)
    with pytest.raises(ValueError, match=r"dfp16 matmul: shapes \(2, 3\) and \(2, 3\) do not align"):
        dfp16.matmul(d, d)
    with pytest.raises(ValueError, match=r"dfp16 matmul: shapes \(3,\)"):
        dfp16.matmul_exact(DFP16(np.ones(3, np.int16), 0), d)
    with pytest.raises(TypeError, match="expected two DFP16 tensors, got ndarray and DFP16"):
        dfp16.matmul(np.ones((3, 2), np.int16), d)
    with pytest.raises(ValueError, match="combine must be 'float32' or 'int64', got 'float16'"):
        dfp16.matmul(d, d.T, combine="float16")
    forged = DFP16._trusted(np.array([[-32768, 1]], np.int16), 0)  # bypasses the constructor's check
    if module is not None:
        with pytest.raises(ValueError, match="matmul: an operand holds the mantissa -32768"):
            dfp16.matmul(forged, d)


# ---------------------------------------------------------------------------------------------------------------
# the accuracy contract
# ---------------------------------------------------------------------------------------------------------------
@st.composite
def float_operands(draw):
    """float32 (A, B) with K up to 2048: one scale per tensor from 2^-40 to 2^40, values of every size below it
    (some flush to zero), sums that cancel, exact zeros."""
    m, n = draw(st.integers(1, 4), label="m"), draw(st.integers(1, 4), label="n")
    k = draw(st.one_of(st.integers(1, 40), st.sampled_from([255, 256, 511, 1000, 2048])), label="k")
    kind = draw(st.sampled_from(["normal", "wide range", "cancelling", "sparse"]), label="kind")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    if kind == "wide range":
        a *= 2.0 ** rng.integers(-20, 1, size=a.shape)
    elif kind == "cancelling":
        half = k // 2
        a[:, half:2 * half], b[half:2 * half] = a[:, :half], -b[:half] * (1 + 2.0**-12 * rng.standard_normal((half, n)))
    elif kind == "sparse":
        a[rng.random(a.shape) < 0.7] = 0
    scales = draw(st.tuples(st.integers(-40, 40), st.integers(-40, 40)), label="scales")
    return (a * 2.0 ** scales[0]).astype(np.float32), (b * 2.0 ** scales[1]).astype(np.float32)


def contract_excess(a32: np.ndarray, b32: np.ndarray, c: np.ndarray, combine: str) -> np.ndarray:
    """How far each element of ``c`` lies outside the contract (<= 0 everywhere when it holds)."""
    qa, qb = dfp16.quantize(a32), dfp16.quantize(b32)
    k = a32.shape[1]
    scale = math.ldexp(1.0, qa.exponent + qb.exponent)
    hat = exact_sums(qa, qb).astype(np.float64) * scale  # Σ â b̂, exact (integers below 2^53 times 2^E)
    hat_abs = (np.abs(qa.mantissa.astype(np.int64)) @ np.abs(qb.mantissa.astype(np.int64))).astype(np.float64) * scale
    combination = (math.ceil(k / 2) + 1) * U * hat_abs if combine == "float32" else 0.0
    spacing = np.spacing(np.abs(c)).astype(np.float64)
    subnormal_extra = combine == "float32" and np.abs(c) < 2.0**-126  # the float32 total, then a subnormal rounding
    half_ulp = np.where(subnormal_extra, spacing, spacing / 2)
    assert np.all(np.abs(c - hat) <= combination + half_ulp)  # the product of the DFP16 values
    da, db = 2.0 ** (qa.exponent - 1), 2.0 ** (qb.exponent - 1)
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    quantization = da * np.abs(b64).sum(axis=0)[None, :] + db * np.abs(a64).sum(axis=1)[:, None] + k * da * db
    reference_error = 4 * k * 2.0**-53 * (np.abs(a64) @ np.abs(b64))  # float64's own rounding in a64 @ b64
    return np.abs(c - a64 @ b64) - (quantization + combination + half_ulp + reference_error)


@given(operands=float_operands(), combine=st.sampled_from(["float32", "int64"]))
def test_every_element_is_within_the_accuracy_contract(operands, combine):
    a32, b32 = operands
    c = dfp16.matmul(dfp16.quantize(a32), dfp16.quantize(b32), combine=combine)
    assert c.dtype == np.float32 and np.all(np.isfinite(c))
    assert np.all(contract_excess(a32, b32, c, combine) <= 0)


def test_the_int64_combination_rounds_only_once_where_float32_rounds_along_the_way():
    """K = 4096 products 32767 · 1: the chunk sums 65534 are added to a float32 accumulator that passes 2^25, where
    its steps are 4 and every other addition rounds; the exact sum 4096 · 32767 = 2^12 (2^15 - 1) is a float32. The
    int64 combination returns it exactly; the float32 one misses it, within its bound."""
    k = 4096
    a, b = DFP16(np.full((1, k), 32767, np.int16), 0), DFP16(np.ones((k, 1), np.int16), 0)
    exact = 4096 * 32767
    assert float(dfp16.matmul(a, b, combine="int64")[0, 0]) == exact
    along_the_way = float(dfp16.matmul(a, b)[0, 0])
    assert along_the_way != exact and abs(along_the_way - exact) <= (k // 2 + 1) * U * exact
    assert along_the_way == float(float32_combination_reference(a, b)[0, 0])


# ---------------------------------------------------------------------------------------------------------------
# down-conversion: the wide result back to DFP16
# ---------------------------------------------------------------------------------------------------------------
@given(total=hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=7),
                        elements=st.integers(-(2**62), 2**62)), exponent=st.integers(-300, 300))
def test_down_conversion_is_quantize_of_the_exact_values(total, exponent):
    d = dfp16.down_convert(total, exponent)
    values = [Fraction(int(t)) * Fraction(2) ** exponent for t in total.ravel()]
    top = max(abs(v) for v in values)
    if top == 0:
        assert d.exponent == 0 and not d.mantissa.any()
        return
    e_max = math.floor(math.log2(max(abs(int(t)) for t in total.ravel()))) + exponent
    while Fraction(2) ** e_max > top:
        e_max -= 1
    while Fraction(2) ** (e_max + 1) <= top:
        e_max += 1
    expected_exponent = e_max - 14 + (round_half_even(top / Fraction(2) ** (e_max - 14)) == 2**15)
    assert d.exponent == expected_exponent
    assert d.mantissa.ravel().tolist() == [round_half_even(v / Fraction(2) ** d.exponent) for v in values]
    small = total[np.abs(total) < 2**24]  # float32 holds these exactly: the same as quantize
    if small.size and -120 <= exponent <= 80:
        assert np.array_equal(dfp16.down_convert(small, exponent).mantissa,
                              dfp16.quantize((small.astype(np.float64) * 2.0**exponent).astype(np.float32)).mantissa)


def test_down_conversion_of_a_product_shifts_left_or_right_with_the_carry():
    assert dfp16.down_convert(np.array([3, -1]), 5).mantissa.tolist() == [24576, -8192]  # left shift by 13, exact
    d = dfp16.down_convert(np.array([2**20 - 1, 2**19 + 2**4, 3 * 2**4]), 0)  # shift 5: carry to 2^15 -> shift 6
    assert d.exponent == 6 and d.mantissa.tolist() == [16384, 8192, 1]  # 48/64 = 0.75 -> 1
    a, b = dfp16.quantize(np.ones((3, 100), np.float32) / 3), dfp16.quantize(np.ones((100, 2), np.float32))
    total, exponent = dfp16.matmul_exact(a, b)
    c = dfp16.down_convert(total, exponent)
    assert np.allclose(c.to_float32(), 100 / 3, rtol=2.0**-14)
    with pytest.raises(TypeError, match="down_convert: expected an integer array, got float64"):
        dfp16.down_convert(np.ones(2), 0)


# ---------------------------------------------------------------------------------------------------------------
# DFP16LinearFunction: forward and backward against their formulas
# ---------------------------------------------------------------------------------------------------------------
def linear_case(seed: int, leading=(6,), fan_in=7, fan_out=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*leading, fan_in)).astype(np.float32)
    w = (rng.standard_normal((fan_out, fan_in)) * 0.3).astype(np.float32)
    b = rng.standard_normal(fan_out).astype(np.float32)
    g = rng.standard_normal((*leading, fan_out)).astype(np.float32) * 1e-3
    return x, w, b, g


@pytest.mark.parametrize("leading", [(6,), (2, 3), (1,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_and_backward_are_the_formulas_on_the_quantized_operands(leading, with_bias):
    x, w, b, g = linear_case(0, leading)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    bt = Tensor(b, requires_grad=True) if with_bias else None
    y = amp_dfp16.dfp16_linear(xt, wt, bt)
    y.backward(Tensor(g))
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    xq, wq, gq = dfp16.quantize(x2), dfp16.quantize(w), dfp16.quantize(g2)
    # bit for bit: the three products of the kernel on the operands quantized once each
    expected_y = dfp16.matmul(xq, wq.T) + (b if with_bias else 0)
    assert np.array_equal(bits(y.numpy()), bits(expected_y.reshape(*leading, -1).astype(np.float32)))
    assert np.array_equal(bits(xt.grad.numpy()), bits(dfp16.matmul(gq, wq).reshape(x.shape)))
    assert np.array_equal(bits(wt.grad.numpy()), bits(dfp16.matmul(gq.T, xq)))
    if with_bias:
        np.testing.assert_allclose(bt.grad.numpy(), g2.astype(np.float64).sum(axis=0), rtol=1e-6, atol=1e-9)
    # the formulas of LinearFunction on the dequantized operands, in float64: within the float32 combination's bound
    xh, wh, gh = xq.to_float64(), wq.to_float64(), gq.to_float64()
    y64 = y.numpy().reshape(-1, w.shape[0]).astype(np.float64)
    products = (  # (computed, exact, Σ|terms|, K, rounding after the product: the bias add)
        (y64 - (b if with_bias else 0), xh @ wh.T, np.abs(xh) @ np.abs(wh.T), w.shape[1],
         np.spacing(np.abs(y64).astype(np.float32)) / 2 if with_bias else 0.0),
        (xt.grad.numpy().reshape(x2.shape), gh @ wh, np.abs(gh) @ np.abs(wh), w.shape[0], 0.0),
        (wt.grad.numpy(), gh.T @ xh, np.abs(gh.T) @ np.abs(xh), x2.shape[0], 0.0))
    for computed, exact, magnitude, k, after in products:
        bound = (math.ceil(k / 2) + 1) * U * magnitude + np.spacing(np.abs(computed).astype(np.float32)) / 2 + after
        assert np.all(np.abs(computed - exact) <= bound + 1e-12 * magnitude)  # (float64's own rounding of exact)


def test_the_backward_uses_the_saved_int16_operands():
    x, w, b, g = linear_case(1)
    xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    y = amp_dfp16.dfp16_linear(xt, wt, Tensor(b))
    saved = y._ctx.saved_tensors
    assert [type(s) for s in saved] == [DFP16, DFP16] and all(s.mantissa.dtype == np.int16 for s in saved)
    y.backward(Tensor(g))
    np.testing.assert_array_equal(xt.grad.numpy(), dfp16.matmul(dfp16.quantize(g), dfp16.quantize(w)))


def test_only_the_gradients_asked_for_are_computed():
    x, w, b, g = linear_case(2)
    xt, wt, bt = Tensor(x), Tensor(w, requires_grad=True), Tensor(b)
    amp_dfp16.dfp16_linear(xt, wt, bt).backward(Tensor(g))
    assert xt.grad is None and bt.grad is None and wt.grad is not None


def test_close_to_the_float32_linear_layer():
    """DFP16 keeps 15 bits per operand: the layer's output and gradients stay within ~1e-4 (relative to their
    scale) of float32's."""
    x, w, b, g = linear_case(3, (64,), 100, 30)
    outs = []
    for fn in (F.linear, amp_dfp16.dfp16_linear):
        xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        y = fn(xt, wt, bt)
        y.backward(Tensor(g))
        outs.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()])
    for ref, got in zip(*outs):
        assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_on_the_strict_device_the_layer_gives_the_cpu_bits():
    x, w, b, g = linear_case(4)
    results = []
    for device in ("cpu", "strict"):
        xt, wt = Tensor(x, requires_grad=True, device=device), Tensor(w, requires_grad=True, device=device)
        y = amp_dfp16.dfp16_linear(xt, wt, Tensor(b, device=device))
        y.backward(Tensor(g, device=device))
        assert y.device == device and wt.grad.device == device
        results.append([y.numpy(), xt.grad.numpy(), wt.grad.numpy()])
    for cpu, strict in zip(*results):
        assert np.array_equal(bits(cpu), bits(strict))


def test_errors_name_the_op():
    x, w, b, g = linear_case(5)
    with pytest.raises(InputError, match="dfp16_linear: input is float64; DFP16 quantizes float32 tensors"):
        amp_dfp16.dfp16_linear(Tensor(x.astype(np.float64)), Tensor(w))
    with pytest.raises(InputError, match=r"dfp16_linear: input of shape \(6, 7\) does not match weight of shape "
                                         r"\(7, 5\)"):
        amp_dfp16.dfp16_linear(Tensor(x), Tensor(w.T.copy()))
    with pytest.raises(InputError, match=r"dfp16_linear: bias has shape \(4,\), expected \(5,\)"):
        amp_dfp16.dfp16_linear(Tensor(x), Tensor(w), Tensor(b[:4]))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="DFP16LinearFunction: .*dfp16 quantize: DFP16LinearFunction: the input holds "
                                         "1 NaN"):
        amp_dfp16.dfp16_linear(Tensor(x), Tensor(w))
    x[0, 0] = 1.0
    y = amp_dfp16.dfp16_linear(Tensor(x), Tensor(w, requires_grad=True))
    g[1, 2] = np.inf
    with pytest.raises(ValueError, match="DFP16LinearFunction.backward: the gradient of the output holds 1 NaN"):
        y.backward(Tensor(g))


def test_the_function_is_listed_as_unregistered_with_its_reason():
    name = "tinygrad_edu.amp.dfp16.DFP16LinearFunction"
    assert name in registry.UNREGISTERED and "piecewise constant" in registry.UNREGISTERED[name]
    assert name not in registry.uncovered()


# ---------------------------------------------------------------------------------------------------------------
# the converter
# ---------------------------------------------------------------------------------------------------------------
def small_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Sequential(nn.Linear(16, 16, bias=False), nn.ReLU()),
                         nn.DropConnectLinear(16, 8, p=0.5), nn.Linear(8, 3))


def test_convert_swaps_every_linear_keeping_its_parameters_and_revert_undoes_it():
    model = small_net()
    parameters, state = list(model.parameters()), model.state_dict()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    assert amp_dfp16.convert(model) is model
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("DFP16Linear") == 3 and kinds.count("DropConnectLinear") == 1 and "Linear" not in kinds
    assert all(p is q for p, q in zip(model.parameters(), parameters))  # the optimizer still steps them
    assert all(np.array_equal(state[key], value) for key, value in model.state_dict().items())
    x = Tensor(np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32))
    model.eval()
    y = model(x)
    assert isinstance(model[0], nn.Linear) and not model[0].training
    F.cross_entropy(model.train()(x), Tensor(np.arange(10) % 3)).backward()
    assert all(p.grad is not None for p in parameters)
    optimizer.step()
    assert amp_dfp16.revert(model) is model
    assert [type(m).__name__ for m in model.modules()].count("Linear") == 3
    assert all(p is q for p, q in zip(model.parameters(), parameters))
    assert y.shape == (10, 3)
    single = amp_dfp16.convert(nn.Linear(3, 2))
    assert type(single) is amp_dfp16.DFP16Linear and type(amp_dfp16.revert(single)) is nn.Linear


def test_convert_refuses_float16_parameters_before_changing_anything():
    model = small_net()
    tg.amp.MasterWeights(model)
    with pytest.raises(TypeError, match="dfp16.convert: parameter 0.weight is float16"):
        amp_dfp16.convert(model)
    assert "DFP16Linear" not in [type(m).__name__ for m in model.modules()]
    with pytest.raises(TypeError, match="dfp16.convert: model must be a Module, got list"):
        amp_dfp16.convert([])


def test_a_converted_model_trains_as_well_as_float32():
    """The disc problem with a small MLP, same seed, same loop: DFP16 reaches float32's test accuracy within a point."""
    from tinygrad_edu import train as train_module

    accuracies = {}
    original = train_module.build_model
    for precision in ("fp32", "dfp16"):
        def build(*args, _convert=precision == "dfp16", **kwargs):
            model = original(*args, **kwargs)
            return amp_dfp16.convert(model) if _convert else model

        train_module.build_model = build
        try:
            history = train_module.train(dataset="disc", depth=2, width=32, epochs=8, seed=0)
        finally:
            train_module.build_model = original
        accuracies[precision] = history["test_accuracy"][-1]
        kinds = {type(m).__name__ for m in history["model"].modules()}
        assert ("DFP16Linear" in kinds) == (precision == "dfp16")
    assert accuracies["fp32"] > 0.9 and abs(accuracies["dfp16"] - accuracies["fp32"]) <= 0.01
