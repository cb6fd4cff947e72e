"""A non-editable install ships the kernel sources inside the package, and nothing else at the top level."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "checkout"  # a clean copy: no build/ left by an earlier build
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", ".venv",
                                                               "__pycache__", ".hypothesis", ".pytest_cache"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )
    (path,) = out.glob("tinygrad_edu-*.whl")
    return path


def test_wheel_ships_kernels_inside_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tinygrad_edu/backend/kernels/matmul_cpu.py" in names  # the Python side: an ordinary subpackage
    sources = sorted(p.name for p in (ROOT / "kernels").iterdir())
    assert sources and all(name.endswith((".cu", ".c")) for name in sources)  # kernels/ holds only sources
    assert sorted(n.split("/")[-1] for n in names if n.startswith("tinygrad_edu/kernels/")) == sources
    packages = sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "tinygrad_edu").rglob("__init__.py"))
    assert [p for p in packages if f"{p}/__init__.py" not in names] == []  # setup.cfg lists every subpackage
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"tinygrad_edu", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}


def test_installed_package_finds_its_kernels_away_from_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    code = (
        "import tinygrad_edu, tinygrad_edu.backend.kernels as k, numpy as np\n"
        f"assert tinygrad_edu.__file__.startswith({str(target)!r}), tinygrad_edu.__file__\n"
        "a = tinygrad_edu.Tensor(np.ones((3, 700), dtype=np.float16))\n"
        "print((a @ a.T).numpy()[0, 0], k.source_path('gemm_fp16.cu'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    result = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.append({str(_site_packages())!r})\n" + code],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    value, location = result.stdout.split()
    assert float(value) == 700.0 and location.startswith(str(target))


def _site_packages() -> str:
    """Where NumPy is installed (the subprocess runs with -S so the editable checkout is not on its path)."""
    import numpy

    return str(Path(numpy.__file__).resolve().parent.parent)
