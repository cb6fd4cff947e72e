"""``benchmarks/bench_distributed.py`` end to end in its quickest mode: it launches its MPI workers, prints its tables
and writes its JSON with sane values. No timing is asserted (the machine is shared): only that the numbers exist,
are positive, the shares are fractions and the all-reduce calls match the buckets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tinygrad_edu.benchmarks import bench_distributed

from tinygrad_edu import distributed as dist

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_distributed.py"

needs_mpi = pytest.mark.skipif(
    not dist.is_available() or bench_distributed.find_mpiexec() is None,
    reason="needs mpi4py and mpiexec (pip install 'tinygrad_edu[distributed]')",
)


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One run of ``--quick --repeats 1 --json``: its stdout and its JSON."""
    tmp = tmp_path_factory.mktemp("bench_distributed")
    result = run_script("--quick", "--repeats", "1", "--json", str(tmp / "out.json"), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, json.loads((tmp / "out.json").read_text())


@needs_mpi
def test_prints_the_header_and_every_table(quick_run):
    out, _ = quick_run
    for text in ("machine:", "numpy", "MPI:", "mpi4py", "(1) scaling", "strong (global batch fixed)",
                 "weak (batch per process fixed)", "(2), (3) the gradient all-reduce", "mlp: buckets (25 MB)",
                 "mlp: per parameter (1e-6 MB)", "deep: buckets (25 MB)", "(4) SyncBatchNorm", "replicas after"):
        assert text in out, text


@needs_mpi
def test_json_has_sane_numbers(quick_run):
    _, result = quick_run
    assert result["processes"] == 2
    assert result["machine"]["mpi"]["library"] and result["machine"]["numpy"]
    strong, weak = result["strong"], result["weak"]
    for ms in (strong["one_process_ms"], strong["k_processes_ms"], weak["one_process_ms"]):
        assert math.isfinite(ms) and ms > 0
    assert strong["efficiency"] == pytest.approx(strong["speedup"] / 2)
    assert weak["batch_per_process"] * 2 == strong["global_batch"]
    for name, case in result["ddp"].items():
        assert case["step_ms"] > 0 and case["allreduce_ms"] > 0, name
        assert 0 <= case["allreduce_share"] <= 1, name
        assert case["calls_per_step"] == case["buckets"], name  # one all-reduce per bucket, once per step
        assert case["bytes_per_step"] > 0 and math.isfinite(case["loss"]), name
        assert case["replica_max_abs_diff"] == 0, name  # the replicas stayed identical
    ddp = result["ddp"]
    for prefix in ("", "deep "):
        assert ddp[prefix + "buckets"]["buckets"] == 1  # every gradient fits in one 25 MB bucket
        assert ddp[prefix + "per-parameter"]["buckets"] == ddp[prefix + "per-parameter"]["parameters"]
        assert ddp[prefix + "buckets"]["bytes_per_step"] == ddp[prefix + "per-parameter"]["bytes_per_step"]
    assert ddp["deep buckets"]["parameters"] == 70 and ddp["buckets"]["parameters"] == 14
    assert len(result["raw"]["single"]) == len(result["raw"]["ddp"]) == 1


@needs_mpi
def test_suite_rows_from_the_json(quick_run):
    _, result = quick_run
    rows = bench_distributed.suite_rows_from(result)
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"benchmark", "case", "a", "b", "a_ms", "b_ms", "ratio", "target", "ok"}
        assert row["a_ms"] > 0 and row["b_ms"] > 0
        assert row["ratio"] == pytest.approx(row["a_ms"] / row["b_ms"])


@pytest.mark.parametrize("args", [["--processes", "1"], ["--processes", "3"], ["--repeats", "0"]])
def test_usage_errors_exit_2(tmp_path, args):
    result = run_script(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert args[0] in result.stderr
