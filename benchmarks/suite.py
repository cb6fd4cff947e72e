"""``tinygrad-edu bench``: every benchmark side by side, one table of time ratios, the machine and versions on top.

Each benchmark module exposes ``suite_rows(repeats, torch, ...)``: rows ``dict(benchmark, case, a, b, a_ms, b_ms,
ratio, target, ok)`` where ``ratio = time(a) / time(b)`` (below 1: a is faster) and ``target`` is the benchmark's
own goal written in the same terms (e.g. the engine's step at most 1.5x the hand-written NumPy one; batchnorm's
composed primitives at least 2x slower than the hand-derived backward). A target holds for the sizes and the timing
it was set for: a row of other sizes says ``n/a`` in the target and ok columns (``suite_rows`` decides, e.g. the
float16 kernel's target is for n >= 1024, the data-parallel one for the default network). ``--quick`` runs small
sizes with short timing blocks (about 20 ms) once: it checks that everything runs, its numbers are noisy, so none
of its rows is held to a target (all say ``n/a``; the full run keeps them). The full benchmarks, with more sizes,
agreement reports and JSON, are the scripts themselves (``python benchmarks/bench_mlp_step.py`` ...).

The rows run on the CPU whatever ``TINYGRAD_EDU_DEVICE`` says (they compare the engine with NumPy on the CPU), the
CUDA rows on the GPU; ``tinygrad-edu bench`` still refuses a bad value of the variable.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
from tinygrad_edu.benchmarks import bench_mlp_step

import tinygrad_edu
from tinygrad_edu.backend import ENV_VAR, default_device

NAMES = ("mlp", "batchnorm", "conv2d", "fp16", "bf16", "dfp16", "cuda", "ddp")

#: settings per mode: (mlp configs, batchnorm shapes, conv2d configs, fp16/bf16/dfp16 sizes, cuda n, ddp:
#: "quick"/"default")
QUICK = dict(mlp=("a", "b"), batchnorm=[(100, 32)], conv2d=("a",), fp16=(256,), bf16=(256,), dfp16=(256,), cuda=1024,
             ddp="quick")
FULL = dict(mlp=("a", "b"), batchnorm=None, conv2d=("a", "b"), fp16=(1024,), bf16=(1024,), dfp16=(1024,), cuda=4096,
            ddp="default")

#: what the target and ok columns say for a row whose target does not apply (other sizes, or --quick's timing)
NOT_APPLICABLE = "n/a"

#: the size of the CUDA row's target (>= 70% of cuBLAS at 4096^3; smaller products do not fill the GPU)
CUDA_TARGET_N = 4096


def without_target(row: dict) -> dict:
    """``row`` with ``n/a`` for its target (and no verdict) when it has one: its numbers are not the target's."""
    return dict(row, target=NOT_APPLICABLE, ok=None) if row["target"] else row


def _cupy():
    """(cupy, None) when CuPy imports and sees a GPU, else (None, the reason)."""
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy, None
        return None, "CuPy sees no GPU"
    except Exception as exc:  # not installed, no driver
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]


def _cuda_ms(cupy, fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of fn() timed with CUDA events."""
    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def cuda_rows(cupy, n: int, repeats: int) -> list[dict]:
    """Our float16 GEMM (tensor cores, FP32 accumulation) against cupy.matmul (cuBLAS), n x n x n: target >= 70% of
    cuBLAS's throughput, i.e. a time ratio <= 1/0.7, for n = ``CUDA_TARGET_N`` (other n: ``n/a``)."""
    from tinygrad_edu.backend.kernels import cuda

    rng = cupy.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32).astype(np.float16)
    b = rng.standard_normal((n, n), dtype=np.float32).astype(np.float16)
    ours = _cuda_ms(cupy, lambda: cuda.matmul_fp16(a, b), repeats)
    cublas = _cuda_ms(cupy, lambda: cupy.matmul(a, b), repeats)
    ratio = ours / cublas
    row = dict(benchmark="float16 matmul (CUDA)", case=f"{n}x{n} @ {n}x{n}", a="our kernel", b="cupy.matmul (cuBLAS)",
               a_ms=ours, b_ms=cublas, ratio=ratio, target="<= 1.43", ok=ratio <= 1 / 0.7)
    return [row if n == CUDA_TARGET_N else without_target(row)]


def header_lines(torch, cupy, cupy_reason: str | None) -> list[str]:
    m = bench_mlp_step.machine_info(torch)
    lines = [f"machine  {m['cpu']}, {bench_mlp_step.cores_text(m)}, {platform.system()} {platform.release()}",
             f"python   {m['python']}, numpy {m['numpy']}, BLAS {m['blas']}"
             + (f", threads {m['thread_env']}" if m["thread_env"] else ""),
             f"         tinygrad_edu {tinygrad_edu.__version__}, torch {m['torch'] or 'not installed (rows left out)'}"]
    if cupy is not None:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        rt = cupy.cuda.runtime.runtimeGetVersion()
        lines.append(f"gpu      {props['name'].decode()}, CuPy {cupy.__version__}, CUDA runtime {rt // 1000}."
                     f"{rt % 1000 // 10}")
    else:
        lines.append(f"gpu      none ({cupy_reason}; CUDA rows left out)")
    return lines


def format_table(rows: list[dict]) -> list[str]:
    header = ["benchmark", "case", "A", "B", "A ms", "B ms", "A/B", "target", "ok"]
    cells = [[r["benchmark"], r["case"], r["a"], r["b"], _ms(r["a_ms"]), _ms(r["b_ms"]), f"{r['ratio']:.3g}",
              r["target"], _verdict(r)] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    left = {0, 1, 2, 3}

    def line(cs: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cs, widths))).rstrip()

    return [line(header), line(["-" * w for w in widths])] + [line(c) for c in cells]


def _verdict(row: dict) -> str:
    """The ok column: yes / NO against the target, n/a where the target does not apply, empty without a target."""
    if row["target"] == NOT_APPLICABLE:
        return NOT_APPLICABLE
    return {True: "yes", False: "NO", None: ""}[row["ok"]]


@contextlib.contextmanager
def _on_the_cpu() -> Iterator[None]:
    """The CPU benchmarks compare the engine with NumPy on the CPU: there they run, whatever ``TINYGRAD_EDU_DEVICE``
    says (in this process, and in the processes the data-parallel benchmark launches)."""
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "cpu"
    try:
        with default_device("cpu"):
            yield
    finally:
        if saved is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = saved


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def main(quick: bool = False, repeats: int | None = None, only: list[str] | None = None, use_torch: bool = True) -> int:
    """Run the selected benchmarks, print the header and the table; returns 0 (targets missed are shown as NO:
    a noisy shared machine is not an error), or 1 when a benchmark failed (its agreement check, or it raised).
    With ``quick`` no row is held to its target (``n/a``): its sizes and short timing blocks are not the targets'."""
    from tinygrad_edu.benchmarks import (
        bench_batchnorm,
        bench_bf16_matmul,
        bench_conv2d,
        bench_dfp16_matmul,
        bench_distributed,
        bench_fp16_matmul,
    )

    settings = QUICK if quick else FULL
    repeats = repeats or (1 if quick else 5)
    selected = [name for name in NAMES if only is None or name in only]
    torch = bench_mlp_step.import_torch() if use_torch else None
    if torch is not None:
        torch.manual_seed(0)
        torch.set_num_threads(bench_mlp_step.blas_threads())  # as many threads as NumPy's BLAS: neither has more
    cupy, cupy_reason = _cupy() if "cuda" in selected else (None, "not selected")
    for line in header_lines(torch, cupy, cupy_reason):
        print(line)
    print(f"mode     {'quick (small sizes, short blocks: a smoke test, noisy; targets n/a)' if quick else 'full'}, "
          f"median of {repeats} interleaved block(s); A/B = time(A) / time(B), below 1: A is faster", flush=True)
    if os.environ.get(ENV_VAR, "").strip():
        print(f"device   the CPU rows run on the CPU ({ENV_VAR}={os.environ[ENV_VAR]!r} does not apply to them), the "
              f"CUDA rows on the GPU", flush=True)
    runs: dict[str, Callable[[], list[dict]]] = {
        "mlp": lambda: bench_mlp_step.suite_rows(repeats, torch, settings["mlp"]),
        "batchnorm": lambda: bench_batchnorm.suite_rows(repeats, torch, settings["batchnorm"] or bench_batchnorm.SHAPES),
        "conv2d": lambda: bench_conv2d.suite_rows(repeats, torch, settings["conv2d"]),
        "fp16": lambda: bench_fp16_matmul.suite_rows(max(repeats, 3), torch, settings["fp16"]),
        "bf16": lambda: bench_bf16_matmul.suite_rows(max(repeats, 3), torch, settings["bf16"]),
        "dfp16": lambda: bench_dfp16_matmul.suite_rows(max(repeats, 3), torch, settings["dfp16"]),
        "cuda": lambda: cuda_rows(cupy, settings["cuda"], max(repeats, 5)) if cupy is not None else [],
        # launches its own MPI processes (mpiexec); no rows where mpi4py or the launcher is missing
        "ddp": lambda: bench_distributed.suite_rows(repeats, torch, getattr(bench_distributed, settings["ddp"].upper())),
    }
    rows: list[dict] = []
    failures = []
    start = time.perf_counter()
    timing = bench_mlp_step.block_seconds(0.02, 0.01) if quick else contextlib.nullcontext()
    with timing:
        for name in selected:
            try:
                with contextlib.nullcontext() if name == "cuda" else _on_the_cpu():
                    new = runs[name]()
            except Exception as exc:  # report it, run the others
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            rows += [without_target(row) for row in new] if quick else new
    print()
    for line in format_table(rows):
        print(line)
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0
