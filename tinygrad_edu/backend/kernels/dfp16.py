"""DFP16: tensors of 16-bit integers sharing one exponent, and their matrix product with INT32 accumulation.

From Das et al. 2018, "Mixed Precision Training of Convolutional Neural Networks using Integer Operations" (ICLR):
its Dynamic Fixed Point tensors (INT16 values, one shared exponent per tensor) and its INT16 kernels, whose INT32
accumulator must not overflow. The kernels are ``kernels/dfp16.c``, compiled on first use with this machine's C
compiler (``compile_cpu.load``); without a compiler the NumPy code below computes the same integers and the same
float32 bits, more slowly.

The format (the paper's Dynamic Fixed Point, P = 16 bits)
    A DFP16 tensor is an int16 array of mantissas m_i and one integer exponent E shared by the whole tensor; it stands
    for x_i = m_i · 2^E. The mantissas lie in [-(2^15 - 1), 2^15 - 1] = [-32767, 32767]: the range is symmetric
    (-32768 is never produced, and ``matmul`` refuses it) so that two products always fit an INT32 accumulator.

float32 -> DFP16 (``quantize``)
    The shared exponent comes from the largest magnitude, as in the paper: with E_fmax = ⌊log2 max_i |x_i|⌋ (the
    float32 exponent of the largest magnitude, subnormals included),

        E = E_fmax - (P - 2) = E_fmax - 14,        m_i = round_half_even(x_i · 2^-E)

    so the largest magnitude gets a mantissa in [2^14, 2^15): 15 significant bits, the sign in the 16th. Our choices
    where the paper leaves one open:

    * **rounding**: to nearest, ties to even, in every conversion (deterministic, so results are reproducible bit
      for bit; stochastic rounding is the other common choice in low-precision training, not implemented here);

    * **carry**: when the largest magnitude rounds up to 2^15 (its scaled value is at least 32767.5), E is raised by
      one, so every mantissa fits and no value is clipped: the error stays at most half a step for every element;
    * **zeros**: an all-zero (or empty) tensor gets E = 0; negative zero becomes mantissa 0 (the sign of a zero is
      lost, as in any integer format);
    * **NaN and inf are refused** (``ValueError`` naming what was converted and how many): a shared exponent has no
      room for them, and mapping them to a finite value would hide a diverged training run;
    * **range**: values smaller than half a step, |x| < 2^(E-1), become 0: a DFP16 tensor holds about 2^15 between
      its largest and smallest nonzero magnitudes. Subnormal float32 inputs are quantized exactly like the others.

    Contract: |m_i · 2^E - x_i| <= 2^(E-1) for every element (half a step), and max |m_i| is in [2^14, 2^15 - 1].

DFP16 -> float32 (``dequantize``)
    m_i · 2^E, rounded once to float32. It is exact wherever the value is a normal float32; values near the top of
    float32's range can round to inf (a tensor whose largest magnitude is within half a step of 2^128 carries its
    exponent up to E = 114 and dequantizes that element to inf), and subnormal results round to nearest even.

The product (``matmul``): INT16 products, INT32 chunks
    C = A @ B for A (M, K) and B (K, N) in DFP16: each product m^A_ik m^B_kj is an integer of at most
    (2^15 - 1)^2 = 2^30 - 2^16 + 1 < 2^30 in magnitude, and its exponent is E_A + E_B (the paper: the shared exponent
    of a product is the sum of its operands'). An INT32 accumulator (at most 2^31 - 1) holds **two** such products
    (2^31 - 2^17 + 2) and not three (3·2^30 - 3·2^16 + 3 > 2^31), so the reduction over k is split into chunks of
    ``CHUNK`` = 2 products, the pair an integer FMA instruction adds into INT32 (vpmaddwd; VNNI's vpdpwssd): the
    chunk sums S_c = m_i,2c m_2c,j + m_i,2c+1 m_2c+1,j (c = 0, 1, ...; a missing last k counts as 0) never overflow,
    whatever the values. As in the paper's overflow management, the INT32 partial sums are converted to float32 and
    accumulated there (the order is our choice); or, as an exact alternative, in a wider integer:

        combine="float32" (default):  acc = 0;  acc <- fl32(acc + fl32(S_c))  for c = 0, 1, ..., in order of k
                                       C_ij = fl32(acc · 2^(E_A + E_B))
        combine="int64":               T_ij = Σ_c S_c exactly in int64 (no rounding: |T| < K·2^30)
                                       C_ij = fl32(T_ij · 2^(E_A + E_B))   (one rounding, for K < 2^23)

    The order of the float32 additions is fixed (k increasing, one element at a time), so the compiled kernel and
    the NumPy fallback give the same bits. ``matmul_exact`` returns (T, E_A + E_B) itself: the product as a wide
    DFP tensor (the paper's DFP32 output, here in int64), which ``down_convert`` turns into DFP16.

Accuracy contract (tested in ``tests/test_dfp16.py``). Write â = m^A 2^E_A and b̂ = m^B 2^E_B for the DFP16 values
and δ_A = 2^(E_A - 1), δ_B = 2^(E_B - 1) for their half steps (so |a - â| <= δ_A for the float32 ``a`` that was
quantized, and likewise for b). Let u = 2^-24 and n_c = ⌈K/2⌉ the number of chunks. Then for every element:

    |C_ij - Σ_k â_ik b̂_kj| <= (n_c + 1) · u · Σ_k |â_ik b̂_kj| + ulp32(C_ij) / 2        (combine="float32")
    |C_ij - Σ_k â_ik b̂_kj| <= ulp32(C_ij) / 2                                            (combine="int64")

(fl32 of each chunk sum and n_c - 1 float32 additions, then one rounding of the scaled total, which in float32's
subnormal range can add another ulp/2; the int64 sum is exact and converted to float32 with one rounding: T and
T · 2^E are exact in float64 while |T| < 2^53, i.e. for K < 2^23), and against the float64 product of the float32
inputs the quantization of each input adds, per element,

    |Σ_k â_ik b̂_kj - Σ_k a_ik b_kj| <= δ_A Σ_k |b_kj| + δ_B Σ_k |a_ik| + K δ_A δ_B.

Down-conversion (``down_convert``): the paper's DFP32 -> DFP16
    A wide tensor T · 2^E (int64) becomes DFP16 by the same rule as ``quantize`` applied to its exact values, in
    integers: with b the bit length of max |T|, s = b - 15, the mantissas are round_half_even(T / 2^s) (a right shift
    with rounding; a left shift, exact, when s < 0), the exponent E + s, and the same carry when the largest rounds up
    to 2^15. So ``down_convert(T, E)`` equals ``quantize`` of the exact values T · 2^E wherever float32 holds them.

Speed. The compiled product packs B into panels of 16 columns with the two k of a chunk side by side, so that one
vpmaddwd forms 16 chunk sums (AVX-512) or 8 (AVX2), whichever the CPU has (checked at run time; a portable loop
elsewhere, the same bits); large products are split by rows over the CPU's cores in threads (the kernel releases the
GIL). Measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Literal

import numpy as np

#: bits of a mantissa, sign included: the paper's P for DFP16
BITS = 16
#: the largest mantissa magnitude: 2^15 - 1 (the range is symmetric, -32768 is never used)
MANTISSA_MAX = 2 ** (BITS - 1) - 1
#: the INT32 accumulator's limit
INT32_MAX = 2**31 - 1
#: products per INT32 chunk: the most that fit whatever the mantissas, INT32_MAX // MANTISSA_MAX^2 = 2
CHUNK = INT32_MAX // MANTISSA_MAX**2
#: the shared exponents ``DFP16`` accepts (float32 values need [-163, 114]; a product adds two exponents; the
#: kernels take [-1000, 1000])
EXPONENT_RANGE = (-500, 500)
#: Split large compiled products by rows over the CPU's cores in threads? (Compute-bound work; on a machine whose
#: cores are busy with other work one thread can be faster: see benchmarks/README.md.)
PARALLEL = True
#: below this many multiply-adds a product runs in the calling thread (handing it to threads would cost more)
PARALLEL_MIN_MACS = 1 << 22
#: K-columns per block of the NumPy fallback's exact product: sums of 2^22 products below 2^30 stay below 2^52,
#: integers that float64 holds exactly, so float64 BLAS computes them without rounding
EXACT_BLOCK_K = 1 << 22

_NOT_LOADED = object()
#: kernels/dfp16.c, compiled on first use where a C compiler works (``compile_cpu.load``); None where it does not:
#: the NumPy code of this module then computes the same results.
compiled = _NOT_LOADED


def kernel() -> ModuleType | None:
    """The compiled module ``_dfp16``, compiling it on the first call; None where no C compiler works."""
    global compiled
    if compiled is _NOT_LOADED:
        from tinygrad_edu.backend.kernels import compile_cpu

        compiled = compile_cpu.load("dfp16")
    return compiled


class DFP16:
    """A DFP16 tensor: int16 ``mantissa`` (any shape, values in [-32767, 32767]) and one int ``exponent``; it stands
    for ``mantissa · 2^exponent``.

    ``DFP16(mantissa, exponent)`` checks both (``TypeError``/``ValueError``); ``quantize`` makes them from float32.
    ``.T`` is the transposed view (same exponent), ``.to_float32()`` dequantizes, ``.to_float64()`` gives the exact
    values (float64 holds every m · 2^E of the accepted exponents).
    """

    __slots__ = ("mantissa", "exponent")

    def __init__(self, mantissa: np.ndarray, exponent: int):
        if not isinstance(mantissa, np.ndarray) or mantissa.dtype != np.int16:
            raise TypeError(f"DFP16: mantissa must be an int16 NumPy array, got {type(mantissa).__name__}"
                            f"{' of ' + str(mantissa.dtype) if isinstance(mantissa, np.ndarray) else ''}")
        if isinstance(exponent, (bool, np.bool_)) or not isinstance(exponent, (int, np.integer)):
            raise TypeError(f"DFP16: exponent must be an int, got {exponent!r}")
        if not EXPONENT_RANGE[0] <= exponent <= EXPONENT_RANGE[1]:
            raise ValueError(f"DFP16: exponent {exponent} is outside {list(EXPONENT_RANGE)}")
        if mantissa.size and int(mantissa.min()) < -MANTISSA_MAX:
            raise ValueError(f"DFP16: a mantissa is -32768; mantissas lie in [-{MANTISSA_MAX}, {MANTISSA_MAX}] (two "
                             "products of 2^15 would overflow the INT32 accumulator)")
        self.mantissa, self.exponent = mantissa, int(exponent)

    @classmethod
    def _trusted(cls, mantissa: np.ndarray, exponent: int) -> DFP16:
        """Without the checks: for the results of ``quantize`` and ``down_convert``, which hold by construction."""
        self = object.__new__(cls)
        self.mantissa, self.exponent = mantissa, int(exponent)
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        return self.mantissa.shape

    @property
    def ndim(self) -> int:
        return self.mantissa.ndim

    @property
    def T(self) -> DFP16:  # noqa: N802 - NumPy's name
        """The transposed tensor (a view of the mantissas, the same exponent)."""
        return DFP16._trusted(self.mantissa.T, self.exponent)

    def to_float32(self) -> np.ndarray:
        """``dequantize(self)``: m · 2^E rounded to float32."""
        return dequantize(self)

    def to_float64(self) -> np.ndarray:
        """The exact values m · 2^E (float64 holds them all: 15-bit integers times 2^E, |E| <= 500)."""
        return self.mantissa.astype(np.float64) * math.ldexp(1.0, self.exponent)

    def __repr__(self) -> str:
        return f"DFP16(shape={self.shape}, exponent={self.exponent})"


# ----------------------------------------------------------------------------------------------------------------
# conversions
# ----------------------------------------------------------------------------------------------------------------
def shared_exponent(max_abs: float) -> int:
    """The shared exponent of a tensor whose largest magnitude is ``max_abs`` (a finite float32 value).

    E = ⌊log2 max_abs⌋ - 14, plus one when max_abs · 2^-E rounds (half to even) to 2^15; 0 for max_abs = 0.
    """
    max_abs = float(max_abs)
    if max_abs == 0.0:
        return 0
    exponent = math.frexp(max_abs)[1] - 1 - (BITS - 2)  # frexp: max_abs = f · 2^e with f in [0.5, 1)
    if round(math.ldexp(max_abs, -exponent)) > MANTISSA_MAX:  # round(): half to even; the product is exact
        exponent += 1
    return exponent


def _nonfinite_error(x: np.ndarray, what: str) -> ValueError:
    count = int(np.count_nonzero(~np.isfinite(x)))
    return ValueError(f"dfp16 quantize: {what} holds {count} NaN or infinite value(s) of {x.size}; a DFP16 tensor "
                      "has one exponent for all its values and no encoding for them")


def quantize(x: np.ndarray, what: str = "the array") -> DFP16:
    """float32 array (any shape, any strides) -> DFP16: E from the largest magnitude, mantissas rounded half to even
    (module docstring). ``what`` names the array in the errors: ``TypeError`` for another dtype, ``ValueError`` for
    NaN or inf."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(f"dfp16 quantize: {what} must be a float32 NumPy array, got "
                        f"{x.dtype if isinstance(x, np.ndarray) else type(x).__name__}")
    module = kernel()
    if module is not None:
        bits = module.max_abs_bits(x)
        if bits >= 0x7F800000:
            raise _nonfinite_error(x, what)
        max_abs = float(np.uint32(bits).view(np.float32))
    else:
        max_abs = float(np.max(np.abs(x))) if x.size else 0.0
        if not math.isfinite(max_abs):
            raise _nonfinite_error(x, what)
    exponent = shared_exponent(max_abs)
    mantissa = np.empty(x.shape, np.int16)
    if module is not None:
        saturated = module.quantize(x, mantissa, exponent)
        assert saturated == 0, "the shared exponent fits every mantissa by construction"
    else:
        np.rint(x.astype(np.float64) * math.ldexp(1.0, -exponent), out=mantissa, casting="unsafe")
    return DFP16._trusted(mantissa, exponent)


def dequantize(d: DFP16) -> np.ndarray:
    """DFP16 -> float32: m · 2^E, rounded once (exact wherever the value is a normal float32)."""
    if not isinstance(d, DFP16):
        raise TypeError(f"dfp16 dequantize: expected a DFP16 tensor, got {type(d).__name__}")
    out = np.empty(d.shape, np.float32)
    module = kernel()
    if module is not None:
        module.dequantize(d.mantissa, out, d.exponent)
    else:
        with np.errstate(over="ignore"):
            np.multiply(d.mantissa, math.ldexp(1.0, d.exponent), out=out, dtype=np.float64, casting="unsafe")
    return out


def down_convert(total: np.ndarray, exponent: int) -> DFP16:
    """The wide tensor ``total · 2^exponent`` (integers, e.g. ``matmul_exact``'s int64 sums) -> DFP16, by the rule of
    ``quantize`` applied to its exact values, in integer arithmetic (module docstring)."""
    total = np.asarray(total)
    if total.dtype.kind not in "iu":
        raise TypeError(f"dfp16 down_convert: expected an integer array, got {total.dtype}")
    total = total.astype(np.int64)
    if total.size and int(total.min()) == np.iinfo(np.int64).min:
        raise ValueError("dfp16 down_convert: -2^63 has no int64 magnitude")
    magnitude = np.abs(total)
    top = int(magnitude.max()) if total.size else 0
    if top == 0:
        return DFP16(np.zeros(total.shape, np.int16), 0)
    shift = top.bit_length() - (BITS - 1)  # the largest magnitude gets bit length 15: [2^14, 2^15)
    rounded = _shift_half_even(magnitude, shift)
    if int(rounded.max()) > MANTISSA_MAX:  # the carry: the largest rounded up to 2^15
        shift += 1
        rounded = _shift_half_even(magnitude, shift)
    mantissa = np.where(total < 0, -rounded, rounded).astype(np.int16)
    return DFP16(mantissa, exponent + shift)


def _shift_half_even(magnitude: np.ndarray, shift: int) -> np.ndarray:
    """round_half_even(magnitude / 2^shift) for non-negative int64 values (exact left shift when shift <= 0)."""
    if shift <= 0:
        return magnitude << -shift
    quotient, rest = magnitude >> shift, magnitude & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return quotient + ((rest > half) | ((rest == half) & (quotient & 1 == 1)))


# ----------------------------------------------------------------------------------------------------------------
# the product
# ----------------------------------------------------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="tinygrad_edu-dfp16")
    return _pool


def _check_operands(a: DFP16, b: DFP16) -> None:
    if not isinstance(a, DFP16) or not isinstance(b, DFP16):
        raise TypeError(f"dfp16 matmul: expected two DFP16 tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"dfp16 matmul: shapes {a.shape} and {b.shape} do not align (expected (M, K) and (K, N))")


def _compiled_product(module, a: np.ndarray, b: np.ndarray, out: np.ndarray, exponent: int, exact: bool) -> None:
    """``module.matmul`` over row blocks, on all cores when the product is large."""
    m, k = a.shape
    n = b.shape[1]
    workers = min(os.cpu_count() or 1, m // 64)
    in_worker = threading.current_thread().name.startswith("tinygrad_edu-dfp16")
    if not PARALLEL or workers < 2 or m * n * k < PARALLEL_MIN_MACS or in_worker:
        module.matmul(a, b, out, exponent, exact)
        return
    bounds = [8 * round(m * i / workers / 8) for i in range(workers)] + [m]  # multiples of 8: whole 8-row tiles
    futures = [_threads().submit(module.matmul, a[lo:hi], b, out[lo:hi], exponent, exact)
               for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for future in futures:
        future.result()


def matmul_exact(a: DFP16, b: DFP16) -> tuple[np.ndarray, int]:
    """``(T, E)``: T the exact int64 sums Σ_k m^A_ik m^B_kj, formed in INT32 chunks of two products and added in
    int64, and E = E_A + E_B; the product is T · 2^E (the paper's DFP32 result, in a wider integer)."""
    _check_operands(a, b)
    exponent = a.exponent + b.exponent
    (m, k), n = a.shape, b.shape[1]
    module = kernel()
    if module is not None:
        total = np.empty((m, n), np.int64)  # the kernel writes every element
        _compiled_product(module, a.mantissa, b.mantissa, total, exponent, True)
        return total, exponent
    total = np.zeros((m, n), np.int64)
    for start in range(0, k, EXACT_BLOCK_K):  # float64 BLAS: every partial sum is an integer below 2^53, so exact
        stop = min(start + EXACT_BLOCK_K, k)
        block = a.mantissa[:, start:stop].astype(np.float64) @ b.mantissa[start:stop].astype(np.float64)
        total += block.astype(np.int64)
    return total, exponent


def _scaled_float32(values: np.ndarray, exponent: int) -> np.ndarray:
    """fl32(values · 2^exponent) for float32 ``values`` (the scaling is exact in float64; one rounding)."""
    with np.errstate(over="ignore"):
        return (values.astype(np.float64) * math.ldexp(1.0, exponent)).astype(np.float32)


def _float32_combination(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The NumPy fallback of combine="float32": each INT32 chunk sum (two products, computed in int32: no overflow)
    converted to float32 and added to a float32 accumulator, chunk after chunk."""
    m, k = a.shape
    n = b.shape[1]
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    acc = np.zeros((m, n), np.float32)
    chunk, second = np.empty((m, n), np.int32), np.empty((m, n), np.int32)
    for start in range(0, k, CHUNK):
        np.multiply(a32[:, start, None], b32[None, start, :], out=chunk)
        if start + 1 < k:
            np.multiply(a32[:, start + 1, None], b32[None, start + 1, :], out=second)
            chunk += second
        acc += chunk.astype(np.float32)  # float32 + float32 (a bare int32 operand would promote to float64)
    return acc


def matmul(a: DFP16, b: DFP16, *, combine: Literal["float32", "int64"] = "float32") -> np.ndarray:
    """``a @ b`` for DFP16 matrices (M, K) and (K, N), as a float32 array (M, N), for the next FP32 operation.

    INT16 products, INT32 chunk sums of ``CHUNK`` = 2 products (they cannot overflow), combined in float32 in order of
    k (``combine="float32"``, the paper's) or exactly in int64 (``combine="int64"``), then scaled by 2^(E_A + E_B) and
    rounded once to float32. Accuracy contract: module docstring. ``ValueError`` names the shapes that do not align.
    """
    _check_operands(a, b)
    if combine not in ("float32", "int64"):
        raise ValueError(f"dfp16 matmul: combine must be 'float32' or 'int64', got {combine!r}")
    if combine == "int64":
        total, exponent = matmul_exact(a, b)
        out = np.empty(total.shape, np.float32)
        with np.errstate(over="ignore"):  # T and T·2^E exact in float64 (|T| < 2^53), one rounding to float32
            np.multiply(total, math.ldexp(1.0, exponent), out=out, dtype=np.float64, casting="unsafe")
        return out
    exponent = a.exponent + b.exponent
    module = kernel()
    if module is None:
        return _scaled_float32(_float32_combination(a.mantissa, b.mantissa), exponent)
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    _compiled_product(module, a.mantissa, b.mantissa, out, exponent, False)
    return out


__all__ = ["BITS", "CHUNK", "DFP16", "EXPONENT_RANGE", "INT32_MAX", "MANTISSA_MAX", "dequantize", "down_convert",
           "kernel", "matmul", "matmul_exact", "quantize", "shared_exponent"]
