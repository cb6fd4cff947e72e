"""Kernel sources, installed as the package ``tinygrad_edu.kernels``.

This folder holds the CPU kernels (Python modules over the backend's BLAS) and, as they are written, the CUDA C
sources (``*.cu``) that the CUDA backend compiles at run time through CuPy. ``source(name)`` reads a CUDA source
whether the package was installed from a wheel or is used from a source checkout.
"""

from __future__ import annotations

from importlib import resources


def source(filename: str) -> str:
    """The text of the kernel source ``filename`` (e.g. ``"gemm_fp16.cu"``) shipped with the package."""
    resource = resources.files(__name__).joinpath(filename)
    if not resource.is_file():
        available = sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".cu"))
        raise FileNotFoundError(f"no kernel source {filename!r} in tinygrad_edu.kernels; available: {available}")
    return resource.read_text(encoding="utf-8")
