"""``tinygrad-edu train`` and ``tinygrad-edu bench`` end to end, each in a real subprocess (``python -m tinygrad_edu``).

The accuracy targets of the issue are checked with the real defaults: the default run (the course's disc net, 30
epochs) and ``--dataset digits`` each take a few seconds on two CPU cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    plot, checkpoint = tmp_path / "curves.png", tmp_path / "model.npz"
    args = ["--depth", "2", "--width", "16", "--epochs", "4", "--norm", "layer", "--activation", "prelu",
            "--dropout", "0.1", "--seed", "3"]
    result = tinygrad_edu("train", *args, "--plot", str(plot), "--save", str(checkpoint), cwd=tmp_path)
    line = final_line(result)
    assert plot.read_bytes()[:8] == PNG_SIGNATURE and plot.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left behind

    model = train.build_model(2, 2, depth=2, width=16, norm="layer", activation="prelu", dropout=0.1)
    with np.load(checkpoint) as data:
        assert sorted(data.files) == sorted(model.state_dict())
    train.load_checkpoint(checkpoint, model)
    _, _, x_test, y_test = train.load_data("disc", seed=3)
    _, accuracy = train.evaluate(model, Tensor(x_test), Tensor(y_test))
    assert f"{accuracy:.3f}" == f"{line['test']:.3f}"


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
    assert ("argument --activation: invalid choice: 'bogus' (choose from relu, leaky_relu, prelu, crelu, elu, maxout)"
            in result.stderr.replace("'relu', 'leaky_relu', 'prelu', 'crelu', 'elu', 'maxout'",
                                     "relu, leaky_relu, prelu, crelu, elu, maxout"))


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
