"""The kernels' Python side: compile the sources in the repository's ``kernels/`` folder at run time and call them.

* ``matmul_cpu``: the CPU float16 matmul with float32 accumulation (the NumPy backend's ``matmul_accumulate``), over
  the conversions of ``kernels/f16_convert.c``, which ``compile_cpu`` compiles with this machine's C compiler;
* ``cuda``: the CUDA kernels (``kernels/*.cu``), compiled through CuPy's NVRTC: the float16 GEMM and dot product
  (the CUDA backend's ``matmul_accumulate``) and the fused float16 batch normalization (``CupyBackend.kernel``).

The sources are data, not Python: a wheel ships them inside the package as ``tinygrad_edu/kernels/``, and a source
checkout (an editable install) has them in the repository's ``kernels/``. ``source_path`` finds them in either.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[2]  # the tinygrad_edu folder
#: Where the kernel sources are: inside the installed package, else in the source checkout beside it.
SOURCE_DIRS = (_PACKAGE / "kernels", _PACKAGE.parent / "kernels")


def source_path(filename: str) -> Path:
    """The path of the kernel source ``filename`` (e.g. ``"gemm_fp16.cu"``)."""
    for folder in SOURCE_DIRS:
        if (folder / filename).is_file():
            return folder / filename
    available = sorted({p.name for folder in SOURCE_DIRS if folder.is_dir() for p in folder.iterdir()})
    raise FileNotFoundError(f"no kernel source {filename!r} in {' or '.join(map(str, SOURCE_DIRS))}; available: "
                            f"{available}")


def source(filename: str) -> str:
    """The text of the kernel source ``filename``."""
    return source_path(filename).read_text(encoding="utf-8")
