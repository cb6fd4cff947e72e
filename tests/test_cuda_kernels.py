"""The CUDA kernels (kernels/*.cu, kernels/cuda.py).

Without a GPU: every source compiles with nvcc for sm_75, sm_80 and sm_90 and defines every kernel kernels/cuda.py
launches (skipped where nvcc is missing); NVRTC compiles every source with the headers kernels/cuda.py finds (where
CuPy is installed: proves the pip wheels' headers suffice); the stride logic that decides how an operand is passed.

With a GPU (``gpu`` marker): each kernel against float64 and against the CPU kernel
(``tinygrad_edu.backend.kernels.matmul_cpu``), and autograd through float16 Tensors on device "cuda".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_edu.backend.kernels import cuda, matmul_cpu, source

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"
ARCHS = ("75", "80", "90")
NVCC = shutil.which("nvcc")
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------------------
# without a GPU: compilation
# ----------------------------------------------------------------------------------------------------------------
def test_every_cu_file_is_known_to_the_python_side():
    on_disk = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
    assert on_disk == sorted(cuda.SOURCES) == sorted(cuda.KERNELS)
    for name in cuda.SOURCES:
        assert "#include <cuda_fp16.h>" in source(name)


@pytest.fixture(scope="module")
def nvcc_objects():
    """Compile every source for sm_75, sm_80 and sm_90 (one nvcc per source, all at once): {name: (rc, log, obj)}."""
    if NVCC is None:
        pytest.skip("nvcc not found on PATH: the CUDA sources cannot be compiled here (install the CUDA toolkit)")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        for name in cuda.SOURCES:
            obj = os.path.join(tmp, name + ".o")
            cmd = [NVCC, "-std=c++17", "-c", *gencode, "--threads", "2", str(KERNEL_DIR / name), "-o", obj]
            procs[name] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), obj)
        results = {}
        for name, (proc, obj) in procs.items():
            log, _ = proc.communicate(timeout=300)
            results[name] = (proc.returncode, log, Path(obj).read_bytes() if proc.returncode == 0 else b"")
    return results


@pytest.mark.parametrize("name", cuda.SOURCES)
def test_nvcc_compiles_for_sm75_sm80_sm90_without_warnings(nvcc_objects, name):
    rc, log, obj = nvcc_objects[name]
    assert rc == 0, f"nvcc failed on {name}:\n{log}"
    assert "warning" not in log.lower(), log
    for arch in ARCHS:
        assert f"sm_{arch}".encode() in obj
    for kernel in cuda.KERNELS[name]:  # the names kernels/cuda.py launches exist, unmangled (extern "C")
        assert kernel.encode() in obj, f"{name} does not define kernel {kernel}"


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except Exception as exc:  # no CuPy: the CI machines
        pytest.skip(f"CuPy is not installed ({exc}): NVRTC check skipped")
    return nvrtc


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", cuda.SOURCES)
def test_nvrtc_compiles_with_the_headers_found_by_include_dirs(name, arch):
    nvrtc = _nvrtc()  # needs no GPU: NVRTC is a library
    options = [*cuda.NVRTC_OPTIONS, f"-arch=sm_{arch}", *(f"-I{d}" for d in cuda.include_dirs())]
    prog = nvrtc.createProgram(source(name), name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError:
            pytest.fail(f"NVRTC failed on {name} with {options}:\n{nvrtc.getProgramLog(prog)}")
        assert len(nvrtc.getCUBIN(prog)) > 0
    finally:
        nvrtc.destroyProgram(prog)


# ----------------------------------------------------------------------------------------------------------------
# without a GPU: how operands are handed to the GEMM kernels (pure stride arithmetic, checked on NumPy arrays)
# ----------------------------------------------------------------------------------------------------------------
def test_matrix_layout_reads_strides_as_the_kernels_take_them():
    a = np.zeros((5, 8), np.float16)
    assert cuda._matrix_layout(a) == (False, 8, 0)  # row-major, ld = K
    assert cuda._matrix_layout(a.T) == (True, 8, 0)  # a (8, 5) matrix stored as its (5, 8) transpose
    assert cuda._matrix_layout(a[:, 1:]) == (False, 8, 0)  # a column slice keeps the row stride
    assert cuda._matrix_layout(a[::2]) == (False, 16, 0)  # every other row
    assert cuda._matrix_layout(a[:, ::2]) is None  # strided columns: copied first
    stack = np.zeros((3, 4, 5, 8), np.float16)
    assert cuda._matrix_layout(stack) == (False, 8, 40)  # batch axes collapse to one stride
    assert cuda._matrix_layout(stack.transpose(1, 0, 2, 3)) is None  # they do not: copied
    assert cuda._matrix_layout(np.swapaxes(stack, -1, -2)) == (True, 8, 40)
    assert cuda._matrix_layout(np.broadcast_to(a, (6, 5, 8))) == (False, 8, 0)  # broadcast: stride 0


@pytest.mark.parametrize("shape", [(256, 256, 56, 56), (2, 3, 5, 7), (1, 1, 8), (3, 5, 24), (10000, 3), (1, 1000), (7, 70)])
def test_batchnorm_launch_shapes_cover_every_value_once(monkeypatch, shape):
    monkeypatch.setattr(cuda, "_current_device_info", lambda: ((9, 0), 132))
    N, C = shape[:2]
    HW = int(np.prod(shape[2:]))
    layout, grid, block, S, chunk = cuda._bn_reduction_grid(N, C, HW)
    assert layout == ("nchw" if HW > 1 else "nc") and grid[1] == S and 1 <= S <= 65535
    if layout == "nchw":  # S chunks of a channel's M values, each a multiple of 8 (vector loads), none empty
        assert grid == (C, S) and block == (256,) and chunk % 8 == 0
        assert (S - 1) * chunk < N * HW <= S * chunk
    else:  # S slices of the N rows, 32 channels per block
        assert grid == (-(-C // 32), S) and block == (32, 8)
        assert (S - 1) * chunk < N <= S * chunk


def test_fp16_accumulation_would_break_the_bound_fp32_keeps():
    """Why the kernels accumulate in FP32: an FP16 running sum of 4096 ones stalls at 2048 (1 is half an ulp of
    2048 in FP16, and rounds away), while FP32 is exact; the dot kernel's bound is K·2⁻²⁴·Σ|a b| = 2⁻¹²·4096."""
    ones = np.ones(4096, np.float16)
    acc16 = np.float16(0)
    for v in ones * ones:
        acc16 = np.float16(acc16 + v)
    acc32 = np.float32(0)
    for v in ones.astype(np.float32):
        acc32 += v
    bound = 4096 * 2.0**-24 * 4096
    assert acc16 == 2048 and abs(float(acc16) - 4096) > bound
    assert acc32 == 4096 and abs(float(acc32) - 4096) <= bound


def test_gpu_check_without_a_gpu_says_so_and_exits_2():
    if _gpu_present():
        pytest.skip("a GPU is present: benchmarks/gpu_check.py would run the benchmarks")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--no-tests"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no CUDA GPU" in out.stdout + out.stderr


def _gpu_present() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


# ----------------------------------------------------------------------------------------------------------------
# with a GPU: values
# ----------------------------------------------------------------------------------------------------------------
def _rand16(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float16)


#: Unit round-off of the FP32 accumulation: 2⁻²⁴ for IEEE round-to-nearest (the SIMT kernel's fmaf), but tensor
#: cores align and normalize with truncation (Fasi, Higham, Mikaitis & Pranesh 2021, "Numerical behavior of NVIDIA
#: tensor cores"), so the bound allows one more bit.
U_ACC = 2.0**-23


def _assert_fp32_accumulated(out, a, b):
    """Each element within 1 FP16 ulp (the rounding of the result, where FP16) of the float64 product of the same
    inputs, plus the FP32 accumulation bound K·u·Σ|a||b|."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = np.matmul(a64, b64)
    K = a.shape[-1]
    bound = K * U_ACC * np.matmul(np.abs(a64), np.abs(b64)) + 1e-30
    if out.dtype == np.float16:
        bound = bound + np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64)
    err = np.abs(out.astype(np.float64) - ref)
    assert np.all(err <= bound), f"max excess {np.max(err - bound)} at {np.unravel_index(np.argmax(err - bound), err.shape)}"


def _gemm_check(a, b, out_dtype=np.float16, kernel="auto", a_view=None, b_view=None):
    """matmul_fp16 on the GPU vs float64 and vs the CPU kernel. a_view/b_view turn the device arrays into views
    (transposes, slices) whose host equivalents are a, b."""
    import cupy

    da, db = cupy.asarray(a if a_view is None else a_view[0]), cupy.asarray(b if b_view is None else b_view[0])
    da = da if a_view is None else a_view[1](da)
    db = db if b_view is None else b_view[1](db)
    out = cuda.matmul_fp16(da, db, out_dtype=out_dtype, kernel=kernel)
    host = cupy.asnumpy(out)
    assert host.dtype == np.dtype(out_dtype) and host.shape == np.matmul(a, b).shape
    _assert_fp32_accumulated(host, a, b)
    if out_dtype == np.float16:  # both within ½ ulp + the bound of float64: within 1 ulp + twice the bound
        cpu = matmul_cpu.matmul_accumulate(a, b, np.float32)
        ref = np.abs(np.matmul(a.astype(np.float64), b.astype(np.float64)))
        slack = np.spacing(ref.astype(np.float16)).astype(np.float64)
        slack += 2 * a.shape[-1] * U_ACC * np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)))
        assert np.all(np.abs(host.astype(np.float64) - cpu.astype(np.float64)) <= slack + 1e-30)
    return out


@pytest.mark.gpu
@settings(max_examples=15)
@given(m=st.integers(1, 300), n8=st.integers(1, 40), k8=st.integers(1, 60), out=st.sampled_from(["f16", "f32"]),
       seed=st.integers(0, 2**16))
def test_wmma_gemm_matches_float64_on_shapes_that_are_not_tile_multiples(m, n8, k8, out, seed):
    rng = np.random.default_rng(seed)
    a, b = _rand16(rng, (m, 8 * k8)), _rand16(rng, (8 * k8, 8 * n8))
    _gemm_check(a, b, np.float16 if out == "f16" else np.float32, kernel="wmma")


@pytest.mark.gpu
@settings(max_examples=15)
@given(m=st.integers(1, 200), n=st.integers(1, 200), k=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_simt_and_auto_gemm_match_float64_on_any_shape(m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, b = _rand16(rng, (m, k)), _rand16(rng, (k, n))
    _gemm_check(a, b, kernel="simt")
    _gemm_check(a, b, kernel="auto")


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["wmma", "simt"])
@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
def test_transposed_operands_are_read_in_place(kernel, ta, tb):
    rng = np.random.default_rng(1)
    a, b = _rand16(rng, (136, 200)), _rand16(rng, (200, 72))
    a_view = (np.ascontiguousarray(a.T), lambda d: d.T) if ta else None
    b_view = (np.ascontiguousarray(b.T), lambda d: d.T) if tb else None
    _gemm_check(a, b, kernel=kernel, a_view=a_view, b_view=b_view)
    _gemm_check(a, b, np.float32, kernel=kernel, a_view=a_view, b_view=b_view)


@pytest.mark.gpu
def test_backward_gemm_views_use_tensor_cores():
    import cupy

    g, w = cupy.asarray(_rand16(np.random.default_rng(2), (64, 32))), cupy.zeros((48, 32), np.float16)
    assert cuda.choose_gemm_kernel(g, w.T) == "wmma"  # w.T: read transposed, not copied
    assert cuda.choose_gemm_kernel(g[:, 1:], w[:, 1:].T) == "simt"  # misaligned pointer: the SIMT kernel


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["auto", "simt"])
@pytest.mark.parametrize("shape_a,shape_b", [
    ((4, 40, 64), (64, 24)),  # a 2-D operand broadcast over the batch (stride 0)
    ((1, 40, 64), (3, 64, 24)),  # a batch-1 operand broadcast
    ((2, 1, 17, 33), (1, 3, 33, 9)),  # both broadcast on different axes (copied)
    ((5, 128, 256), (5, 256, 128)),
])
def test_batched_gemm_broadcasts_like_numpy(kernel, shape_a, shape_b):
    rng = np.random.default_rng(3)
    _gemm_check(_rand16(rng, shape_a), _rand16(rng, shape_b), kernel=kernel)


@pytest.mark.gpu
@pytest.mark.parametrize("shape_a,shape_b", [((64,), (64, 24)), ((40, 64), (64,)), ((3, 40, 64), (64,))])
def test_vector_operands_follow_numpy_matmul(shape_a, shape_b):
    rng = np.random.default_rng(4)
    _gemm_check(_rand16(rng, shape_a), _rand16(rng, shape_b))


@pytest.mark.gpu
def test_cancellation_heavy_k4096_stays_within_the_fp32_bound():
    rng = np.random.default_rng(5)
    a = _rand16(rng, (64, 4096), 100.0)
    b = np.concatenate([_rand16(rng, (2048, 64)), np.zeros((2048, 64), np.float16)])
    b[2048:] = -b[:2048]  # Σ over K cancels to (nearly) zero: the result is all accumulation error
    a[:, 2048:] = a[:, :2048]
    for kernel in ("wmma", "simt"):
        _gemm_check(a, b, np.float32, kernel=kernel)
        _gemm_check(a, b, np.float16, kernel=kernel)


@pytest.mark.gpu
@pytest.mark.parametrize("n", [0, 1, 7, 8, 1000, 100_003, 4096 * 257])
def test_dot_accumulates_in_fp32_and_is_deterministic(n):
    import cupy

    rng = np.random.default_rng(n)
    a, b = _rand16(rng, n), _rand16(rng, n)
    da, db = cupy.asarray(a), cupy.asarray(b)
    ref = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
    bound = n * 2.0**-24 * float(np.dot(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))))
    s32 = cuda.dot_fp16(da, db, np.float32)
    assert s32.shape == () and s32.dtype == np.float32 and abs(float(s32) - ref) <= bound + 1e-30
    assert float(cuda.dot_fp16(da, db, np.float32)) == float(s32)  # same bits again
    s16 = cuda.dot_fp16(da, db)
    assert s16.dtype == np.float16 and float(s16) == float(np.float16(float(s32)))
    if n > 1:  # a misaligned view takes the element-by-element path
        assert abs(float(cuda.dot_fp16(da[1:], db[1:], np.float32)) - float(np.dot(a[1:].astype(np.float64),
                                                                                    b[1:].astype(np.float64)))) <= bound
    assert float(cuda.dot_fp16(cupy.ones(4096, np.float16), cupy.ones(4096, np.float16))) == 4096.0


@pytest.mark.gpu
def test_kernels_reject_bad_inputs_with_clear_errors():
    import cupy

    a16, a32 = cupy.ones((4, 8), np.float16), cupy.ones((4, 8), np.float32)
    with pytest.raises(TypeError, match="matmul_fp16: b must have dtype float16, got float32"):
        cuda.matmul_fp16(a16, a32.T)
    with pytest.raises(ValueError, match=r"do not align on the shared dimension \(8 != 4\)"):
        cuda.matmul_fp16(a16, a16)
    with pytest.raises(TypeError, match="out_dtype must be float16 or float32"):
        cuda.matmul_fp16(a16, a16.T, out_dtype=np.float64)
    with pytest.raises(ValueError, match="1-D arrays"):
        cuda.dot_fp16(a16, a16)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\), expected \(8,\)"):
        cuda.batch_norm_fp16_forward(a16, cupy.ones(3, np.float32))


def _bn_reference(x, gamma, beta, dy, eps=1e-5):
    """The closed form in float64 (BatchNormFunction's math)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x64, g64 = x.astype(np.float64), dy.astype(np.float64)
    M = x.size // x.shape[1]
    mean = x64.mean(axis=axes)
    var = ((x64 - mean.reshape(shape)) ** 2).mean(axis=axes)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x64 - mean.reshape(shape)) * inv_std.reshape(shape)
    y = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    d_beta, d_gamma = g64.sum(axis=axes), (g64 * x_hat).sum(axis=axes)
    dx = (gamma * inv_std).reshape(shape) / M * (M * g64 - d_beta.reshape(shape) - x_hat * d_gamma.reshape(shape))
    return y, mean, var, inv_std, dx, d_gamma, d_beta


def _assert_fp16_close(got, ref, scale):
    """Within 1 FP16 ulp of the float64 value, plus FP32 rounding relative to the tensor's scale."""
    tol = np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64) + 1e-5 * scale
    assert np.all(np.abs(got.astype(np.float64) - ref) <= tol), np.max(np.abs(got.astype(np.float64) - ref) - tol)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(64, 3), (1000, 70), (2, 5), (8, 16, 7), (4, 8, 16, 16), (3, 5, 9, 11),
                                   (2, 64, 56, 56), (1, 2, 300, 300)])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_batch_norm_matches_the_float64_closed_form(shape, affine):
    import cupy

    rng = np.random.default_rng(sum(shape))
    x = _rand16(rng, shape, 3.0) + np.float16(5)  # a mean far from 0: the statistics must not cancel
    dy = _rand16(rng, shape)
    C = shape[1]
    gamma = rng.uniform(0.5, 1.5, C) if affine else np.ones(C)
    beta = rng.uniform(-1, 1, C) if affine else np.zeros(C)
    dx_ = cupy.asarray(x)
    w = cupy.asarray(gamma, np.float32) if affine else None
    b = cupy.asarray(beta, np.float32) if affine else None
    y, mean, var, inv_std = cuda.batch_norm_fp16_forward(dx_, w, b, 1e-5)
    dx, d_gamma, d_beta = cuda.batch_norm_fp16_backward(dx_, cupy.asarray(dy), mean, inv_std, w)
    gamma32, beta32 = gamma.astype(np.float32).astype(np.float64), beta.astype(np.float32).astype(np.float64)
    ry, rmean, rvar, rinv, rdx, rdg, rdb = _bn_reference(x, gamma32, beta32, dy)
    np.testing.assert_allclose(cupy.asnumpy(mean), rmean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cupy.asnumpy(var), rvar, rtol=1e-4)
    np.testing.assert_allclose(cupy.asnumpy(inv_std), rinv, rtol=1e-4)
    assert y.dtype == np.float16 and dx.dtype == np.float16 and d_gamma.dtype == np.float32
    _assert_fp16_close(cupy.asnumpy(y), ry, np.abs(ry).max())
    _assert_fp16_close(cupy.asnumpy(dx), rdx, np.abs(rdx).max() * 10)
    M = x.size // C
    np.testing.assert_allclose(cupy.asnumpy(d_beta), rdb, rtol=1e-4, atol=1e-6 * M)
    np.testing.assert_allclose(cupy.asnumpy(d_gamma), rdg, rtol=1e-4, atol=1e-6 * M)


@pytest.mark.gpu
def test_fused_batch_norm_copies_a_non_contiguous_input():
    import cupy

    x = _rand16(np.random.default_rng(7), (6, 10, 4, 4))
    d = cupy.asarray(np.ascontiguousarray(x.transpose(1, 0, 2, 3))).transpose(1, 0, 2, 3)  # x, not contiguous
    y, *_ = cuda.batch_norm_fp16_forward(d)
    _assert_fp16_close(cupy.asnumpy(y), _bn_reference(x, np.ones(10), np.zeros(10), x)[0], 5.0)


# ----------------------------------------------------------------------------------------------------------------
# with a GPU: autograd through float16 Tensors on "cuda" uses the kernels
# ----------------------------------------------------------------------------------------------------------------
def _run(fn, arrays, device, dtype):
    from tinygrad_edu import Tensor

    ts = [Tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
    out = fn(*ts)
    g = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
    out.backward(Tensor(g, device=device))
    return out.numpy().astype(np.float64), [t.grad.numpy().astype(np.float64) for t in ts], [t.grad.dtype for t in ts]


def _conv(x, w, b):
    from tinygrad_edu.nn import functional as F

    return F.conv2d(x, w, b, padding=1)


def _linear(x, w, b):
    from tinygrad_edu.nn import functional as F

    return F.linear(x, w, b)


def _bn(x, w, b):
    from tinygrad_edu.nn import functional as F

    return F.batch_norm(x, None, None, w, b, training=True)


@pytest.mark.gpu
@pytest.mark.parametrize("name,fn,shapes", [
    ("matmul", lambda a, b: a @ b, [(3, 40, 72), (72, 24)]),
    ("linear", _linear, [(32, 72), (40, 72), (40,)]),
    ("conv2d", _conv, [(4, 8, 10, 10), (16, 8, 3, 3), (16,)]),
    ("batch_norm", _bn, [(16, 8, 6, 6), (8,), (8,)]),
    ("batch_norm_2d", _bn, [(64, 24), (24,), (24,)]),
])
def test_float16_autograd_on_cuda_matches_cpu_and_float64(name, fn, shapes):
    import tinygrad_edu as tg

    rng = np.random.default_rng(8)
    arrays = [rng.uniform(0.5, 1.5, s) if name.startswith("batch_norm") and len(s) == 1 else rng.standard_normal(s)
              for s in shapes]
    arrays = [a.astype(np.float16).astype(np.float64) for a in arrays]  # the same values in every precision
    out16, grads16, dtypes = _run(fn, arrays, "cuda", np.float16)
    out_cpu, grads_cpu, _ = _run(fn, arrays, "cpu", np.float16)
    out64, grads64, _ = _run(fn, arrays, "cpu", np.float64)
    assert all(d == tg.float16 for d in dtypes)
    for got, cpu, ref in zip([out16, *grads16], [out_cpu, *grads_cpu], [out64, *grads64]):
        scale = np.abs(ref).max() + 1e-3
        np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-3 * scale)
        np.testing.assert_allclose(got, cpu, rtol=2e-2, atol=2e-3 * scale)


@pytest.mark.gpu
def test_cuda_backend_routes_float16_matmul_to_the_kernels(monkeypatch):
    from tinygrad_edu import Tensor

    calls = []
    real = cuda.matmul_fp16
    monkeypatch.setattr(cuda, "matmul_fp16", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    x = Tensor(np.ones((8, 16), np.float16), requires_grad=True, device="cuda")
    w = Tensor(np.ones((16, 4), np.float16), requires_grad=True, device="cuda")
    (x @ w).sum().backward()
    assert len(calls) == 3  # forward, dx = g wᵀ, dw = xᵀ g
    assert x.grad.numpy().dtype == np.float16 and float(x.grad.numpy()[0, 0]) == 4.0
