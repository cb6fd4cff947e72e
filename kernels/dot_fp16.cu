// 1-D dot product of FP16 vectors with an FP32 accumulator: s = Σ a_i b_i.
//
// Micikevicius et al. 2018: an FP16 dot product must accumulate its partial products in FP32 (FP16 sums stop
// growing once the sum is 2048× larger than a term). Two passes, deterministic (no atomics: the same inputs give
// the same bits on every run):
//
//   dot_fp16_partial   every block sums a strided share of the products into FP32 and writes one partial sum;
//   sum_partials_f32   one block adds the partial sums in a fixed order and writes the FP32 result.
//
// kernels/cuda.py rounds the FP32 result to FP16 (once) when an FP16 result is asked for.

#include <cuda_fp16.h>

// Sum of `v` over the block (blockDim.x a multiple of 32, at most 1024); the total is valid in thread 0.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float warp_sums[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < blockDim.x / 32 ? warp_sums[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Pass 1. vec = 1 when both pointers are 16-byte aligned: then 8 halves travel per load (a uint4), which is what
// lets a memory-bound kernel reach the memory bandwidth. The n % 8 tail is summed element by element.
extern "C" __global__ void __launch_bounds__(256)
dot_fp16_partial(const __half* __restrict__ a, const __half* __restrict__ b, long long n, int vec,
                 float* __restrict__ partial) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long threads = (long long)gridDim.x * blockDim.x;
    float acc = 0.0f;
    long long start_tail = 0;
    if (vec) {
        const long long chunks = n / 8;
        const uint4* a8 = reinterpret_cast<const uint4*>(a);
        const uint4* b8 = reinterpret_cast<const uint4*>(b);
        for (long long i = tid; i < chunks; i += threads) {
            uint4 va = a8[i], vb = b8[i];
            const __half2* ha = reinterpret_cast<const __half2*>(&va);
            const __half2* hb = reinterpret_cast<const __half2*>(&vb);
            for (int j = 0; j < 4; ++j) {  // upcast each pair to FP32 before multiplying: no FP16 rounding at all
                float2 fa = __half22float2(ha[j]), fb = __half22float2(hb[j]);
                acc = fmaf(fa.x, fb.x, acc);
                acc = fmaf(fa.y, fb.y, acc);
            }
        }
        start_tail = chunks * 8;
    }
    for (long long i = start_tail + tid; i < n; i += threads) acc = fmaf(__half2float(a[i]), __half2float(b[i]), acc);
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2: one block; thread t adds partials t, t + blockDim.x, ... then the block sum. Fixed order: deterministic.
extern "C" __global__ void __launch_bounds__(1024)
sum_partials_f32(const float* __restrict__ partial, int count, float* __restrict__ out) {
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = acc;
}
