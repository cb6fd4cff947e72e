"""Kill-and-resume with a real subprocess: a checkpoint on disk is always a complete one, and a run resumed from it
reproduces the uninterrupted run's losses bit for bit. At the end: the checkpoints of ``tinygrad-edu train --save``
(``tinygrad_edu.train.save_checkpoint``/``load_checkpoint``) hold everything to resume, and every file that cannot
be used gives a ``CheckpointError`` saying why.

The training script (written to a temporary file) trains a small MLP with dropout and SGD momentum on batches drawn
by a seeded NumPy generator, in float32 (``sgd``) or in mixed precision with FP32 master weights and a dynamic
loss scaler (``amp``). It prints ``step I LOSS`` (``repr`` of the float: every bit) per step and checkpoints every
``EVERY`` steps with ``tg.save``: model (or masters), optimizer, scaler, both random generators and the step.

1. run uninterrupted: the reference losses;
2. run, SIGKILL mid-training, resume from the checkpoint, to the end: every printed loss equals the reference;
3. kill mid-save, repeatedly: ``SLOW_SAVE`` makes the script's ``os.fsync`` sleep, which widens the window between
   the temporary file's write and its rename (and after it); the test kills at seeded random moments inside that
   window, resumes, kills again... After every kill the checkpoint loads and holds one of the saved steps; the run
   completed from the last one still matches the reference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import CheckpointError, Tensor, amp, datasets, optim, train
from tinygrad_edu.nn import functional as F

STEPS, EVERY = 30, 5

SCRIPT = textwrap.dedent('''
    import os, sys, time

    import numpy as np

    import tinygrad_edu as tg
    from tinygrad_edu import Tensor, amp, nn, optim

    variant, steps, every, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    step_delay = float(os.environ.get("STEP_DELAY", "0"))
    slow_save = float(os.environ.get("SLOW_SAVE", "0"))
    if slow_save:  # widen the windows before and after the rename, to be killed inside them
        real_fsync = os.fsync

        def slow_fsync(fd):
            time.sleep(slow_save)
            real_fsync(fd)

        os.fsync = slow_fsync

    data = np.random.default_rng(0)
    X = data.normal(size=(64, 8)).astype(np.float32)
    Y = data.integers(0, 3, size=64)
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    if variant == "amp":
        masters = amp.MasterWeights(model)
        opt = optim.SGD(masters.parameters(), lr=0.1, momentum=0.9)
        scaler = amp.GradScaler(init_scale=2.0**8, growth_interval=3)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = np.random.default_rng(1)  # the data order: its state is in the checkpoint too

    start = 1
    if os.path.exists(path):
        checkpoint = tg.load(path)
        (masters if variant == "amp" else model).load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["optimizer"])
        if variant == "amp":
            scaler.load_state_dict(checkpoint["scaler"])
        tg.set_rng_state(checkpoint["rng"])
        batches.bit_generator.state = checkpoint["batches"]
        start = checkpoint["step"] + 1
        print("resumed", checkpoint["step"], flush=True)

    for step in range(start, steps + 1):
        index = batches.choice(64, 16, replace=False)
        x = Tensor(X[index].astype(np.float16) if variant == "amp" else X[index])
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), Tensor(Y[index]))
        if variant == "amp":
            masters.zero_grad()
            scaler.scale(loss).backward()
            masters.copy_grads_to_master()
            scaler.step(opt)
            scaler.update()
            masters.copy_master_to_model()
        else:
            loss.backward()
            opt.step()
        print("step", step, repr(float(loss.item())), flush=True)
        if step % every == 0:
            print("saving", step, flush=True)
            tg.save({"model": (masters if variant == "amp" else model).state_dict(), "optimizer": opt.state_dict(),
                     "scaler": scaler.state_dict() if variant == "amp" else None, "rng": tg.get_rng_state(),
                     "batches": batches.bit_generator.state, "step": step}, path)
            print("saved", step, flush=True)
        time.sleep(step_delay)
    print("done", flush=True)
''')


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train_script.py"
    path.write_text(SCRIPT)
    return path


def start(script, variant, checkpoint, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(tg.__file__)))
    environment = {**os.environ, "TINYGRAD_EDU_DEVICE": "cpu", "PYTHONPATH": root,
                   **{k: str(v) for k, v in env.items()}}
    return subprocess.Popen([sys.executable, str(script), variant, str(STEPS), str(EVERY), str(checkpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def read_until(proc, stop, losses):
    """Read the script's lines, recording its losses, until ``stop(words)`` is true (then return the words) or
    the script ends (return None)."""
    for line in proc.stdout:
        words = line.split()
        if words[0] == "step":
            losses.append((int(words[1]), words[2]))
        if stop(words):
            return words
    return None


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def finish(proc, losses):
    read_until(proc, lambda words: False, losses)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    proc.stderr.close()


def reference(script, variant, tmp_path):
    losses = []
    finish(start(script, variant, tmp_path / "reference.ckpt"), losses)
    assert [s for s, _ in losses] == list(range(1, STEPS + 1))
    return dict(losses)


def check(losses, expected):
    """Every loss any run printed equals the reference's for that step, and together they cover every step."""
    for step, loss in losses:
        assert loss == expected[step], f"step {step}: {loss} after resuming, {expected[step]} uninterrupted"
    assert {s for s, _ in losses} == set(expected)


@pytest.mark.parametrize("variant", ["sgd", "amp"])
def test_killed_mid_training_resumes_to_the_same_losses(script, tmp_path, variant):
    expected = reference(script, variant, tmp_path)
    checkpoint, losses = tmp_path / "run.ckpt", []
    proc = start(script, variant, checkpoint, STEP_DELAY=0.02)
    assert read_until(proc, lambda words: words[:2] == ["step", "13"], losses)
    kill(proc)
    saved = tg.load(checkpoint)["step"]
    assert saved in (10, 15)
    killed_at = max(s for s, _ in losses)
    proc = start(script, variant, checkpoint)
    assert read_until(proc, lambda words: words[0] == "resumed", losses) == ["resumed", str(saved)]
    finish(proc, losses)
    assert killed_at < STEPS  # it was killed mid-training, not after
    check(losses, expected)


@pytest.mark.parametrize("variant", ["sgd", "amp"])
def test_killed_mid_save_repeatedly_always_leaves_a_complete_checkpoint(script, tmp_path, variant):
    """Each save sleeps 0.1 s before the rename (fsync of the temporary file) and 0.1 s after it (fsync of the
    directory); the next save is >= 0.25 s later (STEP_DELAY). A kill 0-0.06 s into a save lands before the
    rename: the previous checkpoint must be on disk, whole. A kill 0.3 s in lands after it: the new one."""
    expected = reference(script, variant, tmp_path)
    checkpoint, losses, outcomes, current = tmp_path / "run.ckpt", [], [], None
    for delay in [0.03, 0.3, 0.0, 0.3, 0.06, 0.3]:
        proc = start(script, variant, checkpoint, SLOW_SAVE=0.1, STEP_DELAY=0.05)
        words = read_until(proc, lambda words: words[0] == "saving", losses)
        assert words is not None, "the run ended without saving"
        time.sleep(delay)
        kill(proc)
        if not checkpoint.exists():  # killed before the very first rename: no checkpoint was ever complete
            assert current is None
            outcomes.append("before")
            continue
        on_disk = tg.load(checkpoint)["step"]  # always loads: a complete checkpoint, never a partial one
        assert on_disk in (current, int(words[1])), (on_disk, current, words)
        outcomes.append("after" if on_disk == int(words[1]) else "before")
        current = on_disk
    assert outcomes[::2] == ["before"] * 3  # the kills inside the window before the rename kept the old file
    assert "after" in outcomes and current is not None and current > EVERY
    proc = start(script, variant, checkpoint)
    finish(proc, losses)
    check(losses, expected)


# ---------------------------------------------------------------------------------------------------------------
# the checkpoints of `tinygrad-edu train --save` / tinygrad_edu.train.save_checkpoint: one format, everything to
# resume or evaluate, and a CheckpointError saying why for every file that cannot be used
# ---------------------------------------------------------------------------------------------------------------
SMALL = dict(depth=1, width=8, epochs=2, seed=4)


@pytest.fixture(scope="module")
def trained():
    """A short run with dropout (so the RNG state matters) and its checkpoint's contents."""
    return train.train(train.TrainConfig(dropout=0.2, **SMALL))


def one_more_step(model, optimizer, rng, x, y, master=None, scaler=None):
    """One training step from the given state (as train's loop takes it); returns the loss and the weights."""
    tg.set_rng_state(rng)
    model.train()
    optimizer.zero_grad()
    if master is not None:
        loss = F.cross_entropy(model(x.half()).float(), y)
        scaler.scale(loss).backward()
        master.copy_grads_to_master()
        scaler.step(optimizer)
        scaler.update()
        master.copy_master_to_model()
    else:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item(), {k: v.copy() for k, v in (master or model).state_dict().items()}


def batch(seed=11):
    x, y = datasets.disc(100, seed=seed)
    return Tensor(x), Tensor(y)


def test_train_save_holds_everything_to_resume(trained, tmp_path):
    """A model, optimizer and RNG rebuilt from the file take the very step the live run would take next."""
    path = tmp_path / "run.ckpt"
    train.save_checkpoint(path, trained)
    model, config, saved = train.load_checkpoint(path)  # builds the model: draws random weights, then loads
    assert config == train.TrainConfig(dropout=0.2, **SMALL) and saved["epoch"] == 2
    optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    optimizer.load_state_dict(saved["optimizer"])
    x, y = batch()
    resumed = one_more_step(model, optimizer, saved["rng"], x, y)
    live = one_more_step(trained["model"], trained["optimizer"], saved["rng"], x, y)
    assert resumed[0] == live[0]
    for name, value in live[1].items():
        np.testing.assert_array_equal(resumed[1][name], value, err_msg=name)


def test_mixed16_save_holds_the_masters_and_the_scaler_to_resume(tmp_path):
    history = train.train(train.TrainConfig(precision="mixed16", dropout=0.1, **SMALL))
    path = tmp_path / "mixed.ckpt"
    train.save_checkpoint(path, history["checkpoint"])
    model, config, saved = train.load_checkpoint(path)
    master = amp.MasterWeights(model)
    optimizer = optim.SGD(master.parameters(), lr=config.lr, momentum=config.momentum)
    optimizer.load_state_dict(saved["optimizer"])
    scaler = amp.GradScaler()
    scaler.load_state_dict(saved["scaler"])
    assert scaler.get_scale() == history["loss_scale"]
    x, y = batch()
    resumed = one_more_step(model, optimizer, saved["rng"], x, y, master, scaler)
    live = one_more_step(history["model"], history["optimizer"], saved["rng"], x, y, history["master"],
                         history["scaler"])
    assert resumed[0] == live[0]
    for name, value in live[1].items():
        np.testing.assert_array_equal(resumed[1][name], value, err_msg=name)


def test_save_checkpoint_takes_a_model_or_a_state_dict(tmp_path):
    """Before: save_checkpoint(path, model) raised numpy.savez's TypeError."""
    config = train.TrainConfig(**SMALL)
    model = train.build_model(2, 2, config.depth, config.width)
    train.save_checkpoint(tmp_path / "model.ckpt", model)
    other = train.build_model(2, 2, config.depth, config.width)
    assert train.load_checkpoint(tmp_path / "model.ckpt", other).config is None
    np.testing.assert_array_equal(other[0].weight.numpy(), model[0].weight.numpy())
    with pytest.raises(CheckpointError, match="holds no config to build the model from"):
        train.load_checkpoint(tmp_path / "model.ckpt")
    train.save_checkpoint(tmp_path / "state.ckpt", model.state_dict(), config)
    rebuilt, saved_config, _ = train.load_checkpoint(tmp_path / "state.ckpt")
    assert saved_config == config
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(rebuilt.state_dict()[name], value)
    with pytest.raises(TypeError, match="save_checkpoint: cannot save a list"):
        train.save_checkpoint(tmp_path / "bad.ckpt", [1, 2])
    assert not (tmp_path / "bad.ckpt").exists()


def test_load_checkpoint_gives_a_checkpoint_error_with_the_reason_for_every_bad_file(tmp_path):
    """Before: zipfile.BadZipFile, FileNotFoundError, a KeyError listing the archive's keys..."""
    good = tmp_path / "good.ckpt"
    tg.save({"w": np.ones(3)}, good)
    data = good.read_bytes()
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "text.ckpt").write_text("hello")
    (tmp_path / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(tmp_path / "random.zip", "w") as archive:
        archive.writestr("a.txt", "a")
    (tmp_path / "folder").mkdir()
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    cases = {"empty.ckpt": "is empty", "text.ckpt": "is not a zip archive", "truncated.ckpt": "is truncated",
             "random.zip": "is a zip archive but not an .npz", "folder": "is a directory",
             "missing.ckpt": "no checkpoint at", "other.npz": "has no '__manifest__' entry",
             "good.ckpt": "is a tinygrad_edu.save file, but not a training checkpoint"}
    model = train.build_model(2, 2, 1, 8)
    for name, reason in cases.items():
        for call in (lambda p: train.load_checkpoint(p), lambda p: train.load_checkpoint(p, model)):
            with pytest.raises(CheckpointError) as info:
                call(tmp_path / name)
            assert reason in str(info.value) and name in str(info.value), (name, str(info.value))


def test_an_old_npz_of_train_save_says_how_to_convert_and_converts(tmp_path):
    config = train.TrainConfig(**SMALL)
    model = train.build_model(2, 2, config.depth, config.width)
    old, new = tmp_path / "disc.npz", tmp_path / "disc.ckpt"
    np.savez(old, **model.state_dict())  # the file `tinygrad-edu train --save` wrote before
    with pytest.raises(CheckpointError, match=r"the plain \.npz that `tinygrad-edu train --save` wrote before .*"
                                              r"convert_legacy_checkpoint\(.*or train again with --save"):
        train.load_checkpoint(old, train.build_model(2, 2, config.depth, config.width))
    with pytest.raises(CheckpointError, match=r"convert_legacy_checkpoint: '.*disc.npz' does not fit the model: "
                                              r"0\.weight has shape \(8, 2\) in the checkpoint, \(32, 2\) in the model "
                                              r"\(the config given: disc, depth 1, width 32"):
        train.convert_legacy_checkpoint(old, new, train.TrainConfig(depth=1, width=32))
    assert not new.exists()
    train.convert_legacy_checkpoint(old, new, config)
    rebuilt, saved_config, saved = train.load_checkpoint(new)
    assert saved_config == config and saved["optimizer"] is None
    np.testing.assert_array_equal(rebuilt[0].weight.numpy(), model[0].weight.numpy())
    with pytest.raises(CheckpointError, match=r"the model has 7\.weight, .*\(105 in all\), which the checkpoint lacks \(the config given: disc, depth 16"):
        train.convert_legacy_checkpoint(old, new)  # the default config, TrainConfig(): depth 16
    with pytest.raises(CheckpointError, match="already is a tinygrad_edu checkpoint"):
        train.convert_legacy_checkpoint(new, tmp_path / "again.ckpt")


def test_weights_that_do_not_fit_the_model_name_the_parameter_and_both_shapes(tmp_path):
    path = tmp_path / "run.ckpt"
    train.save_checkpoint(path, train.build_model(2, 2, 1, 8), train.TrainConfig(**SMALL))
    model = train.build_model(2, 2, 1, 16)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"load_checkpoint: '.*run.ckpt' does not fit the model: 0\.weight has "
                                              r"shape \(8, 2\) in the checkpoint, \(16, 2\) in the model \(the "
                                              r"checkpoint's config: disc, depth 1, width 8"):
        train.load_checkpoint(path, model)
    deeper = train.build_model(2, 2, 2, 8)
    with pytest.raises(CheckpointError, match=r"does not fit the model: the model has 7\.weight, 7\.bias, 9\.weight, "
                                              r"9\.bias, \.\.\. \(7 in all\), which the checkpoint lacks"):
        train.load_checkpoint(path, deeper)
    for name, value in model.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(value, before[name])
