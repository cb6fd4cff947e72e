"""One command for a GPU machine: run the GPU tests, then print the CUDA kernels' benchmark table.

Usage (from the repository root, after ``pip install -e ".[test,cuda13]"`` or ``".[test,cuda12]"``: like the other
benchmarks, it imports the installed package, and runs the tests of this checkout)::

    python benchmarks/gpu_check.py                # pytest -m gpu, then the table
    python benchmarks/gpu_check.py --no-tests     # the table only
    python benchmarks/gpu_check.py --repeats 21 --json gpu.json

What is measured (the kernels of tinygrad_edu/backend/kernels/cuda.py; medians over --repeats runs timed with CUDA
events, after warm-up runs)
    GEMM 2-D        4096 x 4096 x 4096 float16: our tensor-core (WMMA) kernel, FP32 accumulation, float16 result,
                    against ``cupy.matmul`` on float16 (cuBLAS GEMM with FP32 compute). TFLOP/s = 2MNK / time;
                    "% of cuBLAS" = our TFLOP/s / cuBLAS's. Issue target: >= 70%.
    GEMM batched    64 x (512 x 512 x 512) float16: ours against ``cupy.matmul`` (which upcasts batched float16 to
                    a float32 GEMM). Target: faster than CuPy.
    GEMM SIMT       the fallback kernel (no tensor cores) on the 2-D problem, for scale.
    dot             2^27 float16 values each, FP32 accumulation: GB/s = bytes read / time.
    batchnorm       fused forward and backward on (256, 256, 56, 56) float16. GB/s counts the bytes the kernels'
                    passes move (forward: x read twice, y written; backward: x and dy read twice, dx written);
                    "% of peak" divides by the GPU's peak memory bandwidth (2 x memory clock x bus width, from the
                    device attributes, else a table of known GPUs, else --peak-gbs). Target: >= 70%.
Exit status: 2 when nothing can run (no CUDA GPU, or tinygrad_edu not installed), 1 when a GPU test failed,
else 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

try:
    import tinygrad_edu  # noqa: F401
except ImportError as exc:
    print(f"gpu_check: cannot import tinygrad_edu ({exc}). The benchmarks run against the installed package: from "
          'the repository root, pip install -e ".[test,cuda13]" (or [cuda12]), then run this again.', file=sys.stderr)
    sys.exit(2)

from tinygrad_edu.benchmarks.suite import _cuda_ms  # noqa: E402  (CUDA-event timing, shared with `bench`)

ROOT = Path(__file__).resolve().parents[1]  # the checkout, where ``pytest -m gpu`` finds the tests

#: Peak memory bandwidth in GB/s of GPUs whose attributes do not give it (CUDA 13 dropped the memory clock).
KNOWN_PEAK_GBS = {"H200": 4800, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039,
                  "A100 80GB PCIe": 1935, "A100": 1555, "L40S": 864, "L4": 300, "A10G": 600, "T4": 320, "V100": 900}


def _gpu():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
        reason = "CuPy sees 0 devices"
    except Exception as exc:  # no CuPy, no driver
        reason = f"{type(exc).__name__}: {exc}"
    print(f"gpu_check: no CUDA GPU here ({reason}); nothing to run. Run this on a GPU machine after "
          'pip install -e ".[test,cuda13]" (or [cuda12]).')
    sys.exit(2)


def _peak_gbs(cupy, override):
    if override:
        return override, "--peak-gbs"
    attrs = cupy.cuda.Device().attributes
    clock_khz, bus_bits = attrs.get("MemoryClockRate"), attrs.get("GlobalMemoryBusWidth")
    if clock_khz and bus_bits:
        return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, "2 x memory clock x bus width"
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    for key, gbs in KNOWN_PEAK_GBS.items():  # most specific names first
        if key in name:
            return gbs, f"table ({key})"
    return float("nan"), "unknown (pass --peak-gbs)"


def _time_ms(cupy, fn, repeats):
    """Median milliseconds of fn() over `repeats` runs, each timed with CUDA events (3 warm-up calls)."""
    return _cuda_ms(cupy, fn, repeats, warmup=3)


def _header(cupy, peak, peak_source):
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    from tinygrad_edu.backend.kernels import cuda

    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc_version = ".".join(map(str, nvrtc.getVersion()))
    except Exception:
        nvrtc_version = "?"
    rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
    return [
        f"GPU      {props['name'].decode()}, compute capability {dev.compute_capability}, "
        f"{dev.attributes['MultiProcessorCount']} SMs, {props['totalGlobalMem'] / 2**30:.0f} GiB",
        f"peak     {peak:.0f} GB/s memory bandwidth ({peak_source})",
        f"software CuPy {cupy.__version__}, CUDA runtime {rt // 1000}.{rt % 1000 // 10}, driver {drv // 1000}."
        f"{drv % 1000 // 10}, NVRTC {nvrtc_version}, NumPy {np.__version__}, Python {platform.python_version()}",
        f"headers  {', '.join(cuda.include_dirs())}",
    ]


def run_benchmarks(cupy, repeats, peak):
    from tinygrad_edu.backend.kernels import cuda

    rows = []
    rng = cupy.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape, dtype=np.float32).astype(np.float16)

    # GEMM 2-D
    n = 4096
    a, b = rand(n, n), rand(n, n)
    flop = 2 * n**3
    t_ours = _time_ms(cupy, lambda: cuda.matmul_fp16(a, b, kernel="wmma"), repeats)
    t_cublas = _time_ms(cupy, lambda: cupy.matmul(a, b), repeats)
    t_simt = _time_ms(cupy, lambda: cuda.matmul_fp16(a, b, kernel="simt"), max(3, repeats // 3))
    rows.append(("GEMM 2-D 4096^3 WMMA (ours)", t_ours, f"{flop / t_ours / 1e9:.1f} TFLOP/s",
                 f"{100 * t_cublas / t_ours:.0f}% of cuBLAS"))
    rows.append(("GEMM 2-D 4096^3 cupy.matmul (cuBLAS)", t_cublas, f"{flop / t_cublas / 1e9:.1f} TFLOP/s", ""))
    rows.append(("GEMM 2-D 4096^3 SIMT fallback (ours)", t_simt, f"{flop / t_simt / 1e9:.1f} TFLOP/s",
                 f"{100 * t_cublas / t_simt:.0f}% of cuBLAS"))
    a = b = None  # free the GPU memory

    # GEMM batched
    batch, m = 64, 512
    a, b = rand(batch, m, m), rand(batch, m, m)
    flop = 2 * batch * m**3
    t_ours = _time_ms(cupy, lambda: cuda.matmul_fp16(a, b), repeats)
    t_cupy = _time_ms(cupy, lambda: cupy.matmul(a, b), repeats)
    rows.append(("GEMM batched 64x512^3 WMMA (ours)", t_ours, f"{flop / t_ours / 1e9:.1f} TFLOP/s",
                 f"{t_cupy / t_ours:.2f}x cupy.matmul"))
    rows.append(("GEMM batched 64x512^3 cupy.matmul", t_cupy, f"{flop / t_cupy / 1e9:.1f} TFLOP/s", ""))
    a = b = None  # free the GPU memory

    # dot
    n = 2**27
    a, b = rand(n), rand(n)
    t = _time_ms(cupy, lambda: cuda.dot_fp16(a, b, np.float32), repeats)
    gbs = 2 * n * 2 / t / 1e6
    rows.append(("dot 2^27 float16, FP32 accumulation", t, f"{gbs:.0f} GB/s", f"{100 * gbs / peak:.0f}% of peak"))
    a = b = None  # free the GPU memory

    # batchnorm
    shape = (256, 256, 56, 56)
    x, dy = rand(*shape), rand(*shape)
    w, bias = cupy.ones(shape[1], np.float32), cupy.zeros(shape[1], np.float32)
    nbytes = x.size * 2
    _, mean, _, inv_std = cuda.batch_norm_fp16_forward(x, w, bias)
    t_f = _time_ms(cupy, lambda: cuda.batch_norm_fp16_forward(x, w, bias), repeats)
    t_b = _time_ms(cupy, lambda: cuda.batch_norm_fp16_backward(x, dy, mean, inv_std, w), repeats)
    for label, t, passes, minimum in (("forward", t_f, 3, 2), ("backward", t_b, 5, 3)):
        gbs = passes * nbytes / t / 1e6
        rows.append((f"batchnorm {label} (256,256,56,56) float16", t, f"{gbs:.0f} GB/s",
                     f"{100 * gbs / peak:.0f}% of peak ({minimum * nbytes / t / 1e6:.0f} GB/s counting one pass)"))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-tests", action="store_true", help="skip pytest -m gpu")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--peak-gbs", type=float, default=None, help="peak memory bandwidth, GB/s")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    cupy = _gpu()

    status = 0
    if not args.no_tests:
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:warnings", "-p", "no:cacheprovider"]
        print("$", " ".join(cmd), flush=True)
        status = 1 if subprocess.run(cmd, cwd=ROOT).returncode else 0

    peak, peak_source = _peak_gbs(cupy, args.peak_gbs)
    lines = _header(cupy, peak, peak_source)
    rows = run_benchmarks(cupy, args.repeats, peak)
    print()
    print("\n".join(lines))
    print()
    print(f"{'benchmark':<44} {'median ms':>10}  {'throughput':>14}  comparison")
    for name, ms, throughput, comparison in rows:
        print(f"{name:<44} {ms:>10.3f}  {throughput:>14}  {comparison}")
    if args.json:
        args.json.write_text(json.dumps({"header": lines, "rows": rows}, indent=2))
    if status:
        print("\ngpu_check: some GPU tests FAILED (see above)")
    return status


if __name__ == "__main__":
    sys.exit(main())
