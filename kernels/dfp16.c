/* DFP16, Dynamic Fixed Point with 16-bit integers (Das et al. 2018, "Mixed Precision Training of Convolutional Neural
 * Networks using Integer Operations", ICLR): the conversions and the integer matrix product, compiled on first use into
 * the extension module tinygrad_edu.backend.kernels._dfp16 by compile_cpu.py. The Python side, with the format's
 * definitions, the accuracy contract and a NumPy fallback that gives the same bits, is
 * tinygrad_edu/backend/kernels/dfp16.py.
 *
 * A DFP16 tensor is int16 mantissas m_i in [-32767, 32767] and one exponent E for the whole tensor: x_i = m_i 2^E.
 *
 *   max_abs_bits(src)                  float32 array -> the bits of max |x_i| (0x7f800000 and above: an inf or NaN)
 *   quantize(src, dst, E)              float32 -> int16: m_i = round_half_even(x_i 2^-E); returns how many values
 *                                      fell outside [-32767, 32767] (stored saturated; 0 for the E Python chooses)
 *   dequantize(src, dst, E)            int16 -> float32: m_i 2^E, rounded once (only subnormal results round)
 *   matmul(a, b, out, E, exact)        int16 A (M, K) @ int16 B (K, N), INT32 chunks of 2 products:
 *                                        exact=False: out float32 (M, N), each chunk sum converted to float32 and
 *                                                     added in order of k, the total times 2^E (rounded once);
 *                                        exact=True:  out int64 (M, N), the chunk sums added in int64 (no rounding)
 *   has_avx2(), set_avx2(enabled)      whether the AVX2 paths are used; switch them off to test the portable code
 *   has_avx512(), set_avx512(enabled)  likewise for the product's AVX-512 kernels (used before AVX2 where present)
 *
 * Why chunks of 2: with |m| <= 2^15 - 1 a product is at most (2^15 - 1)^2 = 2^30 - 2^16 + 1; two of them add up to
 * at most 2^31 - 2^17 + 2 <= 2^31 - 1, three to 3 * 2^30 - 3 * 2^16 + 3 > 2^31 - 1: the INT32 accumulator holds two
 * products and no more. That is the pair an integer FMA instruction adds (vpmaddwd, and VNNI's vpdpwssd): two
 * INT16 products into one INT32. A mantissa -32768 would break the bound (2 * 2^30 = 2^31): the format excludes it,
 * and matmul refuses operands that hold one.
 *
 * The arrays may be strided (transposed views); the GIL is released while computing, so threads work on separate
 * row blocks of a product at the same time. The AVX-512 and AVX2 paths give the same bits as the portable ones: every
 * operation is exact or rounded once to nearest even, in the same order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define X86 1
#endif

#define MANTISSA_MAX 32767
static int use_avx2 = 0, use_avx512 = 0;

/* ---- element-wise loops over strided arrays: one call per row of the last axis -------------------------------- */
typedef void (*RowFn)(const char *s, Py_ssize_t s_step, char *d, Py_ssize_t d_step, Py_ssize_t n, void *state);

static void for_each_row(const Py_buffer *src, const Py_buffer *dst, RowFn fn, void *state) {
    int ndim = src->ndim;
    Py_ssize_t n = ndim ? src->shape[ndim - 1] : 1;
    Py_ssize_t s_step = ndim ? src->strides[ndim - 1] : src->itemsize;
    Py_ssize_t d_step = dst ? (ndim ? dst->strides[ndim - 1] : dst->itemsize) : 0;
    Py_ssize_t index[PyBUF_MAX_NDIM] = {0};
    for (int axis = 0; axis < ndim; axis++)
        if (src->shape[axis] == 0)
            return;
    for (;;) {
        const char *s = (const char *)src->buf;
        char *d = dst ? (char *)dst->buf : NULL;
        for (int axis = 0; axis < ndim - 1; axis++) {
            s += index[axis] * src->strides[axis];
            if (d)
                d += index[axis] * dst->strides[axis];
        }
        fn(s, s_step, d, d_step, n, state);
        int axis = ndim - 2; /* the next row: count like an odometer over the leading axes */
        while (axis >= 0 && ++index[axis] == src->shape[axis])
            index[axis--] = 0;
        if (axis < 0)
            return;
    }
}

/* ---- max |x|, as the bits of a float32 (ordered like the values for non-negative floats; inf/NaN on top) ------- */
static uint32_t float_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

#ifdef X86
__attribute__((target("avx2"))) static uint32_t max_abs_row_avx2(const float *s, Py_ssize_t n) {
    __m256i top = _mm256_setzero_si256(), mask = _mm256_set1_epi32(0x7fffffff);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        top = _mm256_max_epu32(top, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(s + i)), mask));
    uint32_t lanes[8], best = 0;
    _mm256_storeu_si256((__m256i *)lanes, top);
    for (int j = 0; j < 8; j++)
        best = lanes[j] > best ? lanes[j] : best;
    for (; i < n; i++) {
        uint32_t b = float_bits(s[i]) & 0x7fffffffu;
        best = b > best ? b : best;
    }
    return best;
}
#endif

static void max_abs_row(const char *s, Py_ssize_t s_step, char *d, Py_ssize_t d_step, Py_ssize_t n, void *state) {
    uint32_t *best = (uint32_t *)state, b = *best;
    (void)d;
    (void)d_step;
#ifdef X86
    if (use_avx2 && s_step == sizeof(float)) {
        uint32_t row = max_abs_row_avx2((const float *)s, n);
        *best = row > b ? row : b;
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t x = float_bits(*(const float *)(s + i * s_step)) & 0x7fffffffu;
        b = x > b ? x : b;
    }
    *best = b;
}

/* ---- float32 -> int16: m = round_half_even(x 2^-E), exactly -------------------------------------------------- *
 * x 2^-E is exact in double (float32 values times a power of two within double's range), and nearbyint rounds it
 * half to even (the default rounding mode). The AVX2 path multiplies in float32 when 2^-E is a normal float32:
 * then x 2^-E is exact too, except where it falls below 2^-126, far below 1/2, where both paths round to 0. */
typedef struct {
    int exponent;
    double scale; /* 2^-E, or 2^E for dequantize */
    Py_ssize_t saturated;
} ScaleState;

static int16_t to_mantissa(double v, Py_ssize_t *saturated) {
    double r = nearbyint(v);
    if (!(r <= MANTISSA_MAX && r >= -MANTISSA_MAX)) { /* out of range, or NaN (stored as 0) */
        (*saturated)++;
        return r > 0 ? MANTISSA_MAX : r < 0 ? -MANTISSA_MAX : 0;
    }
    return (int16_t)r;
}

#ifdef X86
__attribute__((target("avx2"))) static Py_ssize_t quantize_row_avx2(const float *s, int16_t *d, Py_ssize_t n,
                                                                     float scale) {
    const __m256 k = _mm256_set1_ps(scale), limit = _mm256_set1_ps((float)MANTISSA_MAX);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    Py_ssize_t i = 0, saturated = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(s + i), k),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 over = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), limit, _CMP_NLE_UQ); /* > limit, or NaN */
        if (_mm256_movemask_ps(over)) { /* rare: count and saturate element by element */
            for (int j = 0; j < 8; j++)
                d[i + j] = to_mantissa((double)s[i + j] * (double)scale, &saturated);
            continue;
        }
        __m256i w = _mm256_cvtps_epi32(v); /* integral values: exact */
        __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        _mm_storeu_si128((__m128i *)(d + i), packed);
    }
    for (; i < n; i++)
        d[i] = to_mantissa((double)s[i] * (double)scale, &saturated);
    return saturated;
}
#endif

static void quantize_row(const char *s, Py_ssize_t s_step, char *d, Py_ssize_t d_step, Py_ssize_t n, void *state) {
    ScaleState *st = (ScaleState *)state;
#ifdef X86
    if (use_avx2 && s_step == sizeof(float) && d_step == sizeof(int16_t) && st->exponent >= -127 &&
        st->exponent <= 126) { /* 2^-E is a normal float32 */
        st->saturated += quantize_row_avx2((const float *)s, (int16_t *)d, n, (float)st->scale);
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        *(int16_t *)(d + i * d_step) = to_mantissa((double)*(const float *)(s + i * s_step) * st->scale,
                                                   &st->saturated);
}

/* ---- int16 -> float32: m 2^E, exact in double, rounded once to float32 ---------------------------------------- *
 * The AVX2 path multiplies in float32 when -126 <= E <= 127: every nonzero result is then a normal float32 (or
 * beyond float32's range, inf either way), and m (15 bits) times 2^E is exact. */
#ifdef X86
__attribute__((target("avx2"))) static void dequantize_row_avx2(const int16_t *s, float *d, Py_ssize_t n, float scale) {
    const __m256 k = _mm256_set1_ps(scale);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_cvtepi32_ps(w), k));
    }
    for (; i < n; i++)
        d[i] = (float)s[i] * scale;
}
#endif

static void dequantize_row(const char *s, Py_ssize_t s_step, char *d, Py_ssize_t d_step, Py_ssize_t n, void *state) {
    ScaleState *st = (ScaleState *)state;
#ifdef X86
    if (use_avx2 && s_step == sizeof(int16_t) && d_step == sizeof(float) && st->exponent >= -126 &&
        st->exponent <= 127) {
        dequantize_row_avx2((const int16_t *)s, (float *)d, n, (float)st->scale);
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        *(float *)(d + i * d_step) = (float)((double)*(const int16_t *)(s + i * s_step) * st->scale);
}

/* ---- argument checks ----------------------------------------------------------------------------------------- */
static char format_code(const Py_buffer *b) {
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@' || *f == '!' || *f == '>')
        f++;
    return *f;
}

static int is_float32(const Py_buffer *b) { return b->itemsize == 4 && format_code(b) == 'f'; }
static int is_int16(const Py_buffer *b) { return b->itemsize == 2 && format_code(b) == 'h'; }
static int is_int64(const Py_buffer *b) {
    char c = format_code(b);
    return b->itemsize == 8 && (c == 'q' || c == 'l');
}

static int same_shape(const Py_buffer *a, const Py_buffer *b) {
    if (a->ndim != b->ndim)
        return 0;
    for (int axis = 0; axis < a->ndim; axis++)
        if (a->shape[axis] != b->shape[axis])
            return 0;
    return 1;
}

static int exponent_in_range(const char *name, long exponent) {
    if (exponent < -1000 || exponent > 1000) {
        PyErr_Format(PyExc_ValueError, "%s: exponent %ld is outside [-1000, 1000]", name, exponent);
        return 0;
    }
    return 1;
}

/* ---- the Python entry points of the element-wise functions ---------------------------------------------------- */
static PyObject *max_abs_bits(PyObject *self, PyObject *args) {
    PyObject *src_object;
    if (!PyArg_ParseTuple(args, "O", &src_object))
        return NULL;
    Py_buffer src;
    if (PyObject_GetBuffer(src_object, &src, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return NULL;
    if (!is_float32(&src)) {
        PyErr_Format(PyExc_ValueError, "max_abs_bits: expected a float32 array, got items of %zd bytes (format '%s')",
                     src.itemsize, src.format ? src.format : "B");
        PyBuffer_Release(&src);
        return NULL;
    }
    uint32_t best = 0;
    Py_BEGIN_ALLOW_THREADS
    for_each_row(&src, NULL, max_abs_row, &best);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    return PyLong_FromUnsignedLong(best);
}

static PyObject *convert(PyObject *args, int to_int) {
    const char *name = to_int ? "quantize" : "dequantize";
    PyObject *src_object, *dst_object;
    long exponent;
    if (!PyArg_ParseTuple(args, "OOl", &src_object, &dst_object, &exponent))
        return NULL;
    if (!exponent_in_range(name, exponent))
        return NULL;
    Py_buffer src, dst;
    if (PyObject_GetBuffer(src_object, &src, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst_object, &dst, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    int ok = (to_int ? is_float32(&src) && is_int16(&dst) : is_int16(&src) && is_float32(&dst)) &&
             same_shape(&src, &dst);
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s source and %s destination arrays of one shape (items of %zd "
                     "and %zd bytes, %d and %d axes)", name, to_int ? "float32" : "int16", to_int ? "int16" : "float32",
                     src.itemsize, dst.itemsize, src.ndim, dst.ndim);
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    ScaleState st = {(int)exponent, ldexp(1.0, to_int ? -(int)exponent : (int)exponent), 0};
    Py_BEGIN_ALLOW_THREADS
    for_each_row(&src, &dst, to_int ? quantize_row : dequantize_row, &st);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (to_int)
        return PyLong_FromSsize_t(st.saturated);
    Py_RETURN_NONE;
}

static PyObject *quantize(PyObject *self, PyObject *args) { return convert(args, 1); }
static PyObject *dequantize(PyObject *self, PyObject *args) { return convert(args, 0); }

/* ---- the integer matrix product -------------------------------------------------------------------------------- *
 * Packing. K is padded to an even length 2P (a zero k adds nothing). A becomes rows of 2P int16 (the pair of row m
 * at pair j is one 32-bit word); B becomes panels of NR = 16 columns, each panel P pair-rows of 32 int16:
 * (B[2j][n], B[2j+1][n]) for its 16 columns n (zeros past N). For a pair j, vpmaddwd of the broadcast A word and a
 * panel row gives, per column, the chunk sum a0 b0 + a1 b1 in INT32: 16 columns per AVX-512 instruction, 8 per
 * AVX2 one.
 *
 * Order. Each output element accumulates its chunk sums in order of j (float32: each chunk sum converted, then
 * added, rounding each time; int64: exactly). Blocks of KC pairs keep a panel block in the L1 cache and MC rows of
 * A in the L2 cache; between blocks of pairs the accumulator waits in the output array (float32 or int64, so
 * nothing changes). The last block scales. KC and MC come from a sweep (benchmarks/README.md). */
#define NR 16
#ifndef KC
#define KC 512 /* pairs per block: a panel block of 16 columns is 32 KiB (the L1 cache) */
#endif

typedef struct {
    const int16_t *ap; /* M rows of 2P int16 */
    const int16_t *bp; /* panels: [N/NR][P][32] */
    Py_ssize_t m, n, pairs;
    char *out;
    Py_ssize_t out_row; /* bytes between output rows */
    int exact;
    double scale; /* 2^E, applied to the float32 result */
} Gemm;

/* One tile: rows x NR accumulators (float or int64), over pairs [j0, j1) of one panel. */
static void tile_portable(const Gemm *g, Py_ssize_t row, int rows, const int16_t *panel, Py_ssize_t j0,
                          Py_ssize_t j1, void *tile) {
    Py_ssize_t lda = 2 * g->pairs;
    for (int r = 0; r < rows; r++) {
        const int16_t *a = g->ap + (row + r) * lda;
        if (g->exact) {
            int64_t *acc = (int64_t *)tile + r * NR;
            for (Py_ssize_t j = j0; j < j1; j++) {
                int32_t a0 = a[2 * j], a1 = a[2 * j + 1];
                const int16_t *b = panel + j * 2 * NR;
                for (int c = 0; c < NR; c++)
                    acc[c] += (int64_t)(a0 * (int32_t)b[2 * c] + a1 * (int32_t)b[2 * c + 1]);
            }
        } else {
            float *acc = (float *)tile + r * NR;
            for (Py_ssize_t j = j0; j < j1; j++) {
                int32_t a0 = a[2 * j], a1 = a[2 * j + 1];
                const int16_t *b = panel + j * 2 * NR;
                for (int c = 0; c < NR; c++)
                    acc[c] += (float)(a0 * (int32_t)b[2 * c] + a1 * (int32_t)b[2 * c + 1]);
            }
        }
    }
}

#ifdef X86
static inline int32_t pair_word(const int16_t *a) {
    int32_t w;
    memcpy(&w, a, sizeof w);
    return w;
}

/* float32 combination, 4 rows x 16 columns: 8 accumulators of 8 floats. */
__attribute__((target("avx2"))) static void tile_f32_4(const int16_t *a, Py_ssize_t lda, const int16_t *panel,
                                                       Py_ssize_t j0, Py_ssize_t j1, float *tile) {
    __m256 c00 = _mm256_loadu_ps(tile), c01 = _mm256_loadu_ps(tile + 8);
    __m256 c10 = _mm256_loadu_ps(tile + 16), c11 = _mm256_loadu_ps(tile + 24);
    __m256 c20 = _mm256_loadu_ps(tile + 32), c21 = _mm256_loadu_ps(tile + 40);
    __m256 c30 = _mm256_loadu_ps(tile + 48), c31 = _mm256_loadu_ps(tile + 56);
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(panel + j * 32));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(panel + j * 32 + 16));
        __m256i w;
        w = _mm256_set1_epi32(pair_word(a + 2 * j));
        c00 = _mm256_add_ps(c00, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b0)));
        c01 = _mm256_add_ps(c01, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b1)));
        w = _mm256_set1_epi32(pair_word(a + lda + 2 * j));
        c10 = _mm256_add_ps(c10, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b0)));
        c11 = _mm256_add_ps(c11, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b1)));
        w = _mm256_set1_epi32(pair_word(a + 2 * lda + 2 * j));
        c20 = _mm256_add_ps(c20, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b0)));
        c21 = _mm256_add_ps(c21, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b1)));
        w = _mm256_set1_epi32(pair_word(a + 3 * lda + 2 * j));
        c30 = _mm256_add_ps(c30, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b0)));
        c31 = _mm256_add_ps(c31, _mm256_cvtepi32_ps(_mm256_madd_epi16(w, b1)));
    }
    _mm256_storeu_ps(tile, c00), _mm256_storeu_ps(tile + 8, c01);
    _mm256_storeu_ps(tile + 16, c10), _mm256_storeu_ps(tile + 24, c11);
    _mm256_storeu_ps(tile + 32, c20), _mm256_storeu_ps(tile + 40, c21);
    _mm256_storeu_ps(tile + 48, c30), _mm256_storeu_ps(tile + 56, c31);
}

__attribute__((target("avx2"))) static void tile_f32_1(const int16_t *a, const int16_t *panel, Py_ssize_t j0,
                                                       Py_ssize_t j1, float *tile) {
    __m256 c0 = _mm256_loadu_ps(tile), c1 = _mm256_loadu_ps(tile + 8);
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m256i w = _mm256_set1_epi32(pair_word(a + 2 * j));
        c0 = _mm256_add_ps(c0, _mm256_cvtepi32_ps(
                                   _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(panel + j * 32)))));
        c1 = _mm256_add_ps(c1, _mm256_cvtepi32_ps(
                                   _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(panel + j * 32 + 16)))));
    }
    _mm256_storeu_ps(tile, c0), _mm256_storeu_ps(tile + 8, c1);
}

/* exact combination: each INT32 chunk sum widened to int64 and added; 2 rows x 16 columns = 8 x 4 int64. */
#define WIDEN_ADD(lo, hi, p)                                                                                          \
    do {                                                                                                              \
        lo = _mm256_add_epi64(lo, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(p)));                                  \
        hi = _mm256_add_epi64(hi, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(p, 1)));                             \
    } while (0)

__attribute__((target("avx2"))) static void tile_i64_2(const int16_t *a, Py_ssize_t lda, const int16_t *panel,
                                                       Py_ssize_t j0, Py_ssize_t j1, int64_t *tile) {
    __m256i c[8];
    for (int i = 0; i < 8; i++)
        c[i] = _mm256_loadu_si256((const __m256i *)(tile + 4 * i));
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m256i b0 = _mm256_loadu_si256((const __m256i *)(panel + j * 32));
        __m256i b1 = _mm256_loadu_si256((const __m256i *)(panel + j * 32 + 16));
        __m256i w0 = _mm256_set1_epi32(pair_word(a + 2 * j)), w1 = _mm256_set1_epi32(pair_word(a + lda + 2 * j));
        __m256i p;
        p = _mm256_madd_epi16(w0, b0);
        WIDEN_ADD(c[0], c[1], p);
        p = _mm256_madd_epi16(w0, b1);
        WIDEN_ADD(c[2], c[3], p);
        p = _mm256_madd_epi16(w1, b0);
        WIDEN_ADD(c[4], c[5], p);
        p = _mm256_madd_epi16(w1, b1);
        WIDEN_ADD(c[6], c[7], p);
    }
    for (int i = 0; i < 8; i++)
        _mm256_storeu_si256((__m256i *)(tile + 4 * i), c[i]);
}

__attribute__((target("avx2"))) static void tile_i64_1(const int16_t *a, const int16_t *panel, Py_ssize_t j0,
                                                       Py_ssize_t j1, int64_t *tile) {
    __m256i c0 = _mm256_loadu_si256((const __m256i *)tile), c1 = _mm256_loadu_si256((const __m256i *)(tile + 4));
    __m256i c2 = _mm256_loadu_si256((const __m256i *)(tile + 8)), c3 = _mm256_loadu_si256((const __m256i *)(tile + 12));
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m256i w = _mm256_set1_epi32(pair_word(a + 2 * j)), p;
        p = _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(panel + j * 32)));
        WIDEN_ADD(c0, c1, p);
        p = _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)(panel + j * 32 + 16)));
        WIDEN_ADD(c2, c3, p);
    }
    _mm256_storeu_si256((__m256i *)tile, c0), _mm256_storeu_si256((__m256i *)(tile + 4), c1);
    _mm256_storeu_si256((__m256i *)(tile + 8), c2), _mm256_storeu_si256((__m256i *)(tile + 12), c3);
}
#endif

#ifdef X86
/* AVX-512 (BW): one panel row of 16 columns is one 512-bit register; vpmaddwd forms 16 chunk sums at once. */
#define AVX512 __attribute__((target("avx512f,avx512bw")))

AVX512 static void tile_f32_8_avx512(const int16_t *a, Py_ssize_t lda, const int16_t *panel, Py_ssize_t j0,
                                     Py_ssize_t j1, float *tile) {
    __m512 c0 = _mm512_loadu_ps(tile), c1 = _mm512_loadu_ps(tile + 16), c2 = _mm512_loadu_ps(tile + 32);
    __m512 c3 = _mm512_loadu_ps(tile + 48), c4 = _mm512_loadu_ps(tile + 64), c5 = _mm512_loadu_ps(tile + 80);
    __m512 c6 = _mm512_loadu_ps(tile + 96), c7 = _mm512_loadu_ps(tile + 112);
#define STEP(c, r)                                                                                                    \
    c = _mm512_add_ps(c, _mm512_cvtepi32_ps(_mm512_madd_epi16(_mm512_set1_epi32(pair_word(a + (r) * lda + 2 * j)), b)))
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m512i b = _mm512_loadu_si512((const void *)(panel + j * 32));
        STEP(c0, 0);
        STEP(c1, 1);
        STEP(c2, 2);
        STEP(c3, 3);
        STEP(c4, 4);
        STEP(c5, 5);
        STEP(c6, 6);
        STEP(c7, 7);
    }
#undef STEP
    _mm512_storeu_ps(tile, c0), _mm512_storeu_ps(tile + 16, c1), _mm512_storeu_ps(tile + 32, c2);
    _mm512_storeu_ps(tile + 48, c3), _mm512_storeu_ps(tile + 64, c4), _mm512_storeu_ps(tile + 80, c5);
    _mm512_storeu_ps(tile + 96, c6), _mm512_storeu_ps(tile + 112, c7);
}

AVX512 static void tile_f32_1_avx512(const int16_t *a, const int16_t *panel, Py_ssize_t j0, Py_ssize_t j1,
                                     float *tile) {
    __m512 c = _mm512_loadu_ps(tile);
    for (Py_ssize_t j = j0; j < j1; j++)
        c = _mm512_add_ps(c, _mm512_cvtepi32_ps(_mm512_madd_epi16(_mm512_set1_epi32(pair_word(a + 2 * j)),
                                                                  _mm512_loadu_si512((const void *)(panel + j * 32)))));
    _mm512_storeu_ps(tile, c);
}

/* exact: the 16 INT32 chunk sums widened to two registers of 8 int64 (columns 0-7 and 8-15) and added. */
AVX512 static void tile_i64_4_avx512(const int16_t *a, Py_ssize_t lda, const int16_t *panel, Py_ssize_t j0,
                                     Py_ssize_t j1, int64_t *tile) {
    __m512i c[8];
    for (int i = 0; i < 8; i++)
        c[i] = _mm512_loadu_si512((const void *)(tile + 8 * i));
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m512i b = _mm512_loadu_si512((const void *)(panel + j * 32));
        for (int r = 0; r < 4; r++) {
            __m512i p = _mm512_madd_epi16(_mm512_set1_epi32(pair_word(a + r * lda + 2 * j)), b);
            c[2 * r] = _mm512_add_epi64(c[2 * r], _mm512_cvtepi32_epi64(_mm512_castsi512_si256(p)));
            c[2 * r + 1] = _mm512_add_epi64(c[2 * r + 1], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(p, 1)));
        }
    }
    for (int i = 0; i < 8; i++)
        _mm512_storeu_si512((void *)(tile + 8 * i), c[i]);
}

AVX512 static void tile_i64_1_avx512(const int16_t *a, const int16_t *panel, Py_ssize_t j0, Py_ssize_t j1,
                                     int64_t *tile) {
    __m512i lo = _mm512_loadu_si512((const void *)tile), hi = _mm512_loadu_si512((const void *)(tile + 8));
    for (Py_ssize_t j = j0; j < j1; j++) {
        __m512i p = _mm512_madd_epi16(_mm512_set1_epi32(pair_word(a + 2 * j)),
                                      _mm512_loadu_si512((const void *)(panel + j * 32)));
        lo = _mm512_add_epi64(lo, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(p)));
        hi = _mm512_add_epi64(hi, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(p, 1)));
    }
    _mm512_storeu_si512((void *)tile, lo), _mm512_storeu_si512((void *)(tile + 8), hi);
}
#endif

/* rows x NR tile over pairs [j0, j1): dispatch to the vector kernels (8, 4 or 2 rows at a time) or the portable
 * one. Every kernel adds the chunk sums of an element in order of j: the same bits. */
static void tile_kernel(const Gemm *g, Py_ssize_t row, int rows, const int16_t *panel, Py_ssize_t j0, Py_ssize_t j1,
                        void *tile) {
#ifdef X86
    if (use_avx512) {
        Py_ssize_t lda = 2 * g->pairs;
        const int16_t *a = g->ap + row * lda;
        int r = 0;
        if (g->exact) {
            int64_t *t = (int64_t *)tile;
            for (; r + 4 <= rows; r += 4)
                tile_i64_4_avx512(a + r * lda, lda, panel, j0, j1, t + r * NR);
            for (; r < rows; r++)
                tile_i64_1_avx512(a + r * lda, panel, j0, j1, t + r * NR);
        } else {
            float *t = (float *)tile;
            for (; r + 8 <= rows; r += 8)
                tile_f32_8_avx512(a + r * lda, lda, panel, j0, j1, t + r * NR);
            for (; r < rows; r++)
                tile_f32_1_avx512(a + r * lda, panel, j0, j1, t + r * NR);
        }
        return;
    }
    if (use_avx2) {
        Py_ssize_t lda = 2 * g->pairs;
        const int16_t *a = g->ap + row * lda;
        if (g->exact) {
            int64_t *t = (int64_t *)tile;
            int r = 0;
            for (; r + 2 <= rows; r += 2)
                tile_i64_2(a + r * lda, lda, panel, j0, j1, t + r * NR);
            for (; r < rows; r++)
                tile_i64_1(a + r * lda, panel, j0, j1, t + r * NR);
        } else {
            float *t = (float *)tile;
            int r = 0;
            for (; r + 4 <= rows; r += 4)
                tile_f32_4(a + r * lda, lda, panel, j0, j1, t + r * NR);
            for (; r < rows; r++)
                tile_f32_1(a + r * lda, panel, j0, j1, t + r * NR);
        }
        return;
    }
#endif
    tile_portable(g, row, rows, panel, j0, j1, tile);
}

#define MR 8
#ifndef MC
#define MC 256 /* rows per block: their KC pairs (512 KiB) stay in the L2 cache while the panels pass */
#endif

static void gemm(const Gemm *g) {
    Py_ssize_t panels = (g->n + NR - 1) / NR;
    size_t item = g->exact ? sizeof(int64_t) : sizeof(float);
    union {
        float f[MR * NR];
        int64_t i[MR * NR];
    } tile;
    for (Py_ssize_t j0 = 0; j0 < g->pairs || (j0 == 0 && g->pairs == 0); j0 += KC) {
        Py_ssize_t j1 = j0 + KC < g->pairs ? j0 + KC : g->pairs;
        int first = j0 == 0, last = j1 == g->pairs;
        for (Py_ssize_t block = 0; block < g->m; block += MC) {
            Py_ssize_t block_end = block + MC < g->m ? block + MC : g->m;
            for (Py_ssize_t q = 0; q < panels; q++) {
                Py_ssize_t col = q * NR, cols = g->n - col < NR ? g->n - col : NR;
                const int16_t *panel = g->bp + q * g->pairs * 2 * NR;
                for (Py_ssize_t row = block; row < block_end; row += MR) {
                    int rows = block_end - row < MR ? (int)(block_end - row) : MR;
                    memset(&tile, 0, sizeof tile);
                    if (!first)
                        for (int r = 0; r < rows; r++)
                            memcpy((char *)&tile + r * NR * item, g->out + (row + r) * g->out_row + col * item,
                                   cols * item);
                    tile_kernel(g, row, rows, panel, j0, j1, &tile);
                    for (int r = 0; r < rows; r++) {
                        char *dst = g->out + (row + r) * g->out_row + col * item;
                        if (last && !g->exact) { /* the float32 total times 2^E, rounded once */
                            float *t = tile.f + r * NR;
                            for (Py_ssize_t c = 0; c < cols; c++)
                                ((float *)dst)[c] = (float)((double)t[c] * g->scale);
                        } else {
                            memcpy(dst, (char *)&tile + r * NR * item, cols * item);
                        }
                    }
                }
            }
        }
        if (g->pairs == 0)
            break;
    }
}

/* Copy A and B into the packed layouts; returns 0 when a mantissa -32768 was found. */
static int pack(const Py_buffer *a, const Py_buffer *b, int16_t *ap, int16_t *bp, Py_ssize_t pairs) {
    Py_ssize_t m = a->shape[0], k = a->shape[1], n = b->shape[1], panels = (n + NR - 1) / NR;
    int16_t lowest = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        const char *row = (const char *)a->buf + i * a->strides[0];
        int16_t *dst = ap + i * 2 * pairs;
        for (Py_ssize_t kk = 0; kk < k; kk++) {
            int16_t v = *(const int16_t *)(row + kk * a->strides[1]);
            lowest = v < lowest ? v : lowest;
            dst[kk] = v;
        }
        for (Py_ssize_t kk = k; kk < 2 * pairs; kk++)
            dst[kk] = 0;
    }
    for (Py_ssize_t j = 0; j < pairs; j++) { /* the rows 2j and 2j + 1 of B, interleaved column by column */
        const char *row0 = (const char *)b->buf + 2 * j * b->strides[0];
        const char *row1 = 2 * j + 1 < k ? row0 + b->strides[0] : NULL;
        for (Py_ssize_t q = 0; q < panels; q++) {
            int16_t *dst = bp + (q * pairs + j) * 2 * NR;
            for (Py_ssize_t c = 0; c < NR; c++) {
                Py_ssize_t col = q * NR + c;
                int16_t v0 = col < n ? *(const int16_t *)(row0 + col * b->strides[1]) : 0;
                int16_t v1 = col < n && row1 ? *(const int16_t *)(row1 + col * b->strides[1]) : 0;
                lowest = v0 < lowest ? v0 : lowest;
                lowest = v1 < lowest ? v1 : lowest;
                dst[2 * c] = v0;
                dst[2 * c + 1] = v1;
            }
        }
    }
    return lowest != INT16_MIN;
}

static PyObject *matmul(PyObject *self, PyObject *args) {
    PyObject *a_object, *b_object, *out_object;
    long exponent;
    int exact;
    if (!PyArg_ParseTuple(args, "OOOlp", &a_object, &b_object, &out_object, &exponent, &exact))
        return NULL;
    if (!exponent_in_range("matmul", exponent))
        return NULL;
    Py_buffer a, b, out;
    if (PyObject_GetBuffer(a_object, &a, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(b_object, &b, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (PyObject_GetBuffer(out_object, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&a);
        PyBuffer_Release(&b);
        return NULL;
    }
    PyObject *result = NULL;
    int16_t *ap = NULL, *bp = NULL;
    int ok = a.ndim == 2 && b.ndim == 2 && out.ndim == 2 && is_int16(&a) && is_int16(&b) &&
             (exact ? is_int64(&out) : is_float32(&out));
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "matmul: expected 2-D int16 operands and a C-contiguous 2-D %s output (got %d, "
                     "%d and %d axes, items of %zd, %zd and %zd bytes)", exact ? "int64" : "float32", a.ndim, b.ndim,
                     out.ndim, a.itemsize, b.itemsize, out.itemsize);
        goto done;
    }
    if (a.shape[1] != b.shape[0] || out.shape[0] != a.shape[0] || out.shape[1] != b.shape[1]) {
        PyErr_Format(PyExc_ValueError, "matmul: shapes (%zd, %zd) @ (%zd, %zd) -> (%zd, %zd) do not fit", a.shape[0],
                     a.shape[1], b.shape[0], b.shape[1], out.shape[0], out.shape[1]);
        goto done;
    }
    Py_ssize_t m = a.shape[0], n = b.shape[1], pairs = (a.shape[1] + 1) / 2, panels = (n + NR - 1) / NR;
    ap = (int16_t *)PyMem_RawMalloc((size_t)(m * 2 * pairs + 1) * sizeof(int16_t));
    bp = (int16_t *)PyMem_RawMalloc((size_t)(panels * pairs * 2 * NR + 1) * sizeof(int16_t));
    if (!ap || !bp) {
        PyErr_NoMemory();
        goto done;
    }
    Gemm g = {ap, bp, m, n, pairs, (char *)out.buf, n * (Py_ssize_t)out.itemsize, exact, ldexp(1.0, (int)exponent)};
    int packed;
    Py_BEGIN_ALLOW_THREADS
    packed = pack(&a, &b, ap, bp, pairs);
    if (packed)
        gemm(&g);
    Py_END_ALLOW_THREADS
    if (!packed) {
        PyErr_SetString(PyExc_ValueError, "matmul: an operand holds the mantissa -32768; DFP16 mantissas lie in "
                        "[-32767, 32767] (two products of 32768 * 32768 would overflow the INT32 accumulator)");
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_RawFree(ap);
    PyMem_RawFree(bp);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

/* ---- the instruction set ----------------------------------------------------------------------------------------- */
static int cpu_has_avx2(void) {
#ifdef X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int cpu_has_avx512(void) {
#ifdef X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

static PyObject *has_avx2(PyObject *self, PyObject *args) { return PyBool_FromLong(use_avx2); }
static PyObject *has_avx512(PyObject *self, PyObject *args) { return PyBool_FromLong(use_avx512); }

static PyObject *set_avx2(PyObject *self, PyObject *args) {
    int enabled, previous = use_avx2;
    if (!PyArg_ParseTuple(args, "p", &enabled))
        return NULL;
    use_avx2 = enabled && cpu_has_avx2();
    return PyBool_FromLong(previous);
}

static PyObject *set_avx512(PyObject *self, PyObject *args) {
    int enabled, previous = use_avx512;
    if (!PyArg_ParseTuple(args, "p", &enabled))
        return NULL;
    use_avx512 = enabled && cpu_has_avx512();
    return PyBool_FromLong(previous);
}

static PyMethodDef methods[] = {
    {"max_abs_bits", max_abs_bits, METH_VARARGS, "max_abs_bits(src): the float32 bits of max |x| over a float32 array "
     "(0 when empty; >= 0x7f800000 when it holds an inf or a NaN)."},
    {"quantize", quantize, METH_VARARGS, "quantize(src, dst, exponent): float32 -> int16 mantissas round_half_even(x "
     "2^-exponent); returns the number of values outside [-32767, 32767] (stored saturated)."},
    {"dequantize", dequantize, METH_VARARGS, "dequantize(src, dst, exponent): int16 mantissas -> float32 "
     "m 2^exponent."},
    {"matmul", matmul, METH_VARARGS, "matmul(a, b, out, exponent, exact): int16 (M, K) @ int16 (K, N) in INT32 chunks "
     "of two products; exact=False: float32 out, chunk sums added in float32, times 2^exponent; exact=True: int64 "
     "out, chunk sums added in int64."},
    {"has_avx2", has_avx2, METH_NOARGS, "True when the AVX2 paths are used."},
    {"set_avx2", set_avx2, METH_VARARGS, "set_avx2(enabled): use AVX2 where the CPU has it (False: the portable code, "
     "for tests); returns the previous setting."},
    {"has_avx512", has_avx512, METH_NOARGS, "True when the product's AVX-512 kernels are used."},
    {"set_avx512", set_avx512, METH_VARARGS, "set_avx512(enabled): use the product's AVX-512 kernels where the CPU has "
     "them (before AVX2); returns the previous setting."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dfp16", NULL, -1, methods};

PyMODINIT_FUNC PyInit__dfp16(void) {
    use_avx2 = cpu_has_avx2();
    use_avx512 = cpu_has_avx512();
    return PyModule_Create(&module);
}
