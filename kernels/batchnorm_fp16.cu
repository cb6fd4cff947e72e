// Fused training-mode batch normalization for FP16 input (Ioffe & Szegedy 2015), statistics in FP32.
//
// x has shape (N, C, HW) (HW = H·W for images, 1 for (N, C) input), stored contiguously. Per channel c the M = N·HW
// values x[n, c, p] are normalized; the math is BatchNormFunction's (tinygrad_edu/nn/functional/batch_norm.py):
//
//   forward    μ = (1/M) Σ x      σ² = (1/M) Σ (x - μ)²      inv_std = 1/sqrt(σ² + ε)
//              x̂ = (x - μ)·inv_std                            y = γ x̂ + β   (rounded to FP16 once)
//   backward   dβ = Σ dy          dγ = Σ dy x̂
//              dx = γ·inv_std · (dy - Σdy/M - x̂ · Σ(dy x̂)/M)
//
// Mixed precision (Micikevicius et al. 2018): FP16 in memory, every reduction in FP32. The mean and variance use
// Welford's running update merged with Chan et al.'s formula (no Σx² - (Σx)² cancellation), and all sums are
// deterministic: per-block partials, then a fixed-order merge.
//
// Passes over memory:
//   forward   1. stats_*        read x, write per-(channel, split) partial statistics
//             2. stats_finalize  merge the partials per channel: mean, biased var, inv_std (C values each)
//             3. forward_apply   read x, write y
//   backward  1. grad_sums_*     read x and dy, partial Σdy and Σdy·(x - μ)
//             2. sums_finalize   merge: dβ = Σdy, dγ = inv_std · Σdy·(x - μ)
//             3. backward_apply  read x and dy, write dx
// x̂ is recomputed from x, μ and inv_std in the backward (cheaper than writing and reading an FP32 x̂).
//
// Two layouts of the reduction passes: *_nchw (HW > 1) gives each block one channel and a slice of its M values,
// which are runs of HW contiguous halves; *_nc (HW = 1) gives each block 32 neighbouring channels (contiguous in
// memory, so a warp's loads are coalesced) and a slice of the rows. The splits (gridDim.y = S blocks per channel)
// let small-C inputs fill the GPU.

#include <cuda_fp16.h>

// ---------------------------------------------------------------------------------------------------------------
// Welford statistics: count, mean and M2 = Σ (x - mean)² of a set of values
// ---------------------------------------------------------------------------------------------------------------
struct Welford {
    float n, mean, m2;
};

// Add one value (Welford 1962).
__device__ __forceinline__ void welford_add(Welford& w, float v) {
    w.n += 1.0f;
    float d = v - w.mean;
    w.mean += d / w.n;
    w.m2 += d * (v - w.mean);
}

// Merge two sets (Chan, Golub & LeVeque 1979): δ = mean_b - mean_a, M2 = M2_a + M2_b + δ² n_a n_b / n.
__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
    float n = a.n + b.n;
    if (n == 0.0f) return a;
    float d = b.mean - a.mean, f = b.n / n;
    return {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
}

// Add 8 values: their own mean and M2 first (one division per 8 values), then a merge.
__device__ __forceinline__ void welford_add8(Welford& w, const float v[8]) {
    float s = 0.0f;
    for (int e = 0; e < 8; ++e) s += v[e];
    float mean = s * 0.125f, m2 = 0.0f;
    for (int e = 0; e < 8; ++e) m2 += (v[e] - mean) * (v[e] - mean);
    w = welford_merge(w, {8.0f, mean, m2});
}

__device__ __forceinline__ Welford welford_shfl_down(Welford w, int offset) {
    return {__shfl_down_sync(0xffffffffu, w.n, offset), __shfl_down_sync(0xffffffffu, w.mean, offset),
            __shfl_down_sync(0xffffffffu, w.m2, offset)};
}

// Merge over a 1-D block (blockDim.x a multiple of 32); the result is valid in thread 0.
__device__ Welford block_welford(Welford w) {
    __shared__ Welford warp_w[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) w = welford_merge(w, welford_shfl_down(w, offset));
    if (lane == 0) warp_w[warp] = w;
    __syncthreads();
    if (warp == 0) {
        w = lane < blockDim.x / 32 ? warp_w[lane] : Welford{0.0f, 0.0f, 0.0f};
        for (int offset = 16; offset > 0; offset /= 2) w = welford_merge(w, welford_shfl_down(w, offset));
    }
    return w;
}

// Sum of two values over a 1-D block; valid in thread 0.
__device__ float2 block_sum2(float2 v) {
    __shared__ float2 warp_v[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) {
        v.x += __shfl_down_sync(0xffffffffu, v.x, offset);
        v.y += __shfl_down_sync(0xffffffffu, v.y, offset);
    }
    if (lane == 0) warp_v[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / 32 ? warp_v[lane] : make_float2(0.0f, 0.0f);
        for (int offset = 16; offset > 0; offset /= 2) {
            v.x += __shfl_down_sync(0xffffffffu, v.x, offset);
            v.y += __shfl_down_sync(0xffffffffu, v.y, offset);
        }
    }
    return v;
}

// 8 halves from a 16-byte aligned address, as FP32.
__device__ __forceinline__ void load8(const __half* p, float v[8]) {
    uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&raw);
    for (int e = 0; e < 4; ++e) {
        float2 f = __half22float2(h[e]);
        v[2 * e] = f.x;
        v[2 * e + 1] = f.y;
    }
}

__device__ __forceinline__ void store8(__half* p, const float v[8]) {
    uint4 raw;
    __half2* h = reinterpret_cast<__half2*>(&raw);
    for (int e = 0; e < 4; ++e) h[e] = __floats2half2_rn(v[2 * e], v[2 * e + 1]);
    *reinterpret_cast<uint4*>(p) = raw;
}

// Offset of the j-th value (j < M = N·HW) of channel c: x[n, c, p] with n = j / HW, p = j % HW.
__device__ __forceinline__ long long channel_offset(long long j, int c, int C, long long HW) {
    long long n = j / HW;
    return (n * C + c) * HW + (j - n * HW);
}

// ---------------------------------------------------------------------------------------------------------------
// forward, pass 1: partial Welford statistics. part_*[c·S + s] for channel c, split s (S = gridDim.y)
// ---------------------------------------------------------------------------------------------------------------
// grid (C, S), 1-D blocks. Split s covers the channel's values j ∈ [s·chunk, (s+1)·chunk).
// vec = 1 when HW and chunk are multiples of 8 and x is 16-byte aligned: 8 values (one run, one row) per load.
extern "C" __global__ void __launch_bounds__(256)
bn_stats_nchw(const __half* __restrict__ x, int N, int C, long long HW, long long chunk, int vec,
              float* __restrict__ part_n, float* __restrict__ part_mean, float* __restrict__ part_m2) {
    const int c = blockIdx.x, s = blockIdx.y;
    const long long M = (long long)N * HW, start = s * chunk, end = min(M, start + chunk);
    Welford w{0.0f, 0.0f, 0.0f};
    if (vec) {
        for (long long j = start + 8LL * threadIdx.x; j < end; j += 8LL * blockDim.x) {
            float v[8];
            load8(x + channel_offset(j, c, C, HW), v);
            welford_add8(w, v);
        }
    } else {
        for (long long j = start + threadIdx.x; j < end; j += blockDim.x)
            welford_add(w, __half2float(x[channel_offset(j, c, C, HW)]));
    }
    w = block_welford(w);
    if (threadIdx.x == 0) {
        const int i = c * gridDim.y + s;
        part_n[i] = w.n, part_mean[i] = w.mean, part_m2[i] = w.m2;
    }
}

// grid (ceil(C / 32), S), blocks (32, 8): thread (tx, ty) follows channel 32·blockIdx.x + tx down rows
// ty, ty + 8, ... of split s (rows [s·rows_per_split, (s+1)·rows_per_split)); then the 8 rows of threads merge.
extern "C" __global__ void __launch_bounds__(256)
bn_stats_nc(const __half* __restrict__ x, int N, int C, int rows_per_split, float* __restrict__ part_n,
            float* __restrict__ part_mean, float* __restrict__ part_m2) {
    __shared__ Welford partial[8][33];  // +1: the ty-th row of 32 lands in different banks
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx, s = blockIdx.y;
    const int row_end = min(N, (s + 1) * rows_per_split);
    Welford w{0.0f, 0.0f, 0.0f};
    if (c < C)
        for (int r = s * rows_per_split + ty; r < row_end; r += 8) welford_add(w, __half2float(x[(long long)r * C + c]));
    partial[ty][tx] = w;
    __syncthreads();
    if (ty == 0 && c < C) {
        for (int k = 1; k < 8; ++k) w = welford_merge(w, partial[k][tx]);
        const int i = c * gridDim.y + s;
        part_n[i] = w.n, part_mean[i] = w.mean, part_m2[i] = w.m2;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// forward, pass 2: merge the S partials of each channel in order (one thread per channel)
// ---------------------------------------------------------------------------------------------------------------
extern "C" __global__ void bn_stats_finalize(const float* __restrict__ part_n, const float* __restrict__ part_mean,
                                             const float* __restrict__ part_m2, int C, int S, float eps,
                                             float* __restrict__ mean, float* __restrict__ var,
                                             float* __restrict__ inv_std) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    Welford w{0.0f, 0.0f, 0.0f};
    for (int s = 0; s < S; ++s) w = welford_merge(w, {part_n[c * S + s], part_mean[c * S + s], part_m2[c * S + s]});
    const float v = w.m2 / w.n;  // biased: the variance that normalizes
    mean[c] = w.mean;
    var[c] = v;
    inv_std[c] = 1.0f / sqrtf(v + eps);
}

// ---------------------------------------------------------------------------------------------------------------
// forward, pass 3: y = γ·(x - μ)·inv_std + β, in FP32, rounded once to FP16. Elementwise over all N·C·HW values.
// ---------------------------------------------------------------------------------------------------------------
// vec = 1 when HW % 8 == 0 and x, y are 16-byte aligned: 8 values of one channel per thread step.
extern "C" __global__ void __launch_bounds__(256)
bn_forward_apply(const __half* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ inv_std,
                 const float* __restrict__ gamma, const float* __restrict__ beta, __half* __restrict__ y,
                 long long total, int C, long long HW, int vec) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        for (long long i = first; i < total / 8; i += stride) {
            const int c = (int)((8 * i / HW) % C);
            const float mu = mean[c], scale = gamma[c] * inv_std[c], shift = beta[c];
            float v[8];
            load8(x + 8 * i, v);
            for (int e = 0; e < 8; ++e) v[e] = (v[e] - mu) * scale + shift;
            store8(y + 8 * i, v);
        }
    } else {
        for (long long i = first; i < total; i += stride) {
            const int c = (int)((i / HW) % C);
            y[i] = __float2half_rn((__half2float(x[i]) - mean[c]) * (gamma[c] * inv_std[c]) + beta[c]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// backward, pass 1: partial Σdy and Σdy·(x - μ) per (channel, split); same grids as the statistics pass
// ---------------------------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(256)
bn_grad_sums_nchw(const __half* __restrict__ x, const __half* __restrict__ dy, const float* __restrict__ mean,
                  int N, int C, long long HW, long long chunk, int vec, float* __restrict__ part_dy,
                  float* __restrict__ part_dy_xc) {
    const int c = blockIdx.x, s = blockIdx.y;
    const long long M = (long long)N * HW, start = s * chunk, end = min(M, start + chunk);
    const float mu = mean[c];
    float2 acc = make_float2(0.0f, 0.0f);  // (Σ dy, Σ dy·(x - μ))
    if (vec) {
        for (long long j = start + 8LL * threadIdx.x; j < end; j += 8LL * blockDim.x) {
            const long long off = channel_offset(j, c, C, HW);
            float xv[8], gv[8];
            load8(x + off, xv);
            load8(dy + off, gv);
            for (int e = 0; e < 8; ++e) {
                acc.x += gv[e];
                acc.y = fmaf(gv[e], xv[e] - mu, acc.y);
            }
        }
    } else {
        for (long long j = start + threadIdx.x; j < end; j += blockDim.x) {
            const long long off = channel_offset(j, c, C, HW);
            const float g = __half2float(dy[off]);
            acc.x += g;
            acc.y = fmaf(g, __half2float(x[off]) - mu, acc.y);
        }
    }
    acc = block_sum2(acc);
    if (threadIdx.x == 0) {
        part_dy[c * gridDim.y + s] = acc.x;
        part_dy_xc[c * gridDim.y + s] = acc.y;
    }
}

extern "C" __global__ void __launch_bounds__(256)
bn_grad_sums_nc(const __half* __restrict__ x, const __half* __restrict__ dy, const float* __restrict__ mean,
                int N, int C, int rows_per_split, float* __restrict__ part_dy, float* __restrict__ part_dy_xc) {
    __shared__ float2 partial[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.x * 32 + tx, s = blockIdx.y;
    const int row_end = min(N, (s + 1) * rows_per_split);
    float2 acc = make_float2(0.0f, 0.0f);
    if (c < C) {
        const float mu = mean[c];
        for (int r = s * rows_per_split + ty; r < row_end; r += 8) {
            const long long off = (long long)r * C + c;
            const float g = __half2float(dy[off]);
            acc.x += g;
            acc.y = fmaf(g, __half2float(x[off]) - mu, acc.y);
        }
    }
    partial[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
        for (int k = 1; k < 8; ++k) acc.x += partial[k][tx].x, acc.y += partial[k][tx].y;
        part_dy[c * gridDim.y + s] = acc.x;
        part_dy_xc[c * gridDim.y + s] = acc.y;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// backward, pass 2: dβ = Σdy and dγ = Σdy·x̂ = inv_std · Σdy·(x - μ), partials added in order
// ---------------------------------------------------------------------------------------------------------------
extern "C" __global__ void bn_sums_finalize(const float* __restrict__ part_dy, const float* __restrict__ part_dy_xc,
                                            const float* __restrict__ inv_std, int C, int S,
                                            float* __restrict__ d_beta, float* __restrict__ d_gamma) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float a = 0.0f, b = 0.0f;
    for (int s = 0; s < S; ++s) a += part_dy[c * S + s], b += part_dy_xc[c * S + s];
    d_beta[c] = a;
    d_gamma[c] = b * inv_std[c];
}

// ---------------------------------------------------------------------------------------------------------------
// backward, pass 3: dx = γ·inv_std · (dy - Σdy/M - x̂·Σdy x̂/M), x̂ = (x - μ)·inv_std; FP32, rounded once to FP16
// ---------------------------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(256)
bn_backward_apply(const __half* __restrict__ x, const __half* __restrict__ dy, const float* __restrict__ mean,
                  const float* __restrict__ inv_std, const float* __restrict__ gamma,
                  const float* __restrict__ d_beta, const float* __restrict__ d_gamma, __half* __restrict__ dx,
                  long long total, int C, long long HW, float inv_M, int vec) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        for (long long i = first; i < total / 8; i += stride) {
            const int c = (int)((8 * i / HW) % C);
            const float mu = mean[c], is = inv_std[c], k = gamma[c] * is;
            const float mean_dy = d_beta[c] * inv_M, mean_dy_xhat = d_gamma[c] * inv_M;
            float xv[8], gv[8];
            load8(x + 8 * i, xv);
            load8(dy + 8 * i, gv);
            for (int e = 0; e < 8; ++e) gv[e] = k * (gv[e] - mean_dy - (xv[e] - mu) * is * mean_dy_xhat);
            store8(dx + 8 * i, gv);
        }
    } else {
        for (long long i = first; i < total; i += stride) {
            const int c = (int)((i / HW) % C);
            const float is = inv_std[c], x_hat = (__half2float(x[i]) - mean[c]) * is;
            const float g = __half2float(dy[i]);
            dx[i] = __float2half_rn(gamma[c] * is * (g - d_beta[c] * inv_M - x_hat * d_gamma[c] * inv_M));
        }
    }
}
