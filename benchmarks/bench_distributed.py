"""Data-parallel training on the CPU: one process against K = 2 under DistributedDataParallel (MPI).

What is measured
    One SGD training step (forward, softmax cross-entropy, backward, gradient all-reduce, update) of an MLP in
    float32: 256 -> 1024, two hidden layers 1024 -> 1024, -> 10 (4 Linear layers, each of the first three followed
    by BatchNorm1d and ReLU; 2.4 M parameters, 9 MiB of gradients), on random data.

    (1) Scaling. Strong: a fixed global batch of 512, one process with the whole batch against K processes with
        512 / K each under ``DistributedDataParallel``; reported: the median step times t1 and tK, the speed-up
        t1 / tK and the parallel efficiency t1 / (K tK) (1 is perfect). Weak: the batch per process fixed at
        512 / K, so one process with 512 / K against the same K-process run: efficiency t1 / tK. For reference,
        one process whose BLAS uses every core (threads instead of processes) against the K processes.
    (2) The all-reduce's share of the K-process step: ``ddp.reducer_stats["seconds"]`` per step (packing the
        gradients into flat buckets, the MPI all-reduce, unpacking the averages; it includes the time a process
        waits for a slower one) divided by the step time, and the bytes all-reduced per step.
    (3) Buckets against one all-reduce per parameter: the same K-process run with ``bucket_cap_mb=25`` (the
        default: every gradient in one flat array here) and with a tiny cap (1e-6 MB: one bucket, so one call,
        per parameter); calls per step and all-reduce seconds per step. Twice: for the MLP above (14 large
        tensors: packing 9 MiB into one flat array costs copies, one call per tensor costs 13 more latencies), and
        for a deep narrow net, 256 -> 32, sixteen layers 32 -> 32, -> 10 with BatchNorm1d (70 small tensors: the
        latencies dominate).
    (4) ``nn.SyncBatchNorm.convert_sync_batchnorm``: the K-process step with every BatchNorm1d synchronizing its
        batch statistics over the processes (per layer, two small all-reduces in forward: the sums, then the
        squared deviations; one in backward) against per-process BatchNorm1d; the difference is the cost of the
        synchronization.

How it runs and how it is timed
    MPI runs one Python process per rank, so this script launches its own workers: ``mpiexec -n K python
    bench_distributed.py --worker ddp ...`` for the K-process runs and ``python bench_distributed.py --worker
    single ...`` for the one-process ones; rank 0 prints its results as one JSON line, which this script reads.
    Every process does its BLAS on one thread (``OPENBLAS_NUM_THREADS=1`` ...), so that K processes use K cores and
    one process one core: the comparison is of processes, not of thread pools (the reference row gives the single
    process every core). In each launch, every model is warmed up, then timed over a block of steps (in the K-process
    run, from a barrier to the slowest process's end); the launches alternate (one process, K processes, the
    threaded reference, then the reverse order on the next repeat) so slow phases of a shared, noisy machine hit
    all of them alike, and the medians over the repeats are reported. Ratios are computed from the medians.

    After timing, the K replicas' parameters are compared (``DistributedDataParallel`` keeps them identical) and
    the losses checked to be finite.

Usage (from the repository root; needs ``mpi4py`` and an MPI launcher: ``pip install -e ".[distributed]"``)::

    python benchmarks/bench_distributed.py                     # 7 launches of each kind
    python benchmarks/bench_distributed.py --quick             # tiny MLP, a few steps: a smoke test (seconds)
    python benchmarks/bench_distributed.py --full --json results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tinygrad_edu.benchmarks.bench_mlp_step import cores_text, machine_info, print_table

import tinygrad_edu
from tinygrad_edu import Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD

SEED = 0
LR = 1e-3
CLASSES = 10
DEFAULT_CAP_MB, TINY_CAP_MB = 25.0, 1e-6
#: the environment variables that set the BLAS threads of NumPy (OpenBLAS, MKL) and of OpenMP
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RESULT_PREFIX = "RESULT "  # the line of a worker's stdout that carries its JSON


@dataclass(frozen=True)
class Setting:
    """The network, the global batch and the timing of one mode (``--quick``, default, ``--full``)."""

    features: int
    width: int
    batch: int  # global batch: one process takes all of it, each of K processes batch / K
    steps: int  # timed steps per block
    warmup: int  # untimed steps before the first block
    repeats: int  # launches of each kind (the median is reported)


QUICK = Setting(features=32, width=64, batch=64, steps=4, warmup=2, repeats=3)
DEFAULT = Setting(features=256, width=1024, batch=512, steps=8, warmup=3, repeats=7)
FULL = Setting(features=256, width=1024, batch=512, steps=16, warmup=4, repeats=11)

#: the deep narrow net of (3): features -> 32, sixteen hidden layers 32 -> 32, -> 10, each but the last Linear
#: followed by BatchNorm1d and ReLU (18 Linear, 17 BatchNorm1d: 70 small parameter tensors)
DEEP_WIDTH, DEEP_HIDDEN = 32, 16
#: the K-process cases: name -> (network, bucket_cap_mb, SyncBatchNorm)
DDP_CASES = {
    "buckets": ("mlp", DEFAULT_CAP_MB, False),
    "per-parameter": ("mlp", TINY_CAP_MB, False),
    "syncbn": ("mlp", DEFAULT_CAP_MB, True),
    "deep buckets": ("deep", DEFAULT_CAP_MB, False),
    "deep per-parameter": ("deep", TINY_CAP_MB, False),
}


# ------------------------------------------------------------------------------------------------------------------
# the workers: what each process runs
# ------------------------------------------------------------------------------------------------------------------
def make_model(setting: Setting, net: str = "mlp") -> nn.Module:
    """``"mlp"``: features -> width -> width -> width -> 10, Linear, BatchNorm1d, ReLU three times, then Linear;
    ``"deep"``: the same with DEEP_HIDDEN + 1 layers of width DEEP_WIDTH. Seeded: every call builds the same
    weights."""
    tinygrad_edu.manual_seed(SEED)
    width, hidden = (setting.width, 3) if net == "mlp" else (DEEP_WIDTH, DEEP_HIDDEN + 1)
    layers: list[nn.Module] = []
    last = setting.features
    for _ in range(hidden):
        layers += [nn.Linear(last, width), nn.BatchNorm1d(width), nn.ReLU()]
        last = width
    layers.append(nn.Linear(last, CLASSES))
    return nn.Sequential(*layers)


def make_data(setting: Setting) -> tuple[np.ndarray, np.ndarray]:
    """The global batch (the same on every process): x of shape (batch, features), labels in 0..9."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((setting.batch, setting.features), dtype=np.float32)
    return x, rng.integers(0, CLASSES, setting.batch)


class Trainer:
    """A model, its optimizer and its batch; ``step()`` is one training step as a user writes it."""

    def __init__(self, model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
        self.model, self.x, self.y = model, Tensor(x), Tensor(y)
        self.optimizer = SGD(model.parameters(), lr=LR)
        self.loss: Tensor | None = None

    def step(self) -> None:
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        self.loss = loss  # read (.item()) after the block, not inside it

    def run(self, steps: int) -> float:
        """Seconds per step over ``steps`` back-to-back steps."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - start) / steps


def worker_single(setting: Setting, processes: int, cases: list[str], reverse: bool) -> dict:
    """One process: ``whole`` trains on the global batch, ``share`` on one of K processes' share of it."""
    x, y = make_data(setting)
    rows = {"whole": setting.batch, "share": setting.batch // processes}
    trainers = {name: Trainer(make_model(setting), x[:rows[name]], y[:rows[name]]) for name in cases}
    for trainer in trainers.values():
        trainer.run(setting.warmup)
    seconds = {name: trainers[name].run(setting.steps) for name in (cases[::-1] if reverse else cases)}
    losses = [float(t.loss.item()) for t in trainers.values()]
    if not all(np.isfinite(losses)):
        raise FloatingPointError(f"bench_distributed: a loss is not finite: {losses}")
    return {"step_s": seconds}


def worker_ddp(setting: Setting, reverse: bool) -> dict:
    """Rank r of K trains on rows r·B … (r+1)·B - 1 of the global batch (B = batch / K), under each of
    ``DDP_CASES``. Returns on rank 0 (the others return an empty dict), per case: the step time of the slowest
    process, and per step the all-reduce seconds (mean over the processes), calls and bytes."""
    from tinygrad_edu import distributed as dist

    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    x, y = make_data(setting)
    b = setting.batch // size
    rows = slice(rank * b, (rank + 1) * b)
    ddps, trainers = {}, {}
    for name, (net, cap_mb, sync) in DDP_CASES.items():
        model = make_model(setting, net)
        if sync:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddps[name] = dist.DistributedDataParallel(model, bucket_cap_mb=cap_mb)
        trainers[name] = Trainer(ddps[name], x[rows], y[rows])
    for trainer in trainers.values():
        trainer.run(setting.warmup)

    def over_ranks(value: float, op: str) -> float:
        return float(dist.all_reduce(Tensor(np.array([value])), op).numpy()[0])

    out: dict = {"processes": size, "cases": {}}
    names = list(DDP_CASES)
    for name in names[::-1] if reverse else names:
        stats = ddps[name].reducer_stats
        stats.update(reductions=0, calls=0, bytes=0, seconds=0.0)  # count this block only
        dist.barrier()
        step_s = trainers[name].run(setting.steps)
        out["cases"][name] = {
            "step_s": over_ranks(step_s, "max"),  # the step ends when the slowest process ends it
            "allreduce_s": over_ranks(stats["seconds"], "avg") / stats["reductions"],
            "calls": stats["calls"] / stats["reductions"],
            "bytes": stats["bytes"] / stats["reductions"],
            "buckets": len(ddps[name].buckets),
            "parameters": len(list(ddps[name].parameters())),
        }
    for name, ddp in ddps.items():  # the replicas must still hold the same weights, and the losses be finite
        mine = np.concatenate([p.numpy().reshape(-1) for p in ddp.parameters()])
        rank0 = dist.broadcast(Tensor(mine.copy()), 0).numpy()
        out["cases"][name]["replica_max_abs_diff"] = over_ranks(float(np.max(np.abs(mine - rank0))), "max")
        out["cases"][name]["loss"] = loss = over_ranks(float(trainers[name].loss.item()), "max")
        if not np.isfinite(loss):
            raise FloatingPointError(f"bench_distributed: the loss of case {name!r} is not finite: {loss}")
    return out if rank == 0 else {}


def worker_main(args: argparse.Namespace) -> int:
    setting = Setting(**json.loads(args.setting))
    if args.worker == "single":
        result = worker_single(setting, args.processes, args.cases, args.reverse)
    else:
        result = worker_ddp(setting, args.reverse)
    if result:
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------------------------
# the launcher: runs the workers, interleaved, and reads their results
# ------------------------------------------------------------------------------------------------------------------
def find_mpiexec() -> str | None:
    from tinygrad_edu.distributed import find_mpiexec as find

    return find()


def unavailable_reason() -> str | None:
    """Why the K-process runs cannot start (mpi4py or mpiexec missing), or None."""
    from tinygrad_edu import distributed as dist

    if not dist.is_available():
        return "mpi4py is not installed (pip install 'tinygrad_edu[distributed]')"
    if find_mpiexec() is None:
        return "no mpiexec on the PATH (the mpich wheel, pip install mpich, brings one)"
    return None


def _load_average() -> float | None:
    """The 1-minute load average: how busy the machine was (None where the system does not tell)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _launch(command: list[str], threads: int, timeout: float) -> dict:
    """Run a worker with ``threads`` BLAS threads per process; its JSON result."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench_distributed: worker {' '.join(command[-8:])} failed (exit {proc.returncode}):\n"
                           + (proc.stderr or proc.stdout)[-2000:])
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def run(setting: Setting, processes: int = 2, log=print) -> dict:
    """Every launch of every kind, interleaved; the per-repeat numbers (lists, one entry per repeat)."""
    mpiexec = find_mpiexec()
    script = str(Path(__file__).resolve())
    cores = usable_cores()
    worker = [sys.executable, script, "--setting", json.dumps(dataclasses.asdict(setting)),
              "--processes", str(processes)]
    kinds = ["single", "ddp"] + (["threads"] if cores > 1 else [])
    raw: dict[str, list] = {"single": [], "ddp": [], "threads": []}
    timeout = 60 + 60 * setting.steps
    for r in range(setting.repeats):
        start = time.perf_counter()
        for kind in kinds if r % 2 == 0 else kinds[::-1]:
            reverse = ["--reverse"] if r % 2 else []
            if kind == "single":
                raw[kind].append(_launch(worker + ["--worker", "single", "--cases", "whole", "share"] + reverse, 1,
                                         timeout)["step_s"])
            elif kind == "threads":
                raw[kind].append(_launch(worker + ["--worker", "single", "--cases", "whole"], cores,
                                         timeout)["step_s"]["whole"])
            else:
                raw[kind].append(_launch([mpiexec, "-n", str(processes)] + worker + ["--worker", "ddp"] + reverse, 1,
                                         timeout)["cases"])
        log(f"  repeat {r + 1}/{setting.repeats}: {time.perf_counter() - start:.1f} s", flush=True)
    return raw


def summarize(raw: dict, setting: Setting, processes: int) -> dict:
    """Medians over the repeats, and the ratios computed from them."""
    def med(values: list[float]) -> float:
        return statistics.median(values)

    t1 = med([r["whole"] for r in raw["single"]])
    t1_share = med([r["share"] for r in raw["single"]])
    cases = {}
    for name in DDP_CASES:
        runs = [r[name] for r in raw["ddp"]]
        cases[name] = {
            "step_ms": 1e3 * med([c["step_s"] for c in runs]),
            "allreduce_ms": 1e3 * med([c["allreduce_s"] for c in runs]),
            "allreduce_share": med([c["allreduce_s"] / c["step_s"] for c in runs]),
            "calls_per_step": med([c["calls"] for c in runs]),
            "bytes_per_step": med([c["bytes"] for c in runs]),
            "buckets": runs[0]["buckets"], "parameters": runs[0]["parameters"],
            "replica_max_abs_diff": max(c["replica_max_abs_diff"] for c in runs),
            "loss": runs[-1]["loss"],
        }
    tk = cases["buckets"]["step_ms"] / 1e3
    out = {
        "setting": dataclasses.asdict(setting), "processes": processes,
        "model": f"{setting.features} -> 3 x {setting.width} (Linear, BatchNorm1d, ReLU) -> {CLASSES}",
        "strong": {"global_batch": setting.batch, "one_process_ms": 1e3 * t1, "k_processes_ms": 1e3 * tk,
                   "speedup": t1 / tk, "efficiency": t1 / (processes * tk)},
        "weak": {"batch_per_process": setting.batch // processes, "one_process_ms": 1e3 * t1_share,
                 "k_processes_ms": 1e3 * tk, "efficiency": t1_share / tk},
        "ddp": cases,
        "syncbn_cost_ms": cases["syncbn"]["step_ms"] - cases["buckets"]["step_ms"],
        "syncbn_ratio": cases["syncbn"]["step_ms"] / cases["buckets"]["step_ms"],
        "raw": raw,
    }
    if raw["threads"]:
        t_threads = med(raw["threads"])
        out["threads"] = {"threads": usable_cores(), "one_process_ms": 1e3 * t_threads, "speedup_of_k": t_threads / tk}
    return out


def suite_rows_from(result: dict) -> list[dict]:
    """Rows in the format of ``tinygrad-edu bench`` (``dict(benchmark, case, a, b, a_ms, b_ms, ratio, target,
    ok)``): K processes against one (target: parallel efficiency >= 75%, for the network and batch of the default
    and full settings; the quick setting's small network says ``n/a``), one all-reduce per parameter against
    buckets, SyncBatchNorm against BatchNorm1d."""
    k, strong, ddp = result["processes"], result["strong"], result["ddp"]
    case = f"MLP {result['setting']['width']}, batch {strong['global_batch']}"
    target = 1 / (0.75 * k)
    ratio = strong["k_processes_ms"] / strong["one_process_ms"]
    network = {key: result["setting"].get(key) for key in ("features", "width", "batch")}
    applies = any(network == {key: getattr(s, key) for key in network} for s in (DEFAULT, FULL))
    return [
        dict(benchmark="data parallel (MPI)", case=case, a=f"{k} processes (DDP)", b="1 process",
             a_ms=strong["k_processes_ms"], b_ms=strong["one_process_ms"], ratio=ratio,
             target=f"<= {target:.3g}" if applies else "n/a", ok=ratio <= target if applies else None),
        dict(benchmark="data parallel (MPI)", case=case + ", all-reduce", a="per parameter", b="buckets (25 MB)",
             a_ms=ddp["per-parameter"]["allreduce_ms"], b_ms=ddp["buckets"]["allreduce_ms"],
             ratio=ddp["per-parameter"]["allreduce_ms"] / ddp["buckets"]["allreduce_ms"], target="", ok=None),
        dict(benchmark="data parallel (MPI)", case=case, a="SyncBatchNorm", b="BatchNorm1d",
             a_ms=ddp["syncbn"]["step_ms"], b_ms=ddp["buckets"]["step_ms"], ratio=result["syncbn_ratio"], target="",
             ok=None),
    ]


def suite_rows(repeats: int, torch, setting: Setting = QUICK) -> list[dict]:
    """The rows of ``suite_rows_from`` for one run of ``setting`` with ``repeats`` repeats; none (an empty list)
    when mpi4py or mpiexec is missing. ``torch`` is not used (the suite's signature)."""
    if unavailable_reason() is not None:
        return []
    setting = dataclasses.replace(setting, repeats=repeats)
    return suite_rows_from(summarize(run(setting, log=lambda *a, **k: None), setting, 2))


# ------------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------------
def mpi_info() -> dict:
    import mpi4py
    from mpi4py import MPI

    return {"mpi4py": mpi4py.__version__, "library": " ".join(MPI.Get_library_version().splitlines()[0].split()),
            "mpiexec": find_mpiexec()}


def print_header(machine: dict, setting: Setting, processes: int, mode: str) -> None:
    mpi = machine["mpi"]
    print(f"machine: {machine['cpu']}, {cores_text(machine)}")
    print(f"python {machine['python']}, numpy {machine['numpy']}, BLAS {machine['blas']}")
    print(f"tinygrad_edu {machine['tinygrad_edu']}")
    print(f"MPI: {mpi['library']} (mpi4py {mpi['mpi4py']}, {mpi['mpiexec']})")
    print(f"mode: {mode}; MLP {setting.features} -> 3 x {setting.width} (Linear, BatchNorm1d, ReLU) -> {CLASSES}, "
          f"float32, SGD; global batch {setting.batch}; {processes} processes; one BLAS thread per process; "
          f"{setting.steps} timed steps per block after {setting.warmup} warm-up steps; medians of {setting.repeats} "
          f"interleaved launches", flush=True)


def print_report(result: dict) -> None:
    k, strong, weak, ddp = result["processes"], result["strong"], result["weak"], result["ddp"]
    print(f"\n(1) scaling: 1 process against {k} under DistributedDataParallel (bucket_cap_mb=25)")
    rows = [["strong (global batch fixed)", f"{strong['global_batch']} | {strong['global_batch'] // k} each",
             f"{strong['one_process_ms']:.1f}", f"{strong['k_processes_ms']:.1f}", f"{strong['speedup']:.2f}x",
             f"{strong['efficiency']:.0%}"],
            ["weak (batch per process fixed)", f"{weak['batch_per_process']} | {weak['batch_per_process']} each",
             f"{weak['one_process_ms']:.1f}", f"{weak['k_processes_ms']:.1f}",
             f"{weak['one_process_ms'] / weak['k_processes_ms'] * k:.2f}x", f"{weak['efficiency']:.0%}"]]
    if "threads" in result:
        t = result["threads"]
        rows.append([f"1 process on {t['threads']} BLAS threads", f"{strong['global_batch']} | "
                     f"{strong['global_batch'] // k} each", f"{t['one_process_ms']:.1f}",
                     f"{strong['k_processes_ms']:.1f}", f"{t['speedup_of_k']:.2f}x", ""])
    print_table(["scaling", "batch: 1 | K", "1 proc ms", f"{k} procs ms", "speed-up", "efficiency"], rows)
    print("speed-up: time of 1 process / time of K (for weak scaling: samples per second); efficiency: speed-up / K")

    print(f"\n(2), (3) the gradient all-reduce in the {k}-process step: buckets against one call per parameter")
    rows = []
    for net, prefix in (("mlp", ""), ("deep", "deep ")):
        for name, label in (("buckets", "buckets (25 MB)"), ("per-parameter", "per parameter (1e-6 MB)")):
            c = ddp[prefix + name]
            rows.append([f"{net}: {label}", f"{c['parameters']}", f"{c['buckets']}", f"{c['calls_per_step']:.0f}",
                         f"{c['bytes_per_step'] / 2**20:.2f}", f"{c['allreduce_ms']:.2f}", f"{c['allreduce_share']:.1%}",
                         f"{c['step_ms']:.1f}"])
    print_table(["network: all-reduce", "params", "buckets", "calls/step", "MiB/step", "all-reduce ms",
                 "share of step", "step ms"], rows)
    print(f"mlp: the MLP above; deep: {DEEP_HIDDEN + 2} Linear layers of width {DEEP_WIDTH} (small tensors, many). "
          "all-reduce ms: reducer_stats['seconds'] per step\n(pack, MPI all-reduce, unpack; waiting for the slower "
          "process included), mean over the processes; share of step: all-reduce ms / step ms")

    print(f"\n(4) SyncBatchNorm: batch statistics over the {k} processes")
    rows = [["BatchNorm1d (per process)", f"{ddp['buckets']['step_ms']:.1f}", "", ""],
            ["SyncBatchNorm", f"{ddp['syncbn']['step_ms']:.1f}", f"{result['syncbn_cost_ms']:+.1f}",
             f"{result['syncbn_ratio']:.2f}x"]]
    print_table(["normalization", "step ms", "cost ms", "ratio"], rows)
    worst = max(c["replica_max_abs_diff"] for c in ddp.values())
    print(f"\nreplicas after the timed steps: max |w_rank - w_rank0| = {worst:.1e}; losses "
          + ", ".join(f"{name} {c['loss']:.3f}" for name, c in ddp.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny MLP, few steps: checks that it runs (a few seconds)")
    size.add_argument("--full", action="store_true", help="longer blocks and 11 repeats (~2 min)")
    parser.add_argument("--repeats", type=int, default=None, help="launches of each kind (default 7; 3 with --quick)")
    parser.add_argument("--processes", type=int, default=2, help="K, the processes of the data-parallel run "
                        "(default 2)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    # what the launcher passes to the workers it starts
    parser.add_argument("--worker", choices=["single", "ddp"], help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", default=["whole", "share"], help=argparse.SUPPRESS)
    parser.add_argument("--reverse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)

    setting = QUICK if args.quick else FULL if args.full else DEFAULT
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error(f"--repeats must be >= 1, got {args.repeats}")
        setting = dataclasses.replace(setting, repeats=args.repeats)
    if args.processes < 2:
        parser.error(f"--processes must be >= 2, got {args.processes}")
    if setting.batch % args.processes:
        parser.error(f"--processes must divide the global batch {setting.batch}, got {args.processes}")
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench_distributed: skipped: {reason}")
        return 0

    machine = machine_info(None)
    machine["mpi"] = mpi_info()
    mode = "quick (tiny MLP, few steps: a smoke test, noisy)" if args.quick else "full" if args.full else "default"
    print_header(machine, setting, args.processes, mode)
    start, load_before = time.perf_counter(), _load_average()
    result = summarize(run(setting, args.processes), setting, args.processes)
    result["load_average"] = {"before": load_before, "after": _load_average()}
    print_report(result)
    print(f"\n{time.perf_counter() - start:.1f} s; load average (1 min) before {load_before}, after "
          f"{result['load_average']['after']} (other programs on these {usable_cores()} cores slow the "
          f"{args.processes}-process runs most)")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, **result), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
