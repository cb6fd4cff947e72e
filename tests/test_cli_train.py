"""``tinygrad-edu train`` and ``tinygrad-edu bench`` end to end, each in a real subprocess (``python -m tinygrad_edu``).

The accuracy targets of the issue are checked with the real defaults: the default run (the course's disc net, 30
epochs) and ``--dataset digits`` each take a few seconds on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import cli, cuda_is_available, train
from tinygrad_edu.backend import DeviceUnavailableError, get_backend
from tinygrad_edu.tensor import Tensor

ROOT = Path(__file__).resolve().parent.parent
FINAL = re.compile(r"^train accuracy (\d\.\d{3})  test accuracy (\d\.\d{3})  \((\w+), (\d+) epochs, ([\d.]+) s, "
                   r"(\w+(?::\d+)?), (fp32|mixed16)(?:; loss scale [\d.e+]+, \d+ skipped steps?)?\)$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tinygrad_edu(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m tinygrad_edu ARGV`` in a fresh process, importing this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "tinygrad_edu", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def final_line(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    match = FINAL.match(result.stdout.splitlines()[-1])
    assert match, result.stdout
    train_acc, test_acc, dataset, epochs, seconds, device, precision = match.groups()
    return dict(train=float(train_acc), test=float(test_acc), dataset=dataset, epochs=int(epochs),
                seconds=float(seconds), device=device, precision=precision)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> subprocess.CompletedProcess:
    return tinygrad_edu("train", cwd=tmp_path_factory.mktemp("default"))


def test_default_train_reaches_95_percent_on_disc(default_run):
    line = final_line(default_run)
    assert line["test"] >= 0.95 and line["train"] >= 0.95, default_run.stdout
    assert (line["dataset"], line["epochs"], line["device"], line["precision"]) == ("disc", 30, "cpu", "fp32")
    assert line["seconds"] < 60
    # the tqdm bar went to stderr, with the loss and the accuracies; stdout holds only the result
    assert "300/300" in default_run.stderr and "loss=" in default_run.stderr and "test_acc=" in default_run.stderr
    assert default_run.stdout.count("\n") == 1


def test_digits_reaches_95_percent(tmp_path):
    pytest.importorskip("sklearn")
    line = final_line(tinygrad_edu("train", "--dataset", "digits", "--no-progress", cwd=tmp_path))
    assert line["dataset"] == "digits" and line["test"] >= 0.95


def test_mixed16_on_cpu_is_within_two_points_of_fp32(default_run, tmp_path):
    fp32 = final_line(default_run)
    mixed = final_line(tinygrad_edu("train", "--precision", "mixed16", "--no-progress", cwd=tmp_path))
    assert mixed["precision"] == "mixed16"
    assert abs(mixed["test"] - fp32["test"]) <= 0.02, (mixed, fp32)


def test_mixed16_trains_a_float16_model_with_float32_masters():
    """The same code path in-process: a float16 model (batchnorm kept float32), float32 masters in the checkpoint."""
    history = train.train(precision="mixed16", depth=2, width=16, epochs=2)
    model = history["model"]
    assert model[0].weight.dtype == np.float16 and model[1].weight.dtype == np.float32  # Linear, BatchNorm1d
    assert all(v.dtype != np.float16 for v in history["state_dict"].values())
    assert history["loss_scale"] > 0 and history["skipped_steps"] >= 0


def test_plot_and_save(tmp_path):
    """``--save`` writes one checkpoint in tinygrad_edu.save's format with everything to evaluate or resume, which
    tg.load reads and load_checkpoint turns back into the trained model (before: a plain .npz that tg.load refused)."""
    plot, checkpoint = tmp_path / "curves.png", tmp_path / "model.ckpt"
    args = ["--depth", "2", "--width", "16", "--epochs", "4", "--norm", "layer", "--activation", "prelu",
            "--dropout", "0.1", "--seed", "3"]
    result = tinygrad_edu("train", *args, "--plot", str(plot), "--save", str(checkpoint), cwd=tmp_path)
    line = final_line(result)
    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left behind
    assert (f"(the model's state_dict) to {checkpoint}, with the optimizer and RNG states and the config "
            f"(train.load_checkpoint reads it)") in result.stdout

    saved = tg.load(checkpoint)
    assert saved["kind"] == train.CHECKPOINT_KIND and saved["version"] == train.CHECKPOINT_VERSION
    assert saved["config"] == dataclasses.asdict(train.TrainConfig(depth=2, width=16, epochs=4, norm="layer",
                                                                   activation="prelu", dropout=0.1, seed=3))
    assert saved["device"] == "cpu" and saved["epoch"] == 4 and saved["scaler"] is None
    assert saved["optimizer"]["param_groups"][0]["momentum"] == 0.9 and saved["optimizer"]["state"]
    assert saved["scheduler"]["last_epoch"] == 4 and saved["rng"]["bit_generator"]
    assert f"{saved['metrics']['test_accuracy'][-1]:.3f}" == f"{line['test']:.3f}"

    model = train.build_model(2, 2, depth=2, width=16, norm="layer", activation="prelu", dropout=0.1)
    assert sorted(saved["model"]) == sorted(model.state_dict())
    train.load_checkpoint(checkpoint, model)  # into a model of one's own, as before
    rebuilt, config, _ = train.load_checkpoint(checkpoint)  # or built from the saved config
    assert (config.depth, config.width, config.norm, config.activation) == (2, 16, "layer", "prelu")
    _, _, x_test, y_test = train.load_data("disc", seed=3)
    for net in (model, rebuilt):
        _, accuracy = train.evaluate(net, Tensor(x_test), Tensor(y_test))
        assert f"{accuracy:.3f}" == f"{line['test']:.3f}"


def test_save_with_mixed16_holds_the_masters_and_the_scaler(tmp_path):
    path = tmp_path / "mixed.ckpt"
    assert cli.main(["train", "--precision", "mixed16", "--depth", "1", "--width", "8", "--epochs", "2",
                     "--no-progress", "--save", str(path)]) == 0
    saved = tg.load(path)
    assert saved["scaler"]["scale"] > 0 and saved["config"]["precision"] == "mixed16"
    assert all(value.dtype != np.float16 for value in saved["model"].values())  # FP32 masters
    model, config, _ = train.load_checkpoint(path)
    assert config.precision == "mixed16" and model[0].weight.dtype == np.float32


def test_save_to_a_missing_directory_fails_before_training(tmp_path):
    result = tinygrad_edu("train", "--save", "/nonexistent/dir/x.npz", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "--save: cannot write '/nonexistent/dir/x.npz': directory '/nonexistent/dir' does not exist" in result.stderr
    assert "step" not in result.stderr and "%|" not in result.stderr  # no progress bar: training never started


def test_save_to_a_directory_fails(tmp_path, capsys):
    assert cli.main(["train", "--save", str(tmp_path)]) == 2
    assert "it is a directory" in capsys.readouterr().err


def test_save_to_a_read_only_directory_fails(tmp_path, capsys):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):  # root ignores permissions
            pytest.skip("running as root: a read-only directory is still writable")
        assert cli.main(["train", "--save", str(read_only / "x.npz")]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        read_only.chmod(0o700)


def test_unknown_activation_lists_the_valid_ones(tmp_path):
    result = tinygrad_edu("train", "--activation", "bogus", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    message = "invalid choice: 'bogus' (choose from relu, leaky_relu, prelu, crelu, elu, maxout)"
    assert f"argument --activation: {message}" in result.stderr  # as printed on every Python version
    assert f"`--activation bogus` → `{message}`" in (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["--norm", "group"], "invalid choice: 'group'"),
    (["--dataset", "mnist"], "invalid choice: 'mnist'"),
    (["--precision", "bf16"], "invalid choice: 'bf16'"),
    (["--dropout", "1"], "must be in [0, 1)"),
    (["--width", "0"], "must be at least 1"),
    (["--lr", "-1"], "must be a positive number"),
])
def test_usage_errors(capsys, argv, message):
    assert cli.main(["train", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(cuda_is_available(), reason="a GPU is here")
def test_cuda_without_a_gpu_says_why_and_exits_2(tmp_path):
    with pytest.raises(DeviceUnavailableError) as info:
        get_backend("cuda")
    result = tinygrad_edu("train", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert f"tinygrad-edu train: error: {info.value}" in result.stderr
    assert "%|" not in result.stderr


def test_plot_without_matplotlib_names_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main(["train", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'tinygrad_edu[plot]'" in capsys.readouterr().err


@pytest.mark.parametrize("activation", ["leaky_relu", "crelu", "elu", "maxout"])
def test_every_activation_trains(activation):
    history = train.train(activation=activation, norm="batch", depth=1, width=8, epochs=1)
    assert len(history["test_accuracy"]) == 1 and 0 <= history["test_accuracy"][0] <= 1
    assert np.isfinite(history["train_loss"][0])


def test_a_last_batch_of_one_sample_is_left_out_with_batchnorm():
    history = train.train(batch_size=999, depth=1, width=4, epochs=1)  # 1000 = 999 + 1
    assert np.isfinite(history["train_loss"][0])


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "mixed16"])
def test_train_on_cuda(tmp_path, precision):
    line = final_line(tinygrad_edu("train", "--device", "cuda", "--precision", precision, "--no-progress", cwd=tmp_path))
    assert line["device"].startswith("cuda") and line["precision"] == precision
    assert line["test"] >= 0.95


def test_bench_quick_prints_one_table_with_the_machine_on_top(tmp_path):
    result = tinygrad_edu("bench", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("machine ") and "cores" in lines[0]
    assert lines[1].startswith("python ") and "numpy" in lines[1] and "BLAS" in lines[1]
    assert "tinygrad_edu" in lines[2] and "torch" in lines[2]
    headers = [i for i, line in enumerate(lines) if line.split()[:2] == ["benchmark", "case"]]
    assert len(headers) == 1  # one table
    table = lines[headers[0] + 2 :]
    table = table[: next(i for i, line in enumerate(table) if not line.strip())]
    for benchmark in ("MLP SGD step", "batchnorm fwd+bwd", "SGD step with batchnorm", "conv2d fwd+bwd",
                      "float16 matmul (CPU)"):
        assert any(row.startswith(benchmark) for row in table), benchmark
    assert any("numpy.matmul f32" in row for row in table) and any("numpy.matmul f16" in row for row in table)
    for row in table:  # every row has a positive ratio
        numbers = [w for w in row.split() if re.fullmatch(r"[\d.]+(e[+-]\d+)?", w)]
        assert numbers and all(float(n) > 0 for n in numbers[-3:]), row


def test_benchmarks_are_a_subpackage_with_suite_rows():
    from tinygrad_edu.benchmarks import bench_batchnorm, bench_conv2d, bench_fp16_matmul, bench_mlp_step, suite

    for module in (bench_mlp_step, bench_batchnorm, bench_conv2d, bench_fp16_matmul):
        assert callable(module.suite_rows)
    assert callable(suite.main)


def test_benchmark_scripts_still_run_from_the_checkout(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_conv2d.py"), "--help"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "usage" in result.stdout, result.stderr


# ---------------------------------------------------------------------------------------------------------------
# bench: a target holds for its sizes and its timing; --quick's rows say n/a, the full run keeps its verdicts
# ---------------------------------------------------------------------------------------------------------------
def _table(out: str) -> list[list[str]]:
    """The rows of the bench table as lists of cells (split on runs of two or more spaces)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["benchmark", "case"]) + 2
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def _missed_target(*args, **kwargs) -> list[dict]:
    """A benchmark row that misses its target badly (as MLP (b) did under --quick: 3.25 against <= 1.1)."""
    return [dict(benchmark="MLP SGD step", case="(b) 784-512-512-10, batch 128", a="engine", b="numpy by hand",
                 a_ms=3.25, b_ms=1.0, ratio=3.25, target="<= 1.1", ok=False)]


def test_bench_quick_holds_no_row_to_a_target_the_full_run_does(capsys, monkeypatch):
    from tinygrad_edu.benchmarks import bench_mlp_step, suite

    monkeypatch.setattr(bench_mlp_step, "suite_rows", _missed_target)
    assert suite.main(quick=True, only=["mlp"], use_torch=False) == 0
    (row,) = _table(capsys.readouterr().out)
    assert row[-2:] == ["n/a", "n/a"], row  # before: "<= 1.1", "NO"
    assert suite.main(quick=False, only=["mlp"], use_torch=False) == 0
    (row,) = _table(capsys.readouterr().out)
    assert row[-2:] == ["<= 1.1", "NO"], row


def test_bench_quick_table_has_no_verdict_where_the_target_does_not_apply(tmp_path):
    result = tinygrad_edu("bench", "--quick", "--only", "mlp", "batchnorm", "fp16", "--no-torch", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _table(result.stdout)
    assert len(rows) == 9 and all(row[-2:] == ["n/a", "n/a"] for row in rows), result.stdout
    assert "targets n/a" in result.stdout


def test_suite_rows_say_n_a_for_sizes_their_target_was_not_set_for():
    from tinygrad_edu.benchmarks import bench_batchnorm, bench_distributed, bench_fp16_matmul

    small = bench_fp16_matmul.suite_rows(1, None, sizes=(64,))  # the target is for n >= 1024
    assert [(r["target"], r["ok"]) for r in small] == [("n/a", None), ("n/a", None)]
    held = bench_fp16_matmul.suite_rows(1, None, sizes=(64,), target_sizes=(64,))
    assert [r["target"] for r in held] == ["<= 1.25", "<= 0.01"] and all(isinstance(r["ok"], bool) for r in held)

    (other,) = bench_batchnorm.suite_rows(1, None, shapes=[(8, 4)], step=False)
    (listed,) = bench_batchnorm.suite_rows(1, None, shapes=[(100, 32)], step=False)
    assert (other["target"], other["ok"]) == ("n/a", None)
    assert listed["target"] == f">= {bench_batchnorm.SPEED_TARGET}" and isinstance(listed["ok"], bool)

    def result(setting):
        return {"processes": 2, "setting": dataclasses.asdict(setting), "syncbn_ratio": 1.1,
                "strong": {"global_batch": setting.batch, "k_processes_ms": 3.0, "one_process_ms": 2.0},
                "ddp": {"per-parameter": {"allreduce_ms": 1.0}, "buckets": {"allreduce_ms": 0.5, "step_ms": 3.0},
                        "syncbn": {"step_ms": 3.3}}}

    quick = bench_distributed.suite_rows_from(result(bench_distributed.QUICK))
    default = bench_distributed.suite_rows_from(result(bench_distributed.DEFAULT))
    assert (quick[0]["target"], quick[0]["ok"]) == ("n/a", None)
    assert (default[0]["target"], default[0]["ok"]) == ("<= 0.667", False)


@pytest.mark.parametrize("dataset", ["disc", "digits"])
def test_bfloat16_and_dfp16_train_within_a_point_of_float32(dataset):
    """The course's nets, 30 epochs, seed 0: mixed-bf16 (bfloat16 model, FP32 masters, no loss scaling) and dfp16
    (Linear products on INT16 with shared exponents, INT32 sums) reach fp32's test accuracy within one point."""
    pytest.importorskip("sklearn") if dataset == "digits" else None
    accuracy = {precision: train.train(train.TrainConfig(dataset=dataset, precision=precision))["test_accuracy"][-1]
                for precision in ("fp32", "mixed-bf16", "dfp16")}
    assert abs(accuracy["mixed-bf16"] - accuracy["fp32"]) <= 0.01, accuracy
    assert abs(accuracy["dfp16"] - accuracy["fp32"]) <= 0.01, accuracy
