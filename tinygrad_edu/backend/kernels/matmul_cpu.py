"""CPU matmul with a wider accumulator than its operands: float16 or bfloat16 storage, float32 accumulation.

NumPy has no BLAS path for float16: its float16 matmul is a plain loop that also rounds every partial sum to float16.
This kernel gets the float32 BLAS to do the work without ever holding a float32 copy of a whole operand:

    for each block of the shared dimension K (up to 1024 columns of A, the same rows of B):
        upcast A[:, block] and B[block, :] to float32, into two buffers allocated once
        C32 += A32_block @ B32_block                       (float32 BLAS, float32 accumulator)
    C = round_to_float16(C32)                               (one rounding, at the very end)

bfloat16 operands (``ml_dtypes.bfloat16``) take the same blocks, buffers and BLAS calls; only the two conversions
differ (below), and the one rounding is to bfloat16.

Accuracy contract (tested in ``tests/test_matmul_kernel.py``). Every float16 value is exactly representable in
float32, so the upcast loses nothing; products of two float16 values are exact in float32 too (11 + 11 significant
bits < 24). The only roundings are those of the float32 accumulation and the final one to float16, so every element
of C is within one float16 ulp of the float64 product of the same float16 inputs, plus the float32 accumulation
bound K·2^-24·Σ_k |a_ik b_kj|. The same holds for bfloat16 (tested in ``tests/test_bfloat16.py``): a bfloat16 is the
top 16 bits of a float32, so the upcast is exact; products of two bfloat16 values are exact in float32 (8 + 8
significant bits < 24); the final rounding is to nearest, ties to even. So every element is within one bfloat16 ulp
of the float64 product of the same bfloat16 inputs, plus the same float32 accumulation bound.

Blocks. The block along K is ``BLOCK_K`` = 1024 columns, fewer for very tall or wide operands so that one block of A
and one of B, in float32, stay within ``BLOCK_BYTES``: the float32 working set is bounded whatever the operands'
size (an operand with K <= 1024 is upcast in one block). Each extra block costs one pass over C (adding its partial
product), so the blocks are not made smaller than they must be.

Conversions. Next to the product, two costs are paid once per element: the upcast of A and B, and the final
rounding of C (NumPy's casts convert one element at a time). Both run in ``kernels/f16_convert.c``, compiled on
first use with this machine's C compiler (``compile_cpu.py``): the CPU's F16C instructions convert 8 values at a
time (a portable conversion on CPUs without them), bit-exact with NumPy. Without a compiler, the upcast moves the
bits with whole-array integer operations that NumPy vectorizes (``widen_float16``) and the rounding is NumPy's cast;
these NumPy conversions are spread over the CPU's cores in threads (NumPy releases the GIL), while the compiled ones
run in the calling thread (``PARALLEL``). bfloat16 needs no compiled code: its upcast is a 16-bit shift of the bits
(``widen_bfloat16``, whole-array integer operations), its rounding ml_dtypes' cast (round to nearest even, NaN kept).
What each choice gained, measured: ``benchmarks/README.md``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np

#: K-columns per block: each block of A is (M, 1024) and of B (1024, N), upcast to float32. Not fewer: every extra
#: block is one more pass over C (see benchmarks/README.md).
BLOCK_K = 1024
#: ... fewer when M + N is so large that the two float32 blocks would take more than this many bytes,
BLOCK_BYTES = 32 * 2**20
#: ... but never fewer than this (smaller blocks would spend more time adding partial products than multiplying).
MIN_BLOCK_K = 128
#: Work arrays up to this size are kept by each thread for its next call (``_scratch``), one per role.
KEEP_BYTES = 256 * 2**20
#: Below this many elements an array is converted in the calling thread (a hand-off to threads would cost more).
PARALLEL_MIN_ELEMENTS = 1 << 17
#: Rows of a block converted in one go: keeps each conversion's data in the core's L2 cache.
CHUNK_ELEMENTS = 1 << 18

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_EXPONENT_SHIFT = np.float32(2.0**112)  # 2^(127 - 15): moves a float16 exponent bias to float32's
_CLEAR_BITS_28_TO_30 = np.int32(-0x70000001)  # 0x8FFFFFFF as a signed 32-bit integer
_THREAD_NAME = "tinygrad_edu-kernel"

_NOT_LOADED = object()
#: kernels/f16_convert.c (8 values per F16C instruction), compiled on first use where a C compiler works
#: (``compile_cpu.load``); None where it does not: the NumPy conversions below.
compiled = _NOT_LOADED
#: Spread conversions and additions over the cores in threads? Only for the NumPy conversions. The compiled ones run
#: at memory speed in one thread, and extra threads then lose more than they gain: OpenBLAS's own threads keep
#: spinning for a while after each product and compete with them (see benchmarks/README.md). Set with ``compiled``
#: by ``converter()``.
PARALLEL = True


def converter():
    """The compiled conversion module, compiling it on the first call; None where no C compiler works."""
    global compiled, PARALLEL
    if compiled is _NOT_LOADED:
        from tinygrad_edu.backend.kernels import compile_cpu

        compiled = compile_cpu.load("f16_convert")
        PARALLEL = compiled is None
    return compiled


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_kept = threading.local()  # this thread's reusable work arrays (``_scratch``)


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix=_THREAD_NAME)
    return _pool


def _in_parallel(work, src: np.ndarray, out: np.ndarray) -> None:
    """Call ``work(src_part, out_part)`` on matching pieces of two same-shape arrays, one piece per core.

    Contiguous arrays are cut into flat ranges; otherwise along the first axis. Small arrays stay in this thread.
    """
    if src.flags.c_contiguous and out.flags.c_contiguous:
        src, out = src.reshape(-1), out.reshape(-1)
    rows = out.shape[0] if out.ndim else 1
    workers = min(os.cpu_count() or 1, rows)
    in_worker = threading.current_thread().name.startswith(_THREAD_NAME)  # a worker must not wait on its own pool
    if not PARALLEL or out.ndim == 0 or workers < 2 or out.size < PARALLEL_MIN_ELEMENTS or in_worker:
        work(src, out)
        return
    bounds = np.linspace(0, rows, workers + 1).astype(int)
    futures = [_threads().submit(work, src[lo:hi], out[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    for future in futures:
        future.result()


def _widen_piece(src: np.ndarray, out: np.ndarray) -> None:
    """The bit moves of ``widen_float16`` on one piece, a cache-sized chunk of rows at a time."""
    per_chunk = max(1, CHUNK_ELEMENTS * out.shape[0] // max(out.size, 1))
    for lo in range(0, out.shape[0], per_chunk):
        s, o = src[lo:lo + per_chunk], out[lo:lo + per_chunk]
        bits = o.view(np.int32)
        np.copyto(bits, s.view(np.int16))  # sign-extend 16 -> 32 bits
        bits <<= 13
        bits &= _CLEAR_BITS_28_TO_30
        o *= _EXPONENT_SHIFT
        if o.size and not (o.max() < 65536.0 and o.min() > -65536.0):  # an inf or NaN in the chunk
            np.copyto(o, s)


def widen_float16(src: np.ndarray, out: np.ndarray) -> None:
    """Write the float16 array ``src`` into the float32 array ``out`` (same shape), exactly, by moving bits.

    A float16 is s·eeeee·mmmmmmmmmm (bias 15); a float32 is s·eeeeeeee·m×23 (bias 127). Sign-extending the 16 bits
    to 32 and shifting left by 13 puts the mantissa and the exponent in float32's places (with copies of the sign in
    bits 28-30, cleared by a mask); the float32 read from those bits is the float16 value times 2^-112, so one
    multiplication by 2^112 finishes the job, for normal and subnormal numbers alike. Infinities and NaNs (float16
    exponent 31) come out as finite values >= 2^16; the rare chunk holding one is redone by NumPy's cast.
    """
    if out.ndim == 0:
        out[...] = src
    else:
        _in_parallel(_widen_piece if converter() is None else compiled.widen, src, out)


def _widen_bfloat16_piece(src: np.ndarray, out: np.ndarray) -> None:
    bits = out.view(np.uint32)
    np.copyto(bits, src.view(np.uint16))  # zero-extend 16 -> 32 bits
    bits <<= 16


def widen_bfloat16(src: np.ndarray, out: np.ndarray) -> None:
    """Write the bfloat16 array ``src`` into the float32 array ``out`` (same shape), exactly, by moving bits.

    A bfloat16 is the top half of a float32 (sign, the same 8 exponent bits, the first 7 mantissa bits): its 16 bits
    shifted left by 16 are the float32 of the same value, for every bit pattern (zeros, subnormals, infinities and
    NaN payloads alike), in whole-array integer operations rather than ml_dtypes' cast of one element at a time.
    """
    if out.ndim == 0:
        out[...] = src
    else:
        _in_parallel(_widen_bfloat16_piece, src, out)


def _cast_piece(src: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, src, casting="unsafe")


def narrow(src: np.ndarray, dtype) -> np.ndarray:
    """``src.astype(dtype)`` (round to nearest even), converted on all cores. To float16 from float32: the compiled
    conversion where there is one; to bfloat16: ml_dtypes' cast (round to nearest even, NaN stays NaN)."""
    out = np.empty(src.shape, dtype)
    fast = src.dtype == np.float32 and out.dtype == np.float16 and converter() is not None
    _in_parallel(compiled.narrow if fast else _cast_piece, src, out)
    return out


def _scratch(role: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A work array for one role (a K-block of A, of B, a partial product), kept by this thread across calls.

    Fresh memory costs a page fault per 4 KiB page the first time it is written (as much as the upcast itself; see
    benchmarks/README.md); reusing the buffers pays that once. Buffers over ``KEEP_BYTES`` are not kept;
    ``release_buffers()`` frees the calling thread's.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    kept = _kept.__dict__
    buffer = kept.get(role)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = np.empty(max(nbytes, 1), np.uint8)
        if nbytes <= KEEP_BYTES:
            kept[role] = buffer
    return buffer[:nbytes].view(dtype).reshape(shape)


def release_buffers() -> None:
    """Free the work arrays this thread keeps between calls (they come back at its next low-precision product)."""
    _kept.__dict__.clear()


def _add_piece(part: np.ndarray, acc: np.ndarray) -> None:
    acc += part


def _upcast(src: np.ndarray, out: np.ndarray) -> None:
    if src.dtype == np.float16 and out.dtype == np.float32:
        widen_float16(src, out)
    elif src.dtype == _BFLOAT16 and out.dtype == np.float32:
        widen_bfloat16(src, out)
    else:
        _in_parallel(_cast_piece, src, out)


def _dot_range(a: np.ndarray, b: np.ndarray, dtype) -> np.ndarray:
    """Σ a·b over one thread's range, a cache-sized chunk at a time, in ``dtype``."""
    chunk = max(1, min(CHUNK_ELEMENTS, a.size))
    a_buf, b_buf = np.empty(chunk, dtype), np.empty(chunk, dtype)
    total = dtype.type(0)
    for lo in range(0, a.size, chunk):
        width = min(chunk, a.size - lo)
        _upcast(a[lo:lo + width], a_buf[:width])
        _upcast(b[lo:lo + width], b_buf[:width])
        total += np.dot(a_buf[:width], b_buf[:width])
    return total


def dot_accumulate(a: np.ndarray, b: np.ndarray, accumulate_dtype=np.float32, out_dtype=None) -> np.ndarray:
    """The 1-D dot product ``Σ a_i b_i`` accumulated in ``accumulate_dtype``; a 0-d array of ``out_dtype``.

    Memory-bound, so the chunks are sized for the L2 cache: each one is upcast and multiplied while still in cache.
    Each core sums its own range of chunks; the per-core partial sums are added at the end.
    """
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot: expected two 1-D arrays of the same length, got shapes {a.shape} and {b.shape}")
    dtype = np.dtype(accumulate_dtype)
    workers = min(os.cpu_count() or 1, max(1, a.size // CHUNK_ELEMENTS))
    bounds = np.linspace(0, a.size, workers + 1).astype(int)
    if workers < 2:
        total = _dot_range(a, b, dtype)
    else:
        futures = [_threads().submit(_dot_range, a[lo:hi], b[lo:hi], dtype) for lo, hi in zip(bounds[:-1], bounds[1:])]
        total = dtype.type(0)
        for future in futures:
            total += future.result()
    return np.asarray(total, dtype=np.dtype(out_dtype or a.dtype))


def block_k_for(m: int, n: int, k: int, itemsize: int = 4) -> int:
    """K-columns per block: ``BLOCK_K``, fewer if an (m, block) and a (block, n) buffer would pass ``BLOCK_BYTES``."""
    fit = BLOCK_BYTES // (itemsize * max(1, m + n))
    return max(1, min(k, BLOCK_K, max(MIN_BLOCK_K, fit)))


def matmul_accumulate(a: np.ndarray, b: np.ndarray, accumulate_dtype=np.float32, out_dtype=None,
                      block_k: int | None = None) -> np.ndarray:
    """``a @ b`` (NumPy's matmul semantics: 1-D operands, broadcast batch axes) accumulated in ``accumulate_dtype``.

    Returns an array of ``out_dtype`` (default: ``a``'s dtype), rounded once from the accumulator.
    """
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k = a.shape[-1]
    if k != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align on the shared dimension")
    if a.ndim == 1 and b.ndim == 1:
        return dot_accumulate(a, b, accumulate_dtype, out_dtype)
    acc_dtype = np.dtype(accumulate_dtype)
    out_dtype = np.dtype(out_dtype or a.dtype)
    a2 = a[None, :] if a.ndim == 1 else a  # 1-D operands become one row / one column, as in NumPy
    b2 = b[:, None] if b.ndim == 1 else b
    m, n = a2.shape[-2], b2.shape[-1]
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    block = block_k or block_k_for(m * int(np.prod(a2.shape[:-2])), n * int(np.prod(b2.shape[:-2])), k)

    a_block = _scratch("a", a2.shape[:-1] + (min(block, k),), acc_dtype)  # reused by every block (and call)
    b_block = _scratch("b", b2.shape[:-2] + (min(block, k), n), acc_dtype)
    if out_dtype != acc_dtype and k:  # the accumulator is only a step to the rounded result: reuse its memory
        acc = _scratch("acc", batch + (m, n), acc_dtype)  # (the first block writes every element)
    else:
        acc = (np.empty if k else np.zeros)(batch + (m, n), acc_dtype)
    part = _scratch("part", acc.shape, acc_dtype) if block < k else None
    for start in range(0, k, block):
        width = min(block, k - start)
        a_view, b_view = a_block[..., :width], b_block[..., :width, :]
        _upcast(a2[..., start:start + width], a_view)
        _upcast(b2[..., start:start + width, :], b_view)
        if start == 0:
            np.matmul(a_view, b_view, out=acc)
        else:
            np.matmul(a_view, b_view, out=part)
            _in_parallel(_add_piece, part, acc)  # acc += part (on all cores with the NumPy conversions)
    if b.ndim == 1:
        acc = acc[..., 0]
    if a.ndim == 1:
        acc = acc[..., 0, :] if b.ndim > 1 else acc[..., 0]
    return acc if out_dtype == acc_dtype else narrow(acc, out_dtype)
