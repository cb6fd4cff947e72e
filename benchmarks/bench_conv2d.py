"""Time one Conv2d forward + backward: the engine against the same computation written by hand in NumPy.

What is measured
    ``y = conv2d(x, W, b, padding=1)`` for x (N, C, H, W), W (C_out, C, K, K), then the backward pass for a fixed
    upstream gradient G: dx, dW and db. float32 on the CPU, for two configurations (N, C, H, W, C_out, K):

    (a) (32, 16, 16, 16, 32, 3): many small images, few channels;
    (b) (8, 64, 32, 32, 64, 3): fewer, larger images, more channels.

    The engine step is what a user writes: ``y = F.conv2d(x, w, b, padding=1); y.backward(G)`` (with the three
    ``.grad`` reset to None first, as ``zero_grad`` does). The hand-written step does the same math with plain
    NumPy calls: pad, im2col from K·K strided slices, one matrix product W_mat @ X_col (+ b); then
    dW = G_mat @ X_colᵀ, db = Σ G, dX_col = W_matᵀ @ G_mat and col2im (each kernel offset's slice added back into
    a zero padded gradient, then cropped). Before any timing the script asserts that both give the same y, dx, dW
    and db, so both really compute the same thing.

Why a ratio
    The hand-written NumPy step is the floor an engine built on NumPy can reach: same array library, same BLAS, no
    tape, no checks. The ratio engine / hand-written is the engine's overhead. Target: <= 1.2x for both.

How it is timed
    As in ``bench_mlp_step.py`` (whose timing and machine helpers this script uses): warm-up, blocks of ~0.2 s,
    implementations interleaved (engine, numpy, [torch], then reversed), a collection before each block, medians
    over the repeats, and the ratio of the medians.

The allocator matters for (b)
    Its arrays are MBs (X_col is 19 MB). With glibc's default malloc settings, the order in which a side frees them
    (the engine's tape drops X_col after the backward, the old ``.grad`` when the next step starts) can make malloc
    hand the memory back to the OS and page-fault it in again on every step. Which side pays varies from run to run,
    so the ratio of (b) does too; with ``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=4000000000`` malloc
    keeps freed memory and neither side pays. Report a run with and one without these settings (what they changed,
    measured: benchmarks/README.md).

If PyTorch is importable, ``torch.nn.functional.conv2d`` forward + backward (CPU, float32) is timed too, for
reference; it is never needed.

Usage (from the repository root)::

    python benchmarks/bench_conv2d.py                      # both configurations, 7 repeats
    python benchmarks/bench_conv2d.py --config a --repeats 11 --json results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tinygrad_edu.benchmarks.bench_mlp_step import (
    engine_rows,
    import_torch,
    machine_info,
    print_table,
    report_rows,
    time_interleaved,
)

from tinygrad_edu import Tensor
from tinygrad_edu.nn import functional as F

SEED = 0
PADDING = 1


@dataclass(frozen=True)
class Config:
    key: str
    shape: tuple[int, int, int, int, int, int]  # N, C, H, W, C_out, K
    target: float = 1.2

    @property
    def name(self) -> str:
        n, c, h, w, o, k = self.shape
        return f"N={n} C={c} {h}x{w} -> C_out={o}, {k}x{k}, pad {PADDING}"


CONFIGS = {"a": Config("a", (32, 16, 16, 16, 32, 3)), "b": Config("b", (8, 64, 32, 32, 64, 3))}


def make_data(config: Config, seed: int = SEED) -> dict[str, np.ndarray]:
    """Seeded float32 x, W, b and an upstream gradient G of the output's shape."""
    n, c, h, w, o, k = config.shape
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(c * k * k)
    oh, ow = h + 2 * PADDING - k + 1, w + 2 * PADDING - k + 1
    return dict(x=rng.standard_normal((n, c, h, w), dtype=np.float32),
                w=rng.uniform(-bound, bound, (o, c, k, k)).astype(np.float32),
                b=rng.uniform(-bound, bound, o).astype(np.float32),
                g=rng.standard_normal((n, o, oh, ow), dtype=np.float32))


# ------------------------------------------------------------------------------------------------------------------
# the implementations of one forward + backward
# ------------------------------------------------------------------------------------------------------------------
class EngineConv:
    def __init__(self, data: dict[str, np.ndarray]):
        self.x, self.w, self.b = (Tensor(data[k], requires_grad=True) for k in "xwb")
        self.g = Tensor(data["g"])

    def step(self):
        self.x.grad = self.w.grad = self.b.grad = None
        y = F.conv2d(self.x, self.w, self.b, padding=PADDING)
        y.backward(self.g)
        return y

    def results(self) -> list[np.ndarray]:
        y = self.step()
        return [y.numpy(), self.x.grad.numpy(), self.w.grad.numpy(), self.b.grad.numpy()]


class NumpyConv:
    """im2col + matmul forward, matmul + col2im backward, by hand (stride 1, symmetric padding)."""

    def __init__(self, data: dict[str, np.ndarray]):
        self.x, self.w, self.b, self.g = data["x"], data["w"], data["b"], data["g"]

    def step(self):
        x, w, b, g, p = self.x, self.w, self.b, self.g, PADDING
        n, c, h, wd = x.shape
        o, _, k, _ = w.shape
        oh, ow = h + 2 * p - k + 1, wd + 2 * p - k + 1
        # forward: x_pad in (C, N, Hp, Wp) layout, so X_col is (C·K·K, N·OH·OW) and the product is one GEMM
        x_pad = np.zeros((c, n, h + 2 * p, wd + 2 * p), dtype=x.dtype)
        x_pad[:, :, p:p + h, p:p + wd] = x.transpose(1, 0, 2, 3)
        x_col = np.stack([x_pad[:, :, i:i + oh, j:j + ow] for i in range(k) for j in range(k)], axis=1)
        x_col = x_col.reshape(c * k * k, n * oh * ow)
        w_mat = w.reshape(o, -1)
        y_mat = w_mat @ x_col
        y_mat += b[:, None]
        y = y_mat.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)
        # backward
        g_mat = g.transpose(1, 0, 2, 3).reshape(o, -1)
        dw = (g_mat @ x_col.T).reshape(w.shape)
        db = g_mat.sum(axis=1)
        d_col = (w_mat.T @ g_mat).reshape(c, k, k, n, oh, ow)
        dx_pad = np.zeros_like(x_pad)
        for i in range(k):
            for j in range(k):
                dx_pad[:, :, i:i + oh, j:j + ow] += d_col[:, i, j]
        dx = dx_pad[:, :, p:p + h, p:p + wd].transpose(1, 0, 2, 3)
        return y, dx, dw, db

    def results(self) -> list[np.ndarray]:
        return list(self.step())


class TorchConv:
    def __init__(self, torch, data: dict[str, np.ndarray]):
        self.torch = torch
        self.x, self.w, self.b = (torch.from_numpy(data[k].copy()).requires_grad_() for k in "xwb")
        self.g = torch.from_numpy(data["g"].copy())

    def step(self):
        self.x.grad = self.w.grad = self.b.grad = None
        y = self.torch.nn.functional.conv2d(self.x, self.w, self.b, padding=PADDING)
        y.backward(self.g)
        return y

    def results(self) -> list[np.ndarray]:
        y = self.step()
        return [t.detach().numpy() for t in (y, self.x.grad, self.w.grad, self.b.grad)]


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)


def check_agreement(impls: dict) -> dict:
    """y, dx, dW, db of the engine and torch against the hand-written NumPy; asserted for the engine."""
    reference = impls["numpy"].results()
    out = {}
    for name in [n for n in impls if n != "numpy"]:
        diffs = [_rel_diff(a, r) for a, r in zip(impls[name].results(), reference)]
        out[f"{name}_max_rel_diff"] = dict(zip(("y", "dx", "dW", "db"), diffs))
        if name == "engine":
            assert max(diffs) <= 1e-5, f"engine and numpy disagree: relative differences (y, dx, dW, db) {diffs}"
        else:
            out[f"{name}_agrees"] = max(diffs) <= 1e-4
    return out


def run_config(config: Config, repeats: int, torch) -> dict:
    data = make_data(config)
    impls: dict[str, object] = {"engine": EngineConv(data), "numpy": NumpyConv(data)}
    if torch is not None:
        impls["torch"] = TorchConv(torch, data)
    agreement = check_agreement(impls)
    sizes, times = time_interleaved({name: impl.step for name, impl in impls.items()}, repeats)
    med = {name: statistics.median(t) for name, t in times.items()}
    paired = [e / n for e, n in zip(times["engine"], times["numpy"])]
    result = dict(
        config=config.key, name=config.name, shape=list(config.shape), padding=PADDING, dtype="float32",
        target_ratio=config.target, repeats=repeats, block_steps=sizes,
        ms_per_step={name: 1e3 * m for name, m in med.items()},
        ms_per_step_all={name: [1e3 * t for t in ts] for name, ts in times.items()},
        ratio=med["engine"] / med["numpy"], ratio_paired_min=min(paired), ratio_paired_max=max(paired),
        agreement=agreement,
    )
    result["meets_target"] = result["ratio"] <= config.target
    if torch is not None:
        result["torch_ratio"] = med["torch"] / med["numpy"]
    return result


def suite_rows(repeats: int, torch, configs: tuple[str, ...] = ("a", "b")) -> list[dict]:
    """Rows for ``tinygrad-edu bench``: per configuration, engine vs im2col by hand in NumPy (and vs torch)."""
    return [row for key in configs for row in engine_rows("conv2d fwd+bwd", run_config(CONFIGS[key], repeats, torch))]


def print_report(results: list[dict], machine: dict) -> None:
    print(f"machine: {machine['cpu']}, {machine['cores']} cores; python {machine['python']}, numpy {machine['numpy']}, "
          f"BLAS {machine['blas']}")
    print(f"tinygrad_edu {machine['tinygrad_edu']}; torch: {machine['torch'] or 'not installed (column omitted)'}")
    print()
    has_torch = any("torch" in r["ms_per_step"] for r in results)
    header = ["config", "engine ms", "numpy ms", "ratio", "target", "ok"] + (["torch ms", "torch/numpy"] if has_torch
                                                                              else [])
    print_table(header, report_rows(results, has_torch, digits=2))
    print()
    for r in results:
        a = r["agreement"]["engine_max_rel_diff"]
        print(f"({r['config']}) median of {r['repeats']} blocks of {r['block_steps']} steps; per-block ratios "
              f"{r['ratio_paired_min']:.2f}..{r['ratio_paired_max']:.2f}; engine vs numpy max rel diff "
              + ", ".join(f"{k} {v:.1e}" for k, v in a.items()))
        if r["agreement"].get("torch_agrees") is False:
            print("    warning: torch disagrees with numpy beyond 1e-4; its timing may not be comparable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    args = parser.parse_args(argv)
    torch = None if args.no_torch else import_torch()
    configs = list(CONFIGS.values()) if args.config == "all" else [CONFIGS[args.config]]
    results = [run_config(c, args.repeats, torch) for c in configs]
    machine = machine_info(torch)
    print_report(results, machine)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, results=results), indent=2))
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
