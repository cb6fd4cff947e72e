"""The DFP16 integer matrix product (INT16 products, INT32 chunks) against NumPy's float32 matmul, side by side.

What is measured
    For square n x n x n products (n = 1024, 2048 by default), the time of:
      * ``numpy.matmul`` on float32 operands: the float32 BLAS, the reference of every ratio;
      * the DFP16 product alone, ``kernels.dfp16.matmul(qa, qb)`` on operands quantized beforehand: INT16 products,
        INT32 chunk sums of two products, added in float32 (the paper's combination), split by rows over the cores;
        as further rows, the same in one thread (``dfp16.PARALLEL = False``) and with the chunk sums added in int64
        (``combine="int64"``, exact);
      * the DFP16 product with its conversions, ``matmul(quantize(a), quantize(b))`` from the float32 operands: what
        a layer pays when its operands arrive in float32 (``amp.dfp16``'s forward does this);
      * the two conversions alone (float32 -> DFP16 of both operands);
      * with ``--fallback``, the NumPy fallback of the product (what runs without a C compiler), once;
      * PyTorch's CPU ``torch.matmul`` in float32, when PyTorch is already installed (never required).
    Throughput counts 2·n^3 operations (a multiply and an add per term, integer or float). The ratio column is
    time / numpy float32 time: below 1, faster than the float32 BLAS.

How it is timed
    As ``bench_fp16_matmul.py`` (whose timer it uses): one warm-up call each, then the implementations take turns
    for ``--repeats`` rounds (order reversed on every other round) and the median of each is reported. One change:
    before each timed call the script waits ``--settle`` seconds (default 0.25), so that OpenBLAS's worker threads,
    which keep spinning for a while after a product, are asleep: without the pause, whatever runs right after
    ``numpy.matmul`` loses cores to them (see benchmarks/README.md). Before timing, the product is checked against
    the exact product of the quantized operands and the float64 product of the float32 ones (the accuracy contract
    of ``tinygrad_edu/backend/kernels/dfp16.py``).

Usage (from the repository root)::

    python benchmarks/bench_dfp16_matmul.py                     # n = 1024, 2048
    python benchmarks/bench_dfp16_matmul.py --sizes 512 1024 --repeats 9 --fallback --json dfp16.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from tinygrad_edu.benchmarks.bench_fp16_matmul import _seconds
from tinygrad_edu.benchmarks.bench_mlp_step import import_torch, machine_info, print_table

from tinygrad_edu.backend.kernels import dfp16

U = 2.0**-24
#: seconds to wait before each timed call: OpenBLAS's threads spin for a while after a product (then sleep)
SETTLE_SECONDS = 0.25


def interleaved_medians(fns: dict, repeats: int, settle: float = SETTLE_SECONDS) -> dict:
    """Median seconds per call of each function, the functions run in turns (reversed on odd rounds), each timed
    call preceded by a pause of ``settle`` seconds."""
    for fn in fns.values():
        fn()  # warm-up: first-touch page faults, thread pool start
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            time.sleep(settle)
            times[name].append(_seconds(fns[name]))
    return {name: float(np.median(t)) for name, t in times.items()}


def check_accuracy(a32: np.ndarray, b32: np.ndarray, qa: dfp16.DFP16, qb: dfp16.DFP16, c: np.ndarray) -> None:
    """``c`` within the contract: of the exact product of the DFP16 values (float32 combination of ⌈K/2⌉ chunk sums
    and one final rounding), and of the float64 product of the float32 operands (plus each input's quantization).
    The exact sums come from float64 BLAS on the mantissas: integers below 2^53, so no rounding."""
    k = a32.shape[1]
    scale = math.ldexp(1.0, qa.exponent + qb.exponent)
    ma, mb = qa.mantissa.astype(np.float64), qb.mantissa.astype(np.float64)
    hat, hat_abs = (ma @ mb) * scale, (np.abs(ma) @ np.abs(mb)) * scale
    combination = (math.ceil(k / 2) + 1) * U * hat_abs + np.spacing(np.abs(c)).astype(np.float64) / 2
    if not np.all(np.abs(c - hat) <= combination):
        raise AssertionError("DFP16 product outside the combination bound of the quantized operands")
    da, db = 2.0 ** (qa.exponent - 1), 2.0 ** (qb.exponent - 1)
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    quantization = da * np.abs(b64).sum(axis=0)[None, :] + db * np.abs(a64).sum(axis=1)[:, None] + k * da * db
    if not np.all(np.abs(c - a64 @ b64) <= combination + quantization + 4 * k * 2.0**-53 * (np.abs(a64) @ np.abs(b64))):
        raise AssertionError("DFP16 product outside the accuracy contract against float64")


def checked_operands(n: int, seed: int) -> tuple:
    """Seeded standard-normal float32 operands (n, n), their DFP16 conversions, once the product has passed
    ``check_accuracy``."""
    rng = np.random.default_rng(seed)
    a32, b32 = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
    qa, qb = dfp16.quantize(a32), dfp16.quantize(b32)
    check_accuracy(a32, b32, qa, qb, dfp16.matmul(qa, qb))
    return a32, b32, qa, qb


def fallback_seconds(qa: dfp16.DFP16, qb: dfp16.DFP16, expected: np.ndarray) -> float:
    """One run of the NumPy fallback of the product (``dfp16.compiled = None``), checked bit for bit against the
    compiled result."""
    saved = dfp16.compiled
    dfp16.compiled = None
    try:
        result = {}
        seconds = _seconds(lambda: result.setdefault("c", dfp16.matmul(qa, qb)))
    finally:
        dfp16.compiled = saved
    if not np.array_equal(result["c"].view(np.uint32), expected.view(np.uint32)):
        raise AssertionError("the NumPy fallback and the compiled kernel disagree")
    return seconds


def one_thread(fn):
    """``fn()`` with the product in the calling thread (``dfp16.PARALLEL = False``)."""
    saved, dfp16.PARALLEL = dfp16.PARALLEL, False
    try:
        return fn()
    finally:
        dfp16.PARALLEL = saved


def bench_square(n: int, repeats: int, torch, fallback: bool, settle: float = SETTLE_SECONDS) -> dict:
    """Median seconds of each implementation for one n (see the module docstring)."""
    a32, b32, qa, qb = checked_operands(n, n)
    fns = {
        "numpy.matmul float32": lambda: np.matmul(a32, b32),
        "dfp16 product (float32 combination)": lambda: dfp16.matmul(qa, qb),
        "dfp16 product, one thread": lambda: one_thread(lambda: dfp16.matmul(qa, qb)),
        "dfp16 product (int64 combination)": lambda: dfp16.matmul(qa, qb, combine="int64"),
        "dfp16 product with conversions": lambda: dfp16.matmul(dfp16.quantize(a32), dfp16.quantize(b32)),
        "conversions alone (2 x float32 -> DFP16)": lambda: (dfp16.quantize(a32), dfp16.quantize(b32)),
    }
    if torch is not None:
        ta, tb = torch.from_numpy(a32), torch.from_numpy(b32)
        fns["torch.matmul float32"] = lambda: torch.matmul(ta, tb)
    medians = interleaved_medians(fns, repeats, settle)
    if fallback:
        medians["dfp16 product, NumPy fallback (1 run)"] = fallback_seconds(qa, qb, dfp16.matmul(qa, qb))
    return medians


def table_rows(n: int, medians: dict) -> list[list[str]]:
    reference = medians["numpy.matmul float32"]
    return [[f"{n}^3  {name}", f"{seconds * 1e3:.1f}", f"{2 * n**3 / seconds / 1e9:.0f}", f"{seconds / reference:.2f}"]
            for name, seconds in medians.items()]


def _suite_medians(n: int, repeats: int, torch) -> dict:
    a32, b32, qa, qb = checked_operands(n, n)
    fns = {"product": lambda: dfp16.matmul(qa, qb),
           "with conversions": lambda: dfp16.matmul(dfp16.quantize(a32), dfp16.quantize(b32)),
           "numpy f32": lambda: np.matmul(a32, b32)}
    if torch is not None:
        ta, tb = torch.from_numpy(a32), torch.from_numpy(b32)
        fns["torch f32"] = lambda: torch.matmul(ta, tb)
    return interleaved_medians(fns, repeats)


def suite_rows(repeats: int, torch, sizes: tuple[int, ...] = (256,)) -> list[dict]:
    """Rows for ``tinygrad-edu bench``: per n, the DFP16 product (operands already DFP16, float32 combination) and
    the DFP16 product with its two conversions, each against numpy.matmul in float32 (and torch.matmul float32
    where PyTorch is installed). Each row: ``dict(benchmark, case, a, b, a_ms, b_ms, ratio=a_ms / b_ms, target,
    ok)``. No target: the rows are for reading (the paper's speed-up needs integer units faster than the float
    ones; on a CPU whose float32 FMA is as fast as its INT16 pair instruction, matching float32 is the best case)."""
    rows = []
    for n in sizes:
        med = _suite_medians(n, repeats, torch)
        for a in ("product", "with conversions"):
            for b in ("numpy f32", "torch f32"):
                if b in med:
                    rows.append(dict(benchmark="DFP16 matmul (CPU)", case=f"{n}x{n} @ {n}x{n}",
                                     a=f"dfp16 {a}", b=f"{b.split()[0]}.matmul f32", a_ms=1e3 * med[a],
                                     b_ms=1e3 * med[b], ratio=med[a] / med[b], target="", ok=None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds per size (median reported)")
    parser.add_argument("--fallback", action="store_true", help="also time the NumPy fallback once per size (slow)")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                        help="seconds to wait before each timed call (0: back to back, as bench_fp16_matmul.py)")
    parser.add_argument("--json", metavar="PATH", help="write the medians (seconds) and the machine as JSON")
    args = parser.parse_args(argv)
    torch = import_torch()
    machine = machine_info(torch)
    for key, value in machine.items():
        print(f"{key}: {value}")
    module = dfp16.kernel()
    print(f"dfp16 kernel: {'compiled, AVX2' if module and module.has_avx2() else 'compiled' if module else 'NumPy'}")
    results, rows = {}, []
    for n in args.sizes:
        results[n] = bench_square(n, args.repeats, torch, args.fallback, args.settle)
        rows += table_rows(n, results[n])
    print()
    print_table(["case", "ms (median)", "GOP/s", "time / numpy f32"], rows)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "medians_seconds": {str(n): r for n, r in results.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
