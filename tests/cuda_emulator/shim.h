// CPU emulation of the CUDA features the kernels in kernels/*.cu use, so that their index math runs under g++.
//
// One OS thread per CUDA thread (a reused pool); the blocks of a grid run one after another, so `__shared__` becomes `static`
// (one copy, shared by the threads of the running block). __syncthreads is a std::barrier over the block,
// __syncwarp one over the warp, __shfl_down_sync exchanges through a per-warp buffer between two warp barriers.
// __half is _Float16. nvcuda::wmma: every lane loads whole 16x16 operand tiles;
// lane l owns the accumulator elements e with e % 32 == l (computes and stores them);
// loads check the 32-byte pointer alignment and ldm % 8 that the hardware requires. cp.async (when the kernel is
// built with GEMM_USE_CP_ASYNC=1): copies are queued per thread and land only at cp_async_wait_all, so a read that
// comes before the wait sees stale shared memory, as on the GPU.
// Build with -fno-strict-aliasing: the kernels reinterpret uint4 loads as __half2, as CUDA code does.
#pragma once
#include <algorithm>
#include <cstdio>
#include <barrier>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>
using std::max;
using std::min;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __trap() abort()
inline std::barrier<>* g_block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> g_warp_barriers;
alignas(16) inline unsigned char g_xchg[32][32][16];
inline int linear_tid() { return threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y; }
inline void __syncthreads() { g_block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { g_warp_barriers[linear_tid() / 32]->arrive_and_wait(); }
template <class T> T __shfl_down_sync(unsigned, T v, int offset) {
    static_assert(sizeof(T) <= 16);
    int t = linear_tid(), w = t / 32, l = t % 32;
    std::memcpy(g_xchg[w][l], &v, sizeof(T));
    __syncwarp();
    T r = v;
    if (l + offset < 32) std::memcpy(&r, g_xchg[w][l + offset], sizeof(T));
    __syncwarp();
    return r;
}
struct __half { _Float16 v; };
struct __half2 { __half x, y; };
struct uint4 { unsigned x, y, z, w; };
struct float2 { float x, y; };
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float __half2float(__half h) { return (float)h.v; }
inline __half __float2half_rn(float f) { return {(_Float16)f}; }
inline __half __float2half(float f) { return {(_Float16)f}; }
inline float2 __half22float2(__half2 h) { return {(float)h.x.v, (float)h.y.v}; }
inline __half2 __floats2half2_rn(float a, float b) { return {{(_Float16)a}, {(_Float16)b}}; }
namespace nvcuda { namespace wmma {
struct row_major {}; struct col_major {}; struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };
template <class Use, int M, int N, int K, class T, class L = void> struct fragment { T x[256]; };
template <class F, class T> void fill_fragment(F& f, T v) { for (auto& e : f.x) e = v; }
template <class Use, class T, class L> void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm) {
    if ((uintptr_t)p % 32) { fprintf(stderr, "wmma load: pointer not 32-byte aligned\n"); abort(); }
    if (ldm % 8) { fprintf(stderr, "wmma load: ldm %% 8\n"); abort(); }
    for (int i = 0; i < 16; ++i) for (int j = 0; j < 16; ++j)
        f.x[i * 16 + j] = std::is_same<L, row_major>::value ? p[i * ldm + j] : p[i + j * ldm];
}
// Accumulators: lane l computes and stores the elements e = i*16 + j with e % 32 == l (8 of the 256), as the
// hardware spreads a fragment over the warp; the operand fragments are loaded whole by every lane.
template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __half, LA>& a,
              const fragment<matrix_b, 16, 16, 16, __half, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
    for (int e = linear_tid() % 32; e < 256; e += 32) {
        int i = e / 16, j = e % 16;
        float s = c.x[e];
        for (int k = 0; k < 16; ++k) s += (float)a.x[i * 16 + k].v * (float)b.x[k * 16 + j].v;
        d.x[e] = s;
    }
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
    if ((uintptr_t)p % 32) { fprintf(stderr, "wmma store: pointer not 32-byte aligned\n"); abort(); }
    for (int e = linear_tid() % 32; e < 256; e += 32) {
        int i = e / 16, j = e % 16;
        p[l == mem_row_major ? i * ldm + j : i + j * ldm] = f.x[e];
    }
    __syncwarp();
}
}}  // namespace nvcuda::wmma
// A pool of worker threads, reused by every block (creating 256 threads per block would dominate the run time).
struct Pool {
    std::mutex m;
    std::condition_variable start, done;
    long generation = 0;
    int active = 0, remaining = 0, created = 0;
    std::function<void()> job;
    dim3 block_index;
    void grow(int n) {
        for (; created < n; ++created)
            std::thread([this, t = created] { work(t); }).detach();
    }
    void work(int t) {
        long seen = 0;
        for (;;) {
            std::unique_lock<std::mutex> lock(m);
            start.wait(lock, [&] { return generation != seen; });
            seen = generation;
            if (t >= active) continue;
            auto f = job;
            dim3 b = block_index;
            lock.unlock();
            threadIdx = {unsigned(t % blockDim.x), unsigned(t / blockDim.x % blockDim.y),
                         unsigned(t / (blockDim.x * blockDim.y))};
            blockIdx = b;
            f();
            lock.lock();
            if (--remaining == 0) done.notify_one();
        }
    }
};
inline Pool* g_pool = new Pool;  // never destroyed: the detached workers outlive main

template <class F> void launch(dim3 grid, dim3 block, F kernel) {
    gridDim = grid; blockDim = block;
    int n = block.x * block.y * block.z;
    g_pool->grow(n);
    for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
        std::barrier<> bar(n);
        g_block_barrier = &bar;
        g_warp_barriers.clear();
        for (int w = 0; w < (n + 31) / 32; ++w) g_warp_barriers.emplace_back(new std::barrier<>(std::min(32, n - 32 * w)));
        std::unique_lock<std::mutex> lock(g_pool->m);
        g_pool->job = kernel;
        g_pool->block_index = {x, y, z};
        g_pool->active = g_pool->remaining = n;
        ++g_pool->generation;
        g_pool->start.notify_all();
        g_pool->done.wait(lock, [] { return g_pool->remaining == 0; });
    }
}
#if GEMM_USE_CP_ASYNC
// cp.async emulation: copies are queued per thread and land only at wait time (a read before the wait sees old data)
struct PendingCopy { void* dst; const void* src; int bytes; };
inline thread_local std::vector<PendingCopy> g_pending;
inline void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    if ((uintptr_t)gmem % 16 || (uintptr_t)smem % 16) { fprintf(stderr, "cp.async misaligned %p %p bytes=%d blk=%u,%u,%u tid=%d\n", smem, gmem, src_bytes, blockIdx.x, blockIdx.y, blockIdx.z, linear_tid()); abort(); }
    g_pending.push_back({smem, gmem, src_bytes});
}
inline void cp_async_commit() {}
inline void cp_async_wait_all() {
    for (auto& p : g_pending) { std::memset(p.dst, 0, 16); std::memcpy(p.dst, p.src, p.bytes); }
    g_pending.clear();
}
#endif
