/* float16 <-> float32 conversion for the CPU float16 kernel (kernels/matmul_cpu.py), compiled on first use into the
 * extension module tinygrad_edu.kernels._f16_convert by kernels/compile_cpu.py (without a C compiler the kernel
 * falls back to NumPy).
 *
 * Why: NumPy converts float32 to float16 one element at a time (about 3.5 ns per element on these machines), which
 * is most of what separates a float16 matmul with float32 accumulation from the float32 BLAS it is built on. x86
 * CPUs since 2012 convert 8 values per instruction (F16C: vcvtph2ps, vcvtps2ph). This file uses them where the CPU
 * has them (checked at run time), and a portable conversion everywhere else; both give NumPy's bits, NaNs included.
 *
 *   widen(src, dst)    float16 -> float32 (exact), arrays of the same shape
 *   narrow(src, dst)   float32 -> float16 (round to nearest even; overflow to inf; NaN payloads as NumPy)
 *   has_f16c()         True when the vector instructions are used
 *   set_f16c(enabled)  switch them off (the tests check the portable conversion too); returns the previous setting
 *
 * The arrays may be strided (views of blocks of a larger matrix); the innermost loop runs along the last axis. The
 * GIL is released while converting, so threads convert separate pieces at the same time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define X86 1
#endif

static int use_f16c = 0;

/* ---- the portable conversions: IEEE 754 binary16 <-> binary32 ---------------------------------------------- */
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign; /* +-0 */
        } else { /* subnormal: m * 2^-24; normalize so the leading 1 becomes the implicit bit */
            exponent = 113;
            while (!(mantissa & 0x400u)) {
                mantissa <<= 1;
                exponent--;
            }
            bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13); /* inf, NaN (payload kept) */
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13); /* rebias 15 -> 127 */
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { /* inf, or NaN: keep the top 10 payload bits (as NumPy), and a NaN a NaN */
        uint16_t payload = (uint16_t)((ax >> 13) & 0x3ffu);
        return sign | 0x7c00u | (ax > 0x7f800000u && payload == 0 ? 1u : payload);
    }
    if (ax >= 0x477ff000u) /* >= 65520: rounds to inf */
        return sign | 0x7c00u;
    if (ax < 0x38800000u) { /* below 2^-14: a float16 subnormal (or zero) */
        uint32_t e = ax >> 23;
        if (e < 102) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e; /* value = m * 2^(e - 150) */
        uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (q & 1u)))
            q++; /* may carry into the smallest normal: the right encoding */
        return sign | (uint16_t)q;
    }
    uint32_t r = ax - 0x38000000u; /* rebias 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u); /* round the 13 dropped bits to nearest even */
    return sign | (uint16_t)(r >> 13);
}

/* ---- one contiguous row ------------------------------------------------------------------------------------- */
static void widen_row(const uint16_t *s, float *d, Py_ssize_t n);
static void narrow_row(const float *s, uint16_t *d, Py_ssize_t n);

#ifdef X86
__attribute__((target("avx,f16c"))) static void widen_row_f16c(const uint16_t *s, float *d, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_ps(d + i, v);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) /* a NaN: F16C quiets it; keep its bits */
            for (int j = 0; j < 8; j++)
                d[i + j] = half_to_float(s[i + j]);
    }
    for (; i < n; i++)
        d[i] = half_to_float(s[i]);
}

__attribute__((target("avx,f16c"))) static void narrow_row_f16c(const float *s, uint16_t *d, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(s + i);
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) /* a NaN: F16C quiets it; keep its bits */
            for (int j = 0; j < 8; j++)
                d[i + j] = float_to_half(s[i + j]);
    }
    for (; i < n; i++)
        d[i] = float_to_half(s[i]);
}
#endif

static void widen_row(const uint16_t *s, float *d, Py_ssize_t n) {
#ifdef X86
    if (use_f16c) {
        widen_row_f16c(s, d, n);
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        d[i] = half_to_float(s[i]);
}

static void narrow_row(const float *s, uint16_t *d, Py_ssize_t n) {
#ifdef X86
    if (use_f16c) {
        narrow_row_f16c(s, d, n);
        return;
    }
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        d[i] = float_to_half(s[i]);
}

/* ---- arrays: every row of the last axis; a strided last axis element by element ---------------------------- */
typedef enum { WIDEN, NARROW } Direction;

static void convert(Direction direction, const Py_buffer *src, const Py_buffer *dst) {
    int ndim = src->ndim;
    Py_ssize_t n = ndim ? src->shape[ndim - 1] : 1;
    Py_ssize_t s_step = ndim ? src->strides[ndim - 1] : src->itemsize;
    Py_ssize_t d_step = ndim ? dst->strides[ndim - 1] : dst->itemsize;
    int contiguous = s_step == src->itemsize && d_step == dst->itemsize;
    Py_ssize_t index[PyBUF_MAX_NDIM] = {0};
    for (int axis = 0; axis < ndim; axis++)
        if (src->shape[axis] == 0)
            return;
    for (;;) {
        const char *s = (const char *)src->buf;
        char *d = (char *)dst->buf;
        for (int axis = 0; axis < ndim - 1; axis++) {
            s += index[axis] * src->strides[axis];
            d += index[axis] * dst->strides[axis];
        }
        if (contiguous) {
            if (direction == WIDEN)
                widen_row((const uint16_t *)s, (float *)d, n);
            else
                narrow_row((const float *)s, (uint16_t *)d, n);
        } else {
            for (Py_ssize_t i = 0; i < n; i++) {
                if (direction == WIDEN)
                    *(float *)(d + i * d_step) = half_to_float(*(const uint16_t *)(s + i * s_step));
                else
                    *(uint16_t *)(d + i * d_step) = float_to_half(*(const float *)(s + i * s_step));
            }
        }
        int axis = ndim - 2; /* the next row: count like an odometer over the leading axes */
        while (axis >= 0 && ++index[axis] == src->shape[axis])
            index[axis--] = 0;
        if (axis < 0)
            return;
    }
}

static PyObject *run(PyObject *args, Direction direction) {
    PyObject *src_object, *dst_object;
    if (!PyArg_ParseTuple(args, "OO", &src_object, &dst_object))
        return NULL;
    Py_buffer src, dst;
    if (PyObject_GetBuffer(src_object, &src, PyBUF_STRIDES) < 0)
        return NULL;
    if (PyObject_GetBuffer(dst_object, &dst, PyBUF_STRIDES | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    const char *name = direction == WIDEN ? "widen" : "narrow";
    Py_ssize_t want_src = direction == WIDEN ? 2 : 4, want_dst = direction == WIDEN ? 4 : 2;
    int ok = src.itemsize == want_src && dst.itemsize == want_dst && src.ndim == dst.ndim;
    for (int axis = 0; ok && axis < src.ndim; axis++)
        ok = src.shape[axis] == dst.shape[axis];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s source and %s destination arrays of one shape (items of %zd "
                     "and %zd bytes, %d and %d axes)", name, direction == WIDEN ? "float16" : "float32",
                     direction == WIDEN ? "float32" : "float16", src.itemsize, dst.itemsize, src.ndim, dst.ndim);
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    convert(direction, &src, &dst);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyObject *widen(PyObject *self, PyObject *args) { return run(args, WIDEN); }
static PyObject *narrow(PyObject *self, PyObject *args) { return run(args, NARROW); }
static PyObject *has_f16c(PyObject *self, PyObject *args) { return PyBool_FromLong(use_f16c); }

static int cpu_has_f16c(void) {
#ifdef X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static PyObject *set_f16c(PyObject *self, PyObject *args) {
    int enabled, previous = use_f16c;
    if (!PyArg_ParseTuple(args, "p", &enabled))
        return NULL;
    use_f16c = enabled && cpu_has_f16c();
    return PyBool_FromLong(previous);
}

static PyMethodDef methods[] = {
    {"widen", widen, METH_VARARGS, "widen(src, dst): float16 array -> float32 array of the same shape, exactly."},
    {"narrow", narrow, METH_VARARGS, "narrow(src, dst): float32 array -> float16 array, round to nearest even."},
    {"has_f16c", has_f16c, METH_NOARGS, "True when the CPU's F16C instructions convert 8 values at a time."},
    {"set_f16c", set_f16c, METH_VARARGS, "set_f16c(enabled): use F16C where the CPU has it (False: the portable "
     "conversion, for tests); returns the previous setting."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_f16_convert", NULL, -1, methods};

PyMODINIT_FUNC PyInit__f16_convert(void) {
    use_f16c = cpu_has_f16c();
    return PyModule_Create(&module);
}
