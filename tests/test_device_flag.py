"""The one flag, ``TINYGRAD_EDU_DEVICE``, read the same way by every entry point: ``tinygrad-edu train``,
``tinygrad-edu gradcheck``, ``tinygrad-edu bench`` (which takes no device, but refuses a bad value),
``python -m tinygrad_edu``, ``tinygrad_edu.train.train(TrainConfig(...))`` and the library's default device.

``--device`` (or ``TrainConfig.device``) beats the variable, which beats ``"cpu"``. A bad value fails before any
work (exit status 2 on the command line) with a message naming the variable; ``cuda`` on a machine without a GPU
fails the same way with CuPy's message. The device ``strict`` (array_api_strict arrays on a non-CPU device) always
exists, so the tests can check that the work really ran where the flag said: spies record the device of the
logits that train's loss sees and of the inputs gradcheck checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import cli, train
from tinygrad_edu.backend import ENV_VAR, DeviceUnavailableError, get_backend

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--depth", "1", "--width", "8", "--epochs", "1", "--no-progress"]
BAD = "TINYGRAD_EDU_DEVICE='gpu': unknown device 'gpu': expected 'cpu', 'cuda', 'cuda:N' or 'strict'"


def cuda_message() -> str:
    """DeviceUnavailableError's text on this machine (the tests that use it are skipped where a GPU is)."""
    with pytest.raises(DeviceUnavailableError) as info:
        get_backend("cuda")
    return str(info.value)


no_gpu = pytest.mark.skipif(tg.cuda_is_available(), reason="a GPU is here: cuda is available")


@pytest.fixture
def loss_devices(monkeypatch) -> list[str]:
    """The device of every batch of logits train's loss is computed on."""
    seen: list[str] = []
    real = train.F.cross_entropy

    def spy(logits, target, *args, **kwargs):
        seen.append(logits.device)
        return real(logits, target, *args, **kwargs)

    monkeypatch.setattr(train.F, "cross_entropy", spy)
    return seen


@pytest.fixture
def checked_devices(monkeypatch) -> list[str]:
    """The device of the inputs of every check ``tinygrad-edu gradcheck`` runs."""
    seen: list[str] = []
    real = cli.check_gradients

    def spy(fn, inputs, *args, **kwargs):
        seen.extend(t.device for t in inputs)
        return real(fn, inputs, *args, **kwargs)

    monkeypatch.setattr(cli, "check_gradients", spy)
    return seen


def forbidden(*args, **kwargs):
    raise AssertionError("the work started")


@pytest.fixture
def no_data(monkeypatch) -> None:
    """Loading the data fails the test: train() must refuse a bad device before it starts its work."""
    monkeypatch.setattr(train, "load_data", forbidden)


@pytest.fixture
def no_work(monkeypatch, no_data) -> None:
    """Calling train() fails the test too: the command line refuses a bad device before it calls it."""
    monkeypatch.setattr(train, "train", forbidden)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------------------------------------------------------
# tinygrad-edu train / gradcheck / bench, in process
# ---------------------------------------------------------------------------------------------------------------
def test_train_runs_on_the_device_the_variable_names(capsys, monkeypatch, loss_devices, tmp_path):
    """Before: train ignored the variable and ran on the CPU."""
    monkeypatch.setenv(ENV_VAR, "strict")
    status, out, err = run(capsys, "train", *SMALL, "--save", str(tmp_path / "run.ckpt"))
    assert status == 0, err
    assert out.splitlines()[-1].endswith(" s, strict, fp32)")
    assert loss_devices and set(loss_devices) == {"strict"}
    saved = tg.load(tmp_path / "run.ckpt")
    assert saved["device"] == "strict" and saved["config"]["device"] is None  # None: "the default device"


def test_the_option_beats_the_variable(capsys, monkeypatch, loss_devices, checked_devices):
    monkeypatch.setenv(ENV_VAR, "strict")
    assert run(capsys, "train", *SMALL, "--device", "cpu")[0] == 0
    assert set(loss_devices) == {"cpu"}
    monkeypatch.setenv(ENV_VAR, "gpu")  # a bad value is not even read when the option is given
    loss_devices.clear()
    status, out, err = run(capsys, "train", *SMALL, "--device", "strict")
    assert status == 0, err
    assert set(loss_devices) == {"strict"} and ", strict, fp32)" in out
    status, out, err = run(capsys, "gradcheck", "add", "--trials", "1", "--device", "strict")
    assert status == 0, err
    assert out.startswith("gradcheck on strict,") and set(checked_devices) == {"strict"}


def test_gradcheck_runs_on_the_device_the_variable_names(capsys, monkeypatch, checked_devices):
    monkeypatch.setenv(ENV_VAR, "strict")
    status, out, err = run(capsys, "gradcheck", "add", "cross_entropy", "--trials", "1")
    assert status == 0, err
    assert out.startswith("gradcheck on strict, float64") and set(checked_devices) == {"strict"}


@pytest.mark.parametrize("command", [["train", *SMALL], ["gradcheck", "add"], ["bench", "--quick", "--only", "mlp"]])
def test_a_bad_value_is_a_usage_error_naming_the_variable(capsys, monkeypatch, no_work, command):
    """Before: train accepted TINYGRAD_EDU_DEVICE=gpu silently; gradcheck's error did not name the variable."""
    monkeypatch.setenv(ENV_VAR, "gpu")
    status, out, err = run(capsys, *command)
    assert status == 2 and out == ""
    assert err == f"tinygrad-edu {command[0]}: error: {BAD}\n"


@no_gpu
@pytest.mark.parametrize("command", [["train", *SMALL], ["gradcheck", "add"]])
def test_cuda_without_a_gpu_is_a_usage_error_with_cupys_message(capsys, monkeypatch, no_work, command):
    """Before: TINYGRAD_EDU_DEVICE=cuda tinygrad-edu train trained on the CPU and exited 0."""
    monkeypatch.setenv(ENV_VAR, "cuda")
    status, out, err = run(capsys, *command)
    assert status == 2 and out == ""
    assert err == f"tinygrad-edu {command[0]}: error: {ENV_VAR}='cuda': {cuda_message()}\n"


def test_a_bad_device_option_says_it_came_from_the_option(capsys, no_work):
    status, out, err = run(capsys, "train", "--device", "gpu")
    assert status == 2 and out == ""
    assert "tinygrad-edu train: error: --device: unknown device 'gpu'" in err


# ---------------------------------------------------------------------------------------------------------------
# the same in a real process: tinygrad-edu (python -m tinygrad_edu)
# ---------------------------------------------------------------------------------------------------------------
def tinygrad_edu(*argv: str, device: str | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if device is not None:
        env[ENV_VAR] = device
    return subprocess.run([sys.executable, "-m", "tinygrad_edu", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def test_the_variable_in_a_real_process(tmp_path):
    strict = tinygrad_edu("train", *SMALL, "--save", "run.ckpt", device="strict", cwd=tmp_path)
    assert strict.returncode == 0, strict.stderr
    assert strict.stdout.splitlines()[-1].endswith(", strict, fp32)")
    assert tg.load(tmp_path / "run.ckpt")["device"] == "strict"

    bad = tinygrad_edu("train", *SMALL, device="gpu", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "") and bad.stderr == f"tinygrad-edu train: error: {BAD}\n"
    bad = tinygrad_edu("gradcheck", "add", device="gpu", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "") and BAD in bad.stderr

    option = tinygrad_edu("gradcheck", "add", "--trials", "1", "--device", "cpu", device="strict", cwd=tmp_path)
    assert option.returncode == 0 and option.stdout.startswith("gradcheck on cpu,"), option.stderr


@no_gpu
def test_cuda_without_a_gpu_in_a_real_process(tmp_path):
    result = tinygrad_edu("train", *SMALL, device="cuda", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"tinygrad-edu train: error: {ENV_VAR}='cuda': {cuda_message()}\n"
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# the library: train(TrainConfig(...)) and the default device
# ---------------------------------------------------------------------------------------------------------------
def test_train_config_device_defaults_to_the_default_device(monkeypatch, loss_devices):
    assert train.TrainConfig().device is None  # "the default device", resolved when train starts
    monkeypatch.setenv(ENV_VAR, "strict")
    history = train.train(train.TrainConfig(depth=1, width=8, epochs=1))
    assert history["device"] == "strict" and history["config"]["device"] == "strict"
    assert history["model"][0].weight.device == "strict" and set(loss_devices) == {"strict"}
    loss_devices.clear()
    assert train.train(train.TrainConfig(depth=1, width=8, epochs=1, device="cpu"))["device"] == "cpu"
    assert set(loss_devices) == {"cpu"}


def test_train_refuses_a_bad_variable_before_any_work(monkeypatch, no_data):
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=f"^{BAD}"):
        train.train(train.TrainConfig(depth=1, width=8, epochs=1))


@no_gpu
def test_train_with_cuda_from_the_variable_and_no_gpu(monkeypatch, no_data):
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(DeviceUnavailableError) as info:
        train.train(train.TrainConfig(depth=1, width=8, epochs=1))
    assert str(info.value) == f"{ENV_VAR}='cuda': {cuda_message()}"


def test_train_config_checks_the_device():
    assert train.TrainConfig(device="strict").device == "strict"
    assert train.TrainConfig(device="cuda:1").device == "cuda:1"
    with pytest.raises(ValueError, match="TrainConfig: device must be one of cpu, cuda, cuda:N, strict or None"):
        train.TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="train: device 'strict' has no float16; use precision='fp32'"):
        train.train(train.TrainConfig(device="strict", precision="mixed16", depth=1, width=8, epochs=1))


def test_the_default_device_of_tensors(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "strict")
    assert tg.Tensor(np.ones(2)).device == "strict" and tg.get_default_device() == "strict"
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=f"^{BAD}"):
        tg.Tensor(np.ones(2))
    assert tg.Tensor(np.ones(2), device="cpu").device == "cpu"  # an explicit device does not read the variable
