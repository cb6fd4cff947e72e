"""The one compiled piece: kernels/f16_convert.c (float16 <-> float32 with the CPU's F16C instructions), built as
``tinygrad_edu.kernels._f16_convert``. Optional: where it does not compile, the package installs without it and the
CPU float16 kernel converts with NumPy. Everything else is declared in setup.cfg."""

import sys

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tinygrad_edu.kernels._f16_convert",
            sources=["kernels/f16_convert.c"],
            extra_compile_args=[] if sys.platform == "win32" else ["-O3"],
            optional=True,
        )
    ]
)
