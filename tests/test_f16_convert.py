"""kernels/f16_convert.c: float16 <-> float32 with F16C (and its portable path), bit for bit NumPy's conversion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_edu.backend.kernels import compile_cpu, matmul_cpu

compiled = matmul_cpu.converter()
needs_extension = pytest.mark.skipif(compiled is None, reason="kernels/f16_convert.c could not be compiled here")


def test_the_kernel_is_compiled_where_a_c_compiler_exists():
    """A compile error would silently fall back to NumPy: where Python's C compiler exists, it must have worked."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) here: the NumPy conversions are used")
    assert compiled is not None, compile_cpu.errors.get("f16_convert")


def test_a_failed_compilation_falls_back_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_EDU_CACHE", str(tmp_path))
    monkeypatch.setattr(compile_cpu, "_loaded", {})
    monkeypatch.setattr(compile_cpu, "errors", {})
    monkeypatch.setattr(compile_cpu, "command", lambda source, target: [sys.executable, "-c", "raise SystemExit(3)"])
    assert compile_cpu.load("f16_convert") is None
    assert "failed" in compile_cpu.errors["f16_convert"]
    assert list(tmp_path.rglob("*")) == [tmp_path / f"kernels-{sysconfig.get_platform()}"]  # no partial file left
    monkeypatch.setenv("TINYGRAD_EDU_COMPILE", "0")
    monkeypatch.setattr(compile_cpu, "_loaded", {})
    assert compile_cpu.load("f16_convert") is None
    assert "turned off" in compile_cpu.errors["f16_convert"]


@needs_extension
def test_the_compiled_module_is_cached_and_found_by_the_next_process(tmp_path):
    code = ("from tinygrad_edu.backend.kernels import compile_cpu as c; m = c.load('f16_convert'); "
            "print(m.__file__ if m else c.errors)")
    env = {**os.environ, "TINYGRAD_EDU_CACHE": str(tmp_path)}
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout.strip() for _ in range(2))
    assert first == second and first.startswith(str(tmp_path))
    assert len(list(tmp_path.rglob("_f16_convert-*"))) == 1


@pytest.fixture(params=["f16c", "portable"])
def path(request):
    """Run a test once with the vector instructions (where the CPU has them) and once with the portable code."""
    if compiled is None:
        pytest.skip("kernels/f16_convert.c was not compiled")
    previous = compiled.set_f16c(request.param == "f16c")
    yield request.param
    compiled.set_f16c(previous)


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


def test_widen_gives_numpys_bits_for_all_65536_float16_values(path):
    h = np.arange(65536, dtype=np.uint16).view(np.float16)  # zeros, subnormals, normals, inf, NaNs with payloads
    out = np.empty(h.shape, np.float32)
    compiled.widen(h, out)
    assert bits_equal(out, h.astype(np.float32))


def test_narrow_gives_numpys_bits_on_every_kind_of_float32(path):
    """Random bit patterns (every exponent), NaNs with random payloads, and the edges: the largest value below the
    overflow threshold 65520, the threshold itself (a tie, rounding to inf), ties between subnormals (to even),
    half the smallest subnormal 2^-25 (a tie, to 0), the boundary of the normal range."""
    rng = np.random.default_rng(0)
    random = rng.integers(0, 2**32, size=500_000, dtype=np.uint64).astype(np.uint32)
    nans = (rng.integers(1, 2**23, size=20_000).astype(np.uint32) | np.uint32(0x7F800000)) | \
        (rng.integers(0, 2, size=20_000).astype(np.uint32) << np.uint32(31))
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    ties = halves + np.uint32(0x1000)  # halfway between neighbouring float16 values (normal range)
    edges = np.array([0x477FEFFF, 0x477FF000, 0x477FE000, 0x33000000, 0x33000001, 0x32FFFFFF, 0x387FFFFF,
                      0x38800000, 0x387FC000, 0x34000000, 0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0,
                      0x80000000], np.uint32)
    f = np.concatenate([random, nans, halves, ties, ties + np.uint32(1), ties - np.uint32(1), edges]).view(np.float32)
    out = np.empty(f.shape, np.float16)
    compiled.narrow(f, out)
    with np.errstate(over="ignore"):
        assert bits_equal(out, f.astype(np.float16))


@given(array=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9),
                        elements=st.floats(-7e4, 7e4, width=32)),
       step=st.integers(1, 3))
def test_strided_and_empty_views_convert_element_by_element(array, step):
    if compiled is None:
        pytest.skip("kernels/f16_convert.c was not compiled")
    view = array[..., ::step] if array.ndim else array  # a strided last axis: the element-by-element loop
    narrowed = np.empty(view.shape, np.float16)
    with np.errstate(over="ignore"):
        compiled.narrow(view, narrowed)
        assert bits_equal(narrowed, view.astype(np.float16))
        source = view.astype(np.float16)
    transposed = source.T  # a view with the leading axes' strides reversed
    widened = np.empty(transposed.shape, np.float32)
    compiled.widen(transposed, widened)
    assert bits_equal(widened, transposed.astype(np.float32))


@needs_extension
def test_wrong_dtypes_or_shapes_are_refused_and_change_nothing():
    dst = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="widen: expected float16 source and float32 destination arrays of one shape"):
        compiled.widen(np.ones(4, np.float32), dst)
    with pytest.raises(ValueError, match="narrow: expected float32 source and float16 destination"):
        compiled.narrow(np.ones(3, np.float32), np.zeros(4, np.float16))
    with pytest.raises((BufferError, ValueError), match="read-only"):
        compiled.widen(np.ones(4, np.float16), np.frombuffer(bytes(16), np.float32))  # a read-only destination
    assert not dst.any()


@needs_extension
def test_the_kernel_rounds_its_float32_accumulator_with_the_compiled_conversion():
    rng = np.random.default_rng(1)
    a, b = (rng.normal(size=(64, 300)).astype(np.float16), rng.normal(size=(300, 48)).astype(np.float16))
    exact = matmul_cpu.matmul_accumulate(a, b, out_dtype=np.float32)
    assert bits_equal(matmul_cpu.matmul_accumulate(a, b), exact.astype(np.float16))


@needs_extension
@pytest.mark.parametrize("shape", [((64, 300), (300, 48)), ((3, 40, 1500), (1500, 20))])
def test_without_the_extension_the_numpy_fallback_gives_the_same_bits(monkeypatch, shape):
    """Where nothing was compiled, the kernel converts with NumPy in threads: the same result, bit for bit."""
    rng = np.random.default_rng(2)
    a, b = (rng.normal(size=s).astype(np.float16) for s in shape)
    with_extension = matmul_cpu.matmul_accumulate(a, b, block_k=512)
    monkeypatch.setattr(matmul_cpu, "compiled", None)
    monkeypatch.setattr(matmul_cpu, "PARALLEL", True)
    monkeypatch.setattr(matmul_cpu, "PARALLEL_MIN_ELEMENTS", 1)  # threads even for these small blocks
    assert bits_equal(matmul_cpu.matmul_accumulate(a, b, block_k=512), with_extension)
