"""Checkpoints: ``tg.save`` / ``tg.load`` (tinygrad_edu/serialization.py), ``get_rng_state``/``set_rng_state``,
``Module.load_state_dict`` and ``Optimizer.load_state_dict``.

* bit-exact round trips of arrays over dtypes and shapes (every bit pattern: NaN payloads, -0.0, inf), of nested
  structures (types kept), of module, optimizer (SGD momentum, Adam moments and steps), FP32 master weights, the
  loss scaler and the random generator: training continued from a checkpoint matches training never stopped;
* no pickle: object arrays are refused at save, and a crafted archive with one runs no code at load;
* errors that change nothing: missing, truncated, corrupted files, foreign archives, unknown versions, an
  unsupported object mid-structure, an unwritable directory, a write that fails half-way (the old checkpoint stays
  byte-identical, no temporary file is left); shape, dtype and key mismatches leave the module as it was.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
import tinygrad_edu.serialization as serialization
from tinygrad_edu import CheckpointError, Tensor, amp, nn, optim
from tinygrad_edu.nn.modules.module import Parameter


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def mlp(seed=0, dtype="float32"):
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    return model.to(dtype=dtype)


def batch(seed=1, dtype="float32"):
    rng = np.random.default_rng(seed)
    return Tensor(rng.normal(size=(6, 4)).astype(dtype)), Tensor(rng.integers(0, 3, size=6))


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


# ----------------------------------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------------------------------
BIT_DTYPES = {"float16": "uint16", "float32": "uint32", "float64": "uint64", "int8": "int8", "int32": "int32",
              "int64": "int64", "uint8": "uint8"}


@st.composite
def any_bits_arrays(draw):
    """Arrays whose bytes are arbitrary: for floats, every NaN payload, -0.0, ±inf and subnormals can come."""
    dtype = draw(st.sampled_from(sorted(BIT_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    bits = draw(hnp.arrays(np.dtype(BIT_DTYPES[dtype]), shape))
    specials = np.array([np.nan, -0.0, np.inf, -np.inf], dtype=dtype) if dtype.startswith("float") else None
    array = bits.view(dtype)
    if specials is not None and array.size:
        array.reshape(-1)[: len(specials)] = specials[: array.size]
    return array


@settings(max_examples=15, deadline=None)
@given(arrays=st.lists(any_bits_arrays(), min_size=1, max_size=3))
def test_arrays_round_trip_bit_exact(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("ck") / "arrays.ckpt"
    tg.save({"arrays": arrays, "bool": np.array([True, False])}, path)
    back = tg.load(path)
    for saved, loaded in zip(arrays, back["arrays"]):
        assert isinstance(loaded, np.ndarray)
        assert loaded.dtype == saved.dtype and loaded.shape == saved.shape
        assert loaded.tobytes() == saved.tobytes()  # bits, not values: NaN payloads and -0.0 survive
    np.testing.assert_array_equal(back["bool"], [True, False])


def test_nested_structure_round_trip_keeps_types(tmp_path):
    obj = OrderedDict(
        a=[1, 2**80, -3.5, float("inf"), float("-0.0"), 0.1, True, None, "text"],
        b=(np.float16(1.5), np.int64(7), (1, [2])),
        c={1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
        t=Tensor(np.array([1.0, np.nan], dtype=np.float16)),
        p=Parameter(Tensor(np.arange(3, dtype=np.float64))),
        g=Tensor(np.ones(2, dtype=np.float32)).requires_grad_(True),
        empty={"list": [], "dict": {}, "array": np.zeros((0, 3), dtype=np.float32)},
    )
    tg.save(obj, tmp_path / "nested.ckpt")
    back = tg.load(tmp_path / "nested.ckpt")
    assert type(back) is OrderedDict and list(back) == list(obj)
    assert back["a"][:3] == [1, 2**80, -3.5] and back["a"][3] == float("inf")
    assert np.signbit(back["a"][4]) and back["a"][5] == 0.1 and back["a"][6:] == [True, None, "text"]
    assert type(back["a"][6]) is bool and type(back["a"][0]) is int
    assert back["b"][0] == np.float16(1.5) and back["b"][0].dtype == np.float16 and back["b"][1].dtype == np.int64
    assert back["b"][2] == (1, [2]) and isinstance(back["b"], tuple)
    assert back["c"] == {1: "int key", 2.5: "float key", None: "none key", False: "bool key"}
    assert [type(k) for k in back["c"]] == [int, float, type(None), bool]
    assert type(back["t"]) is Tensor and back["t"].device == "cpu" and back["t"].dtype == np.float16
    assert back["t"].numpy().tobytes() == obj["t"].numpy().tobytes()
    assert type(back["p"]) is Parameter and back["p"].requires_grad and back["p"].dtype == np.float64
    assert back["g"].requires_grad and not back["t"].requires_grad
    assert back["empty"]["list"] == [] and back["empty"]["dict"] == {} and back["empty"]["array"].shape == (0, 3)


def test_format_is_an_npz_with_a_json_manifest(tmp_path):
    path = tmp_path / "model.pt"  # the name is kept as given: no .npz is appended
    tg.save({"w": np.ones(2, np.float32), "step": 3}, path)
    assert os.listdir(tmp_path) == ["model.pt"]
    with np.load(path, allow_pickle=False) as archive:
        manifest = json.loads(archive["__manifest__"].tobytes())
        assert sorted(archive.files) == ["__manifest__", "a0"]
    assert manifest["format"] == "tinygrad_edu.checkpoint" and manifest["version"] == serialization.VERSION
    assert manifest["root"]["items"][1] == [{"t": "str", "v": "step"}, {"t": "int", "v": 3}]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_module_round_trip_bit_exact(tmp_path, dtype):
    model, (x, y) = mlp(0, dtype), batch(dtype=dtype)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_step(model, opt, x, y)  # running statistics and num_batches_tracked move
    tg.save(model.state_dict(), tmp_path / "m.ckpt")
    other = mlp(5, dtype)
    result = other.load_state_dict(tg.load(tmp_path / "m.ckpt"))
    assert result == ([], []) and result.missing_keys == []
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    model.eval(), other.eval()
    assert model(x).numpy().tobytes() == other(x).numpy().tobytes()


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    lambda p: optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
    lambda p: optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), amsgrad=True),
    lambda p: (lambda ps: optim.Adam([{"params": ps[:2], "lr": 1e-3}, {"params": ps[2:]}], lr=1e-2))(list(p)),
], ids=["sgd-nesterov", "sgd-dampening", "adam-amsgrad", "adam-groups"])
def test_training_continues_bit_exact_from_a_checkpoint(tmp_path, make_opt):
    """Train 3 steps, checkpoint, train 3 more; a fresh model+optimizer loaded from the checkpoint reproduces the
    3 more steps bit for bit (momentum buffers, Adam moments, step counts, hyper-parameters, dropout RNG)."""
    x, y = batch()
    model = mlp(0)
    opt = make_opt(model.parameters())
    for _ in range(3):
        train_step(model, opt, x, y)
    tg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": tg.get_rng_state(), "step": 3},
            tmp_path / "run.ckpt")
    expected = [train_step(model, opt, x, y) for _ in range(3)]
    checkpoint = tg.load(tmp_path / "run.ckpt")
    other = mlp(7)
    other_opt = make_opt(other.parameters())
    other.load_state_dict(checkpoint["model"])
    other_opt.load_state_dict(checkpoint["optimizer"])
    tg.set_rng_state(checkpoint["rng"])
    assert checkpoint["step"] == 3
    assert other_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert [train_step(other, other_opt, x, y) for _ in range(3)] == expected
    for a, b in zip(model.parameters(), other.parameters()):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    for i, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            other_value = other_opt.state_dict()["state"][i][key]
            assert np.asarray(value).tobytes() == np.asarray(other_value).tobytes() and type(value) is type(other_value)


def amp_setup(seed):
    model = mlp(seed)
    masters = amp.MasterWeights(model)  # converts the model to FP16 (batchnorm stays FP32)
    opt = optim.SGD(masters.parameters(), lr=0.05, momentum=0.9)
    scaler = amp.GradScaler(init_scale=2.0**10, growth_interval=2)
    return model, masters, opt, scaler


def amp_step(model, masters, opt, scaler, x, y):
    opt.zero_grad()
    masters.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    masters.copy_grads_to_master()
    scaler.step(opt)
    scaler.update()
    masters.copy_master_to_model()
    return loss.item()


def test_master_weights_and_scaler_round_trip(tmp_path):
    x, y = batch(dtype="float16")
    run = amp_setup(0)
    for _ in range(3):
        amp_step(*run, x, y)
    model, masters, opt, scaler = run
    tg.save({"masters": masters.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
             "rng": tg.get_rng_state()}, tmp_path / "amp.ckpt")
    expected = [amp_step(*run, x, y) for _ in range(3)]
    checkpoint = tg.load(tmp_path / "amp.ckpt")
    assert checkpoint["masters"]["0.weight"].dtype == np.float32  # the FP32 masters, not the FP16 model
    other = amp_setup(9)
    other[1].load_state_dict(checkpoint["masters"])
    other[2].load_state_dict(checkpoint["optimizer"])
    other[3].load_state_dict(checkpoint["scaler"])
    tg.set_rng_state(checkpoint["rng"])
    assert other[3].state_dict() == checkpoint["scaler"]
    assert [amp_step(*other, x, y) for _ in range(3)] == expected
    for (_, a), (_, b) in zip(masters.named_parameters(), other[1].named_parameters()):
        assert a.numpy().tobytes() == b.numpy().tobytes()


def test_rng_state_round_trip_reproduces_dropout_masks(tmp_path):
    tg.manual_seed(3)
    tg.save({"rng": tg.get_rng_state()}, tmp_path / "rng.ckpt")
    x = Tensor(np.ones((4, 50), np.float32))
    first = nn.functional.dropout(x, 0.5).numpy()
    tg.set_rng_state(tg.load(tmp_path / "rng.ckpt")["rng"])
    np.testing.assert_array_equal(nn.functional.dropout(x, 0.5).numpy(), first)
    strict = tg.get_rng_state("strict")  # the strict backend has a NumPy generator too
    tg.set_rng_state(strict, "strict")


def test_set_rng_state_rejects_bad_states_and_changes_nothing():
    state = tg.get_rng_state()
    with pytest.raises(ValueError, match="set_rng_state: expected a dict from get_rng_state"):
        tg.set_rng_state({"seed": 3})
    with pytest.raises(ValueError, match="set_rng_state: invalid PCG64 state for device 'cpu'"):
        tg.set_rng_state({"bit_generator": "PCG64", "state": 3})
    assert tg.get_rng_state() == state


# ----------------------------------------------------------------------------------------------------------------
# reading bad files
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.ckpt"
    tg.save({"model": mlp(0).state_dict(), "step": 1}, path)
    return path


def test_missing_file(tmp_path):
    """A CheckpointError (as every unreadable file), and still the FileNotFoundError it was (before: only that)."""
    with pytest.raises(CheckpointError, match="load: no checkpoint at .*nothing.ckpt") as info:
        tg.load(tmp_path / "nothing.ckpt")
    assert isinstance(info.value, FileNotFoundError)


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match="load: '.*' is a directory, not a checkpoint file") as info:
        tg.load(tmp_path)
    assert isinstance(info.value, IsADirectoryError)


@pytest.mark.parametrize("keep", [10, 100, 0.5, -22, -1])
def test_truncated_file_raises_checkpoint_error_naming_it(good_file, keep):
    data = good_file.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data) if keep < 0 else keep
    good_file.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"load: '.*good.ckpt' is truncated: it begins as a zip archive \(an "
                                              r"\.npz\) but its end is missing"):
        tg.load(good_file)


def test_empty_file(good_file):
    good_file.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"load: '.*good.ckpt' is empty \(0 bytes\), not a checkpoint"):
        tg.load(good_file)


def test_corrupted_bytes_raise_checkpoint_error(good_file):
    data = bytearray(good_file.read_bytes())
    with zipfile.ZipFile(good_file) as archive:  # flip bits inside the first array's data: the CRC check fails
        info = archive.getinfo("a0.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 4
    data[offset] ^= 0xFF
    good_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"good.ckpt' is corrupted \(BadZipFile: Bad CRC-32"):
        tg.load(good_file)


def test_not_an_archive(tmp_path):
    """A 5-byte text file is not a zip archive (before: 'it holds an object array, which would need pickle')."""
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.txt' is not a checkpoint: it is not a zip archive") as info:
        tg.load(path)
    assert "pickle" not in str(info.value) and "b'hello'" in str(info.value)
    np.save(tmp_path / "one.npy", np.ones(2))
    with pytest.raises(CheckpointError, match=r"one.npy' is a single NumPy array \(a \.npy file"):
        tg.load(tmp_path / "one.npy")


def test_a_zip_that_is_not_an_npz(tmp_path):
    path = tmp_path / "random.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
        archive.writestr("data/values.csv", "1,2,3")
    with pytest.raises(CheckpointError, match=r"random.zip' is a zip archive but not an \.npz, so not a tinygrad_edu "
                                              r"checkpoint \(it holds readme.txt, data/values.csv"):
        tg.load(path)


def _bad_files(tmp_path, good_file):
    """name -> (path, the reason load must give) for every kind of file load cannot read."""
    data = good_file.read_bytes()
    files = {"empty": b"", "text": b"hello", "truncated": data[: len(data) // 2]}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.ckpt"
        paths[name].write_bytes(content)
    paths["random zip"] = tmp_path / "random.zip"
    with zipfile.ZipFile(paths["random zip"], "w") as archive:
        archive.writestr("a.txt", "a")
    paths["directory"], paths["missing"] = tmp_path / "folder", tmp_path / "missing.ckpt"
    paths["directory"].mkdir()
    reasons = {"empty": "is empty", "text": "is not a zip archive", "truncated": "is truncated",
               "random zip": "is a zip archive but not an .npz", "directory": "is a directory",
               "missing": "no checkpoint at"}
    return {name: (paths[name], reasons[name]) for name in reasons}


def test_every_bad_file_gives_a_checkpoint_error_with_its_reason(tmp_path, good_file):
    for name, (path, reason) in _bad_files(tmp_path, good_file).items():
        with pytest.raises(CheckpointError) as info:
            tg.load(path)
        assert reason in str(info.value) and os.path.basename(path) in str(info.value), (name, str(info.value))


def test_the_old_plain_npz_of_train_save_is_recognized_and_the_message_says_how_to_convert(tmp_path):
    path = tmp_path / "disc.npz"
    np.savez(path, **mlp(0).state_dict())  # what `tinygrad-edu train --save` wrote before checkpoints
    with pytest.raises(CheckpointError) as info:
        tg.load(path)
    message = str(info.value)
    assert "has no '__manifest__' entry: it is an .npz archive, but not a tinygrad_edu checkpoint" in message
    assert "named like a model's state_dict (0.bias, 0.weight, 1.bias, ...)" in message
    assert "tinygrad_edu.train.convert_legacy_checkpoint(" in message and "train again with --save" in message


def test_npz_without_manifest_or_with_a_wrong_version(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(CheckpointError, match="plain.npz' has no '__manifest__' entry"):
        tg.load(tmp_path / "plain.npz")

    def craft(manifest):
        path = tmp_path / "crafted.npz"
        np.savez(path, __manifest__=np.frombuffer(json.dumps(manifest).encode(), np.uint8))
        return path

    with pytest.raises(CheckpointError, match="has format version 99; this tinygrad_edu reads versions 1 to 2"):
        tg.load(craft({"format": "tinygrad_edu.checkpoint", "version": 99, "root": {"t": "none"}}))
    with pytest.raises(CheckpointError, match="has a manifest of format 'other'"):
        tg.load(craft({"format": "other", "version": 1, "root": {"t": "none"}}))
    with pytest.raises(CheckpointError, match="names an array 'a7' that the archive lacks"):
        tg.load(craft({"format": "tinygrad_edu.checkpoint", "version": 1,
                       "root": {"t": "array", "key": "a7", "dtype": "<f4", "shape": [2]}}))
    path = tmp_path / "badjson.npz"
    np.savez(path, __manifest__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(CheckpointError, match="badjson.npz' has a corrupted manifest"):
        tg.load(path)


class Exploit:
    """Unpickling this object would create a marker file: loading must never unpickle."""

    marker = None

    def __reduce__(self):
        return (open, (str(Exploit.marker), "w"))


def test_no_pickle_object_arrays_refused_on_save_and_never_run_on_load(tmp_path):
    with pytest.raises(TypeError, match=r"save: obj\['x'\]\[1\] is an array with dtype object"):
        tg.save({"x": [np.ones(2), np.array([{"a": 1}], dtype=object)]}, tmp_path / "obj.ckpt")
    assert os.listdir(tmp_path) == []
    Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    manifest = {"format": "tinygrad_edu.checkpoint", "version": 1,
                "root": {"t": "array", "key": "a0", "dtype": "|O", "shape": [1]}}
    evil = np.empty(1, dtype=object)
    evil[0] = Exploit()
    np.savez(path, a0=evil, __manifest__=np.frombuffer(json.dumps(manifest).encode(), np.uint8))
    with pytest.raises(CheckpointError, match=r"evil.npz' is not a valid checkpoint: array 'a0' has dtype object"):
        tg.load(path)  # refused from the manifest, before the array is read
    manifest["root"]["dtype"] = "<f8"  # a manifest that lies about the dtype: refused when the array is read
    np.savez(path, a0=evil, __manifest__=np.frombuffer(json.dumps(manifest).encode(), np.uint8))
    with pytest.raises(CheckpointError, match=r"evil.npz' holds an object array \('a0'\), which would need pickle"):
        tg.load(path)
    assert not Exploit.marker.exists()


# ----------------------------------------------------------------------------------------------------------------
# writing: refusals and atomicity
# ----------------------------------------------------------------------------------------------------------------
def test_unsupported_object_mid_structure_leaves_the_old_file_byte_identical(good_file):
    before = good_file.read_bytes()
    with pytest.raises(TypeError, match=r"save: cannot save obj\['model'\]\[1\] of type set"):
        tg.save({"model": [np.ones(3), {1, 2}]}, good_file)
    with pytest.raises(TypeError, match=r"obj\['net'\] is a Sequential module; save its state_dict\(\) instead"):
        tg.save({"net": mlp(0)}, good_file)
    with pytest.raises(TypeError, match=r"obj has a key \(1, 2\) of type tuple"):
        tg.save({(1, 2): 3}, good_file)
    assert good_file.read_bytes() == before
    assert leftovers(good_file.parent) == []


def test_a_write_failing_half_way_leaves_the_old_file_and_no_temporary(good_file, monkeypatch):
    before = good_file.read_bytes()
    real_savez = np.savez

    def savez_then_disk_full(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)
        file.truncate(file.tell() // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialization.np, "savez", savez_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        tg.save({"model": mlp(1).state_dict(), "step": 2}, good_file)
    monkeypatch.undo()
    assert good_file.read_bytes() == before and leftovers(good_file.parent) == []

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tg.save({"step": 3}, good_file)
    monkeypatch.undo()
    assert good_file.read_bytes() == before and leftovers(good_file.parent) == []
    assert tg.load(good_file)["step"] == 1


def test_unwritable_or_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        tg.save({"step": 1}, tmp_path / "no" / "such" / "dir.ckpt")
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsADirectoryError, match="is a directory"):
        tg.save({"step": 1}, tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anyway
            pytest.skip("running as a user that can write into read-only directories")
        with pytest.raises(PermissionError):
            tg.save({"step": 1}, locked / "a.ckpt")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_overwriting_replaces_the_checkpoint(good_file):
    tg.save({"step": 2}, good_file)
    assert tg.load(good_file) == {"step": 2} and leftovers(good_file.parent) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_a_new_checkpoint_gets_the_mode_the_umask_gives(tmp_path, umask):
    """As open() would: 0o666 & ~umask (before: always 0o600, tempfile's mode)."""
    previous = os.umask(umask)
    try:
        tg.save({"step": 1}, tmp_path / "new.ckpt")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(previous)
    mode = stat.S_IMODE(os.stat(tmp_path / "new.ckpt").st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode), oct(mode)


def test_a_checkpoint_written_over_keeps_its_mode_and_is_still_replaced_atomically(good_file, monkeypatch):
    good_file.chmod(0o640)
    renames = []
    real_replace = os.replace

    def record(src, dst):
        renames.append((os.path.dirname(os.path.abspath(src)), os.path.basename(src), dst))
        real_replace(src, dst)

    monkeypatch.setattr(serialization.os, "replace", record)
    tg.save({"step": 2}, good_file)
    ((folder, name, target),) = renames
    assert folder == str(good_file.parent) and name.startswith(".good.ckpt.") and name.endswith(".tmp")
    assert os.fspath(target) == os.fspath(good_file)
    assert stat.S_IMODE(os.stat(good_file).st_mode) == 0o640 and tg.load(good_file) == {"step": 2}
    assert leftovers(good_file.parent) == []


# ----------------------------------------------------------------------------------------------------------------
# Module.load_state_dict / Optimizer.load_state_dict: checked before anything changes
# ----------------------------------------------------------------------------------------------------------------
def assert_unchanged(model, before):
    for name, value in model.state_dict().items():
        assert value.tobytes() == before[name].tobytes(), name


def test_module_load_state_dict_errors_change_nothing():
    model = mlp(0)
    before = model.state_dict()
    bad = dict(mlp(1).state_dict())
    bad["4.weight"] = np.zeros((8, 3), np.float32)
    with pytest.raises(ValueError, match=r"Sequential.load_state_dict: 4.weight has shape \(8, 3\) in the state, "
                                         r"\(3, 8\) in the module"):
        model.load_state_dict(bad)
    bad = dict(mlp(1).state_dict())
    bad["0.weight"] = bad["0.weight"].astype(np.int32)
    with pytest.raises(TypeError, match="0.weight has dtype int32 in the state, float32 in the module "
                                        r"\(expected a floating dtype\)"):
        model.load_state_dict(bad)
    bad = dict(mlp(1).state_dict())
    bad["1.num_batches_tracked"] = np.array(1.0)
    with pytest.raises(TypeError, match="num_batches_tracked has dtype float64 .* int64 in the module"):
        model.load_state_dict(bad)
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\], unexpected keys \['extra'\]"):
        model.load_state_dict({**{k: v for k, v in mlp(1).state_dict().items() if k != "0.bias"}, "extra": 1})
    with pytest.raises(TypeError, match="expected a dict of name -> array"):
        model.load_state_dict([1, 2])
    assert_unchanged(model, before)


def test_module_load_state_dict_non_strict():
    model, donor = mlp(0), mlp(1).state_dict()
    partial = {k: v for k, v in donor.items() if k.startswith("0.")}
    result = model.load_state_dict({**partial, "extra.weight": np.ones(2)}, strict=False)
    assert result.unexpected_keys == ["extra.weight"] and "4.weight" in result.missing_keys
    assert "0.weight" not in result.missing_keys
    assert model.state_dict()["0.weight"].tobytes() == donor["0.weight"].tobytes()
    assert model.state_dict()["4.weight"].tobytes() != donor["4.weight"].tobytes()


def test_module_load_state_dict_failing_mid_way_changes_nothing(monkeypatch):
    """A device transfer that fails on the third tensor (e.g. out of memory) leaves all tensors as they were."""
    model = mlp(0)
    before = model.state_dict()
    backend = model[0].weight.backend
    real, calls = backend.from_host, []

    def failing(host):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of device memory")
        return real(host)

    monkeypatch.setattr(backend, "from_host", failing)
    with pytest.raises(MemoryError):
        model.load_state_dict(mlp(1).state_dict())
    monkeypatch.undo()
    assert_unchanged(model, before)


def test_optimizer_load_state_dict_errors_change_nothing():
    x, y = batch()
    model = mlp(0)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    train_step(model, opt, x, y)
    before = opt.state_dict()
    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"parameter 1: exp_avg has shape \(3,\) in the state, \(8,\) in the opt"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros(8, np.int64)
    with pytest.raises(TypeError, match="parameter 1: exp_avg has dtype int64 in the state, expected a floating"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    bad["param_groups"][0]["params"] = [0, 0, 1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="indices appear twice"):
        opt.load_state_dict(bad)
    bad = opt.state_dict()
    bad["param_groups"] = "nope"
    with pytest.raises(ValueError, match="param_groups must be a list of dicts"):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for i, entry in before["state"].items():
        for key, value in entry.items():
            assert np.asarray(value).tobytes() == np.asarray(after["state"][i][key]).tobytes()


def test_load_places_tensors_on_map_location(tmp_path):
    tg.save({"t": Tensor(np.ones(3, np.float32))}, tmp_path / "t.ckpt")
    assert tg.load(tmp_path / "t.ckpt", map_location="strict")["t"].device == "strict"


def test_device_tensors_and_arrays_are_saved_from_host_copies(tmp_path):
    on_device = Tensor(np.array([1.5, -0.0, np.inf], np.float32), device="strict")
    tg.save({"tensor": on_device, "array": on_device.data}, tmp_path / "d.ckpt")
    back = tg.load(tmp_path / "d.ckpt")
    assert type(back["array"]) is np.ndarray and back["tensor"].device == "cpu"
    assert back["array"].tobytes() == back["tensor"].numpy().tobytes() == on_device.numpy().tobytes()


# ----------------------------------------------------------------------------------------------------------------
# crafted files: every refusal is a CheckpointError, and nothing is read that the manifest does not announce
# ----------------------------------------------------------------------------------------------------------------
def _crafted(path, root, version=2, compressed=False, **arrays):
    manifest = {"format": "tinygrad_edu.checkpoint", "version": version, "root": root}
    (np.savez_compressed if compressed else np.savez)(
        path, **arrays, __manifest__=np.frombuffer(json.dumps(manifest).encode(), np.uint8))
    return path


@pytest.mark.parametrize("depth", [150, 1500, 100_000])
def test_a_manifest_nested_too_deep_is_a_checkpoint_error(tmp_path, depth):
    root = '{"t": "list", "items": [' * depth + '{"t": "none"}' + "]}" * depth
    manifest = '{"format": "tinygrad_edu.checkpoint", "version": 2, "root": ' + root + "}"
    path = tmp_path / "deep.npz"
    np.savez(path, __manifest__=np.frombuffer(manifest.encode(), np.uint8))
    with pytest.raises(CheckpointError, match=r"deep\.npz' (has a corrupted manifest \(nested too deep|is not a "
                                              r"valid checkpoint: its manifest nests more than 100 deep)"):
        tg.load(path)


def test_scalars_of_the_wrong_json_type_are_refused(tmp_path):
    for node in ({"t": "bool", "v": "false"}, {"t": "str", "v": 3}, {"t": "int", "v": "1"}):
        with pytest.raises(CheckpointError, match=r"node holds"):
            tg.load(_crafted(tmp_path / "scalar.npz", node))


def test_arrays_the_manifest_does_not_announce_are_never_unpacked(tmp_path):
    import tracemalloc

    zeros = np.zeros(25_000_000, np.uint8)  # 25 MB of zeros: a few KB compressed
    bomb = _crafted(tmp_path / "bomb.npz", {"t": "none"}, compressed=True, a0=zeros)
    assert bomb.stat().st_size < 1_000_000
    lies = _crafted(tmp_path / "lies.npz", {"t": "array", "key": "a0", "dtype": "|u1", "shape": [4], "sha256": ""},
                    compressed=True, a0=zeros)  # the manifest announces 4 bytes: the 25 MB member is refused unread
    del zeros
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"bomb\.npz' is not a valid checkpoint: it holds 1 array\(s\) its "
                                                  r"manifest does not name \(a0\)"):
            tg.load(bomb)
        with pytest.raises(CheckpointError, match=r"lies\.npz' is corrupted: its entry 'a0' unpacks to 25000128 bytes, "
                                                  r"more than the 4 bytes"):
            tg.load(lies)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # neither member was unpacked


def test_string_and_structured_arrays_are_refused(tmp_path):
    for array in (np.array(["a", "b"]), np.zeros(2, dtype=[("x", "f4"), ("y", "i4")])):
        with pytest.raises(TypeError, match=r"save: obj\['x'\] is an array with dtype"):
            tg.save({"x": array}, tmp_path / "s.ckpt")
        node = {"t": "array", "key": "a0", "dtype": array.dtype.str, "shape": list(array.shape), "sha256": ""}
        with pytest.raises(CheckpointError, match=r"a checkpoint holds numbers only"):
            tg.load(_crafted(tmp_path / "s.npz", node, a0=array))


def test_two_swapped_arrays_of_one_shape_are_detected(tmp_path):
    path = tmp_path / "run.ckpt"
    tg.save({"w": np.arange(6.0).reshape(2, 3), "v": -np.arange(6.0).reshape(2, 3)}, path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["a0"], arrays["a1"] = arrays["a1"], arrays["a0"]
    with open(path, "wb") as f:  # (a path would get ".npz" appended)
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match=r"array 'a0' does not hold the bytes the manifest's SHA-256 names"):
        tg.load(path)


def test_saving_a_cycle_or_an_absurd_depth_is_a_clear_error(tmp_path):
    cycle = {"a": [1, 2]}
    cycle["a"].append(cycle)
    with pytest.raises(ValueError, match=r"save: obj\['a'\]\[2\] contains itself \(a cycle\)"):
        tg.save(cycle, tmp_path / "c.ckpt")
    deep: list = []
    for _ in range(3000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"is nested more than 100 deep"):
        tg.save(deep, tmp_path / "d.ckpt")
    assert os.listdir(tmp_path) == []


def test_version_1_checkpoints_without_digests_still_load(tmp_path):
    path = _crafted(tmp_path / "v1.npz", {"t": "array", "key": "a0", "dtype": "<f8", "shape": [3]}, version=1,
                    a0=np.arange(3.0))
    np.testing.assert_array_equal(tg.load(path), np.arange(3.0))
