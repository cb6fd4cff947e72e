// Runs the CUDA kernels of kernels/*.cu on the CPU through shim.h and checks them against float64 references.
//
//   g++ -std=c++20 -O2 -fno-strict-aliasing -pthread -include shim.h -Iinclude -I../../kernels driver.cpp -o driver
//   ./driver [full|wmma]       (add -DGEMM_USE_CP_ASYNC=1 to run the sm_80 cp.async path of the GEMM instead)
//
// Not a GPU: it checks index math, bounds, zero-fill, barriers and the double-buffering order, not speed, and not
// the hardware's own WMMA or shuffle semantics (shim.h emulates those as documented).
#include <cstdio>
#include <random>
#include "gemm_fp16.cu"  // from kernels/ (-I): the very sources NVRTC compiles
#include "dot_fp16.cu"
#include "batchnorm_fp16.cu"

static std::mt19937 rng(1);
static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { ++failures; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

template <class T> T* alloc(size_t n) { return static_cast<T*>(aligned_alloc(256, ((n * sizeof(T) + 255) / 256) * 256 + 256)); }
__half* rand_half(size_t n, float scale = 1.0f, float shift = 0.0f) {
    std::normal_distribution<float> d(0, 1);
    __half* p = alloc<__half>(n);
    for (size_t i = 0; i < n; ++i) p[i] = __float2half(d(rng) * scale + shift);
    return p;
}
double h2d(__half h) { return (double)(float)h.v; }
double ulp16(double v) { v = std::fabs(v); if (v < std::ldexp(1.0, -14)) return std::ldexp(1.0, -24); return std::ldexp(1.0, (int)std::floor(std::log2(v)) - 10); }

// ------------------------------------------------------------------ GEMM
template <class OUT>
void gemm_case(const char* family, bool ta, bool tb, int M, int N, int K, int batch, bool bcast_b, int pad_k = 0) {
    // stored shapes: A (M,K) or (K,M); B (K,N) or (N,K); row strides padded by pad_k on the contiguous dim of A
    int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad_k, ldb = b_cols;
    long long sa = (long long)a_rows * lda, sb = bcast_b ? 0 : (long long)b_rows * ldb, sc = (long long)M * N;
    __half* A = rand_half(sa * batch);

    __half* B = rand_half((long long)b_rows * ldb * (bcast_b ? 1 : batch));
    OUT* C = alloc<OUT>(sc * batch);

    std::string name = std::string("gemm_") + family + "_" + (ta ? "t" : "n") + (tb ? "t" : "n") + (std::is_same<OUT, float>::value ? "_f32" : "_f16");
    int bm = family[0] == 'w' ? 128 : 64, bn = bm;
    dim3 grid{unsigned((N + bn - 1) / bn), unsigned((M + bm - 1) / bm), unsigned(std::min(batch, 2))};  // z < batch: the loop
    auto run = [&] {
#define DISPATCH(FAM, SUF) if (name == "gemm_" #FAM "_" #SUF) gemm_##FAM##_##SUF(A, B, C, M, N, K, lda, ldb, N, sa, sb, sc, batch);
        if constexpr (std::is_same<OUT, float>::value) {
            DISPATCH(wmma, nn_f32) DISPATCH(wmma, nt_f32) DISPATCH(wmma, tn_f32) DISPATCH(wmma, tt_f32)
            DISPATCH(simt, nn_f32) DISPATCH(simt, nt_f32) DISPATCH(simt, tn_f32) DISPATCH(simt, tt_f32)
        } else {
            DISPATCH(wmma, nn_f16) DISPATCH(wmma, nt_f16) DISPATCH(wmma, tn_f16) DISPATCH(wmma, tt_f16)
            DISPATCH(simt, nn_f16) DISPATCH(simt, nt_f16) DISPATCH(simt, tn_f16) DISPATCH(simt, tt_f16)
        }
    };
    launch(grid, {256, 1, 1}, run);
    double worst = 0;
    for (int b = 0; b < batch; ++b)
        for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
                double ref = 0, absref = 0;
                for (int k = 0; k < K; ++k) {
                    double a = h2d(ta ? A[b * sa + (long long)k * lda + m] : A[b * sa + (long long)m * lda + k]);
                    double bb = h2d(tb ? B[b * sb + (long long)n * ldb + k] : B[b * sb + (long long)k * ldb + n]);
                    ref += a * bb, absref += std::fabs(a * bb);
                }
                double got;
                if constexpr (std::is_same<OUT, float>::value) got = C[b * sc + (long long)m * N + n];
                else got = h2d(C[b * sc + (long long)m * N + n]);
                double tol = K * std::ldexp(1.0, -24) * absref + (std::is_same<OUT, float>::value ? 0 : ulp16(ref)) + 1e-30;
                worst = std::max(worst, std::fabs(got - ref) / tol);
            }
    CHECK(worst <= 1.0, "%s M=%d N=%d K=%d batch=%d bcast=%d pad=%d: error/tol = %g", name.c_str(), M, N, K, batch, bcast_b, pad_k, worst);
    printf("%-20s M=%d N=%d K=%d batch=%d bcast_b=%d pad=%d  max err/tol %.3f\n", name.c_str(), M, N, K, batch, bcast_b, pad_k, worst);
    free(A), free(B), free(C);
}

// ------------------------------------------------------------------ dot
void dot_case(long long n, int vec_offset) {
    __half* a0 = rand_half(n + 1); __half* b0 = rand_half(n + 1);
    __half* a = a0 + vec_offset; __half* b = b0 + vec_offset;
    int vec = ((uintptr_t)a % 16 == 0) && ((uintptr_t)b % 16 == 0);
    int blocks = (int)std::max(1LL, std::min((n + 2047) / 2048, 8LL * 4));
    float* partial = alloc<float>(blocks); float* out = alloc<float>(1);
    launch({unsigned(blocks), 1, 1}, {256, 1, 1}, [&] { dot_fp16_partial(a, b, n, vec, partial); });
    launch({1, 1, 1}, {1024, 1, 1}, [&] { sum_partials_f32(partial, blocks, out); });
    double ref = 0, absref = 0;
    for (long long i = 0; i < n; ++i) ref += h2d(a[i]) * h2d(b[i]), absref += std::fabs(h2d(a[i]) * h2d(b[i]));
    double tol = n * std::ldexp(1.0, -24) * absref + 1e-30;
    CHECK(std::fabs(out[0] - ref) <= tol, "dot n=%lld vec=%d: %g vs %g", n, vec, out[0], ref);
    printf("dot n=%lld vec=%d blocks=%d: err/tol %.3f\n", n, vec, blocks, std::fabs(out[0] - ref) / tol);
}

// ------------------------------------------------------------------ batchnorm
void bn_case(int N, int C, long long HW, int S_hint, bool misalign) {
    long long total = (long long)N * C * HW, M = (long long)N * HW;
    __half* x0 = rand_half(total + 1, 3.0f, 5.0f); __half* g0 = rand_half(total + 1);
    __half* x = x0 + misalign; __half* g = g0 + misalign;
    float *gamma = alloc<float>(C), *beta = alloc<float>(C);
    for (int c = 0; c < C; ++c) gamma[c] = 0.5f + 0.1f * c, beta[c] = 0.3f - 0.05f * c;
    bool nchw = HW > 1;
    int S; long long chunk;
    dim3 grid, block;
    if (nchw) {
        S = std::max(1LL, std::min((long long)S_hint, (M + 15) / 16));
        chunk = (M + S - 1) / S; chunk = (chunk + 7) / 8 * 8; S = (M + chunk - 1) / chunk;
        grid = {unsigned(C), unsigned(S), 1}; block = {256, 1, 1};
    } else {
        S = std::max(1, std::min(S_hint, (N + 7) / 8));
        chunk = (N + S - 1) / S; S = (N + chunk - 1) / chunk;
        grid = {unsigned((C + 31) / 32), unsigned(S), 1}; block = {32, 8, 1};
    }
    int vec = HW % 8 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)g % 16 == 0;
    float *pn = alloc<float>(C * S), *pm = alloc<float>(C * S), *pm2 = alloc<float>(C * S);
    float *mean = alloc<float>(C), *var = alloc<float>(C), *inv_std = alloc<float>(C);
    if (nchw) launch(grid, block, [&] { bn_stats_nchw(x, N, C, HW, chunk, vec, pn, pm, pm2); });
    else launch(grid, block, [&] { bn_stats_nc(x, N, C, (int)chunk, pn, pm, pm2); });
    launch({unsigned((C + 255) / 256), 1, 1}, {256, 1, 1}, [&] { bn_stats_finalize(pn, pm, pm2, C, S, 1e-5f, mean, var, inv_std); });
    __half* y = alloc<__half>(total);
    int ew_blocks = 3;  // few blocks: the grid-stride loops are exercised
    launch({unsigned(ew_blocks), 1, 1}, {256, 1, 1}, [&] { bn_forward_apply(x, mean, inv_std, gamma, beta, y, total, C, HW, vec); });
    float *pdy = alloc<float>(C * S), *pdx = alloc<float>(C * S), *dbeta = alloc<float>(C), *dgamma = alloc<float>(C);
    if (nchw) launch(grid, block, [&] { bn_grad_sums_nchw(x, g, mean, N, C, HW, chunk, vec, pdy, pdx); });
    else launch(grid, block, [&] { bn_grad_sums_nc(x, g, mean, N, C, (int)chunk, pdy, pdx); });
    launch({unsigned((C + 255) / 256), 1, 1}, {256, 1, 1}, [&] { bn_sums_finalize(pdy, pdx, inv_std, C, S, dbeta, dgamma); });
    __half* dx = alloc<__half>(total);
    launch({unsigned(ew_blocks), 1, 1}, {256, 1, 1}, [&] { bn_backward_apply(x, g, mean, inv_std, gamma, dbeta, dgamma, dx, total, C, HW, 1.0f / M, vec); });
    double worst_y = 0, worst_dx = 0, worst_stat = 0;
    for (int c = 0; c < C; ++c) {
        double mu = 0, v = 0, sg = 0, sgx = 0;
        auto at = [&](long long j) { long long n = j / HW; return (n * C + c) * HW + j % HW; };
        for (long long j = 0; j < M; ++j) mu += h2d(x[at(j)]);
        mu /= M;
        for (long long j = 0; j < M; ++j) v += (h2d(x[at(j)]) - mu) * (h2d(x[at(j)]) - mu);
        v /= M;
        double is = 1 / std::sqrt(v + 1e-5);
        for (long long j = 0; j < M; ++j) { double xh = (h2d(x[at(j)]) - mu) * is; sg += h2d(g[at(j)]); sgx += h2d(g[at(j)]) * xh; }
        worst_stat = std::max({worst_stat, std::fabs(mean[c] - mu) / (1e-5 * std::fabs(mu) + 1e-6), std::fabs(var[c] - v) / (1e-4 * v),
                               std::fabs(dbeta[c] - sg) / (1e-4 * M), std::fabs(dgamma[c] - sgx) / (1e-4 * M)});
        for (long long j = 0; j < M; ++j) {
            double xh = (h2d(x[at(j)]) - mu) * is;
            double ry = gamma[c] * xh + beta[c];
            double rdx = gamma[c] * is / M * (M * h2d(g[at(j)]) - sg - xh * sgx);
            worst_y = std::max(worst_y, std::fabs(h2d(y[at(j)]) - ry) / (ulp16(ry) + 1e-5 * 3));
            worst_dx = std::max(worst_dx, std::fabs(h2d(dx[at(j)]) - rdx) / (ulp16(rdx) + 1e-4 * gamma[c] * is));
        }
    }
    CHECK(worst_y <= 1 && worst_dx <= 1 && worst_stat <= 1, "bn N=%d C=%d HW=%lld: y %g dx %g stats %g", N, C, HW, worst_y, worst_dx, worst_stat);
    printf("bn N=%d C=%d HW=%lld S=%d vec=%d %s: err/tol y %.3f dx %.3f stats %.3f\n", N, C, HW, S, vec, nchw ? "nchw" : "nc", worst_y, worst_dx, worst_stat);
}

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";  // "full": more cases; "wmma": the tensor-core GEMM only
    const bool full = mode == "full", wmma_only = mode == "wmma";
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            gemm_case<__half>("wmma", ta, tb, 136, 72, 40, 3, true);  // edges in M, N; a broadcast B; z-loop
            if (!wmma_only) gemm_case<float>("simt", ta, tb, 67, 65, 19, 2, false);
            if (full) {
                gemm_case<float>("wmma", ta, tb, 136, 72, 40, 1, false);
                gemm_case<__half>("simt", ta, tb, 136, 72, 40, 3, true);
            }
        }
    gemm_case<float>("wmma", false, false, 130, 136, 37, 1, false, 3);  // K = 37 with lda = 40: partial chunks
    gemm_case<__half>("wmma", false, false, 1, 8, 8, 1, false);
    gemm_case<float>("wmma", false, false, 136, 136, 96, 2, false);  // several k-tiles: the double buffering
    auto finish = [] { printf(failures ? "%d FAILURES\n" : "all passed\n", failures); return failures != 0; };
    if (wmma_only) return finish();
    dot_case(100003, 0); dot_case(100003, 1); dot_case(7, 0); dot_case(0, 0);
    if (full) dot_case(1000003, 0);
    bn_case(3, 5, 24, 3, false); bn_case(4, 3, 64, 5, true); bn_case(100, 40, 1, 3, false);
    if (full) bn_case(3, 5, 15, 4, false);
    bn_case(7, 3, 1, 1, false); bn_case(2, 2, 1000, 6, false);
    return finish();
}
