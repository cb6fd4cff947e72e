"""The CUDA kernels' logic, run on the CPU: kernels/*.cu compiled by g++ against tests/cuda_emulator/shim.h.

No GPU runs the kernels in CI, so this is what checks their index math, edge handling (zero-filled tiles, masked
stores), transposed and broadcast operands, the batch loop, the barriers and the order of the double buffering,
and the batchnorm and dot reductions, against float64 references (tests/cuda_emulator/driver.cpp). Two builds of
the GEMM: the sm_70/75 register-staged path and the sm_80+ cp.async path (copies land only at the wait). Not
checked here: speed, and the hardware's own WMMA/shuffle behaviour (the GPU tests in test_cuda_kernels.py).

The second half runs kernels/cuda.py's own functions (matmul_fp16, dot_fp16, batch_norm_fp16_*) with a stand-in
for CuPy: NumPy arrays, and a RawModule whose kernels launch the emulated ones (tests/cuda_emulator/launcher.cpp),
checking each argument's type against the kernel's parameters. That covers the wrappers' operand layouts, launch
shapes and argument lists, which nothing else checks without a GPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_edu.backend.kernels import cuda
from tinygrad_edu.backend.numpy_backend import NumpyBackend

EMULATOR = Path(__file__).parent / "cuda_emulator"
KERNELS = Path(__file__).resolve().parents[1] / "kernels"
GXX = shutil.which("g++")
#: build name: (compiler flags, driver argument). The cp.async build differs only in the WMMA GEMM: it runs that alone.
BUILDS = {"sm70_register_staging": ([], ""), "sm80_cp_async": (["-DGEMM_USE_CP_ASYNC=1"], "wmma")}


def _gxx_major() -> int:
    try:
        return int(subprocess.run([GXX, "-dumpversion"], capture_output=True, text=True).stdout.split(".")[0])
    except (ValueError, OSError):
        return 0


def _gxx(flags, source, out):
    cmd = [GXX, "-std=c++20", "-O2", "-fno-strict-aliasing", "-pthread", *flags, "-include", str(EMULATOR / "shim.h"),
           f"-I{EMULATOR / 'include'}", f"-I{KERNELS}", str(EMULATOR / source), "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def builds():
    """Compile the two driver builds and the launcher library at once: {name: path}."""
    if GXX is None or _gxx_major() < 12:
        pytest.skip("the CUDA emulator needs g++ >= 12 (C++20 <barrier>, _Float16)")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {name: _gxx(flags, "driver.cpp", Path(tmp) / name) for name, (flags, _) in BUILDS.items()}
        jobs["launcher"] = _gxx(["-shared", "-fPIC"], "launcher.cpp", Path(tmp) / "libcudaemu.so")
        for name, proc in jobs.items():
            log, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"g++ failed on the emulated kernels ({name}):\n{log}"
        yield {name: Path(tmp) / ("libcudaemu.so" if name == "launcher" else name) for name in jobs}


@pytest.fixture(scope="module")
def runs(builds):
    """Run both driver builds at once: {build: (returncode, output)}."""
    procs = {name: subprocess.Popen([str(builds[name]), arg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for name, (_, arg) in BUILDS.items()}
    return {name: (proc.wait(timeout=300), proc.stdout.read()) for name, proc in procs.items()}


@pytest.mark.parametrize("build", BUILDS)
def test_kernels_match_float64_when_emulated_on_the_cpu(runs, build):
    returncode, output = runs[build]
    assert returncode == 0 and output.rstrip().endswith("all passed"), output
    expected = ["gemm_wmma_nn_f16", "gemm_wmma_tt_f16", "gemm_wmma_nn_f32"]
    if BUILDS[build][1] != "wmma":
        expected += ["gemm_simt_tn_f32", "dot n=100003 vec=0", "nchw", " nc:"]
    for case in expected:
        assert case in output  # the cases ran


# ----------------------------------------------------------------------------------------------------------------
# kernels/cuda.py's wrappers, with a stand-in for CuPy
# ----------------------------------------------------------------------------------------------------------------
class FakeArray(np.ndarray):
    """A NumPy array that answers ``.data.ptr`` as a CuPy array does."""

    @property
    def data(self):
        return SimpleNamespace(ptr=self.__array_interface__["data"][0])


def _fake(a):
    return np.asarray(a).view(FakeArray)


class FakeKernel:
    CODES = {np.int32: ("i", ctypes.c_int32), np.int64: ("q", ctypes.c_int64), np.float32: ("f", ctypes.c_float)}

    def __init__(self, lib, name):
        self.lib, self.name = lib, name

    def __call__(self, grid, block, args):
        codes, values = "", []
        for a in args:
            if isinstance(a, np.ndarray):
                codes, value = codes + "p", ctypes.c_void_p(a.__array_interface__["data"][0])
            else:  # a bare Python int or float here would be a bug in the wrapper: CuPy would guess its C type
                code, ctype = self.CODES[type(a)]
                codes, value = codes + code, ctype(a.item())
            values.append(value)
        pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
        grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
        rc = self.lib.emu_launch(self.name.encode(), codes.encode(), pointers, *grid, *block)
        assert rc == 0, f"emu_launch({self.name}, {codes}) returned {rc}"


@pytest.fixture
def emulated(builds, monkeypatch):
    """kernels/cuda.py wired to the emulator, on a GPU that claims compute capability 8.0 and 4 SMs."""
    lib = ctypes.CDLL(str(builds["launcher"]))
    lib.emu_launch.restype = ctypes.c_int
    lib.emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p] + [ctypes.c_uint] * 6
    fake_cupy = SimpleNamespace(
        ndarray=FakeArray,
        empty=lambda shape, dtype: _fake(np.empty(shape, dtype)),
        zeros=lambda shape, dtype: _fake(np.zeros(shape, dtype)),
        full=lambda shape, value, dtype: _fake(np.full(shape, value, dtype)),
        empty_like=lambda a: _fake(np.empty(a.shape, a.dtype)),
        ascontiguousarray=lambda a, dtype=None: _fake(np.ascontiguousarray(a, dtype=dtype)),
        broadcast_to=lambda a, shape: _fake(np.broadcast_to(a, shape)),
    )
    monkeypatch.setattr(cuda, "_cupy", lambda: fake_cupy)
    monkeypatch.setattr(cuda, "_kernel", lambda source, name: FakeKernel(lib, name))
    monkeypatch.setattr(cuda, "_current_device_info", lambda: ((8, 0), 4))
    return monkeypatch


def _check_product(out, a, b, out_dtype):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = np.matmul(a64, b64)
    bound = a.shape[-1] * 2.0**-24 * np.matmul(np.abs(a64), np.abs(b64)) + 1e-30
    if out_dtype == np.float16:
        bound = bound + np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64)
    assert out.dtype == out_dtype and out.shape == ref.shape
    assert np.all(np.abs(np.asarray(out, np.float64) - ref) <= bound)


@pytest.mark.parametrize("out_dtype", [np.float16, np.float32])
def test_matmul_wrapper_layouts_and_kernel_choice(emulated, out_dtype):
    rng = np.random.default_rng(0)
    r = lambda *s: _fake(rng.standard_normal(s).astype(np.float16))  # noqa: E731
    a, b, bt = r(40, 24), r(24, 16), r(16, 24)
    cases = [
        (a, b, "wmma"), (a, bt.T, "wmma"), (r(24, 40).T, b, "wmma"), (r(24, 40).T, bt.T, "wmma"),  # transposes
        (r(3, 17, 24), b, "wmma"), (r(1, 17, 24), r(2, 24, 16), "wmma"), (r(2, 1, 9, 24), r(1, 3, 24, 8), "wmma"),
        (r(24), b, "wmma"), (a, r(24), "wmma"), (r(3, 40, 24), r(24), "wmma"),  # vectors
        (a[:, 1:], b[1:], "simt"), (r(13, 15), r(15, 11), "simt"),  # misaligned / odd strides: the SIMT kernel
    ]
    for x, y, kernel in cases:
        assert cuda.choose_gemm_kernel(x, y) == kernel, (x.shape, x.strides, y.shape, y.strides)
        _check_product(cuda.matmul_fp16(x, y, out_dtype), np.asarray(x), np.asarray(y), out_dtype)
        _check_product(cuda.matmul_fp16(x, y, out_dtype, kernel="simt"), np.asarray(x), np.asarray(y), out_dtype)
    emulated.setattr(cuda, "_current_device_info", lambda: ((6, 1), 4))  # no tensor cores
    assert cuda.choose_gemm_kernel(a, b) == "simt"
    _check_product(cuda.matmul_fp16(a, b, out_dtype), np.asarray(a), np.asarray(b), out_dtype)


def test_dot_wrapper(emulated):
    rng = np.random.default_rng(1)
    for n, offset in ((5000, 0), (5000, 1), (3, 0), (0, 0)):
        a = _fake(rng.standard_normal(n + 1).astype(np.float16))[offset:offset + n]
        b = _fake(rng.standard_normal(n + 1).astype(np.float16))[offset:offset + n]
        ref = float(np.dot(np.asarray(a, np.float64), np.asarray(b, np.float64)))
        bound = n * 2.0**-24 * float(np.dot(np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))))
        s = cuda.dot_fp16(a, b, np.float32)
        assert s.shape == () and abs(float(s) - ref) <= bound + 1e-30
        assert float(cuda.matmul_fp16(a, b, np.float32)) == float(s)  # 1-D @ 1-D is the dot kernel


@pytest.mark.parametrize("shape", [(4, 6, 5, 5), (3, 5, 16), (50, 7), (2, 3, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_wrappers(emulated, shape, affine):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)
    C = shape[1]
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32) if affine else np.ones(C, np.float32)
    beta = rng.uniform(-1, 1, C).astype(np.float32) if affine else np.zeros(C, np.float32)
    w, b = (_fake(gamma), _fake(beta)) if affine else (None, None)
    y, mean, var, inv_std = cuda.batch_norm_fp16_forward(_fake(x), w, b, 1e-5)
    dx, d_gamma, d_beta = cuda.batch_norm_fp16_backward(_fake(x), _fake(dy), mean, inv_std, w)
    axes, pc = (0,) + tuple(range(2, x.ndim)), (1, C) + (1,) * (x.ndim - 2)
    x64, g64, M = x.astype(np.float64), dy.astype(np.float64), x.size // C
    m64 = x64.mean(axis=axes)
    v64 = ((x64 - m64.reshape(pc)) ** 2).mean(axis=axes)
    is64 = 1 / np.sqrt(v64 + 1e-5)
    xh = (x64 - m64.reshape(pc)) * is64.reshape(pc)
    y64 = gamma.reshape(pc) * xh + beta.reshape(pc)
    db64, dg64 = g64.sum(axis=axes), (g64 * xh).sum(axis=axes)
    dx64 = (gamma * is64).reshape(pc) / M * (M * g64 - db64.reshape(pc) - xh * dg64.reshape(pc))
    np.testing.assert_allclose(mean, m64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, v64, rtol=1e-4)
    np.testing.assert_allclose(inv_std, is64, rtol=1e-4)
    np.testing.assert_allclose(d_beta, db64, rtol=1e-4, atol=1e-5 * M)
    np.testing.assert_allclose(d_gamma, dg64, rtol=1e-4, atol=1e-5 * M)
    for got, ref in ((y, y64), (dx, dx64)):
        assert got.dtype == np.float16
        tol = np.spacing(np.abs(ref).astype(np.float16)).astype(np.float64) + 1e-4 * np.abs(ref).max()
        assert np.all(np.abs(np.asarray(got, np.float64) - ref) <= tol)


# ----------------------------------------------------------------------------------------------------------------
# F.batch_norm's fused path (FusedBatchNormFunction), on a backend whose kernels are the emulated CUDA ones
# ----------------------------------------------------------------------------------------------------------------
class EmulatedFusedBackend(NumpyBackend):
    """The NumPy backend plus the two fused batchnorm kernels of kernels/batchnorm_fp16.cu, launched on the emulator:
    ``F.batch_norm`` then takes the path it takes for float16 on a GPU."""

    def kernel(self, name):
        if name not in ("batch_norm_fp16_forward", "batch_norm_fp16_backward"):
            return None
        launch = getattr(cuda, name)
        return lambda *args: launch(*(_fake(a) if isinstance(a, np.ndarray) else a for a in args))


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (16, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_takes_the_fused_function_where_the_backend_has_the_kernels(emulated, shape, affine):
    from tinygrad_edu import Tensor
    from tinygrad_edu.nn import functional as F

    rng = np.random.default_rng(3)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float16)
    dy = rng.standard_normal(shape).astype(np.float16)
    gamma, beta = rng.uniform(0.5, 1.5, C).astype(np.float32), rng.uniform(-1, 1, C).astype(np.float32)

    def run(backend):
        wrap = lambda a, grad=False: Tensor._wrap(np.array(a), backend, requires_grad=grad)  # noqa: E731
        xt, stats = wrap(x, True), [wrap(np.zeros(C, np.float32)), wrap(np.ones(C, np.float32))]
        w, b = (wrap(gamma, True), wrap(beta, True)) if affine else (None, None)
        y = F.batch_norm(xt, *stats, w, b, training=True, momentum=0.1)
        ops, node = [], y
        while node.grad_fn is not None:  # the tape, newest op first (each op here has x's path as input 0)
            ops.append(type(node.grad_fn).__name__)
            node = node.grad_fn.parents[0]
        y.backward(wrap(dy))
        grads = [t.grad for t in (xt, w, b) if t is not None]
        return y, ops, [np.asarray(s.data, np.float64) for s in stats], grads

    fused = EmulatedFusedBackend()
    y, ops, stats, grads = run(fused)
    assert ops == ["FusedBatchNormFunction"]  # no casts around it: the kernels take float16
    assert y.dtype == np.float16 and grads[0].dtype == np.float16
    assert all(g.dtype == np.float32 for g in grads[1:])  # γ and β keep their dtype
    y_ref, ops_ref, stats_ref, grads_ref = run(NumpyBackend())  # the plain path, in float32
    assert ops_ref == ["Cast", "BatchNormFunction", "Cast"]
    scale = np.abs(np.asarray(y_ref.data, np.float64)).max()
    np.testing.assert_allclose(np.asarray(y.data, np.float64), np.asarray(y_ref.data, np.float64), atol=2e-3 * scale)
    for got, ref in zip(stats, stats_ref):  # running statistics, updated in place by both paths
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    for got, ref in zip(grads, grads_ref):
        ref64 = np.asarray(ref.data, np.float64)
        np.testing.assert_allclose(np.asarray(got.data, np.float64), ref64, atol=2e-3 * np.abs(ref64).max() + 1e-4)
