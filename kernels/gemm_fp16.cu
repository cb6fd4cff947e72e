// FP16 GEMM with FP32 accumulation: C = A · B, batched, optionally with transposed operands.
//
// Mixed-precision rule (Micikevicius et al. 2018): store the operands in FP16, accumulate every dot product in
// FP32, round once when the result is stored (to FP16, or keep FP32).
//
// Two kernel families live here; kernels/cuda.py picks one per call:
//
//   gemm_wmma_<ta><tb>_<out>   tensor cores through nvcuda::wmma (sm_70+): 16×16×16 FP16 tiles, FP32
//                               accumulator fragments. Block tile 128×128, K step 32, 8 warps of 64×32 each,
//                               two shared-memory stages (double buffering; cp.async on sm_80+).
//   gemm_simt_<ta><tb>_<out>   plain FMA on CUDA cores, FP32 accumulators, shared-memory tiles 64×64×16. For
//                               GPUs without tensor cores and for operands the WMMA kernel cannot load
//                               (a leading dimension that is not a multiple of 8, a misaligned pointer).
//
// Naming: <ta>,<tb> are n (operand stored as its math shape, row-major) or t (stored transposed), e.g. gemm_wmma_tn
// computes C = Aᵀ·B from A stored as (K, M). <out> is f16 or f32, the dtype of C.
//
// Shapes and strides, all in elements (row-major everywhere):
//   op(A) is M×K: A stored (M, K) with row stride lda (n) or (K, M) with row stride lda (t)
//   op(B) is K×N: B stored (K, N) with row stride ldb (n) or (N, K) with row stride ldb (t)
//   C is M×N with row stride ldc
//   batch: blockIdx.z walks the batch; matrix b of A starts at A + b·stride_a. stride 0 broadcasts one matrix
//   to every batch entry (a (1, M, K) operand against a (64, K, N) one).

#include <cuda_fp16.h>
#include <mma.h>

// ---------------------------------------------------------------------------------------------------------------
// small helpers
// ---------------------------------------------------------------------------------------------------------------
// cp.async (sm_80+): copy 16 bytes global → shared without a trip through registers, asynchronously. src_bytes < 16
// copies that many bytes and zero-fills the rest of the 16 (0: a chunk wholly outside the matrix). commit_group
// closes a batch of copies; wait_group 0 waits until all of this thread's batches have landed.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define GEMM_USE_CP_ASYNC 1
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
#endif
#ifndef GEMM_USE_CP_ASYNC
#define GEMM_USE_CP_ASYNC 0  // sm_70/75: register-staged double buffering instead
#endif

template <typename T> struct OutConvert;
template <> struct OutConvert<float> { __device__ static float from(float v) { return v; } };
template <> struct OutConvert<__half> { __device__ static __half from(float v) { return __float2half_rn(v); } };

// ---------------------------------------------------------------------------------------------------------------
// 1. the tensor-core kernel
// ---------------------------------------------------------------------------------------------------------------
namespace wmma_gemm {

constexpr int BM = 128, BN = 128, BK = 32;  // block tile: 128×128 of C, K consumed 32 at a time
constexpr int WARPS_M = 2, WARPS_N = 4;     // 8 warps, each owns a 64×32 piece of the block tile
constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;   // 64, 32
constexpr int FM = WM / 16, FN = WN / 16;             // 4×2 accumulator fragments per warp
constexpr int THREADS = 32 * WARPS_M * WARPS_N;       // 256
// Shared-memory rows are padded by 8 halves (16 bytes): consecutive rows then start in different banks (fewer
// conflicts for ldmatrix-style fragment loads), and every row start stays 16-byte aligned for vector copies.
// WMMA needs the fragment pointer 256-bit (32-byte) aligned and ldm a multiple of 8 halves: with rows of 40 or
// 136 halves, every fragment origin used below (multiples of 16 rows, multiples of 16 columns) is 32-byte aligned.
constexpr int PAD = 8;

// A tile of R rows × COLS halves of a row-major global matrix, copied into shared memory with row stride COLS + PAD.
// Copies move 16-byte chunks (8 halves). Chunks past the matrix's rows or columns are zero-filled, so the kernel
// needs no padding of M, N or K: a zero in A or B adds nothing to the dot product.
template <int R, int COLS>
struct TileCopy {
    static constexpr int LD = COLS + PAD;
    static constexpr int CHUNKS_PER_ROW = COLS / 8;
    static constexpr int CHUNKS = R * CHUNKS_PER_ROW;
    static constexpr int PER_THREAD = CHUNKS / THREADS;
    static_assert(CHUNKS % THREADS == 0, "every thread copies the same number of chunks");

    // Where thread `tid`'s i-th chunk goes: tile row r, tile column c (in halves).
    __device__ static void chunk(int tid, int i, int& r, int& c) {
        int id = tid + i * THREADS;
        r = id / CHUNKS_PER_ROW;
        c = (id % CHUNKS_PER_ROW) * 8;
    }

#if GEMM_USE_CP_ASYNC
    // sm_80+: the chunks go straight to shared memory (cp.async), zero-filled past the matrix's edge.
    __device__ static void issue(__half* smem, const __half* g, int ld, int rows, int cols, int r0, int c0, int tid) {
        for (int i = 0; i < PER_THREAD; ++i) {
            int r, c;
            chunk(tid, i, r, c);
            int gr = r0 + r, gc = c0 + c;
            int valid = (gr < rows && gc < cols) ? min(8, cols - gc) : 0;  // halves that exist
            const __half* src = valid ? g + (size_t)gr * ld + gc : g;   // never form an out-of-range address
            cp_async_16(smem + r * LD + c, src, valid * 2);
        }
        cp_async_commit();
    }
#else
    // sm_70/75: the classic register-staged double buffering. issue() loads the next tile into registers before the
    // current tile is multiplied (the loads are in flight during the MMAs); store_regs() puts them in shared memory.
    uint4 staged[PER_THREAD];
    int tid_;
    __device__ void issue_regs(const __half* g, int ld, int rows, int cols, int r0, int c0, int tid) {
        tid_ = tid;
        for (int i = 0; i < PER_THREAD; ++i) {
            int r, c;
            chunk(tid, i, r, c);
            int gr = r0 + r, gc = c0 + c;
            if (gr < rows && gc + 8 <= cols) {
                staged[i] = *reinterpret_cast<const uint4*>(g + (size_t)gr * ld + gc);
            } else {  // edge of the matrix: element by element, zeros outside
                __align__(16) __half h[8];
                for (int e = 0; e < 8; ++e)
                    h[e] = (gr < rows && gc + e < cols) ? g[(size_t)gr * ld + gc + e] : __float2half(0.0f);
                staged[i] = *reinterpret_cast<uint4*>(h);
            }
        }
    }
    __device__ void store_regs(__half* smem) {
        for (int i = 0; i < PER_THREAD; ++i) {
            int r, c;
            chunk(tid_, i, r, c);
            *reinterpret_cast<uint4*>(smem + r * LD + c) = staged[i];
        }
    }
#endif
};

// The fragment layouts: an operand stored as its math shape is row-major; stored transposed, it is the math
// shape in column-major, which WMMA reads directly (no transpose pass).
template <bool TRANS> struct Layout { using type = nvcuda::wmma::row_major; };
template <> struct Layout<true> { using type = nvcuda::wmma::col_major; };

// Shared-memory tile shapes (rows × columns as stored) for each operand.
template <bool TRANS_A> struct ATile { using Copy = TileCopy<BM, BK>; };  // (M, K) rows of A
template <> struct ATile<true> { using Copy = TileCopy<BK, BM>; };        // (K, M) rows of Aᵀ
template <bool TRANS_B> struct BTile { using Copy = TileCopy<BK, BN>; };  // (K, N)
template <> struct BTile<true> { using Copy = TileCopy<BN, BK>; };        // (N, K)

template <bool TRANS_A, bool TRANS_B, typename OutT>
__device__ __forceinline__ void gemm(const __half* __restrict__ A, const __half* __restrict__ B, OutT* __restrict__ C,
                                     int M, int N, int K, int lda, int ldb, int ldc, long long stride_a,
                                     long long stride_b, long long stride_c, int batch) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 700
    using namespace nvcuda;
    using CopyA = typename ATile<TRANS_A>::Copy;
    using CopyB = typename BTile<TRANS_B>::Copy;
    constexpr int A_STAGE = (TRANS_A ? BK : BM) * CopyA::LD;  // halves per stage
    constexpr int B_STAGE = (TRANS_B ? BN : BK) * CopyB::LD;
    constexpr int SMEM_BYTES = 2 * (A_STAGE + B_STAGE) * 2;
    static_assert(SMEM_BYTES <= 48 * 1024, "static shared memory limit");
    static_assert(WARPS_M * WARPS_N * 16 * 16 * 4 <= SMEM_BYTES, "epilogue staging reuses the operand buffers");
    __shared__ __align__(128) unsigned char smem_raw[SMEM_BYTES];
    __half* As = reinterpret_cast<__half*>(smem_raw);  // [2][A_STAGE]
    __half* Bs = As + 2 * A_STAGE;                      // [2][B_STAGE]

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int warp_m = warp / WARPS_N, warp_n = warp % WARPS_N;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    // Global extent of each operand as stored (rows × cols), for the zero-filling copies.
    const int a_rows = TRANS_A ? K : M, a_cols = TRANS_A ? M : K;
    const int b_rows = TRANS_B ? N : K, b_cols = TRANS_B ? K : N;

    for (int b = blockIdx.z; b < batch; b += gridDim.z) {
        const __half* Ab = A + b * stride_a;
        const __half* Bb = B + b * stride_b;
        OutT* Cb = C + b * stride_c;

        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
        for (int i = 0; i < FM; ++i)
            for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

        // Tile k0 of A starts at stored (row, col) = (m0, k0), or (k0, m0) when A is stored transposed; same for B.
        auto a_origin = [&](int k0, int& r, int& c) { r = TRANS_A ? k0 : m0; c = TRANS_A ? m0 : k0; };
        auto b_origin = [&](int k0, int& r, int& c) { r = TRANS_B ? n0 : k0; c = TRANS_B ? k0 : n0; };
        const int k_tiles = (K + BK - 1) / BK;

#if GEMM_USE_CP_ASYNC
        auto load_tile = [&](int kt, int stage) {  // asynchronous: returns at once
            int r, c;
            a_origin(kt * BK, r, c);
            CopyA::issue(As + stage * A_STAGE, Ab, lda, a_rows, a_cols, r, c, tid);
            b_origin(kt * BK, r, c);
            CopyB::issue(Bs + stage * B_STAGE, Bb, ldb, b_rows, b_cols, r, c, tid);
        };
        auto wait_tile = [&](int) { cp_async_wait_all(); };
#else
        CopyA copy_a;
        CopyB copy_b;
        auto load_tile = [&](int kt, int) {  // into registers
            int r, c;
            a_origin(kt * BK, r, c);
            copy_a.issue_regs(Ab, lda, a_rows, a_cols, r, c, tid);
            b_origin(kt * BK, r, c);
            copy_b.issue_regs(Bb, ldb, b_rows, b_cols, r, c, tid);
        };
        auto wait_tile = [&](int stage) {  // registers → shared memory
            copy_a.store_regs(As + stage * A_STAGE);
            copy_b.store_regs(Bs + stage * B_STAGE);
        };
#endif
        // Prologue: tile 0 into stage 0.
        load_tile(0, 0);
        wait_tile(0);
        __syncthreads();

        for (int kt = 0; kt < k_tiles; ++kt) {
            const int stage = kt & 1;
            // Double buffering: start fetching tile kt+1 into the other stage, then multiply tile kt. The other
            // stage was last read in iteration kt-1, which ended with __syncthreads(), so overwriting it is safe.
            if (kt + 1 < k_tiles) load_tile(kt + 1, stage ^ 1);

            const __half* as = As + stage * A_STAGE;
            const __half* bs = Bs + stage * B_STAGE;
            for (int kk = 0; kk < BK; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, typename Layout<TRANS_A>::type> fa[FM];
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, typename Layout<TRANS_B>::type> fb[FN];
                for (int i = 0; i < FM; ++i) {
                    int m = warp_m * WM + i * 16;  // fragment origin (m, kk) in the tile
                    // row-major (M, K) tile: element (m, k) at m·LD + k; column-major (K, M) tile: at k·LD + m
                    const __half* p = TRANS_A ? as + kk * CopyA::LD + m : as + m * CopyA::LD + kk;
                    wmma::load_matrix_sync(fa[i], p, CopyA::LD);
                }
                for (int j = 0; j < FN; ++j) {
                    int n = warp_n * WN + j * 16;  // fragment origin (kk, n)
                    const __half* p = TRANS_B ? bs + n * CopyB::LD + kk : bs + kk * CopyB::LD + n;
                    wmma::load_matrix_sync(fb[j], p, CopyB::LD);
                }
                for (int i = 0; i < FM; ++i)
                    for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
            }
            if (kt + 1 < k_tiles) wait_tile(stage ^ 1);  // tile kt+1 has landed in shared memory (this thread's part)
            __syncthreads();  // ... everyone's part; and everyone is done reading stage `stage`
        }

        // Epilogue: each warp stages one 16×16 FP32 fragment at a time in shared memory (reusing the operand
        // buffers; the loop's last __syncthreads() guarantees nobody still reads them), then every lane converts and
        // writes 8 consecutive values of one row, masked at the matrix edge.
        float* staging = reinterpret_cast<float*>(smem_raw) + warp * 256;
        const int row = lane / 2, col = (lane % 2) * 8;
        for (int i = 0; i < FM; ++i) {
            for (int j = 0; j < FN; ++j) {
                wmma::store_matrix_sync(staging, acc[i][j], 16, wmma::mem_row_major);
                __syncwarp();
                int gm = m0 + warp_m * WM + i * 16 + row;
                int gn = n0 + warp_n * WN + j * 16 + col;
                if (gm < M) {
                    OutT* dst = Cb + (size_t)gm * ldc + gn;
                    for (int e = 0; e < 8; ++e)
                        if (gn + e < N) dst[e] = OutConvert<OutT>::from(staging[row * 16 + col + e]);
                }
                __syncwarp();  // the staging area is rewritten by the next fragment
            }
        }
        __syncthreads();  // next batch entry: the operand buffers are refilled
    }
#else
    __trap();  // no tensor cores below sm_70: kernels/cuda.py launches the SIMT kernel there
#endif
}

}  // namespace wmma_gemm

// ---------------------------------------------------------------------------------------------------------------
// 2. the SIMT fallback
// ---------------------------------------------------------------------------------------------------------------
namespace simt_gemm {

constexpr int BM = 64, BN = 64, BK = 16;  // block tile 64×64, K step 16
constexpr int TM = 4, TN = 4;             // each of the 16×16 threads computes 4×4 outputs
constexpr int THREADS = 256;

template <bool TRANS_A, bool TRANS_B, typename OutT>
__device__ __forceinline__ void gemm(const __half* __restrict__ A, const __half* __restrict__ B, OutT* __restrict__ C,
                                     int M, int N, int K, int lda, int ldb, int ldc, long long stride_a,
                                     long long stride_b, long long stride_c, int batch) {
    // Tiles are stored k-major and upcast to FP32 once when loaded: As[k][m], Bs[k][n]. +4 pads the rows.
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + 4];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

    for (int b = blockIdx.z; b < batch; b += gridDim.z) {
        const __half* Ab = A + b * stride_a;
        const __half* Bb = B + b * stride_b;
        OutT* Cb = C + b * stride_c;
        float acc[TM][TN] = {};

        for (int k0 = 0; k0 < K; k0 += BK) {
            // Each thread loads 4 elements of each tile. The index order follows the stored layout so that
            // neighbouring threads read neighbouring addresses (coalesced); zeros outside the matrix.
            for (int i = 0; i < BM * BK / THREADS; ++i) {
                int id = tid + i * THREADS, m, k;
                if (TRANS_A) { m = id % BM; k = id / BM; } else { k = id % BK; m = id / BK; }
                int gm = m0 + m, gk = k0 + k;
                float v = 0.0f;
                if (gm < M && gk < K) v = __half2float(TRANS_A ? Ab[(size_t)gk * lda + gm] : Ab[(size_t)gm * lda + gk]);
                As[k][m] = v;
            }
            for (int i = 0; i < BN * BK / THREADS; ++i) {
                int id = tid + i * THREADS, n, k;
                if (TRANS_B) { k = id % BK; n = id / BK; } else { n = id % BN; k = id / BN; }
                int gn = n0 + n, gk = k0 + k;
                float v = 0.0f;
                if (gn < N && gk < K) v = __half2float(TRANS_B ? Bb[(size_t)gn * ldb + gk] : Bb[(size_t)gk * ldb + gn]);
                Bs[k][n] = v;
            }
            __syncthreads();
            // Thread (ty, tx) owns rows ty + 16i and columns tx + 16j: a warp reads 2 distinct As values
            // (broadcast) and 16 consecutive Bs values per k — no bank conflicts.
            for (int k = 0; k < BK; ++k) {
                float a[TM], bv[TN];
                for (int i = 0; i < TM; ++i) a[i] = As[k][ty + 16 * i];
                for (int j = 0; j < TN; ++j) bv[j] = Bs[k][tx + 16 * j];
                for (int i = 0; i < TM; ++i)
                    for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], bv[j], acc[i][j]);
            }
            __syncthreads();  // the tiles are overwritten next step
        }
        for (int i = 0; i < TM; ++i) {
            int gm = m0 + ty + 16 * i;
            if (gm >= M) continue;
            for (int j = 0; j < TN; ++j) {
                int gn = n0 + tx + 16 * j;
                if (gn < N) Cb[(size_t)gm * ldc + gn] = OutConvert<OutT>::from(acc[i][j]);
            }
        }
    }
}

}  // namespace simt_gemm

// ---------------------------------------------------------------------------------------------------------------
// entry points: one extern "C" kernel per (family, transposes, output dtype), found by name from Python
// ---------------------------------------------------------------------------------------------------------------
#define GEMM_ARGS(OUT)                                                                                                \
    const __half *__restrict__ A, const __half *__restrict__ B, OUT *__restrict__ C, int M, int N, int K, int lda, \
        int ldb, int ldc, long long stride_a, long long stride_b, long long stride_c, int batch
#define GEMM_PASS A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, batch

#define DEFINE_GEMM(FAMILY, TA, TB, SUFFIX, OUT_T, THREADS)                                            \
    extern "C" __global__ void __launch_bounds__(THREADS) gemm_##FAMILY##_##SUFFIX(GEMM_ARGS(OUT_T)) { \
        FAMILY##_gemm::gemm<TA, TB, OUT_T>(GEMM_PASS);                                                 \
    }

#define DEFINE_FAMILY(FAMILY, THREADS)                              \
    DEFINE_GEMM(FAMILY, false, false, nn_f16, __half, THREADS)      \
    DEFINE_GEMM(FAMILY, false, true, nt_f16, __half, THREADS)       \
    DEFINE_GEMM(FAMILY, true, false, tn_f16, __half, THREADS)       \
    DEFINE_GEMM(FAMILY, true, true, tt_f16, __half, THREADS)        \
    DEFINE_GEMM(FAMILY, false, false, nn_f32, float, THREADS)       \
    DEFINE_GEMM(FAMILY, false, true, nt_f32, float, THREADS)        \
    DEFINE_GEMM(FAMILY, true, false, tn_f32, float, THREADS)        \
    DEFINE_GEMM(FAMILY, true, true, tt_f32, float, THREADS)

DEFINE_FAMILY(wmma, 256)
DEFINE_FAMILY(simt, 256)
