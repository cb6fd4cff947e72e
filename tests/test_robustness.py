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

import numpy as np
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


# -- the library -------------------------------------------------------------------------------------------------
def test_an_empty_batch_leaves_batchnorm_running_statistics_alone():
    import tinygrad_edu as tg
    from tinygrad_edu import nn

    layer = nn.BatchNorm1d(3)
    layer(tg.Tensor(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)))
    before = (layer.running_mean.numpy().copy(), layer.running_var.numpy().copy())
    assert layer(tg.Tensor(np.zeros((0, 3), np.float32))).shape == (0, 3)
    np.testing.assert_array_equal(layer.running_mean.numpy(), before[0])
    np.testing.assert_array_equal(layer.running_var.numpy(), before[1])
    layer.eval()
    assert np.all(np.isfinite(layer(tg.Tensor(np.ones((2, 3), np.float32))).numpy()))


def test_master_weights_refuse_a_model_that_changed_after_them():
    import tinygrad_edu as tg
    from tinygrad_edu import amp, nn

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    master = amp.MasterWeights(model)
    state = master.state_dict()
    model.append(nn.Linear(2, 2)) if hasattr(model, "append") else setattr(model, "extra", nn.Linear(2, 2))
    for call in (master.copy_grads_to_master, master.state_dict, lambda: master.load_state_dict(state)):
        with pytest.raises(RuntimeError, match=r"the model's parameters changed after MasterWeights was built \(new "
                                               r"or replaced: \['(3|extra)\.weight', '(3|extra)\.bias'\]"):
            call()
    assert tg.is_grad_enabled()


@pytest.mark.parametrize("scale", [0.0, 1e-46, 1e40, float("inf"), float("nan")])
def test_grad_scaler_refuses_a_scale_float32_cannot_hold(scale):
    from tinygrad_edu.amp import GradScaler

    with pytest.raises((ValueError, TypeError), match="GradScaler: init_scale must be a"):
        GradScaler(init_scale=scale)
    scaler = GradScaler()
    with pytest.raises((ValueError, TypeError), match=r"GradScaler.update: new_scale must be a positive number"):
        scaler.update(new_scale=scale)
    assert scaler.get_scale() == 2.0**16


def test_grad_scaler_stops_at_a_floor_after_a_long_run_of_overflows():
    from tinygrad_edu.amp import GradScaler
    from tinygrad_edu.amp.grad_scaler import MIN_SCALE

    scaler = GradScaler()
    for _ in range(400):  # 2^16 halved 400 times would be 0 in float32
        scaler._update_scale(found_inf=True)
    assert scaler.get_scale() == MIN_SCALE > 0
    for _ in range(scaler.get_growth_interval()):  # and it can grow again
        scaler._update_scale(found_inf=False)
    assert scaler.get_scale() == 2 * MIN_SCALE


def test_wrong_results_found_by_outside_suites():
    import tinygrad_edu as tg

    three_d = [tg.Tensor(np.ones((2, 3, 4)))] * 2
    with pytest.raises(ValueError, match=r"stack: dim 77 is out of range for 3-dimensional tensors"):
        tg.stack(three_d, axis=77)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert tg.Tensor([1.0, 2.0]).var(correction=2).item() == np.inf  # PyTorch: division by max(0, N - c) = 0
        assert tg.Tensor([1.0, 2.0]).var(correction=5).item() == np.inf
        assert np.isnan(tg.Tensor([1.0, 1.0]).var(correction=2).item())  # 0 / 0
    x = tg.Tensor([1.0, np.nan, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])  # NaN is the max: it gets the gradient
    y = tg.Tensor([[2.0, np.nan], [np.nan, np.nan]], requires_grad=True)
    y.min(axis=1).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[0.0, 1.0], [0.5, 0.5]])


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda tg, nn: tg.Tensor([[1.0, 2.0], [3.0]]), ValueError, r"rows have different lengths \(a ragged list\)"),
    (lambda tg, nn: tg.Tensor(np.array([{"a": 1}], dtype=object)), TypeError, r"cannot make a tensor of dtype object"),
    (lambda tg, nn: nn.Linear(2, 2)(tg.Tensor(np.array([[1, 2]], dtype=object))), TypeError, r"of dtype object"),
    (lambda tg, nn: tg.Tensor([2**70]), TypeError, r"the integer 1180591620717411303424 does not fit in int64"),
    (lambda tg, nn: tg.Tensor([1.0, 2.0])[tg.Tensor([0.0])], IndexError, r"must hold integers or booleans, got "
                                                                          r"dtype float32"),
    (lambda tg, nn: tg.Tensor(np.ones((2, 3))).sum(axis=1.5), TypeError, r"sum\(\): dim must be an int or a tuple"),
    (lambda tg, nn: (tg.Tensor([1.0, 2.0], requires_grad=True) * 2).backward(np.array(["a", "b"])), TypeError,
     r"backward\(\): grad must hold numbers, got ndarray of dtype <U1"),
    (lambda tg, nn: setattr(nn.Linear(2, 2).weight, "grad", np.ones((2, 2))), TypeError,
     r"assigned grad must be a Tensor or None, got ndarray"),
])
def test_clear_messages_where_numpy_raised_its_own(make, error, message):
    import tinygrad_edu as tg
    from tinygrad_edu import nn

    with pytest.raises(error, match=message):
        make(tg, nn)
