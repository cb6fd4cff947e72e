"""Time one SGD training step of a Linear + ReLU MLP: the engine against the same MLP written by hand in NumPy.

What is measured
    One training step = forward, softmax cross-entropy (mean) loss, backward, in-place SGD update, in float32 on
    the CPU, for two networks:

    (a) "disc": 2 -> 32, sixteen hidden layers 32 -> 32, -> 2 (18 Linear layers, ReLU between them), batch 100.
        Tiny matrices: the step is dominated by per-op Python overhead (the tape, op dispatch, the optimizer loop).
    (b) 784 -> 512 -> 512 -> 10, batch 128. Larger matrices: the step is dominated by the matrix products (BLAS).

    The engine step is what a user writes: ``opt.zero_grad(); loss = F.cross_entropy(model(x), y);
    loss.backward(); opt.step()``. The hand-written step does the same math with plain NumPy calls:
    ``y = x W^T + b``, ``relu``, softmax cross-entropy, then ``dW = G^T X``, ``db = sum G``, ``dX = G W``, the
    relu mask, and ``W -= lr * dW``. Both start from the same weights (the engine model's initial weights are
    copied) and the same seeded data; before any timing the script asserts that one step gives the same loss and
    the same gradients and updated weights on both sides, so both really compute the same thing.

Why a ratio
    Absolute times depend on the machine (CPU, BLAS, thread count, load from other users). The hand-written NumPy
    step is the floor an engine built on NumPy can reach: same array library, same BLAS, no tape. The ratio
    engine / hand-written is therefore the engine's overhead, and it is far more stable across machines than
    milliseconds. Targets: (a) <= 1.5x (Python overhead must stay small next to 18 layers of tiny matmuls),
    (b) <= 1.1x (when BLAS dominates, the engine must add almost nothing).

How it is timed
    Warm-up, then for each implementation a block size N is chosen so that a block of N steps takes ~0.2 s.
    Blocks of the implementations alternate (engine, numpy, [torch], then the reverse order on the next repeat),
    so slow phases of a noisy shared machine hit all of them alike; the weights are reset (untimed) before every
    block so every block does the same work. Reported: the median over the repeats of the time per step, and the
    ratio of the medians. The garbage collector stays on (it is part of the engine's real cost), but a collection
    is run before each block so no block pays for another's garbage.

If PyTorch is importable, the same MLP in PyTorch (CPU, float32) is timed too, for reference; it is never needed.

Usage (from the repository root)::

    python benchmarks/bench_mlp_step.py                 # both configurations, 7 repeats
    python benchmarks/bench_mlp_step.py --config a --repeats 11 --json results.json
    python benchmarks/bench_mlp_step.py --profile a     # cProfile of the engine step instead of the benchmark
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinygrad_edu
from tinygrad_edu import Tensor, nn
from tinygrad_edu.datasets import disc
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD

LR = 0.01
SEED = 0
BLOCK_SECONDS = 0.2
WARMUP_SECONDS = 0.1


@dataclass(frozen=True)
class Config:
    key: str
    name: str
    sizes: tuple[int, ...]  # layer widths, input first, classes last
    batch: int
    target: float  # the ratio engine / hand-written to stay under
    jit_target: float  # the same for the step captured and replayed by tinygrad_edu.jit


CONFIGS = {
    "a": Config("a", "disc 2-32x17-2, batch 100", (2,) + (32,) * 17 + (2,), 100, 1.5, 1.05),
    "b": Config("b", "784-512-512-10, batch 128", (784, 512, 512, 10), 128, 1.1, 1.02),
}


def make_data(config: Config, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs (float32) and class labels (int64)."""
    rng = np.random.default_rng(seed)
    if config.key == "a":  # the course's disc problem: points in [-1, 1]², class 1 inside the disc of area 2
        x, y = disc(config.batch, seed=seed)
    else:
        x = rng.standard_normal((config.batch, config.sizes[0]), dtype=np.float32)
        y = rng.integers(0, config.sizes[-1], size=config.batch, dtype=np.int64)
    return x, y


# ------------------------------------------------------------------------------------------------------------------
# the three implementations of one step
# ------------------------------------------------------------------------------------------------------------------
class EngineMLP:
    """The MLP as a user of the engine writes it."""

    def __init__(self, config: Config, x: np.ndarray, y: np.ndarray, lr: float = LR):
        tinygrad_edu.manual_seed(SEED)
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(fan_in, fan_out))
        self.model = nn.Sequential(*layers)
        self.params = list(self.model.parameters())
        self.opt = SGD(self.params, lr=lr)
        self.x, self.y = Tensor(x), Tensor(y)

    def step(self) -> Tensor:
        return self.step_on(self.x, self.y)

    def step_on(self, x: Tensor, y: Tensor) -> Tensor:
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def weights(self) -> list[np.ndarray]:
        """Parameters in order W0, b0, W1, b1, ... (copies)."""
        return [p.numpy().copy() for p in self.params]

    def grads(self) -> list[np.ndarray]:
        return [p.grad.numpy().copy() for p in self.params]

    def load(self, weights: list[np.ndarray]) -> None:
        for p, w in zip(self.params, weights):
            p.data[...] = w  # in place: the optimizer holds these arrays


class JitEngine:
    """An engine (``EngineMLP`` or a subclass) whose step is captured and replayed by ``tinygrad_edu.jit``."""

    def __init__(self, engine: EngineMLP):
        self.engine = engine
        self._step = tinygrad_edu.jit(engine.step_on, strict=True)  # a step that cannot be replayed is a bug here

    def step(self) -> Tensor:
        return self._step(self.engine.x, self.engine.y)

    def load(self, weights: list[np.ndarray]) -> None:
        self.engine.load(weights)

    def weights(self) -> list[np.ndarray]:
        return self.engine.weights()


def check_jit(make_engine: Callable[[], EngineMLP], steps: int = 5) -> None:
    """The jitted engine's weights after ``steps`` steps equal the eager engine's, bit for bit (else an error)."""
    eager, jitted = make_engine(), JitEngine(make_engine())
    for _ in range(steps):
        eager.step()
        jitted.step()
    assert jitted._step.stats["replays"] == steps - 2, jitted._step.stats
    assert all(np.array_equal(a, b) for a, b in zip(eager.weights(), jitted.weights())), "jit and eager differ"


def blas_threads() -> int:
    """The threads of NumPy's BLAS (threadpoolctl, when installed), else the cores this process may use: the
    thread count PyTorch gets in the benchmarks, so that neither side has more cores."""
    pool = _blas_pool()
    if pool is not None and pool.get("num_threads"):
        return int(pool["num_threads"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class NumpyMLP:
    """The same MLP by hand: explicit forward, hand-written backward, in-place SGD."""

    def __init__(self, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float = LR):
        self.W = [w.copy() for w in weights[0::2]]
        self.b = [b.copy() for b in weights[1::2]]
        self.x, self.y, self.lr = x, y, lr
        self.rows = np.arange(x.shape[0])
        self.last_grads: list[np.ndarray] | None = None  # set to [] to record the gradients of the next step

    def step(self) -> float:
        W, b, lr, rows, y = self.W, self.b, self.lr, self.rows, self.y
        last = len(W) - 1
        # forward: acts[i] is the input of layer i (acts[i] > 0 is the relu mask of layer i - 1)
        acts = [self.x]
        a = self.x
        for i in range(last):
            a = np.maximum(a @ W[i].T + b[i], 0)
            acts.append(a)
        logits = a @ W[last].T + b[last]
        # softmax cross-entropy, mean over the batch
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[rows, y]))
        # backward: G = dL/dlogits = (softmax - onehot) / n, then layer by layer
        G = exp / sum_exp
        G[rows, y] -= 1
        G /= len(y)
        record = self.last_grads
        for i in range(last, -1, -1):
            dW = G.T @ acts[i]
            db = G.sum(axis=0)
            if i:
                G = G @ W[i]  # dX with the weights before the update
                G *= acts[i] > 0  # relu mask
            if record is not None:
                record[0:0] = [dW, db]  # built last layer first
            W[i] -= lr * dW
            b[i] -= lr * db
        return loss

    def weights(self) -> list[np.ndarray]:
        return [p.copy() for pair in zip(self.W, self.b) for p in pair]

    def load(self, weights: list[np.ndarray]) -> None:
        for p, w in zip((p for pair in zip(self.W, self.b) for p in pair), weights):
            p[...] = w


class TorchMLP:
    """The same MLP in PyTorch on the CPU (only built when torch imports)."""

    def __init__(self, torch, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float = LR):
        self.torch = torch
        layers = []
        for i, w in enumerate(weights[0::2]):
            if i:
                layers.append(torch.nn.ReLU())
            layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
        self.model = torch.nn.Sequential(*layers).float()
        self.params = list(self.model.parameters())
        self.load(weights)
        self.opt = torch.optim.SGD(self.params, lr=lr)
        self.x, self.y = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss

    def weights(self) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in self.params]

    def load(self, weights: list[np.ndarray]) -> None:
        with self.torch.no_grad():
            for p, w in zip(self.params, weights):
                p.copy_(self.torch.from_numpy(w))


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Columns sized to their widest cell: the first left-aligned, the others right-aligned (the benchmarks' tables)."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def import_torch():
    """PyTorch if it imports, else None (it is optional and never installed by this script)."""
    try:
        import torch
    except Exception:
        return None
    return torch


# ------------------------------------------------------------------------------------------------------------------
# agreement check
# ------------------------------------------------------------------------------------------------------------------
def _max_rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest |a - b| over each array, relative to the largest |b| of that array."""
    return max(float(np.max(np.abs(x - y))) / max(float(np.max(np.abs(y))), 1e-30) for x, y in zip(a, b))


def check_agreement(engine: EngineMLP, numpy_mlp: NumpyMLP, torch_mlp: TorchMLP | None) -> dict:
    """One step on each side from identical weights; assert equal losses, gradients and updated weights."""
    w0 = engine.weights()
    numpy_mlp.load(w0)
    numpy_mlp.last_grads = []
    loss_e = engine.step().item()
    loss_n = numpy_mlp.step()
    grads_n, numpy_mlp.last_grads = numpy_mlp.last_grads, None
    loss_rel = abs(loss_e - loss_n) / abs(loss_n)
    grad_rel = _max_rel_diff(engine.grads(), grads_n)
    weight_rel = _max_rel_diff(engine.weights(), numpy_mlp.weights())
    weight_abs = max(float(np.max(np.abs(a - b))) for a, b in zip(engine.weights(), numpy_mlp.weights()))
    assert loss_rel <= 1e-5, f"losses differ: engine {loss_e!r}, numpy {loss_n!r} (relative {loss_rel:.2e})"
    assert grad_rel <= 1e-4, f"gradients differ: max relative difference {grad_rel:.2e}"
    assert weight_rel <= 1e-5 and weight_abs <= 1e-5, f"updated weights differ: {weight_abs:.2e} ({weight_rel:.2e} rel)"
    out = dict(loss_engine=loss_e, loss_numpy=loss_n, loss_rel_diff=loss_rel, grad_max_rel_diff=grad_rel,
               weight_max_abs_diff=weight_abs, weight_max_rel_diff=weight_rel)
    if torch_mlp is not None:  # reported, not asserted: torch's BLAS may sum in another order
        torch_mlp.load(w0)
        loss_t = float(torch_mlp.step().item())
        out.update(loss_torch=loss_t, torch_loss_rel_diff=abs(loss_t - loss_n) / abs(loss_n),
                   torch_weight_max_rel_diff=_max_rel_diff(torch_mlp.weights(), numpy_mlp.weights()))
        out["torch_agrees"] = out["torch_loss_rel_diff"] <= 1e-4 and out["torch_weight_max_rel_diff"] <= 1e-4
    engine.load(w0)
    numpy_mlp.load(w0)
    if torch_mlp is not None:
        torch_mlp.load(w0)
    return out


# ------------------------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------------------------
def _time_block(step: Callable[[], object], n: int) -> float:
    """Seconds per step over n back-to-back steps."""
    clock = time.perf_counter
    start = clock()
    for _ in range(n):
        step()
    return (clock() - start) / n


def _block_size(step: Callable[[], object]) -> int:
    """Warm up, then the number of steps that takes about BLOCK_SECONDS.

    The time per step is the fastest of three short measurements, so that one hiccup of a shared machine during
    calibration does not shrink the blocks to a handful of steps.
    """
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < WARMUP_SECONDS or n < 3:
        step()
        n += 1
    per_step = min(_time_block(step, max(2, n // 4)) for _ in range(3))
    return max(3, math.ceil(BLOCK_SECONDS / per_step))


def time_interleaved(steps: dict[str, Callable[[], object]], repeats: int,
                     reset: Callable[[str], None] = lambda name: None) -> tuple[dict[str, int], dict[str, list[float]]]:
    """Seconds per step of each implementation, ``repeats`` blocks each: the block sizes from ``_block_size``, then
    the blocks interleaved (order reversed every other repeat), each after ``reset(name)`` and a garbage collection
    (both untimed). Returns (steps per block, seconds per step of every block), by name."""
    sizes = {name: _block_size(step) for name, step in steps.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            reset(name)
            gc.collect()
            times[name].append(_time_block(steps[name], sizes[name]))
    return sizes, times


@contextlib.contextmanager
def block_seconds(block: float, warmup: float):
    """Time with blocks of ~``block`` seconds after ``warmup`` seconds (instead of BLOCK_SECONDS, WARMUP_SECONDS),
    in every benchmark that uses ``_block_size``; ``tinygrad-edu bench --quick`` uses short ones."""
    global BLOCK_SECONDS, WARMUP_SECONDS
    saved = BLOCK_SECONDS, WARMUP_SECONDS
    BLOCK_SECONDS, WARMUP_SECONDS = block, warmup
    try:
        yield
    finally:
        BLOCK_SECONDS, WARMUP_SECONDS = saved


def run_config(config: Config, repeats: int, torch) -> dict:
    x, y = make_data(config)
    engine = EngineMLP(config, x, y)
    numpy_mlp = NumpyMLP(engine.weights(), x, y)
    torch_mlp = TorchMLP(torch, engine.weights(), x, y) if torch is not None else None
    agreement = check_agreement(engine, numpy_mlp, torch_mlp)
    w0 = engine.weights()

    check_jit(lambda: EngineMLP(config, x, y))
    jitted = JitEngine(EngineMLP(config, x, y))
    impls: dict[str, object] = {"engine": engine, "jit": jitted, "numpy": numpy_mlp}
    if torch_mlp is not None:
        impls["torch"] = torch_mlp
    sizes, times = time_interleaved({name: impl.step for name, impl in impls.items()}, repeats,
                                    reset=lambda name: impls[name].load(w0))  # every block does the same work
    med = {name: statistics.median(t) for name, t in times.items()}
    paired = [e / n for e, n in zip(times["engine"], times["numpy"])]
    result = dict(
        config=config.key, name=config.name, sizes=list(config.sizes), batch=config.batch, lr=LR,
        linear_layers=len(config.sizes) - 1, target_ratio=config.target, repeats=repeats, block_steps=sizes,
        ms_per_step={name: 1e3 * m for name, m in med.items()},
        ms_per_step_all={name: [1e3 * t for t in ts] for name, ts in times.items()},
        ratio=med["engine"] / med["numpy"], jit_ratio=med["jit"] / med["numpy"], jit_target_ratio=config.jit_target,
        ratio_paired_median=statistics.median(paired), ratio_paired_min=min(paired), ratio_paired_max=max(paired),
        agreement=agreement,
    )
    result["meets_target"] = result["ratio"] <= config.target
    result["jit_meets_target"] = result["jit_ratio"] <= config.jit_target
    if torch_mlp is not None:
        result["torch_ratio"] = med["torch"] / med["numpy"]
    return result


# ------------------------------------------------------------------------------------------------------------------
# the machine
# ------------------------------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _blas() -> str:
    """The BLAS NumPy was built against, and its threads (threadpoolctl, when installed)."""
    blas = "unknown"
    with contextlib.suppress(Exception):
        with contextlib.redirect_stdout(io.StringIO()):
            deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    p = _blas_pool()
    if p is not None:
        blas += f" [{p.get('internal_api')} {p.get('version')}, {p.get('num_threads')} threads]"
    return blas


def _blas_pool() -> dict | None:
    """threadpoolctl's description of NumPy's BLAS thread pool, or None (not installed, or no BLAS pool found)."""
    with contextlib.suppress(Exception):
        import threadpoolctl

        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return pools[0]
    return None


def cores_text(machine: dict) -> str:
    """``"N cores"``, with ``" (M usable)"`` when this process may run on fewer (CPU affinity)."""
    return f"{machine['cores']} cores" + (f" ({machine['usable_cores']} usable)"
                                         if machine.get("usable_cores", machine["cores"]) != machine["cores"] else "")


def machine_info(torch) -> dict:
    info = dict(
        cpu=_cpu_model(), cores=os.cpu_count(), python=platform.python_version(), numpy=np.__version__, blas=_blas(),
        platform=platform.platform(), tinygrad_edu=f"{tinygrad_edu.__version__} ({Path(tinygrad_edu.__file__).parent})",
        thread_env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                    if k in os.environ},
    )
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    info["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)" if torch is not None else None
    return info


def report_rows(results: list[dict], has_torch: bool, digits: int) -> list[list[str]]:
    """One row per ``run_config`` result (here or in ``bench_conv2d``): configuration, engine and NumPy ms with
    ``digits`` decimals, ratio, target, ok, then with ``has_torch`` PyTorch's ms and its ratio to NumPy."""
    rows = []
    for r in results:
        ms = r["ms_per_step"]
        row = [f"({r['config']}) {r['name']}", f"{ms['engine']:.{digits}f}", f"{ms['numpy']:.{digits}f}",
               f"{r['ratio']:.2f}x", f"<= {r['target_ratio']}x", "yes" if r["meets_target"] else "NO"]
        if has_torch:
            row += [f"{ms['torch']:.{digits}f}", f"{r['torch_ratio']:.2f}x"] if "torch" in ms else ["-", "-"]
        rows.append(row)
    return rows


def print_report(results: list[dict], machine: dict) -> None:
    has_torch = any("torch" in r["ms_per_step"] for r in results)
    print(f"machine: {machine['cpu']}, {cores_text(machine)}")
    print(f"python {machine['python']}, numpy {machine['numpy']}, BLAS {machine['blas']}"
          + (f", threads {machine['thread_env']}" if machine["thread_env"] else ""))
    print(f"tinygrad_edu {machine['tinygrad_edu']}; torch: {machine['torch'] or 'not installed (column omitted)'}")
    print()
    header = ["config", "engine ms/step", "numpy ms/step", "ratio", "target", "ok"]
    if has_torch:
        header += ["torch ms/step", "torch/numpy"]
    print_table(header, report_rows(results, has_torch, digits=3))
    print()
    for r in results:
        a = r["agreement"]
        print(f"({r['config']}) median of {r['repeats']} blocks of {r['block_steps']} steps; per-block ratios "
              f"{r['ratio_paired_min']:.2f}..{r['ratio_paired_max']:.2f} (median {r['ratio_paired_median']:.2f}); "
              f"agreement after one step: loss {a['loss_engine']:.6f} vs {a['loss_numpy']:.6f} "
              f"(rel {a['loss_rel_diff']:.1e}), grads rel {a['grad_max_rel_diff']:.1e}, "
              f"weights abs {a['weight_max_abs_diff']:.1e}")
        if "torch_agrees" in a and not a["torch_agrees"]:
            print(f"    warning: torch disagrees (loss rel {a['torch_loss_rel_diff']:.1e}, "
                  f"weights rel {a['torch_weight_max_rel_diff']:.1e}); its timing may not be comparable")


def engine_rows(benchmark: str, result: dict) -> list[dict]:
    """The ``tinygrad-edu bench`` rows of one ``run_config`` result (here or in ``bench_conv2d``): the engine against
    the hand-written NumPy, with the target, and against PyTorch when it was timed."""
    ms, case = result["ms_per_step"], f"({result['config']}) {result['name']}"
    rows = [dict(benchmark=benchmark, case=case, a="engine", b="numpy by hand", a_ms=ms["engine"], b_ms=ms["numpy"],
                 ratio=result["ratio"], target=f"<= {result['target_ratio']}", ok=result["meets_target"])]
    if "jit" in ms:
        rows.append(dict(benchmark=benchmark, case=case, a="engine, jit", b="numpy by hand", a_ms=ms["jit"],
                         b_ms=ms["numpy"], ratio=result["jit_ratio"], target=f"<= {result['jit_target_ratio']}",
                         ok=result["jit_meets_target"]))
    if "torch" in ms:
        rows.append(dict(benchmark=benchmark, case=case, a="engine", b="torch", a_ms=ms["engine"], b_ms=ms["torch"],
                         ratio=ms["engine"] / ms["torch"], target="", ok=None))
        if "jit" in ms:
            rows.append(dict(benchmark=benchmark, case=case, a="engine, jit", b="torch", a_ms=ms["jit"],
                             b_ms=ms["torch"], ratio=ms["jit"] / ms["torch"],
                             target="< 1.0" if result["config"] == "a" else "", ok=ms["jit"] < ms["torch"]
                             if result["config"] == "a" else None))
    return rows


def suite_rows(repeats: int, torch, configs: tuple[str, ...] = ("a", "b")) -> list[dict]:
    """Rows for ``tinygrad-edu bench``: per configuration, engine vs hand-written NumPy (and vs PyTorch), as
    ``dict(benchmark, case, a, b, a_ms, b_ms, ratio=a_ms / b_ms, target, ok)``."""
    return [row for key in configs for row in engine_rows("MLP SGD step", run_config(CONFIGS[key], repeats, torch))]


# ------------------------------------------------------------------------------------------------------------------
# profile
# ------------------------------------------------------------------------------------------------------------------
def profile_engine(config: Config, steps: int, top: int) -> None:
    """cProfile of ``steps`` engine steps, sorted by own time (what each function costs without its callees)."""
    x, y = make_data(config)
    engine = EngineMLP(config, x, y)
    for _ in range(20):
        engine.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        engine.step()
    profiler.disable()
    print(f"cProfile of {steps} engine steps, config ({config.key}) {config.name}; divide times by {steps} per step")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per implementation (default 7)")
    parser.add_argument("--config", choices=["a", "b", "all"], default="all", help="which network (default all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--profile", choices=["a", "b"], help="print a cProfile of the engine step instead")
    parser.add_argument("--profile-steps", type=int, default=500, help="steps to profile (default 500)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    if args.profile:
        profile_engine(CONFIGS[args.profile], args.profile_steps, top=20)
        return 0

    torch = import_torch()
    if torch is not None:
        torch.manual_seed(SEED)
    keys = ["a", "b"] if args.config == "all" else [args.config]
    machine = machine_info(torch)
    results = [run_config(CONFIGS[k], args.repeats, torch) for k in keys]
    print_report(results, machine)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, results=results), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
