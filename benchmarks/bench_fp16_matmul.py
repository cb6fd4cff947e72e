"""The CPU float16 matmul kernel (float16 storage, float32 accumulation) against NumPy, side by side in one process.

What is measured
    For square n x n x n products (n = 1024, 2048, 4096 by default), the time of:
      * ``numpy.matmul`` on float32 operands: the float32 BLAS, the speed to match (target: kernel >= 0.8x);
      * ``tinygrad_edu.backend.kernels.matmul_cpu.matmul_accumulate`` on float16 operands, rounding the result to
        float16 (what a float16 tensor's ``@`` runs) and, as a second row, returning the float32 accumulator;
      * ``numpy.matmul`` on float16 operands: NumPy's own float16 loop, no BLAS (target: kernel >= 100x). It takes
        minutes at n = 4096, so it runs once per size and at n = 4096 only with ``--full``;
      * PyTorch's CPU ``torch.matmul`` in float32 and float16, when PyTorch is already installed (never required).
    Plus a batched product (64 x 256 x 256 @ 64 x 256 x 256) and a 1-D dot product of 2^22 elements, each against
    float32 NumPy. Throughput is 2·M·N·K / time (GFLOP/s); ratios are NumPy-float32 time / kernel time, so above 1
    means the kernel is faster.

How it is timed
    Each implementation is run once to warm up, then the implementations take turns (order reversed on every other
    round) for ``--repeats`` rounds, and the median of each is reported. The machine is shared and noisy: the
    medians of interleaved runs are what the ratios are computed from. Before timing, the kernel's result is
    checked against the float64 product (within the accuracy contract's bound).

Usage (from the repository root)::

    python benchmarks/bench_fp16_matmul.py                      # n = 1024, 2048, 4096; numpy float16 up to 2048
    python benchmarks/bench_fp16_matmul.py --full               # numpy float16 at n = 4096 too (several minutes)
    python benchmarks/bench_fp16_matmul.py --sizes 512 1024 --repeats 9
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
from tinygrad_edu.benchmarks.bench_mlp_step import import_torch, machine_info, print_table

from tinygrad_edu.backend.kernels.matmul_cpu import matmul_accumulate


def _seconds(fn, rounds: int = 1) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each function, the functions run in turns (reversed on odd rounds)."""
    for fn in fns.values():
        fn()  # warm-up: first-touch page faults, thread pool start
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(_seconds(fns[name]))
    return {name: float(np.median(t)) for name, t in times.items()}


def check_accuracy(a16: np.ndarray, b16: np.ndarray, c: np.ndarray) -> None:
    """The kernel's result within 1 float16 ulp plus the float32 accumulation bound of the float64 product."""
    exact = np.matmul(a16.astype(np.float64), b16.astype(np.float64))
    k = a16.shape[-1]
    magnitude = np.matmul(np.abs(a16.astype(np.float64)), np.abs(b16.astype(np.float64)))
    bound = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64) + k * 2.0**-24 * magnitude
    excess = np.abs(c.astype(np.float64) - exact) - bound
    if excess.max() > 0:
        raise AssertionError(f"kernel result outside the accuracy bound by {excess.max():.3g}")


def checked_operands(seed: int, shape_a: tuple, shape_b: tuple) -> tuple[np.ndarray, ...]:
    """Seeded standard-normal float16 operands and their float32 copies (a16, b16, a32, b32), once the kernel's
    product of them has passed ``check_accuracy``."""
    rng = np.random.default_rng(seed)
    a16, b16 = rng.standard_normal(shape_a).astype(np.float16), rng.standard_normal(shape_b).astype(np.float16)
    check_accuracy(a16, b16, matmul_accumulate(a16, b16))
    return a16, b16, a16.astype(np.float32), b16.astype(np.float32)


def bench_square(n: int, repeats: int, numpy_fp16: bool, torch) -> list[list[str]]:
    a16, b16, a32, b32 = checked_operands(n, (n, n), (n, n))
    fns = {
        "numpy.matmul float32": lambda: np.matmul(a32, b32),
        "kernel float16 -> float16": lambda: matmul_accumulate(a16, b16),
        "kernel float16 -> float32": lambda: matmul_accumulate(a16, b16, out_dtype=np.float32),
    }
    if torch is not None:
        ta32, tb32 = torch.from_numpy(a32), torch.from_numpy(b32)
        fns["torch.matmul float32"] = lambda: torch.matmul(ta32, tb32)
    med = interleaved_medians(fns, repeats)
    if numpy_fp16:
        med["numpy.matmul float16 (1 run)"] = _seconds(lambda: np.matmul(a16, b16))
    if torch is not None and numpy_fp16:
        ta16, tb16 = torch.from_numpy(a16), torch.from_numpy(b16)
        med["torch.matmul float16 (1 run)"] = _seconds(lambda: torch.matmul(ta16, tb16))
    reference = med["numpy.matmul float32"]
    fp16_numpy = med.get("numpy.matmul float16 (1 run)")
    rows = []
    for name, seconds in med.items():
        versus_fp16 = f"{fp16_numpy / seconds:.0f}x" if fp16_numpy and name.startswith("kernel") else ""
        rows.append([f"{n}^3  {name}", f"{seconds * 1e3:.1f}", f"{2 * n**3 / seconds / 1e9:.0f}",
                     f"{reference / seconds:.2f}", versus_fp16])
    return rows


def bench_case(label: str, shape_a: tuple, shape_b: tuple, flops: int, repeats: int) -> list[list[str]]:
    a16, b16, a32, b32 = checked_operands(0, shape_a, shape_b)
    med = interleaved_medians({"numpy.matmul float32": lambda: np.matmul(a32, b32),
                               "kernel float16 -> float16": lambda: matmul_accumulate(a16, b16)}, repeats)
    return [[f"{label}  {name}", f"{seconds * 1e3:.2f}", f"{flops / seconds / 1e9:.1f}",
             f"{med['numpy.matmul float32'] / seconds:.2f}", ""] for name, seconds in med.items()]


def bench_batched_and_dot(repeats: int) -> list[list[str]]:
    return (bench_case("batched 64x256x256 @ 64x256x256", (64, 256, 256), (64, 256, 256), 2 * 64 * 256**3, repeats)
            + bench_case("dot 2^22", (1 << 22,), (1 << 22,), 2 * (1 << 22), repeats))


def _suite_medians(n: int, repeats: int, torch) -> dict:
    a16, b16, a32, b32 = checked_operands(n, (n, n), (n, n))
    fns = {"kernel": lambda: matmul_accumulate(a16, b16), "numpy f32": lambda: np.matmul(a32, b32)}
    if torch is not None:
        ta32, tb32 = torch.from_numpy(a32), torch.from_numpy(b32)
        fns["torch f32"] = lambda: torch.matmul(ta32, tb32)
    med = interleaved_medians(fns, repeats)
    med["numpy f16"] = _seconds(lambda: np.matmul(a16, b16))
    return med


def suite_rows(repeats: int, torch, sizes: tuple[int, ...] = (256,),
               target_sizes: tuple[int, ...] = (1024, 2048, 4096)) -> list[dict]:
    """Rows for ``tinygrad-edu bench``, small sizes: per n, the kernel (float16 -> float16) against numpy.matmul in
    float32 (target: kernel time <= 1/0.8 of it) and in float16 (one run; target: 100x faster), and against
    torch.matmul float32 when PyTorch is installed. Each row: ``dict(benchmark, case, a, b, a_ms, b_ms,
    ratio=a_ms / b_ms, target, ok)``. The targets are set for the script's sizes, ``target_sizes``: a row of
    another n says ``n/a`` as its target (``ok`` None), as small products are dominated by per-call costs."""
    rows = []
    for n in sizes:
        med = _suite_medians(n, repeats, torch)
        case = f"{n}x{n} @ {n}x{n}"
        for b, target, good in (("numpy f32", "<= 1.25", lambda r: r <= 1.25), ("numpy f16", "<= 0.01",
                                lambda r: r <= 0.01), ("torch f32", "", None)):
            if b in med:
                ratio = med["kernel"] / med[b]
                applies = good is not None and n in target_sizes
                rows.append(dict(benchmark="float16 matmul (CPU)", case=case, a="kernel f16", b=f"{b.split()[0]}."
                                 f"matmul {b.split()[1]}", a_ms=1e3 * med["kernel"], b_ms=1e3 * med[b], ratio=ratio,
                                 target=target if applies or not target else "n/a",
                                 ok=good(ratio) if applies else None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per size (median reported)")
    parser.add_argument("--full", action="store_true", help="also time NumPy's float16 matmul at n > 2048 (slow)")
    args = parser.parse_args(argv)
    torch = import_torch()
    for key, value in machine_info(torch).items():
        print(f"{key}: {value}")
    rows = []
    for n in args.sizes:
        rows += bench_square(n, args.repeats if n < 4096 else max(3, args.repeats // 2), args.full or n <= 2048, torch)
    rows += bench_batched_and_dot(args.repeats)
    print()
    print_table(["case", "ms (median)", "GFLOP/s", "vs numpy f32", "vs numpy f16"], rows)
    print("\ntargets: kernel float16 -> float16 >= 0.80 of numpy float32, and >= 100x numpy float16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
