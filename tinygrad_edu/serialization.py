"""Checkpoints: ``save(obj, path)`` and ``load(path)``, PyTorch's names, without pickle.

What can be saved: nested ``dict`` (``OrderedDict`` too; keys ``str``, ``int``, ``float``, ``bool`` or ``None``),
``list`` and ``tuple`` of arrays (NumPy, or a device array: stored from a host copy), ``Tensor``/``Parameter``,
NumPy scalars, and Python ``int``/``float``/``bool``/``str``/``None``. That covers ``module.state_dict()``,
``optimizer.state_dict()``, ``amp.MasterWeights.state_dict()``, ``amp.GradScaler.state_dict()``,
``get_rng_state()`` and the user's own counters::

    tg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": tg.get_rng_state(),
             "epoch": epoch}, "run.ckpt")
    checkpoint = tg.load("run.ckpt")
    model.load_state_dict(checkpoint["model"])

**Format** (version 2). One ``.npz`` archive (``numpy.savez``, uncompressed; written to exactly ``path``, no
extension is added) holding every array under a flat key ``a0``, ``a1``, ... and one entry ``__manifest__``: a
UTF-8 JSON document stored as a uint8 array, ``{"format": "tinygrad_edu.checkpoint", "version": 1, "root":
NODE}``, where a NODE is ``{"t": "dict", "ordered": bool, "items": [[KEY_NODE, NODE], ...]}``, ``{"t": "list" |
"tuple", "items": [...]}``, ``{"t": "array" | "scalar" | "tensor" | "parameter", "key": "a0", "dtype": "float16",
"shape": [...], "sha256": "..."}`` (the SHA-256 of the array's bytes in C order, checked on load: two arrays
swapped or edited are caught; version 1 had none; a tensor also records ``requires_grad``), ``{"t": "int", "v":
3}`` (any size),
``{"t": "float", "v": "0x1.8p+1"}`` (``float.hex``: exact, also for inf and NaN), ``{"t": "bool"}``,
``{"t": "str"}`` or ``{"t": "none"}``. Arrays are read back with ``numpy.load(allow_pickle=False)``: loading a
checkpoint runs no code. Arrays hold numbers only (bool, integer, floating, complex): object, string and
structured arrays are refused both ways. Containers nest at most ``MAX_DEPTH`` (100) deep; a cycle is refused.
``load`` reads the manifest first and then only the arrays it names, each refused before it is unpacked if it
would unpack to more than the manifest announces: a crafted file cannot make it allocate more than that.

**Round trip**: arrays come back bit for bit (every dtype, NaN payloads and -0.0 included) as NumPy arrays;
tensors come back as tensors (``Parameter`` as ``Parameter``) on ``map_location`` (default ``"cpu"``: PyTorch
would use the saved device; a checkpoint here does not record devices, so it loads on a machine without GPU);
dicts, lists, tuples and scalars come back as they were (``OrderedDict`` as ``OrderedDict``).

**Atomic**: ``save`` writes a temporary file next to ``path`` (``.NAME.*.tmp``), flushes and fsyncs it, renames it
onto ``path`` (``os.replace``, atomic) and fsyncs the directory. A failure at any point (an unsupported object, a
full disk, a crash) leaves the previous checkpoint intact; a process killed mid-save may leave a ``.tmp`` file
behind, never a half-written ``path``. The file gets the mode ``open(path, "w")`` would give it: a new file
``0o666`` less the umask (``0o644`` under the usual umask 022), a file written over keeps its mode.

**Errors**: ``TypeError`` for an object that cannot be saved (naming where it sits, e.g. ``obj['model'][2]``).
``load`` raises ``CheckpointError`` for every file it cannot read, its message naming the file and the reason:
missing (also a ``FileNotFoundError``), a directory (also an ``IsADirectoryError``), unreadable (also a
``PermissionError``), empty, not a zip archive (a text file, a single ``.npy``), truncated (a zip archive whose
end is missing), corrupted (a CRC or header check fails), a zip archive that is not an ``.npz``, an ``.npz`` without
a manifest (another program's arrays; the plain ``.npz`` of a model's state_dict that ``tinygrad-edu train --save``
wrote before it used this format is recognized, and the message says how to convert it), an object array (which
would need pickle), a corrupted manifest (nested too deep, values of the wrong JSON type, a non-numeric dtype), an
array whose bytes do not match its SHA-256, arrays the manifest does not name, or an unknown format version.
``save`` raises ``ValueError`` for a structure that contains itself or nests deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
import re
import secrets
import stat
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from tinygrad_edu.backend import backend_of

__all__ = ["CheckpointError", "FORMAT", "VERSION", "load", "load_arrays", "save"]

FORMAT = "tinygrad_edu.checkpoint"
#: The version this code writes (2: every array node carries the SHA-256 of its bytes); ``load`` reads 1 and 2.
VERSION = 2
MANIFEST_KEY = "__manifest__"
#: Array dtype kinds a checkpoint holds: bool, ints, floats, complex (numbers; strings go in JSON ``str`` nodes).
_ARRAY_KINDS = "biufc"
#: How deep dicts, lists and tuples may nest in a checkpoint (a state_dict nests 2 or 3 deep).
MAX_DEPTH = 100
#: The .npy header a member may add to its array's bytes (numpy writes 128 bytes or, rarely, a few KiB).
_NPY_HEADER_BYTES = 65536 + 16


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read: missing, empty, truncated, corrupted, not a checkpoint, of an unknown
    version, or (``tinygrad_edu.train.load_checkpoint``) not fitting the model. The message names the file and why."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """``load`` of a path where there is no file: a ``CheckpointError`` and a ``FileNotFoundError``."""


class CheckpointIsADirectoryError(CheckpointError, IsADirectoryError):
    """``load`` of a directory: a ``CheckpointError`` and an ``IsADirectoryError``."""


class CheckpointPermissionError(CheckpointError, PermissionError):
    """``load`` of a file this process may not read: a ``CheckpointError`` and a ``PermissionError``."""


# -- saving ------------------------------------------------------------------------------------------------------------
class _Encoder:
    """Turns an object into a JSON-able manifest node and a flat dict of host arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.path: list[int] = []  # id() of the containers between the root and the node being encoded

    def _array_node(self, kind: str, host: np.ndarray, where: str) -> dict[str, Any]:
        if host.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"save: {where} is an array with dtype {host.dtype} (object or structured arrays would need "
                            f"pickle, which checkpoints never use); convert it to a numeric array")
        key = f"a{len(self.arrays)}"
        # a copy, so the saved values are those of this moment even if the caller changes the array during the write
        self.arrays[key] = array = np.array(host, copy=True, order="C")
        return {"t": kind, "key": key, "dtype": host.dtype.str, "shape": list(host.shape), "sha256": _digest(array)}

    def encode(self, obj: Any, where: str) -> dict[str, Any]:
        if isinstance(obj, (dict, list, tuple)):  # containers: refuse cycles and absurd depth (no RecursionError)
            if id(obj) in self.path:
                raise ValueError(f"save: {where} contains itself (a cycle): a checkpoint holds a tree of values")
            if len(self.path) >= MAX_DEPTH:
                raise ValueError(f"save: {where} is nested more than {MAX_DEPTH} deep")
            self.path.append(id(obj))
            try:
                return self._encode(obj, where)
            finally:
                self.path.pop()
        return self._encode(obj, where)

    def _encode(self, obj: Any, where: str) -> dict[str, Any]:
        from tinygrad_edu.nn.modules.module import Module, Parameter
        from tinygrad_edu.tensor import Tensor

        if obj is None:
            return {"t": "none"}
        if isinstance(obj, bool):
            return {"t": "bool", "v": obj}
        if isinstance(obj, np.generic):  # a NumPy scalar keeps its dtype
            return self._array_node("scalar", np.asarray(obj), where)
        if isinstance(obj, numbers.Integral):
            return {"t": "int", "v": int(obj)}
        if isinstance(obj, float):
            return {"t": "float", "v": float(obj).hex()}
        if isinstance(obj, str):
            return {"t": "str", "v": obj}
        if isinstance(obj, np.ndarray):
            return self._array_node("array", obj, where)
        if isinstance(obj, Tensor):
            node = self._array_node("parameter" if isinstance(obj, Parameter) else "tensor", obj.numpy(), where)
            node["requires_grad"] = bool(obj.requires_grad)
            return node
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if not (key is None or isinstance(key, (str, bool, int, float))):
                    raise TypeError(f"save: {where} has a key {key!r} of type {type(key).__name__}; "
                                    f"keys must be str, int, float, bool or None")
                items.append([self.encode(key, where), self.encode(value, f"{where}[{key!r}]")])
            return {"t": "dict", "ordered": isinstance(obj, OrderedDict), "items": items}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(value, f"{where}[{i}]") for i, value in enumerate(obj)]
            return {"t": "tuple" if isinstance(obj, tuple) else "list", "items": items}
        backend = backend_of(obj)
        if backend is not None:  # a device array (CuPy, array_api_strict): its host copy
            return self._array_node("array", backend.to_host(obj), where)
        if isinstance(obj, Module):
            raise TypeError(f"save: {where} is a {type(obj).__name__} module; save its state_dict() instead "
                            f"(checkpoints hold values, not code)")
        raise TypeError(f"save: cannot save {where} of type {type(obj).__name__}; supported: dict, list, tuple, "
                        f"arrays, Tensors, int, float, bool, str, None")


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` to ``path`` atomically (see the module docstring for what ``obj`` may hold and the format).

    Everything is converted first (an unsupported object raises ``TypeError`` before any file is touched), then
    written to a temporary file in ``path``'s directory, flushed, fsynced and renamed onto ``path``. On any error
    the temporary file is removed and ``path`` keeps its previous contents.
    """
    path = os.fspath(path)
    encoder = _Encoder()
    root = encoder.encode(obj, "obj")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "root": root}, allow_nan=False)
    arrays = dict(encoder.arrays)
    arrays[MANIFEST_KEY] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory; give a file name")
    fd, tmp_name = _create_temporary(path, directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            np.savez(tmp, allow_pickle=False, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:  # also KeyboardInterrupt: never leave the temporary file behind
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _create_temporary(path: str, directory: str) -> tuple[int, str]:
    """Create ``directory/.NAME.<random>.tmp`` for writing and return its descriptor and name. Its mode is what
    ``open(path, "w")`` would give ``path``: ``0o666`` less the umask (the kernel applies it) for a new file, the
    existing file's mode when ``path`` is written over (``os.replace`` then keeps it). ``tempfile`` would make it
    ``0o600`` whatever the umask."""
    try:
        existing = os.stat(path)
        mode = stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else None
    except OSError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(name, flags, 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)
            except (AttributeError, OSError):  # no fchmod (Windows), or not the owner: keep open()'s default
                pass
        return fd, name
    raise FileExistsError(f"save: could not create a temporary file in {directory!r} (100 names taken)")


def _fsync_directory(directory: str) -> None:
    """Make the rename durable: fsync the directory entry (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- loading -----------------------------------------------------------------------------------------------------------
class _Decoder:
    def __init__(self, path: str, read_array: Any, map_location: str, version: int) -> None:
        self.path, self.read_array, self.map_location, self.version = path, read_array, map_location, version
        self.used: set[str] = set()

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"load: {self.path!r} is not a valid checkpoint: {what}")

    def decode(self, node: Any, depth: int = 0) -> Any:
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.fail(f"bad manifest node {node!r:.80}")
        if depth > MAX_DEPTH:
            raise self.fail(f"its manifest nests more than {MAX_DEPTH} deep")
        kind = node["t"]
        try:
            if kind == "none":
                return None
            if kind == "bool":
                if not isinstance(node["v"], bool):
                    raise self.fail(f"bool node holds {node['v']!r:.40}")
                return node["v"]
            if kind == "int":
                if not isinstance(node["v"], int):
                    raise self.fail(f"int node holds {node['v']!r:.40}")
                return int(node["v"])
            if kind == "float":
                return float.fromhex(node["v"])
            if kind == "str":
                if not isinstance(node["v"], str):
                    raise self.fail(f"str node holds {node['v']!r:.40}")
                return node["v"]
            if kind in ("list", "tuple"):
                items = [self.decode(item, depth + 1) for item in node["items"]]
                return tuple(items) if kind == "tuple" else items
            if kind == "dict":
                pairs = [(self.decode(k, depth + 1), self.decode(v, depth + 1)) for k, v in node["items"]]
                return OrderedDict(pairs) if node.get("ordered") else dict(pairs)
            if kind in ("array", "scalar", "tensor", "parameter"):
                return self.decode_array(node)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, CheckpointError):
                raise
            raise self.fail(f"bad {kind} node in the manifest ({type(error).__name__}: {error})") from None
        raise self.fail(f"unknown node type {kind!r}")

    def decode_array(self, node: dict[str, Any]) -> Any:
        key, kind = node["key"], node["t"]
        if not isinstance(key, str) or key in self.used:
            raise self.fail(f"the manifest names the array {key!r:.40} twice (or not by a name)")
        self.used.add(key)
        dtype, shape = np.dtype(node["dtype"]), tuple(node["shape"])
        if dtype.kind not in _ARRAY_KINDS or (kind in ("tensor", "parameter") and dtype.kind not in "biuf"):
            raise self.fail(f"array {key!r} has dtype {dtype}: a checkpoint holds numbers only")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise self.fail(f"array {key!r} has shape {list(shape)}")
        array = self.read_array(key, dtype.itemsize * math.prod(shape))  # no larger than the manifest says
        if array.dtype.str != node["dtype"] or array.shape != shape:
            raise self.fail(f"array {key!r} is {array.dtype.str} {list(array.shape)}, the manifest says "
                            f"{node['dtype']} {node['shape']}")
        if self.version >= 2 and _digest(array) != node["sha256"]:
            raise self.fail(f"array {key!r} does not hold the bytes the manifest's SHA-256 names (arrays swapped, "
                            f"or the file was edited)")
        if kind == "array":
            return array
        if kind == "scalar":
            return array[()]
        from tinygrad_edu.nn.modules.module import Parameter
        from tinygrad_edu.tensor import Tensor

        tensor = Tensor(array, device=self.map_location)
        if kind == "parameter":
            return Parameter(tensor, requires_grad=bool(node.get("requires_grad", True)))
        return tensor.requires_grad_(True) if node.get("requires_grad") else tensor


#: the first bytes of a zip archive (a local file header, or the end record of an empty archive) and of a .npy
_ZIP_MAGIC, _EMPTY_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY"
#: a state_dict's names: dotted Python identifiers ("0.weight", "encoder.1.running_mean")
_STATE_DICT_NAME = re.compile(r"^\w+(\.\w+)+$")


def _read_file(path: str) -> bytes:
    """The bytes of ``path``, in one read (a concurrent ``save`` may replace the file while we parse it), or a
    ``CheckpointError`` that is also the ``OSError`` ``open`` raised (missing, a directory, not readable)."""
    if os.path.isdir(path):
        raise CheckpointIsADirectoryError(f"load: {path!r} is a directory, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"load: no checkpoint at {path!r}") from None
    except IsADirectoryError:
        raise CheckpointIsADirectoryError(f"load: {path!r} is a directory, not a checkpoint file") from None
    except PermissionError as error:
        raise CheckpointPermissionError(f"load: cannot read {path!r}: {error.strerror}") from None
    except OSError as error:
        raise CheckpointError(f"load: cannot read {path!r}: {error.strerror or error}") from None


def _open_archive(path: str) -> tuple[zipfile.ZipFile, list[str]]:
    """The zip archive at ``path`` and the names of its .npy members (without ``.npy``), checked to be an ``.npz``
    without reading any array: a ``CheckpointError`` naming the reason otherwise."""
    data = _read_file(path)
    if not data:
        raise CheckpointError(f"load: {path!r} is empty (0 bytes), not a checkpoint")
    if data.startswith(_NPY_MAGIC):
        raise CheckpointError(f"load: {path!r} is a single NumPy array (a .npy file, numpy.save), not a checkpoint "
                              f"(an .npz archive written by tinygrad_edu.save); read it with numpy.load")
    if not data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        raise CheckpointError(f"load: {path!r} is not a checkpoint: it is not a zip archive (a checkpoint is an .npz "
                              f"archive, whose first bytes are {_ZIP_MAGIC!r}; this file's are {data[:8]!r})")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except zipfile.BadZipFile as error:
        if "not a zip file" in str(error):  # no end-of-archive record: the file stops before its end
            raise CheckpointError(f"load: {path!r} is truncated: it begins as a zip archive (an .npz) but its end "
                                  f"is missing ({len(data)} bytes; BadZipFile: {error}); a copy or download that "
                                  f"stopped early?") from None
        raise CheckpointError(f"load: {path!r} is corrupted: its zip directory cannot be read "
                              f"(BadZipFile: {error})") from None
    except (EOFError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"load: {path!r} is corrupted: its zip directory cannot be read "
                              f"({type(error).__name__}: {error})") from None
    foreign = [name for name in names if not name.endswith(".npy")]
    if foreign:
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise CheckpointError(f"load: {path!r} is a zip archive but not an .npz, so not a tinygrad_edu checkpoint "
                              f"(it holds {listed}; a checkpoint holds .npy arrays and a {MANIFEST_KEY!r} entry)")
    return archive, [name[: -len(".npy")] for name in names]


def _read_member(path: str, archive: zipfile.ZipFile, name: str, max_bytes: int | None = None) -> np.ndarray:
    """The array stored as ``name.npy``, read with ``allow_pickle=False``; with ``max_bytes``, refused before any
    decompression when the member would unpack to more than that many bytes of data (a crafted file cannot make
    ``load`` allocate more than the manifest announces)."""
    info = archive.getinfo(f"{name}.npy")
    if max_bytes is not None and info.file_size > max_bytes + _NPY_HEADER_BYTES:
        raise CheckpointError(f"load: {path!r} is corrupted: its entry {name!r} unpacks to {info.file_size} bytes, "
                              f"more than the {max_bytes} bytes of the array its manifest describes")
    try:
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise CheckpointError(f"load: {path!r} holds an object array ({name!r}), which would need pickle "
                                  f"(refused: loading must run no code)") from None
        raise CheckpointError(f"load: {path!r} is corrupted: its entry {name!r} is not a valid .npy array "
                              f"(ValueError: {error})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"load: {path!r} is corrupted ({type(error).__name__}: {error})") from None


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` archive at ``path`` by name, read with ``numpy.load(allow_pickle=False)`` (no code
    runs), whether or not it is a checkpoint (``load`` reads checkpoints; this reads any ``.npz``, such as the
    plain one that ``tinygrad-edu train --save`` wrote before it used checkpoints).

    Raises ``CheckpointError`` naming the file and the reason: missing (also ``FileNotFoundError``), a directory
    (also ``IsADirectoryError``), unreadable (also ``PermissionError``), empty, not a zip archive, truncated,
    corrupted, a zip archive that is not an ``.npz``, or an object array (which would need pickle).
    """
    path = os.fspath(path)
    archive, names = _open_archive(path)
    return {name: _read_member(path, archive, name) for name in names}


def _digest(array: np.ndarray) -> str:
    """The SHA-256 of an array's bytes in C order (a checkpoint's manifest records it for every array)."""
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8).reshape(-1)).hexdigest()


def _looks_like_a_state_dict(names: list[str]) -> bool:
    """True for the names of a model's state_dict ("0.weight", "1.running_mean", ...)."""
    return bool(names) and all(_STATE_DICT_NAME.match(name) for name in names) and any(
        name.endswith((".weight", ".bias")) for name in names)


def load(path: str | os.PathLike, map_location: str | None = None) -> Any:
    """Read a checkpoint written by ``save``: the saved object, arrays as NumPy arrays, tensors on
    ``map_location`` (a device string; default ``"cpu"``).

    Uses ``numpy.load(allow_pickle=False)``: no code runs. Raises ``CheckpointError`` naming the file and the
    reason for any file it cannot read (see ``load_arrays``; a missing file's error is also a
    ``FileNotFoundError``, a directory's an ``IsADirectoryError``), and for an ``.npz`` that is not a checkpoint (no
    manifest: the message recognizes the plain state_dict ``.npz`` of the old ``tinygrad-edu train --save`` and says
    how to convert it), a corrupted manifest, or a newer format version.
    """
    path = os.fspath(path)
    archive, names = _open_archive(path)
    if MANIFEST_KEY not in names:
        message = (f"load: {path!r} has no {MANIFEST_KEY!r} entry: it is an .npz archive, but not a tinygrad_edu "
                   f"checkpoint (numpy.load reads it)")
        names = sorted(names)
        if _looks_like_a_state_dict(names):
            listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            message += (f"; its {len(names)} arrays are named like a model's state_dict ({listed}): the plain .npz "
                        f"that `tinygrad-edu train --save` wrote before it saved checkpoints. "
                        f"Convert it with tinygrad_edu.train.convert_legacy_checkpoint({path!r}, NEW_PATH, "
                        f"TrainConfig(...the options of the run that wrote it...)), or train again with --save")
        raise CheckpointError(message)
    raw = _read_member(path, archive, MANIFEST_KEY)
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"manifest is {raw.dtype} {raw.shape}, expected uint8 bytes")
        manifest = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("manifest is not a JSON object")
    except RecursionError:
        raise CheckpointError(f"load: {path!r} has a corrupted manifest (nested too deep to read)") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"load: {path!r} has a corrupted manifest ({error})") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} has a manifest of format {manifest.get('format')!r}, "
                              f"expected {FORMAT!r}")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise CheckpointError(f"load: {path!r} has format version {version!r}; this tinygrad_edu reads versions "
                              f"1 to {VERSION} (upgrade tinygrad_edu to read newer checkpoints)")
    if "root" not in manifest:
        raise CheckpointError(f"load: {path!r} has a manifest without 'root'")
    from tinygrad_edu.backend import canonical_device

    device = canonical_device(map_location) if map_location is not None else "cpu"
    available = set(names) - {MANIFEST_KEY}

    def read_array(key: str, nbytes: int) -> np.ndarray:
        if key not in available:
            raise CheckpointError(f"load: {path!r} is not a valid checkpoint: the manifest names an array {key!r} "
                                  f"that the archive lacks")
        return _read_member(path, archive, key, nbytes)

    decoder = _Decoder(path, read_array, device, version)
    result = decoder.decode(manifest["root"])
    unnamed = sorted(available - decoder.used)
    if unnamed:  # never read: a checkpoint written by save has none
        listed = ", ".join(unnamed[:3]) + (", ..." if len(unnamed) > 3 else "")
        raise CheckpointError(f"load: {path!r} is not a valid checkpoint: it holds {len(unnamed)} array(s) its "
                              f"manifest does not name ({listed})")
    return result
