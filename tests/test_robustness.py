"""Bad input and abuse found by adversarial probing: each gets a clear error, at once, and changes nothing.

One test (or a few) per defect: the command line's options checked before training, a diverging run reported as
such, Ctrl-C without a traceback, and the library's own defects (an empty batch, mixed-precision helpers, wrong
results, raw messages).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tinygrad_edu import cli


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(("argv", "message"), [
    (["--plot", "curves.txt"], r"--plot: cannot plot to 'curves.txt': its extension 'txt' is not an image format"),
    (["--plot", ""], r"--plot: the file name is empty"),
    (["--save", ""], r"--save: the file name is empty"),
    (["--batch-size", "1"], r"batch_size=1 with norm='batch': batch normalization needs more than one sample"),
    (["--seed", "-1"], r"argument --seed: must be at least 0, got -1"),
])
def test_train_refuses_a_bad_option_before_any_work(capsys, tmp_path, monkeypatch, argv, message):
    import re

    from tinygrad_edu import train as t

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(t, "train", lambda *a, **k: pytest.fail("training started"))
    status, out, err = run_cli(capsys, "train", "--no-progress", *argv)
    assert status == 2 and out == "" and re.search(message, err), err
    assert os.listdir(tmp_path) == []


def test_a_diverging_run_says_so_and_fails(capsys, tmp_path):
    status, out, err = run_cli(capsys, "train", "--no-progress", "--epochs", "3", "--lr", "1e30", "--depth", "2",
                               "--save", str(tmp_path / "run.ckpt"))
    assert status == 1 and "train accuracy" not in out
    assert "the training loss is nan after epoch 1" in err and "lower it (--lr)" in err
    assert not (tmp_path / "run.ckpt").exists()  # nothing saved from a diverged run


def test_ctrl_c_ends_train_without_a_traceback(tmp_path):
    code = "import sys; from tinygrad_edu import cli; sys.exit(cli.main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code, "train", "--no-progress", "--epochs", "10000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(3.0)  # importing and starting: then in the training loop
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "tinygrad-edu train: interrupted" in err and "Traceback" not in err
