"""The CUDA kernels' Python side: compile the ``*.cu`` sources at run time, pick a kernel, launch it.

Plain functions on CuPy arrays (no Tensors, no autograd; the backend and the Functions call them):

* ``matmul_fp16(a, b, out_dtype)``: NumPy ``matmul`` semantics (batch axes broadcast, 1-D operands) for float16
  operands, FP32 accumulation, result float16 or float32. ``kernels/gemm_fp16.cu``.
* ``dot_fp16(a, b, out_dtype)``: 1-D dot product, FP32 accumulation, deterministic. ``kernels/dot_fp16.cu``.
* ``batch_norm_fp16_forward(x, weight, bias, eps)`` / ``batch_norm_fp16_backward(x, dy, mean, inv_std, weight)``:
  fused training-mode batch normalization of a float16 (N, C, ...) array, statistics in FP32.
  ``kernels/batchnorm_fp16.cu``.

Which GEMM kernel (``choose_gemm_kernel``): the tensor-core kernel (WMMA) on GPUs of compute capability 7.0 or more
whenever both operands can be copied in 16-byte chunks: the row stride of each operand as stored (and its batch
stride) a multiple of 8 elements and its data pointer 16-byte aligned. M, N and K need not be multiples of the
tile: the kernel zero-fills past the edges and masks its stores. Otherwise the SIMT kernel (FP32 FMA on CUDA cores).
Transposed operands (``w.T``, ``xp.matrix_transpose(a)``) are passed as they are stored, with a flag, not copied;
any other strided operand is first copied into a contiguous array.

How the sources are compiled. ``cupy.RawModule(code=..., options=...)`` compiles with NVRTC, once per (source,
device), cached for the process (and CuPy caches the binary on disk). CuPy adds ``-arch`` itself (the device's
compute capability, capped at the newest NVRTC knows). NVRTC has no default include path, and the kernels include
``cuda_fp16.h`` and ``mma.h``, which includes ``crt/mma.h``; ``include_dirs()`` finds them, trying in order:

1. ``cuda.pathfinder.find_nvidia_header_directory("cudart")`` and ``("nvcc")`` (cuda-pathfinder comes with CuPy 14):
   the pip wheels' include folders, e.g. ``site-packages/nvidia/cu13/include`` (CUDA 13) or
   ``nvidia/cuda_runtime/include`` and ``nvidia/cuda_nvcc/include`` (CUDA 12); else a system CUDA it finds;
2. ``cupy.cuda.get_cuda_path()/include``, ``$CUDA_PATH/include``, ``$CUDA_HOME/include``, ``/usr/local/cuda/include``;

and passes ``-I`` for the first folder holding each required header. Which pip packages hold them: ``cuda_fp16.h``
and ``mma.h`` come with ``nvidia-cuda-runtime`` (pulled by ``cupy-cuda1Xx[ctk]``), but ``crt/mma.h`` does not: it
is in ``nvidia-cuda-crt`` (CUDA 13) or ``nvidia-cuda-nvcc-cu12`` (CUDA 12). The package's extras add them through
``cuda-toolkit[crt]==13.*`` / ``cuda-toolkit[nvcc]==12.*``, so ``pip install "tinygrad_edu[cuda13]"`` (or
``[cuda12]``) is all a GPU machine needs.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from tinygrad_edu.backend.kernels import source

#: The CUDA sources this module compiles.
SOURCES = ("gemm_fp16.cu", "dot_fp16.cu", "batchnorm_fp16.cu")

#: Headers NVRTC must find (``mma.h`` includes ``crt/mma.h``).
REQUIRED_HEADERS = ("cuda_fp16.h", "mma.h", "crt/mma.h")

#: Compiler options besides ``-I`` and the ``-arch`` CuPy adds.
NVRTC_OPTIONS = ("--std=c++17",)

#: Every kernel the functions below launch, by source: the tests check that each compiled object defines them.
KERNELS = {
    "gemm_fp16.cu": tuple(f"gemm_{family}_{ta}{tb}_{out}" for family in ("wmma", "simt") for ta in "nt" for tb in "nt"
                          for out in ("f16", "f32")),
    "dot_fp16.cu": ("dot_fp16_partial", "sum_partials_f32"),
    "batchnorm_fp16.cu": ("bn_stats_nchw", "bn_stats_nc", "bn_stats_finalize", "bn_forward_apply",
                          "bn_grad_sums_nchw", "bn_grad_sums_nc", "bn_sums_finalize", "bn_backward_apply"),
}

WMMA_TILE = (128, 128, 32)  # (BM, BN, BK) of gemm_wmma_*: blocks of 256 threads
SIMT_TILE = (64, 64, 16)  # gemm_simt_*: blocks of 256 threads
_MAX_GRID_YZ = 65535


class KernelCompileError(RuntimeError):
    """A CUDA source could not be compiled (headers missing, or NVRTC rejected it)."""


def _cupy():
    import cupy

    return cupy


# ----------------------------------------------------------------------------------------------------------------
# compiling
# ----------------------------------------------------------------------------------------------------------------
def _candidate_include_dirs() -> list[str]:
    found = []
    try:
        from cuda import pathfinder
    except ImportError:
        pathfinder = None
    if pathfinder is not None:
        for lib in ("cudart", "nvcc"):
            try:
                folder = pathfinder.find_nvidia_header_directory(lib)
            except Exception:  # an unknown name in an older cuda-pathfinder, or nothing found
                folder = None
            if folder:
                found.append(folder)
    try:
        cuda_path = _cupy().cuda.get_cuda_path()
    except Exception:
        cuda_path = None
    roots = [cuda_path, os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    found += [os.path.join(root, "include") for root in roots if root]
    return list(dict.fromkeys(os.path.realpath(f) for f in found))  # in order, without repeats


@functools.cache
def include_dirs() -> tuple[str, ...]:
    """The folders to pass NVRTC with ``-I``: for each required header, the first candidate folder holding it."""
    candidates = _candidate_include_dirs()
    chosen, missing = [], []
    for header in REQUIRED_HEADERS:
        folder = next((f for f in candidates if os.path.isfile(os.path.join(f, header))), None)
        if folder is None:
            missing.append(header)
        elif folder not in chosen:
            chosen.append(folder)
    if missing:
        raise KernelCompileError(
            f"the CUDA kernels need the headers {missing}, found in none of {candidates}. Install the package's "
            'CUDA extra, which brings them as pip wheels: pip install "tinygrad_edu[cuda13]" (CUDA 13) or '
            '"tinygrad_edu[cuda12]" (CUDA 12); or set CUDA_PATH to a CUDA toolkit.'
        )
    return tuple(chosen)


@functools.cache
def module(name: str, device_id: int):
    """The compiled ``cupy.RawModule`` of kernel source ``name`` on GPU ``device_id`` (compiled once, then cached)."""
    cupy = _cupy()
    options = NVRTC_OPTIONS + tuple(f"-I{folder}" for folder in include_dirs())
    with cupy.cuda.Device(device_id):
        mod = cupy.RawModule(code=source(name), options=options)
        try:
            mod.compile()
        except cupy.cuda.compiler.CompileException as exc:
            raise KernelCompileError(f"NVRTC could not compile {name} with options {options}:\n{exc}") from exc
    return mod


@functools.cache
def _function(source_name: str, kernel_name: str, device_id: int):
    return module(source_name, device_id).get_function(kernel_name)


def _kernel(source_name: str, kernel_name: str):
    """The kernel ``kernel_name`` of ``source_name`` on the current GPU (a ``cupy.RawKernel``-like function)."""
    return _function(source_name, kernel_name, _cupy().cuda.Device().id)


@functools.cache
def _device_info(device_id: int) -> tuple[tuple[int, int], int]:
    """((major, minor) compute capability, number of SMs) of a GPU."""
    device = _cupy().cuda.Device(device_id)
    cc = device.compute_capability  # "90"
    return (int(cc[:-1]), int(cc[-1])), device.attributes["MultiProcessorCount"]


def _current_device_info():
    return _device_info(_cupy().cuda.Device().id)


# ----------------------------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------------------------
def _check_float16(op: str, **arrays) -> None:
    cupy = _cupy()
    for name, array in arrays.items():
        if not isinstance(array, cupy.ndarray):
            raise TypeError(f"{op}: {name} must be a cupy.ndarray, got {type(array).__name__}")
        if array.dtype != np.float16:
            raise TypeError(f"{op}: {name} must have dtype float16, got {array.dtype}")


def _check_out_dtype(op: str, out_dtype) -> np.dtype:
    dtype = np.dtype(out_dtype)
    if dtype not in (np.float16, np.float32):
        raise TypeError(f"{op}: out_dtype must be float16 or float32, got {dtype}")
    return dtype


def _aligned(array, nbytes: int = 16) -> bool:
    return array.data.ptr % nbytes == 0


# ----------------------------------------------------------------------------------------------------------------
# GEMM
# ----------------------------------------------------------------------------------------------------------------
def _matrix_layout(x):
    """How the stacked matrices of x (..., rows, cols) lie in memory, as the GEMM kernels take them:
    (transposed, ld, batch_stride) in elements, or None when they do not fit (then x is copied first).

    Not transposed: element (r, c) at r·ld + c. Transposed: stored as the (cols, rows) matrix, (r, c) at c·ld + r.
    The batch axes must collapse to one stride (matrix b at b·batch_stride)."""
    item = x.itemsize
    if any(s % item or s < 0 for s in x.strides):
        return None
    strides = [s // item for s in x.strides]
    rows, cols = x.shape[-2:]
    s_row, s_col = strides[-2:]
    layouts = []  # (transposed, ld) that describe x; a row or column vector fits both
    if (s_col == 1 or cols == 1) and (s_row >= cols or rows == 1):
        layouts.append((False, s_row if rows > 1 else cols))
    if (s_row == 1 or rows == 1) and (s_col >= rows or cols == 1):
        layouts.append((True, s_col if cols > 1 else rows))
    if not layouts:
        return None
    transposed, ld = min(layouts, key=lambda layout: layout[1] % 8 != 0)  # prefer the one WMMA can load
    batch_dims = [(n, s) for n, s in zip(x.shape[:-2], strides[:-2]) if n > 1]
    for (_, s_outer), (n_inner, s_inner) in zip(batch_dims, batch_dims[1:]):
        if s_outer != s_inner * n_inner:
            return None
    batch_stride = batch_dims[-1][1] if batch_dims else 0  # 0: one matrix (as for a broadcast one)
    return transposed, max(ld, 1), batch_stride


def _operand(x, batch_shape):
    """(array, transposed, ld, batch_stride) for an operand broadcast to batch_shape: a single matrix broadcast to
    every batch entry gets batch_stride 0 (no copy); a partial broadcast and unusual strides get a copy."""
    cupy = _cupy()
    broadcast_one = x.shape[:-2] != tuple(batch_shape) and math.prod(x.shape[:-2]) == 1
    if broadcast_one:
        x = x.reshape(x.shape[-2:])
    elif x.shape[:-2] != tuple(batch_shape):
        x = cupy.broadcast_to(x, tuple(batch_shape) + x.shape[-2:])
    layout = _matrix_layout(x)
    if layout is None:
        x = cupy.ascontiguousarray(x)
        layout = _matrix_layout(x)
    transposed, ld, batch_stride = layout
    return x, transposed, ld, 0 if broadcast_one else batch_stride


def _wmma_ready(x, ld: int, batch_stride: int) -> bool:
    """16-byte chunks: aligned pointer, row stride and batch stride multiples of 8 halves."""
    return _aligned(x) and ld % 8 == 0 and batch_stride % 8 == 0


def choose_gemm_kernel(a, b) -> str:
    """"wmma" or "simt": the kernel ``matmul_fp16(a, b)`` uses on the current device (see the module docstring)."""
    (major, _), _ = _current_device_info()
    a2, b2 = _as_matrices(a, b)
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    if major < 7:
        return "simt"
    ops = (_operand(a2, batch), _operand(b2, batch))
    return "wmma" if all(_wmma_ready(x, ld, stride) for x, _, ld, stride in ops) else "simt"


def _as_matrices(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul_fp16: operands must have at least 1 axis, got shapes {a.shape} and {b.shape}")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul_fp16: shapes {a.shape} and {b.shape} do not align on the shared dimension "
                         f"({a2.shape[-1]} != {b2.shape[-2]})")
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul_fp16: batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None
    return a2, b2


def matmul_fp16(a, b, out_dtype=np.float16, kernel: str = "auto"):
    """``a @ b`` for float16 CuPy arrays with FP32 accumulation, result in ``out_dtype`` (float16 or float32).

    NumPy ``matmul`` semantics: (..., M, K) @ (..., K, N) with broadcast batch axes; a 1-D operand is a row
    (left) or column (right) vector whose axis is removed from the result; 1-D @ 1-D is ``dot_fp16``.
    ``kernel``: "auto" (see ``choose_gemm_kernel``), "wmma" or "simt" (for tests and benchmarks).
    """
    cupy = _cupy()
    _check_float16("matmul_fp16", a=a, b=b)
    out_dtype = _check_out_dtype("matmul_fp16", out_dtype)
    if kernel not in ("auto", "wmma", "simt"):
        raise ValueError(f"matmul_fp16: kernel must be 'auto', 'wmma' or 'simt', got {kernel!r}")
    if a.ndim == 1 and b.ndim == 1:
        if a.shape != b.shape:
            raise ValueError(f"matmul_fp16: 1-D operands must have one length, got {a.shape} and {b.shape}")
        return dot_fp16(a, b, out_dtype)
    a2, b2 = _as_matrices(a, b)
    batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    (M, K), N = a2.shape[-2:], b2.shape[-1]
    count = math.prod(batch)
    out = cupy.empty(batch + (M, N), dtype=out_dtype)
    if out.size and K == 0:
        out.fill(0)
    elif out.size:
        if max(M, N, K) >= 2**31 - 1:
            raise ValueError(f"matmul_fp16: dimensions up to 2**31 - 2 are supported, got M={M}, N={N}, K={K}")
        A, trans_a, lda, stride_a = _operand(a2, batch)
        B, trans_b, ldb, stride_b = _operand(b2, batch)
        (major, _), _ = _current_device_info()
        wmma_ok = major >= 7 and _wmma_ready(A, lda, stride_a) and _wmma_ready(B, ldb, stride_b)
        if kernel == "wmma" and not wmma_ok:
            raise ValueError("matmul_fp16: kernel='wmma' needs compute capability >= 7.0, 16-byte aligned operands "
                             f"and row/batch strides that are multiples of 8 (got lda={lda}, ldb={ldb}, "
                             f"batch strides {stride_a}, {stride_b})")
        family = "wmma" if (kernel == "wmma" or (kernel == "auto" and wmma_ok)) else "simt"
        bm, bn, _ = WMMA_TILE if family == "wmma" else SIMT_TILE
        grid = (-(-N // bn), -(-M // bm), min(count, _MAX_GRID_YZ))
        if grid[1] > _MAX_GRID_YZ:
            raise ValueError(f"matmul_fp16: M={M} is too large for one launch (at most {_MAX_GRID_YZ * bm} rows)")
        name = f"gemm_{family}_{'nt'[trans_a]}{'nt'[trans_b]}_{'f16' if out_dtype == np.float16 else 'f32'}"
        i32, i64 = np.int32, np.int64
        args = (A, B, out, i32(M), i32(N), i32(K), i32(lda), i32(ldb), i32(N), i64(stride_a), i64(stride_b),
                i64(M * N), i32(count))
        _kernel("gemm_fp16.cu", name)(grid, (256,), args)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return out


# ----------------------------------------------------------------------------------------------------------------
# dot
# ----------------------------------------------------------------------------------------------------------------
def dot_fp16(a, b, out_dtype=np.float16):
    """Σ a_i b_i of two float16 1-D CuPy arrays, accumulated in FP32, as a 0-d array of ``out_dtype``.

    Two deterministic passes: block partial sums, then one block adds them in a fixed order."""
    cupy = _cupy()
    _check_float16("dot_fp16", a=a, b=b)
    out_dtype = _check_out_dtype("dot_fp16", out_dtype)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot_fp16: expected two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
    n = a.shape[0]
    out = cupy.zeros((), dtype=np.float32)
    if n:
        _, sms = _current_device_info()
        blocks = max(1, min(-(-n // (256 * 8)), 8 * sms))
        partial = cupy.empty(blocks, dtype=np.float32)
        vec = np.int32(_aligned(a) and _aligned(b))
        _kernel("dot_fp16.cu", "dot_fp16_partial")((blocks,), (256,), (a, b, np.int64(n), vec, partial))
        _kernel("dot_fp16.cu", "sum_partials_f32")((1,), (1024,), (partial, np.int32(blocks), out))
    return out if out_dtype == np.float32 else out.astype(out_dtype)


# ----------------------------------------------------------------------------------------------------------------
# batch normalization
# ----------------------------------------------------------------------------------------------------------------
def _bn_shape(op, x):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected x of shape (N, C, ...) with at least 2 axes, got shape {x.shape}")
    N, C = x.shape[:2]
    HW = math.prod(x.shape[2:])
    if N * HW == 0 or C == 0:
        raise ValueError(f"{op}: x of shape {x.shape} has no values to normalize")
    return N, C, HW


def _per_channel_f32(op, name, v, C, default):
    cupy = _cupy()
    if v is None:
        return cupy.full(C, default, dtype=np.float32)
    if v.shape != (C,):
        raise ValueError(f"{op}: {name} has shape {v.shape}, expected ({C},) (one value per channel)")
    return cupy.ascontiguousarray(v, dtype=np.float32)


def _bn_reduction_grid(N, C, HW):
    """Launch shapes for the per-(channel, split) reduction passes: (kernel layout, grid, block, S, chunk)."""
    _, sms = _current_device_info()
    target = 8 * sms  # blocks that keep every SM busy
    if HW > 1:  # one channel per block, its M = N·HW values cut into S chunks (multiples of 8, at least 4096 values)
        M = N * HW
        S = max(1, min(-(-target // C), -(-M // 4096)))
        chunk = -(-M // S)
        chunk = -(-chunk // 8) * 8
        S = -(-M // chunk)
        return "nchw", (C, S), (256,), S, chunk
    # (N, C): 32 channels per block, rows cut into S slices of at least 64 rows
    col_blocks = -(-C // 32)
    S = max(1, min(-(-target // col_blocks), -(-N // 64)))
    rows = -(-N // S)
    S = -(-N // rows)
    return "nc", (col_blocks, S), (32, 8), S, rows


def _elementwise_grid(total, vec):
    _, sms = _current_device_info()
    units = total // 8 if vec else total
    return (max(1, min(-(-units // 256), 32 * sms)),), (256,)


def batch_norm_fp16_forward(x, weight=None, bias=None, eps=1e-5):
    """Training-mode batch normalization of a float16 (N, C, ...) CuPy array, statistics in FP32.

    Returns (y float16, mean, var (biased), inv_std), the last three float32 of shape (C,): the values
    ``BatchNormFunction`` computes (tinygrad_edu/nn/functional/batch_norm.py). ``weight`` (γ) and ``bias`` (β) are
    (C,) arrays of any float dtype, or None (1 and 0). A non-contiguous x is copied first."""
    cupy = _cupy()
    op = "batch_norm_fp16_forward"
    _check_float16(op, x=x)
    N, C, HW = _bn_shape(op, x)
    gamma = _per_channel_f32(op, "weight", weight, C, 1.0)
    beta = _per_channel_f32(op, "bias", bias, C, 0.0)
    x = cupy.ascontiguousarray(x)
    layout, grid, block, S, chunk = _bn_reduction_grid(N, C, HW)
    part_n, part_mean, part_m2 = (cupy.empty(C * S, dtype=np.float32) for _ in range(3))
    if layout == "nchw":
        vec = np.int32(HW % 8 == 0 and _aligned(x))
        _kernel("batchnorm_fp16.cu", "bn_stats_nchw")(
            grid, block, (x, np.int32(N), np.int32(C), np.int64(HW), np.int64(chunk), vec, part_n, part_mean, part_m2))
    else:
        _kernel("batchnorm_fp16.cu", "bn_stats_nc")(
            grid, block, (x, np.int32(N), np.int32(C), np.int32(chunk), part_n, part_mean, part_m2))
    mean, var, inv_std = (cupy.empty(C, dtype=np.float32) for _ in range(3))
    _kernel("batchnorm_fp16.cu", "bn_stats_finalize")(
        (-(-C // 256),), (256,), (part_n, part_mean, part_m2, np.int32(C), np.int32(S), np.float32(eps), mean, var,
                                  inv_std))
    y = cupy.empty_like(x)
    vec = HW % 8 == 0 and _aligned(x)
    grid, block = _elementwise_grid(x.size, vec)
    _kernel("batchnorm_fp16.cu", "bn_forward_apply")(
        grid, block, (x, mean, inv_std, gamma, beta, y, np.int64(x.size), np.int32(C), np.int64(HW), np.int32(vec)))
    return y, mean, var, inv_std


def batch_norm_fp16_backward(x, dy, mean, inv_std, weight=None):
    """Backward of ``batch_norm_fp16_forward``: (dx float16, dγ float32, dβ float32), with the closed form

        dβ = Σ dy      dγ = Σ dy x̂      dx = γ·inv_std · (dy - Σdy/M - x̂ Σ(dy x̂)/M),   x̂ = (x - mean)·inv_std

    ``mean`` and ``inv_std`` are the forward's (C,) float32 statistics; x̂ is recomputed, not stored."""
    cupy = _cupy()
    op = "batch_norm_fp16_backward"
    _check_float16(op, x=x, dy=dy)
    if dy.shape != x.shape:
        raise ValueError(f"{op}: dy has shape {dy.shape}, expected the shape of x {x.shape}")
    N, C, HW = _bn_shape(op, x)
    mean = _per_channel_f32(op, "mean", mean, C, 0.0)
    inv_std = _per_channel_f32(op, "inv_std", inv_std, C, 1.0)
    gamma = _per_channel_f32(op, "weight", weight, C, 1.0)
    x, dy = cupy.ascontiguousarray(x), cupy.ascontiguousarray(dy)
    layout, grid, block, S, chunk = _bn_reduction_grid(N, C, HW)
    part_dy, part_dy_xc = (cupy.empty(C * S, dtype=np.float32) for _ in range(2))
    if layout == "nchw":
        vec = np.int32(HW % 8 == 0 and _aligned(x) and _aligned(dy))
        _kernel("batchnorm_fp16.cu", "bn_grad_sums_nchw")(
            grid, block, (x, dy, mean, np.int32(N), np.int32(C), np.int64(HW), np.int64(chunk), vec, part_dy,
                          part_dy_xc))
    else:
        _kernel("batchnorm_fp16.cu", "bn_grad_sums_nc")(
            grid, block, (x, dy, mean, np.int32(N), np.int32(C), np.int32(chunk), part_dy, part_dy_xc))
    d_beta, d_gamma = cupy.empty(C, dtype=np.float32), cupy.empty(C, dtype=np.float32)
    _kernel("batchnorm_fp16.cu", "bn_sums_finalize")(
        (-(-C // 256),), (256,), (part_dy, part_dy_xc, inv_std, np.int32(C), np.int32(S), d_beta, d_gamma))
    dx = cupy.empty_like(x)
    vec = HW % 8 == 0 and _aligned(x) and _aligned(dy)
    grid, block = _elementwise_grid(x.size, vec)
    _kernel("batchnorm_fp16.cu", "bn_backward_apply")(
        grid, block, (x, dy, mean, inv_std, gamma, d_beta, d_gamma, dx, np.int64(x.size), np.int32(C), np.int64(HW),
                      np.float32(1.0 / (N * HW)), np.int32(vec)))
    return dx, d_gamma, d_beta
