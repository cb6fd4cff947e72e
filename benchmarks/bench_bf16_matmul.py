"""The CPU bfloat16 matmul kernel (bfloat16 storage, float32 accumulation) against NumPy, side by side in one process.

What is measured
    For square n x n x n products (n = 1024 and 2048 by default), the time of:
      * ``numpy.matmul`` on float32 operands: the float32 BLAS, the speed to match (target: kernel >= 0.8x);
      * ``tinygrad_edu.backend.kernels.matmul_cpu.matmul_accumulate`` on bfloat16 operands (``ml_dtypes.bfloat16``),
        rounding the result to bfloat16 (what a bfloat16 tensor's ``@`` runs) and, as a second row, returning the
        float32 accumulator;
      * the float16 kernel on the same values rounded to float16, for comparison (its own benchmark is
        ``bench_fp16_matmul.py``);
      * ``numpy.matmul`` on bfloat16 operands (ml_dtypes' own loop, no BLAS, result float32), once per size, with
        ``--numpy-bf16`` (minutes at n = 2048);
      * PyTorch's CPU ``torch.matmul`` in float32 and bfloat16, when PyTorch is already installed (never required).
    Then the kernel's two conversions against the alternatives they were chosen over: the upcast as a 16-bit shift
    of the bits (``widen_bfloat16``) against ml_dtypes' cast, inside the kernel (result float32), and the final
    rounding of an (n, n) accumulator by ml_dtypes' cast against round-to-nearest-even by NumPy integer operations.
    Throughput is 2·n³ / time (GFLOP/s); ratios are NumPy-float32 time / kernel time, so above 1 means the kernel is
    faster.

How it is timed
    As ``bench_fp16_matmul.py`` (whose helpers it uses): one warm-up call each, then the implementations take turns
    (order reversed on every other round) for ``--repeats`` rounds, and the median of each is reported. Before
    timing, the kernel's result is checked against the float64 product of the same bfloat16 inputs (within one
    bfloat16 ulp plus the float32 accumulation bound).

Usage (from the repository root)::

    python benchmarks/bench_bf16_matmul.py                      # n = 1024, 2048
    python benchmarks/bench_bf16_matmul.py --sizes 512 1024 4096 --repeats 9
    python benchmarks/bench_bf16_matmul.py --numpy-bf16         # also ml_dtypes' own bfloat16 matmul (slow)
"""

from __future__ import annotations

import argparse

import ml_dtypes
import numpy as np
from tinygrad_edu.benchmarks.bench_fp16_matmul import _seconds, interleaved_medians
from tinygrad_edu.benchmarks.bench_mlp_step import import_torch, machine_info, print_table

from tinygrad_edu.backend.kernels import matmul_cpu
from tinygrad_edu.backend.kernels.matmul_cpu import matmul_accumulate, narrow

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def check_accuracy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    """The kernel's result within 1 bfloat16 ulp plus the float32 accumulation bound of the float64 product."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    exact = np.matmul(a64, b64)
    accumulation = a.shape[-1] * 2.0**-24 * np.matmul(np.abs(a64), np.abs(b64))
    one_ulp = np.spacing(np.asarray(np.abs(exact) + accumulation, dtype=BFLOAT16)).astype(np.float64)
    excess = np.abs(c.astype(np.float64) - exact) - (one_ulp + accumulation)
    if excess.max() > 0:
        raise AssertionError(f"kernel result outside the accuracy bound by {excess.max():.3g}")


def checked_operands(seed: int, shape_a: tuple, shape_b: tuple) -> tuple[np.ndarray, ...]:
    """Seeded standard-normal bfloat16 operands and their float32 copies (a, b, a32, b32), once the kernel's product
    of them has passed ``check_accuracy``."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shape_a).astype(BFLOAT16), rng.standard_normal(shape_b).astype(BFLOAT16)
    check_accuracy(a, b, matmul_accumulate(a, b))
    return a, b, a.astype(np.float32), b.astype(np.float32)


def bench_square(n: int, repeats: int, numpy_bf16: bool, torch) -> list[list[str]]:
    a, b, a32, b32 = checked_operands(n, (n, n), (n, n))
    a16, b16 = a32.astype(np.float16), b32.astype(np.float16)
    fns = {
        "numpy.matmul float32": lambda: np.matmul(a32, b32),
        "kernel bfloat16 -> bfloat16": lambda: matmul_accumulate(a, b),
        "kernel bfloat16 -> float32": lambda: matmul_accumulate(a, b, out_dtype=np.float32),
        "kernel float16 -> float16": lambda: matmul_accumulate(a16, b16),
    }
    if torch is not None:
        ta32, tb32 = torch.from_numpy(a32), torch.from_numpy(b32)
        tab, tbb = ta32.to(torch.bfloat16), tb32.to(torch.bfloat16)
        fns["torch.matmul float32"] = lambda: torch.matmul(ta32, tb32)
        fns["torch.matmul bfloat16"] = lambda: torch.matmul(tab, tbb)
    med = interleaved_medians(fns, repeats)
    if numpy_bf16:
        med["numpy.matmul bfloat16 (1 run)"] = _seconds(lambda: np.matmul(a, b))
    reference = med["numpy.matmul float32"]
    return [[f"{n}^3  {name}", f"{seconds * 1e3:.1f}", f"{2 * n**3 / seconds / 1e9:.0f}", f"{reference / seconds:.2f}"]
            for name, seconds in med.items()]


def _round_bits(src: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 rounded to nearest even with NumPy integer operations (finite values only)."""
    bits = src.view(np.uint32)
    rounded = bits >> 16
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    return rounded.astype(np.uint16).view(BFLOAT16)


def _cast_piece(src: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, src, casting="unsafe")


def bench_conversions(n: int, repeats: int) -> list[list[str]]:
    """The two conversions against their alternatives: the kernel (n x n x n, result float32) with its bit-shift
    upcast and with ml_dtypes' cast swapped in (``matmul_cpu._widen_bfloat16_piece``, restored after), and the
    rounding of an (n, n) float32 accumulator by ml_dtypes' cast and by NumPy integer operations."""
    a, b, a32, b32 = checked_operands(n, (n, n), (n, n))
    acc = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    if not np.array_equal(narrow(acc, BFLOAT16).view(np.uint16), _round_bits(acc).view(np.uint16)):
        raise AssertionError("the two roundings to bfloat16 differ")
    shift = matmul_cpu._widen_bfloat16_piece

    def kernel_with(piece):
        def run():
            matmul_cpu._widen_bfloat16_piece = piece
            try:
                matmul_accumulate(a, b, out_dtype=np.float32)
            finally:
                matmul_cpu._widen_bfloat16_piece = shift
        return run

    med = interleaved_medians({
        "numpy.matmul float32": lambda: np.matmul(a32, b32),
        "kernel -> float32, upcast: bit shift (used)": kernel_with(shift),
        "kernel -> float32, upcast: ml_dtypes' cast": kernel_with(_cast_piece),
        f"round ({n}, {n}): ml_dtypes' cast (used)": lambda: narrow(acc, BFLOAT16),
        f"round ({n}, {n}): NumPy integer ops": lambda: _round_bits(acc),
    }, repeats)
    reference = med["numpy.matmul float32"]
    return [[f"{n}^3  {name}" if not name.startswith("round") else name, f"{seconds * 1e3:.2f}",
             f"{reference / seconds:.2f}" if not name.startswith("round") else "",
             f"{seconds * 1e9 / acc.size:.2f}" if name.startswith("round") else ""] for name, seconds in med.items()]


def _suite_medians(n: int, repeats: int, torch) -> dict:
    a, b, a32, b32 = checked_operands(n, (n, n), (n, n))
    fns = {"kernel": lambda: matmul_accumulate(a, b), "numpy f32": lambda: np.matmul(a32, b32)}
    if torch is not None:
        ta32, tb32 = torch.from_numpy(a32), torch.from_numpy(b32)
        fns["torch f32"] = lambda: torch.matmul(ta32, tb32)
    return interleaved_medians(fns, repeats)


def suite_rows(repeats: int, torch, sizes: tuple[int, ...] = (256,),
               target_sizes: tuple[int, ...] = (1024, 2048)) -> list[dict]:
    """Rows for ``tinygrad-edu bench``: per n, the bfloat16 kernel (bfloat16 -> bfloat16) against numpy.matmul in
    float32 (target: kernel time <= 1/0.8 of it), and against torch.matmul float32 when PyTorch is installed. Each
    row: ``dict(benchmark, case, a, b, a_ms, b_ms, ratio=a_ms / b_ms, target, ok)``. The target is set for the
    script's sizes, ``target_sizes``: a row of another n says ``n/a`` as its target (``ok`` None), as small products
    are dominated by per-call costs."""
    rows = []
    for n in sizes:
        med = _suite_medians(n, repeats, torch)
        for b, target, good in (("numpy f32", "<= 1.25", lambda r: r <= 1.25), ("torch f32", "", None)):
            if b in med:
                ratio = med["kernel"] / med[b]
                applies = good is not None and n in target_sizes
                rows.append(dict(benchmark="bfloat16 matmul (CPU)", case=f"{n}x{n} @ {n}x{n}", a="kernel bf16",
                                 b=f"{b.split()[0]}.matmul {b.split()[1]}", a_ms=1e3 * med["kernel"],
                                 b_ms=1e3 * med[b], ratio=ratio, target=target if applies or not target else "n/a",
                                 ok=good(ratio) if applies else None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per size (median reported)")
    parser.add_argument("--numpy-bf16", action="store_true", help="also time ml_dtypes' own bfloat16 matmul (slow)")
    args = parser.parse_args(argv)
    torch = import_torch()
    for key, value in machine_info(torch).items():
        print(f"{key}: {value}")
    rows = []
    for n in args.sizes:
        rows += bench_square(n, args.repeats, args.numpy_bf16, torch)
    print()
    print_table(["case", "ms (median)", "GFLOP/s", "vs numpy f32"], rows)
    print("\ntarget: kernel bfloat16 -> bfloat16 >= 0.80 of numpy float32")
    print()
    for n in args.sizes:
        print_table(["conversion", "ms (median)", "vs numpy f32", "ns / element"], bench_conversions(n, args.repeats))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
