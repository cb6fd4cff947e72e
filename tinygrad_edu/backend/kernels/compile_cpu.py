"""Compile the C kernels at run time, as the CUDA ones are (through NVRTC): with this machine's C compiler, once.

``load("f16_convert")`` compiles ``kernels/f16_convert.c`` into a CPython extension module with the compiler and
flags Python itself was built with (``sysconfig``), keeps it in a cache folder, and imports it. The next process
finds it there: the file name holds a hash of the source, the Python version and the command, so an edited source
or another Python compiles anew. Where no compiler works, ``load`` returns None and says why in ``errors``: the
callers then use their NumPy code, which computes the same bits more slowly.

The cache folder is ``$TINYGRAD_EDU_CACHE`` (default ``~/.cache/tinygrad_edu``), ``kernels-<platform>/`` inside.
``TINYGRAD_EDU_COMPILE=0`` turns compilation off. Several processes starting at once (``mpirun``) each compile into
a file of their own and rename it into place, so none reads a half-written module.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

from tinygrad_edu.backend.kernels import source_path

#: why a kernel could not be compiled, by name (for the tests and for curious users)
errors: dict[str, str] = {}
_loaded: dict[str, ModuleType | None] = {}


def cache_dir() -> Path:
    root = os.environ.get("TINYGRAD_EDU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tinygrad_edu")
    return Path(root) / f"kernels-{sysconfig.get_platform()}"


def command(source: Path, target: Path) -> list[str]:
    """The compiler command: Python's own C compiler and shared-library flags, optimized."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    position_independent = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    shared = ["-bundle", "-undefined", "dynamic_lookup"] if sys.platform == "darwin" else ["-shared"]
    include = f"-I{sysconfig.get_paths()['include']}"
    return [*compiler, "-O3", *position_independent, *shared, include, str(source), "-o", str(target)]


def load(name: str) -> ModuleType | None:
    """The extension module compiled from ``kernels/<name>.c`` (imported as
    ``tinygrad_edu.backend.kernels._<name>``), or None when it cannot be compiled here."""
    if name not in _loaded:
        try:
            _loaded[name] = _compile_and_import(name)
        except Exception as exc:  # noqa: BLE001 - any failure means: use the NumPy path, and say why
            errors[name] = f"{type(exc).__name__}: {exc}"
            _loaded[name] = None
    return _loaded[name]


def _compile_and_import(name: str) -> ModuleType:
    if os.environ.get("TINYGRAD_EDU_COMPILE", "1") == "0":
        raise RuntimeError("compilation is turned off (TINYGRAD_EDU_COMPILE=0)")
    source = source_path(f"{name}.c")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    folder = cache_dir()
    probe = command(source, folder / f"_{name}{suffix}")
    key = hashlib.sha256(source.read_bytes() + " ".join(probe).encode() + sys.version.encode()).hexdigest()[:16]
    target = folder / f"_{name}-{key}{suffix}"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f"_{name}-", suffix=suffix, dir=folder)
        os.close(handle)
        try:
            compile_command = command(source, Path(partial))
            done = subprocess.run(compile_command, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(compile_command)} failed:\n{done.stderr.strip()}")
            os.replace(partial, target)  # atomic: another process sees the whole module or none
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    spec = importlib.util.spec_from_file_location(f"tinygrad_edu.backend.kernels._{name}", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
