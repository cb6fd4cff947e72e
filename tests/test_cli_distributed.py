"""``tinygrad-edu train --distributed`` end to end: real processes under ``mpiexec -n 2`` (``python -m tinygrad_edu``).

The central check: two processes of batch B with ``--sync-bn`` train what one process of batch 2B trains, to float32
round-off. Their data orders agree: one process takes positions t·2B … (t+1)·2B - 1 of the epoch's permutation
(``numpy.random.default_rng(seed + epoch)``) in step t, and ``DistributedSampler`` deals the same permutation out in
turn (rank r gets positions r, r + 2, r + 4, ...), so the two processes' step-t batches of B are those 2B samples.
With n = 1000 and B = 50 no batch is ragged. The usage errors run in this process (they stop before any MPI).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_distributed import MPIEXEC, needs_mpi

from tinygrad_edu import cli, load, train
from tinygrad_edu.distributed import DistributedSampler
from tinygrad_edu.distributed import process_group as pg
from tinygrad_edu.distributed.communicator import LAUNCHER_VARIABLES
from tinygrad_edu.tensor import Tensor

ROOT = Path(__file__).resolve().parent.parent

#: small and fast: the course's disc problem with a 2-hidden-layer net of width 16, 3 epochs
SMALL = ("--dataset", "disc", "--depth", "2", "--width", "16", "--epochs", "3", "--seed", "1", "--no-progress")
FINAL = re.compile(r"^train accuracy (\d\.\d{3})  test accuracy (\d\.\d{3})  \(disc, (\d+) epochs, "
                   r"(?:(\d+) process(?:es)? x batch (\d+), )?[\d.]+ s(?:, all-reduce (\d+)%)?, cpu, "
                   r"(fp32|mixed16)(?:; loss scale [\d.e+]+, \d+ skipped steps?)?\)$")


def tinygrad_edu(*argv: str, cwd: Path, processes: int | None = None) -> subprocess.CompletedProcess:
    """``[mpiexec -n PROCESSES] python -m tinygrad_edu ARGV`` in fresh processes, importing this checkout."""
    env = {name: value for name, value in os.environ.items() if name not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "tinygrad_edu", *argv]
    if processes is not None:
        command = [MPIEXEC, "-n", str(processes), *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def final_line(result: subprocess.CompletedProcess) -> dict:
    """The last line of stdout, parsed; it must be the only final line (rank 0 alone prints)."""
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("train accuracy") for line in lines) == 1, result.stdout
    match = FINAL.match(lines[-1])
    assert match, result.stdout
    train_acc, test_acc, epochs, processes, batch, allreduce, precision = match.groups()
    return dict(train=float(train_acc), test=float(test_acc), epochs=int(epochs),
                processes=None if processes is None else int(processes), batch=None if batch is None else int(batch),
                allreduce=None if allreduce is None else int(allreduce), precision=precision)


# ---------------------------------------------------------------------------------------------------------------
# two processes
# ---------------------------------------------------------------------------------------------------------------
@needs_mpi
def test_two_processes_print_the_final_line_once_and_learn(tmp_path):
    argv = ["train", "--distributed", "--epochs", "3", "--depth", "2", "--width", "16", "--batch-size", "25"]
    result = tinygrad_edu(*argv, cwd=tmp_path, processes=2)
    line = final_line(result)
    assert (line["processes"], line["batch"], line["epochs"], line["precision"]) == (2, 25, 3, "fp32")
    assert line["test"] >= 0.85 and line["train"] >= 0.85, result.stdout
    assert 0 <= line["allreduce"] <= 100
    assert result.stdout.count("\n") == 1  # nothing else on stdout, from either process
    # one progress bar (rank 0's): 3 epochs of 500 / 25 = 20 steps each; it starts at 0/60 once
    assert result.stderr.count("| 0/60 [") == 1, result.stderr
    assert "runs as 1 process" not in result.stderr


@pytest.fixture(scope="module")
def sync_bn_runs(tmp_path_factory) -> dict:
    """Two processes of batch 50 with --sync-bn, and one process of batch 100, each saving its weights."""
    if MPIEXEC is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and an MPI launcher (mpiexec) on PATH: pip install 'tinygrad_edu[distributed]'")
    two, one = tmp_path_factory.mktemp("two_processes"), tmp_path_factory.mktemp("one_process")
    distributed = tinygrad_edu("train", *SMALL, "--distributed", "--sync-bn", "--batch-size", "50",
                               "--save", str(two / "model.npz"), cwd=two, processes=2)
    single = tinygrad_edu("train", *SMALL, "--batch-size", "100", "--save", str(one / "model.npz"), cwd=one)
    return dict(distributed=distributed, single=single, two=two, one=one)


def test_the_sampler_deals_out_the_single_process_batches():
    """Step t of 2 processes of batch B takes the samples of step t of one process of batch 2B (the premise of the
    next test), every epoch."""
    n, batch, seed = 1000, 50, 1
    for epoch in range(3):
        samplers = [DistributedSampler(n, num_replicas=2, rank=rank, seed=seed) for rank in (0, 1)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        shares = [sampler.indices() for sampler in samplers]
        order = np.random.default_rng(seed + epoch).permutation(n)
        assert [len(share) for share in shares] == [n // 2, n // 2]
        for step in range(n // (2 * batch)):
            together = np.concatenate([share[step * batch : (step + 1) * batch] for share in shares])
            np.testing.assert_array_equal(np.sort(together), np.sort(order[step * 2 * batch : (step + 1) * 2 * batch]))


@needs_mpi
def test_sync_bn_on_two_processes_trains_what_one_process_trains_on_twice_the_batch(sync_bn_runs):
    distributed, single = final_line(sync_bn_runs["distributed"]), final_line(sync_bn_runs["single"])
    assert (distributed["processes"], distributed["batch"]) == (2, 50) and single["processes"] is None
    assert (distributed["test"], distributed["train"]) == (single["test"], single["train"]), (distributed, single)
    two, one = load(sync_bn_runs["two"] / "model.npz")["model"], load(sync_bn_runs["one"] / "model.npz")["model"]
    assert sorted(two) == sorted(one)  # the same names: the unwrapped model's, SyncBatchNorm's as BatchNorm1d's
    for name, expected in one.items():
        np.testing.assert_allclose(two[name], expected, rtol=0, atol=1e-5, err_msg=name)


@needs_mpi
def test_save_writes_one_file_from_rank_0(sync_bn_runs):
    result, folder = sync_bn_runs["distributed"], sync_bn_runs["two"]
    assert [p.name for p in folder.iterdir()] == ["model.npz"]  # one file, no temporary file left behind
    assert result.stdout.count("saved ") == 1 and "(the model's state_dict) to" in result.stdout
    # it holds the trained model: loaded into a fresh one, it scores the test accuracy that rank 0 printed
    model = train.build_model(2, 2, depth=2, width=16, norm="batch")
    train.load_checkpoint(folder / "model.npz", model)
    _, _, x_test, y_test = train.load_data("disc", seed=1)
    _, accuracy = train.evaluate(model, Tensor(x_test), Tensor(y_test))
    assert f"{accuracy:.3f}" == f"{final_line(result)['test']:.3f}"


@needs_mpi
def test_mixed16_and_plot_under_two_processes(tmp_path):
    plot = tmp_path / "curves.png"
    result = tinygrad_edu("train", *SMALL, "--distributed", "--precision", "mixed16", "--batch-size", "25",
                          "--plot", str(plot), cwd=tmp_path, processes=2)
    line = final_line(result)
    assert (line["processes"], line["precision"]) == (2, "mixed16") and line["test"] >= 0.85, result.stdout
    assert result.stdout.count("saved loss and accuracy curves") == 1 and plot.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------------------
# one process, and the usage errors
# ---------------------------------------------------------------------------------------------------------------
def test_distributed_without_a_launcher_runs_as_one_process_and_trains_as_train(tmp_path):
    alone = tinygrad_edu("train", *SMALL, "--distributed", "--save", str(tmp_path / "alone.npz"), cwd=tmp_path)
    plain = tinygrad_edu("train", *SMALL, "--save", str(tmp_path / "plain.npz"), cwd=tmp_path)
    assert "--distributed runs as 1 process" in alone.stderr
    assert "mpirun -n K tinygrad-edu train --distributed" in alone.stderr
    line = final_line(alone)
    assert (line["processes"], line["batch"]) == (1, 100)
    assert (line["test"], line["train"]) == (final_line(plain)["test"], final_line(plain)["train"])
    expected = load(tmp_path / "plain.npz")["model"]  # --save writes a checkpoint: its model's state_dict
    for name, value in load(tmp_path / "alone.npz")["model"].items():  # a world of one: the very same computation
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


@pytest.mark.parametrize(("argv", "message"), [
    (["--sync-bn"], "--sync-bn needs --distributed"),
    (["--distributed", "--sync-bn", "--norm", "layer"], "--sync-bn needs --norm batch"),
    (["--distributed", "--epochs", "0"], "must be at least 1"),
])
def test_usage_errors(capsys, argv, message):
    assert cli.main(["train", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_mpi4py_missing_under_a_launcher_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(pg, "_world", None)  # no group joined yet in this process
    monkeypatch.setattr(pg, "is_available", lambda: False)  # as if mpi4py were not installed
    monkeypatch.setenv("PMI_RANK", "0")  # as if mpiexec had started this process
    assert cli.main(["train", "--distributed", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("tinygrad-edu train: error: --distributed: init_process_group:")
    assert "mpi4py is not installed" in captured.err and "pip install 'tinygrad_edu[distributed]'" in captured.err
    assert captured.out == "" and not pg.is_initialized()


def test_train_config_checks_the_distributed_options():
    with pytest.raises(ValueError, match="sync_bn=True needs distributed=True"):
        train.TrainConfig(sync_bn=True)
    with pytest.raises(ValueError, match="sync_bn=True needs norm='batch'"):
        train.TrainConfig(distributed=True, sync_bn=True, norm="none")
