/*
 * Per-sample kernels of the metrology pipeline.
 *
 * Why this is in C: these loops run over every sample of every channel (7 x 32,000 per second in,
 * 11 x 30,720 per second out at 60 Hz) and do a few multiply-adds per sample with data-dependent
 * indexing (interpolation taps at fractional positions), a recursion (IIR filter) or several
 * reductions of the same data at once (half-cycle sums of squares, peaks, v*i and the fundamental's
 * DFT bin of each derived signal, formed from the inputs on the fly; the harmonic subgroups of every
 * 10/12-cycle window, which numpy forms in a dozen passes over strided views). numpy can only express them
 * with large temporaries (6 gathered taps per output sample, per channel; an (m, 512, 11) matrix
 * product read five times) or a Python-level wrapper per call (scipy's sosfilt costs ~150 us per
 * 1024-sample block in argument handling alone), which kept the whole pipeline near 16x real time on
 * one core; the target is 100x. Each function here has a numpy definition in reference.py with the
 * same arguments, and tests/unit/test_metrology_kernels.py checks that both agree.
 *
 * Arrays are passed through the buffer protocol (C-contiguous float64), so the extension needs
 * neither numpy headers nor numpy at build time. Outputs are written into caller-allocated buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* two doubles, an SSE2 or NEON register: stores of two samples at a time where the compiler would not pair them */
typedef double v2d __attribute__((vector_size(16)));
typedef long long v2l __attribute__((vector_size(16)));

typedef struct {
    Py_buffer view;
    int held;
} buf_t;

static int get_buf(PyObject *obj, buf_t *b, int writable, Py_ssize_t min_items, const char *name, int int64)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    const char *f = b->view.format;
    const int ok = f != NULL && (int64 ? (strcmp(f, "l") == 0 || strcmp(f, "q") == 0) : strcmp(f, "d") == 0);
    if (b->view.itemsize != 8 || !ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %s array", name, int64 ? "int64" : "float64");
        return -1;
    }
    if (b->view.len > 0 && ((uintptr_t)b->view.buf & 7) != 0) {   /* vectorised loops assume a double's alignment */
        PyErr_Format(PyExc_ValueError, "%s is not aligned to 8 bytes", name);
        return -1;
    }
    if (min_items < 0) {
        PyErr_Format(PyExc_ValueError, "%s: a size is negative or too large", name);
        return -1;
    }
    if (b->view.len / 8 < min_items) {
        PyErr_Format(PyExc_ValueError, "%s has %zd items, needs %zd", name, b->view.len / 8, min_items);
        return -1;
    }
    return 0;
}

/* The product of n sizes, to be compared with a buffer's items: -1 (which get_buf refuses) when one is negative or
 * the product of those that are not zero overflows, so that no size formed from them in a kernel overflows. */
static Py_ssize_t items_of(const Py_ssize_t *f, int n)
{
    Py_ssize_t nonzero = 1;
    int zero = 0;
    for (int i = 0; i < n; i++) {
        if (f[i] < 0 || (f[i] > 0 && __builtin_mul_overflow(nonzero, f[i], &nonzero)))
            return -1;
        zero |= f[i] == 0;
    }
    return zero ? 0 : nonzero;
}

#define ITEMS(...) \
    items_of((const Py_ssize_t[]){__VA_ARGS__}, (int)(sizeof((Py_ssize_t[]){__VA_ARGS__}) / sizeof(Py_ssize_t)))

static void release(buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i].held)
            PyBuffer_Release(&b[i].view);
}

/* A kernel's arguments: its n arrays first, into o[] (borrowed), then the scalars that fmt (PyArg_ParseTuple's
 * format) names, into the pointers that follow: 0, or -1 with the error set. */
static int kernel_args(PyObject *args, PyObject **o, int n, const char *fmt, ...)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < n) {
        PyErr_Format(PyExc_TypeError, "the kernel takes %d arrays, then its sizes", n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        o[i] = PyTuple_GET_ITEM(args, i);
    PyObject *rest = PyTuple_GetSlice(args, n, PyTuple_GET_SIZE(args));
    if (rest == NULL)
        return -1;
    va_list va;
    va_start(va, fmt);
    const int ok = PyArg_VaParse(rest, fmt, va);
    va_end(va);
    Py_DECREF(rest);
    return ok ? 0 : -1;
}

/* A kernel's N array arguments (o) and their buffers (b, none held yet). */
#define KERNEL_ARRAYS(N) \
    PyObject *o[N];      \
    buf_t b[N] = {{.held = 0}}

/* An array argument of a kernel: the name its errors give, whether the kernel writes it, the items it needs, and
 * whether it holds int64 (else float64). */
typedef struct {
    const char *name;
    int writable;
    Py_ssize_t min_items;
    int int64;
} array_arg;

/* The buffers b[0 .. n-1] of the arrays o[0 .. n-1] as spec[] asks: 0, or -1 with the error set and none held. */
static int get_arrays(PyObject *const *o, const array_arg *spec, int n, buf_t *b)
{
    for (int i = 0; i < n; i++)
        if (get_buf(o[i], &b[i], spec[i].writable, spec[i].min_items, spec[i].name, spec[i].int64)) {
            release(b, n);
            return -1;
        }
    return 0;
}

/* The arguments' dimensions do not fit together: a ValueError saying why. */
static PyObject *bad_args(const char *why)
{
    PyErr_SetString(PyExc_ValueError, why);
    return NULL;
}

/* A scratch allocation failed: let go of the n buffers held. */
static PyObject *no_memory(buf_t *b, int n)
{
    release(b, n);
    return PyErr_NoMemory();
}

/* Four doubles as one value: GCC/Clang vector extensions, lowered to whatever the target has (two SSE2 or NEON
 * registers, one AVX register). Loads and stores go through memcpy: no alignment is assumed. */
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4l __attribute__((vector_size(32)));

#pragma GCC diagnostic ignored "-Wpsabi"     /* the v4d helpers are inlined: no ABI crosses a call */

static inline v4d v4_load(const double *p)
{
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(double *p, v4d v)
{
    memcpy(p, &v, sizeof v);
}

static inline v4d splat(double v)
{
    return (v4d){v, v, v, v};
}

/* The lanes i, j, k, l (constants) of the eight of a, b. */
#if defined(__clang__)
#define SHUFFLE2(a, b, i, j, k, l) __builtin_shufflevector((a), (b), (i), (j), (k), (l))
#else
#define SHUFFLE2(a, b, i, j, k, l) __builtin_shuffle((a), (b), (v4l){(i), (j), (k), (l)})
#endif

/* p[0] in every lane as one broadcast load (a vector built from a scalar takes a shuffle more in the per-CPU
 * clones): reads p[0..3], which the caller keeps inside its buffers. */
static inline v4d splat_at(const double *p)
{
    return SHUFFLE2(v4_load(p), v4_load(p), 0, 0, 0, 0);
}

/* The per-sample passes are compiled three times on x86-64, for the baseline, x86-64-v3 (AVX2) and x86-64-v4
 * (AVX-512: twice the vector registers), and the loader picks the one the CPU runs; elsewhere (aarch64: NEON) once.
 * setup.py builds with -ffp-contract=off: no multiply-add is fused, so every clone gives the same bits as the
 * reference's order of operations does. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__linux__) && \
    defined(__GLIBC__)      /* the x86-64-vN names are gcc 11's; the loader's choice is a glibc ifunc (not musl's) */
#define PER_CPU __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define X86_CLONES 1
#else
#define PER_CPU
#endif

/* The taps of one output sample near the buffer edges, clamped as the reference does: columns lo .. hi-1. */
static void resample_edge(const double *x, Py_ssize_t n, Py_ssize_t c, Py_ssize_t k0, const double w[6],
                          Py_ssize_t lo, Py_ssize_t hi, double *out)
{
    for (Py_ssize_t cc = lo; cc < hi; cc++) {
        double acc = 0.0;
        for (int t = 0; t < 6; t++) {
            Py_ssize_t k = k0 + t;
            k = k < 0 ? 0 : (k >= n ? n - 1 : k);
            acc += w[t] * x[k * c + cc];
        }
        out[cc] = acc;
    }
}

/* 6-point Lagrange weights for taps at -2..3 around floor(p), mu = p - floor(p), of four positions at once: each
 * weight is the product of the five other factors (mu - offset) over a constant, formed from shared prefix and
 * suffix products (12 multiplications instead of 24 and six divisions). */
static inline void lagrange6_v4(v4d mu, v4d w[6])
{
    const v4d a = mu + 2, b = mu + 1, c = mu, d = mu - 1, e = mu - 2, f = mu - 3;
    const v4d ab = a * b, abc = ab * c, abcd = abc * d;
    const v4d ef = e * f, def = d * ef, cdef = c * def;
    w[0] = b * cdef * (-1.0 / 120.0);
    w[1] = a * cdef * (1.0 / 24.0);
    w[2] = ab * def * (-1.0 / 12.0);
    w[3] = abc * ef * (1.0 / 12.0);
    w[4] = abcd * f * (-1.0 / 24.0);
    w[5] = abcd * e * (1.0 / 120.0);
}

/* The same for one position. */
static inline void lagrange6(double mu, double w[6])
{
    v4d w4[6];
    lagrange6_v4(splat(mu), w4);
    for (int t = 0; t < 6; t++)
        w[t] = w4[t][0];
}

/* floor(p) - 2, the first tap's row, and p - floor(p), without a libm call per sample. A position past 2^52 rows
 * reads the first or last row (mu 0), and one that is NaN or infinite gives NaN: their rows are far enough out
 * that no tap is inside the buffer and no row arithmetic overflows (converting them to an integer would not be
 * defined). */
static inline Py_ssize_t first_tap(double p, double *mu)
{
    if (!(fabs(p) < 4503599627370496.0)) {
        *mu = p - p;
        return p > 0 ? PY_SSIZE_T_MAX / 4 : -(PY_SSIZE_T_MAX / 4);
    }
    double base = (double)(Py_ssize_t)p;
    if (base > p)
        base -= 1.0;
    *mu = p - base;
    return (Py_ssize_t)base - 2;
}

/* floor(p) of each lane, |p| < 2^51: adding and taking away 1.5 * 2^52 rounds to the nearest integer, one less
 * where that is above p (no libm call, no conversion to an integer). */
static inline v4d v4_floor(v4d p)
{
    const v4d magic = splat(6755399441055744.0);
    const v4d r = (p + magic) - magic;
    return r - (v4d)((v4l)splat(1.0) & (r > p));
}

/* floor(p), |p| < 2^51, as v4_floor gives it. */
static inline double scalar_floor(double p)
{
    const double r = (double)(Py_ssize_t)p;
    return r > p ? r - 1.0 : r;
}

/* One output row of 4 to 8 columns from the six rows at r: columns 0..3 with the weights wl, columns c-4..c-1
 * with wh (two vectors that overlap when c < 8, the shared columns computed alike). */
static inline void taps_row(const double *r, Py_ssize_t c, const v4d wl[6], const v4d wh[6], double *o)
{
    const double *rh = r + (c - 4);
    const v4d lo = wl[0] * v4_load(r) + wl[1] * v4_load(r + c) + wl[2] * v4_load(r + 2 * c) +
                   wl[3] * v4_load(r + 3 * c) + wl[4] * v4_load(r + 4 * c) + wl[5] * v4_load(r + 5 * c);
    const v4d hi = wh[0] * v4_load(rh) + wh[1] * v4_load(rh + c) + wh[2] * v4_load(rh + 2 * c) +
                   wh[3] * v4_load(rh + 3 * c) + wh[4] * v4_load(rh + 4 * c) + wh[5] * v4_load(rh + 5 * c);
    v4_store(o, lo);
    v4_store(o + (c - 4), hi);
}

/* The six weights of each lane as seven, for the rows from the lowest first tap on: shifted by one row in the
 * lanes (mask) whose first tap is the next row, a zero weight at the row they do not use. */
static inline void seven_taps(const v4d w[6], v4l shifted, v4d w7[7])
{
    const v4d zero = {0, 0, 0, 0};
    w7[0] = (v4d)(((v4l)w[0] & ~shifted));
    for (int t = 1; t < 6; t++)
        w7[t] = (v4d)(((v4l)w[t - 1] & shifted) | ((v4l)w[t] & ~shifted));
    w7[6] = (v4d)(((v4l)w[5] & shifted) | ((v4l)zero & ~shifted));
}

/* taps_row where each column's first tap is row r or the next (the lanes of ml, mh: its columns 0..3 and c-4..c-1
 * in the next): seven rows from r, a column's unused row with weight zero, which adds an exact zero where that
 * sample is finite: the same sums. Reads seven rows. Returns whether an output is NaN: a NaN or infinite sample in
 * a column's unused row makes it NaN where the column's own taps may not (the caller forms those anew). */
static inline int taps_row7(const double *r, Py_ssize_t c, v4l ml, v4l mh, const v4d wl[6], const v4d wh[6],
                             double *o)
{
    const Py_ssize_t hc = c - 4;
    v4d l7[7], h7[7];
    seven_taps(wl, ml, l7);
    seven_taps(wh, mh, h7);
    const double *rh = r + hc;
    v4d a = l7[0] * v4_load(r), b = h7[0] * v4_load(rh);
    for (int t = 1; t < 7; t++) {
        a += l7[t] * v4_load(r + t * c);
        b += h7[t] * v4_load(rh + t * c);
    }
    v4_store(o, a);
    v4_store(o + hc, b);
    const v4l nan = (a != a) | (b != b);
    return (nan[0] | nan[1] | nan[2] | nan[3]) != 0;
}

/* Output row o of resample_rows' one-delay form from lane l (a constant where it is inlined) of the four positions'
 * floors (base) and weights (w4). */
static inline __attribute__((always_inline)) void same_delay_row(const double *x, Py_ssize_t n, Py_ssize_t c,
                                                                 v4d base, const v4d w4[6], const int l, double *o)
{
    const Py_ssize_t k0 = (Py_ssize_t)base[l] - 2;
    if (k0 >= 0 && k0 + 5 < n) {
        v4d w[6];
        for (int t = 0; t < 6; t++)
            w[t] = SHUFFLE2(w4[t], w4[t], l, l, l, l);
        taps_row(x + k0 * c, c, w, w, o);
    } else {
        const double wl[6] = {w4[0][l], w4[1][l], w4[2][l], w4[3][l], w4[4][l], w4[5][l]};
        resample_edge(x, n, c, k0, wl, 0, c, o);
    }
}

/* resample_core for 4 to 8 columns, every sum in the scalar form's order. One delay for all columns: the weights
 * of four output samples at once, each row's taps as vectors of columns. A delay per column: each row's column
 * weights as vectors, and its taps too where the columns' first taps are one row or two neighbouring rows (delays
 * within a sample of each other are), else column by column. */
static inline __attribute__((always_inline)) void resample_rows(
    const double *x, Py_ssize_t n, Py_ssize_t c, const double *bounds, const double *grid, Py_ssize_t spc,
    double offset, Py_ssize_t m, const double *delay, int same, double *out)
{
    const Py_ssize_t hc = c - 4;
    const v4d dl = v4_load(delay), dh = v4_load(delay + hc);
    double d_min = delay[0], d_max = delay[0];
    for (Py_ssize_t ch = 1; ch < c; ch++)
        d_min = delay[ch] < d_min ? delay[ch] : d_min, d_max = delay[ch] > d_max ? delay[ch] : d_max;
    for (Py_ssize_t i0 = 0; i0 < m; i0 += spc) {
        const Py_ssize_t k = i0 / spc;
        const double start = bounds[k], span = bounds[k + 1] - bounds[k];
        if (same) {
            for (Py_ssize_t j = 0; j < spc; j += 4) {
                const int nj = spc - j < 4 ? (int)(spc - j) : 4;
                double g[4] = {0, 0, 0, 0};
                memcpy(g, grid + j, (size_t)nj * sizeof(double));
                const v4d p = ((splat(start) + splat(span) * v4_load(g)) - offset) + delay[0];
                const v4d base = v4_floor(p);
                v4d w4[6];
                lagrange6_v4(p - base, w4);
                if (nj == 4) {        /* each row's weights a shuffle of the lane, a constant */
                    double *o = out + (i0 + j) * c;
                    same_delay_row(x, n, c, base, w4, 0, o);
                    same_delay_row(x, n, c, base, w4, 1, o + c);
                    same_delay_row(x, n, c, base, w4, 2, o + 2 * c);
                    same_delay_row(x, n, c, base, w4, 3, o + 3 * c);
                    continue;
                }
                for (int l = 0; l < nj; l++) {
                    const Py_ssize_t k0 = (Py_ssize_t)base[l] - 2;
                    double *o = out + (i0 + j + l) * c;
                    if (k0 >= 0 && k0 + 5 < n) {
                        v4d w[6];
                        for (int t = 0; t < 6; t++)
                            w[t] = splat(w4[t][l]);
                        taps_row(x + k0 * c, c, w, w, o);
                    } else {
                        const double wl[6] = {w4[0][l], w4[1][l], w4[2][l], w4[3][l], w4[4][l], w4[5][l]};
                        resample_edge(x, n, c, k0, wl, 0, c, o);
                    }
                }
            }
            continue;
        }
        for (Py_ssize_t j = 0; j < spc; j++) {
            const double pj = (start + span * grid[j]) - offset;
            const v4d pi = splat(pj);
            const v4d pl = pi + dl, ph = pi + dh;
            const v4d bl = v4_floor(pl), bh = v4_floor(ph);
            v4d wl[6], wh[6];
            lagrange6_v4(pl - bl, wl);
            lagrange6_v4(ph - bh, wh);
            /* the columns' lowest and highest first taps: those of the least and the greatest delay (a sum rounds
             * monotonically, and so does floor) */
            const double lo_b = scalar_floor(pj + d_min), hi_b = scalar_floor(pj + d_max);
            const Py_ssize_t lo = (Py_ssize_t)lo_b - 2, hi = (Py_ssize_t)hi_b - 2;
            double *o = out + (i0 + j) * c;
            if (lo >= 0 && lo + 5 < n && hi == lo) {      /* every column's taps the same six rows */
                taps_row(x + lo * c, c, wl, wh, o);
                continue;
            }
            if (lo >= 0 && lo + 6 < n && hi == lo + 1) {
                if (!taps_row7(x + lo * c, c, bl > splat(lo_b), bh > splat(lo_b), wl, wh, o))
                    continue;
            }
            for (Py_ssize_t ch = 0; ch < c; ch++) {
                const v4d *wv = ch < 4 ? wl : wh;
                const int lane = (int)(ch < 4 ? ch : ch - hc);
                const Py_ssize_t k0 = (Py_ssize_t)(ch < 4 ? bl : bh)[lane] - 2;
                const double w[6] = {wv[0][lane], wv[1][lane], wv[2][lane], wv[3][lane], wv[4][lane], wv[5][lane]};
                resample_edge(x, n, c, k0, w, ch, ch + 1, o);
            }
        }
    }
}

/* 6-point Lagrange interpolation of every column of x (n, c) at fractional rows p_i + delay[ch], i < m,
 * into out (m, c): p_i is grid[i % spc] of cycle k = i / spc stretched between bounds[k] and bounds[k + 1],
 * minus offset. */
PER_CPU
static void resample_core(const double *x, Py_ssize_t n, Py_ssize_t c, const double *bounds, const double *grid,
                          Py_ssize_t spc, double offset, Py_ssize_t m, const double *delay, double *out)
{
    int same = 1;
    for (Py_ssize_t ch = 1; ch < c; ch++)
        if (delay[ch] != delay[0])
            same = 0;
    /* the vector forms take floors by rounding (|p| < 2^51) and make rows of them: every position well inside that
     * (bounds, offset and delays within 2^48 rows, none NaN), else the scalar form, which takes any position */
    int tame = fabs(offset) < 281474976710656.0;
    for (Py_ssize_t ch = 0; ch < c; ch++)
        tame &= fabs(delay[ch]) < 281474976710656.0;
    for (Py_ssize_t k = 0; spc > 0 && k <= m / spc; k++)
        tame &= fabs(bounds[k]) < 281474976710656.0;
    if (tame && c >= 4 && c <= 8 && spc > 0 && m % spc == 0) {
        if (c == 7)       /* the board's inputs: a copy of the loop with every row offset a constant */
            resample_rows(x, n, 7, bounds, grid, spc, offset, m, delay, same, out);
        else
            resample_rows(x, n, c, bounds, grid, spc, offset, m, delay, same, out);
        return;
    }
    double w[6];
    double start = 0.0, span = 0.0;
    for (Py_ssize_t i = 0, j = spc; i < m; i++, j++) {
        if (j == spc) {
            const Py_ssize_t k = i / spc;
            start = bounds[k];
            span = bounds[k + 1] - bounds[k];
            j = 0;
        }
        const double pi = (start + span * grid[j]) - offset;   /* as numpy: start + (end - start) * (j / spc) */
        for (Py_ssize_t ch = 0; ch < c; ch++) {
            if (ch == 0 || !same) {
                double mu;
                const Py_ssize_t k0 = first_tap(pi + delay[ch], &mu);
                lagrange6(mu, w);
                if (k0 >= 0 && k0 + 5 < n) {
                    const double *row = x + k0 * c;
                    if (same) {
                        for (Py_ssize_t cc = 0; cc < c; cc++) {
                            out[i * c + cc] = w[0] * row[cc] + w[1] * row[c + cc] + w[2] * row[2 * c + cc] +
                                              w[3] * row[3 * c + cc] + w[4] * row[4 * c + cc] + w[5] * row[5 * c + cc];
                        }
                        break;
                    }
                    out[i * c + ch] = w[0] * row[ch] + w[1] * row[c + ch] + w[2] * row[2 * c + ch] +
                                      w[3] * row[3 * c + ch] + w[4] * row[4 * c + ch] + w[5] * row[5 * c + ch];
                } else {   /* near the buffer edges: clamp the taps, as the reference does */
                    for (Py_ssize_t cc = (same ? 0 : ch); cc < (same ? c : ch + 1); cc++) {
                        double acc = 0.0;
                        for (int t = 0; t < 6; t++) {
                            Py_ssize_t k = k0 + t;
                            k = k < 0 ? 0 : (k >= n ? n - 1 : k);
                            acc += w[t] * x[k * c + cc];
                        }
                        out[i * c + cc] = acc;
                    }
                    if (same)
                        break;
                }
            }
        }
    }
}

/* resample_cycles(buf (n, c), bounds (ncyc + 1,), delays (c,), out (ncyc * spc, c), n, c, ncyc, spc, offset):
 * resample with the positions of ncyc cycles of spc samples each between consecutive bounds. */
static PyObject *k_resample_cycles(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t n, c, ncyc, spc;
    double offset;
    if (kernel_args(args, o, 4, "nnnnd", &n, &c, &ncyc, &spc, &offset))
        return NULL;
    if (spc < 1 || spc > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double) || ncyc < 0 || ncyc == PY_SSIZE_T_MAX ||
        (n < 1 && ncyc > 0 && c > 0))
        return bad_args("resample_cycles: spc must be positive, and a buffer needs a row to resample");
    const array_arg spec[] = {{"buf", 0, ITEMS(n, c)}, {"bounds", 0, ncyc + 1}, {"delays", 0, ITEMS(c)},
                              {"out", 1, ITEMS(ncyc, spc, c)}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    double *grid = PyMem_RawMalloc((size_t)spc * sizeof(double));
    if (grid == NULL)
        return no_memory(b, 4);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < spc; j++)
        grid[j] = (double)j / (double)spc;
    resample_core(b[0].view.buf, n, c, b[1].view.buf, grid, spc, offset, ncyc * spc, b[2].view.buf, b[3].view.buf);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(grid);
    release(b, 4);
    Py_RETURN_NONE;
}

#define CS_MAX_K 64
#define CS_MAX_C 16
#define CS_K12 12
#define DERIVE_ROWS 32

/* y (s, kp) = x (s, c) @ mat for one cycle, from mat's ELL form (p terms per derived signal, padded with exact
 * zeros): one signal at a time, so each one's inputs and weights sit in registers; a plain copy (one term of
 * weight 1) is the common case. Columns k..kp-1 are zero. */
static inline void derive_block(const double *restrict x, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k, int kp,
                                int p, const int *restrict ell_in, const double *restrict ell_w, double *restrict y)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        const int *in = ell_in + q * p;
        const double *w = ell_w + q * p;
        int n = p;
        while (n > 1 && w[n - 1] == 0.0)     /* the padding adds zeros: skip it */
            n--;
        double *restrict col = y + q;
        if (n == 1 && w[0] == 1.0) {
            const double *restrict src = x + in[0];
            for (Py_ssize_t j = 0; j < s; j++)
                col[j * kp] = src[j * c];
        } else if (n == 2) {
            const double *restrict a = x + in[0], *restrict b = x + in[1];
            const double wa = w[0], wb = w[1];
            for (Py_ssize_t j = 0; j < s; j++)
                col[j * kp] = (0.0 + wa * a[j * c]) + wb * b[j * c];
        } else {
            for (Py_ssize_t j = 0; j < s; j++) {
                double v = 0.0;
                for (int t = 0; t < n; t++)
                    v += w[t] * x[j * c + in[t]];
                col[j * kp] = v;
            }
        }
    }
    for (Py_ssize_t j = 0; j < s; j++)
        for (Py_ssize_t q = k; q < kp; q++)
            y[j * kp + q] = 0.0;
}

/* One row's four signals into a group's sums: squares, peak |y| (a NaN never replaces the peak, as the scalar
 * form's comparison), and the DFT bin 1 sums. */
#define STATS_STEP(a, sq, pk, re, im)                                    \
    do {                                                                 \
        const v4d fa_ = (v4d)((v4l)(a) & abs_mask);                      \
        const v4l up_ = fa_ > (pk);                                      \
        (sq) += (a) * (a);                                               \
        (pk) = (v4d)(((v4l)fa_ & up_) | ((v4l)(pk) & ~up_));             \
        (re) += (a) * cj;                                                \
        (im) += (a) * sj;                                                \
    } while (0)

/* Statistics of one cycle of derived signals y (s, kp), kp a multiple of 4: for each signal, the sums of squares
 * of each half, peak |y| and the DFT bin 1 sums, four signals to a vector; each signal's sums add up over j in
 * order, as a plain loop would. The form for the signal counts and inputs the register form (cycle_stats12) does
 * not take. */
static inline __attribute__((always_inline)) void cycle_block_stats(
    const double *restrict y, Py_ssize_t s, int kp, const double *restrict cs, const double *restrict sn,
    double *restrict o_sq0, double *restrict o_sq1, double *restrict o_pk, double *restrict o_re,
    double *restrict o_im)
{
    const Py_ssize_t half = s / 2;
    const v4l abs_mask = (v4l){0, 0, 0, 0} + 0x7fffffffffffffffLL;
    const v4d zero = {0, 0, 0, 0};
    for (int g = 0; g < kp; g += 4) {
        v4d pk = zero, re = zero, im = zero;
        for (int h = 0; h < 2; h++) {
            v4d sq = zero;
            for (Py_ssize_t j = h ? half : 0; j < (h ? s : half); j++) {
                const double cj = cs[j], sj = sn[j];
                const v4d a = v4_load(y + j * kp + g);
                STATS_STEP(a, sq, pk, re, im);
            }
            v4_store((h ? o_sq1 : o_sq0) + g, sq);
        }
        v4_store(o_pk + g, pk);
        v4_store(o_re + g, re);
        v4_store(o_im + g, im);
    }
}

/* The derived signals as vectors of four, formed in registers row by row: group g < 3 is mat's columns 4g..4g+3,
 * group 3 the products' voltages (columns v0.., nvi of them) where they are not one of those, group 4 the
 * products' currents (columns i0..). Each group is the sum of its inputs' terms in input order (an input with
 * no weight in the group is no term; within a term the other lanes add exact zeros: the same values as a sum
 * per signal). The DFT bin 1 sums are taken of the inputs and carried through mat at the end (it is linear). */
typedef struct {
    int n[5];
    int in[5][CS_MAX_C];
    v4d w[5][CS_MAX_C];
    v4d dense[CS_MAX_C][5];      /* every input's weights in every group, zeros included */
    Py_ssize_t c, k;
    int vgroup;
    unsigned used;               /* bit 7g + i: input i has a weight in group g (g < 3) or in the currents' (g == 3) */
    const double *mat;
} groups12;

static void groups12_init(groups12 *gr, const double *mat, Py_ssize_t c, Py_ssize_t k, Py_ssize_t v0, Py_ssize_t i0,
                          Py_ssize_t nvi)
{
    gr->c = c;
    gr->k = k;
    gr->mat = mat;
    gr->vgroup = v0 == 0 ? 0 : 3;
    gr->used = 0;
    for (int g = 0; g < 5; g++) {
        gr->n[g] = 0;
        for (Py_ssize_t i = 0; i < c; i++) {
            double w[4];
            int any = 0;
            for (int l = 0; l < 4; l++) {
                const Py_ssize_t q = g < 3 ? 4 * g + l : (g == 3 ? v0 : i0) + l;
                const int valid = g < 3 ? q < k : l < nvi;
                w[l] = valid ? mat[i * k + q] : 0.0;
                any |= w[l] != 0.0;
            }
            gr->dense[i][g] = v4_load(w);
            if (any && g != 3 && i < 7)
                gr->used |= 1u << (7 * (g < 3 ? g : 3) + i);
            if (any) {
                gr->in[g][gr->n[g]] = (int)i;
                gr->w[g][gr->n[g]++] = v4_load(w);
            }
        }
    }
}

/* Group g of the derived signals of the input row xr. */
static inline __attribute__((always_inline)) v4d derive_group(const groups12 *gr, int g, const double *xr)
{
    v4d acc = {0, 0, 0, 0};
    for (int t = 0; t < gr->n[g]; t++)
        acc += splat(xr[gr->in[g][t]]) * gr->w[g][t];
    return acc;
}

/* The same for the seven inputs of the board (c == 7), unrolled: the terms of the inputs that ``used`` (a constant
 * where it is inlined, groups12.used) names, or of every input (USED_ALL). A zero weight adds an exact zero, so the
 * values are those of the sparse sum, with no index to load per term. */
#define USED(g0, g1, g2, gi) ((unsigned)(g0) | (unsigned)(g1) << 7 | (unsigned)(g2) << 14 | (unsigned)(gi) << 21)
#define USED_ALL USED(0x7f, 0x7f, 0x7f, 0x7f)
/* the products' currents are signals 6.. (I_PH): lanes 2, 3 of group 1 and 0, 1 of group 2, taken from there
 * (cycle_stats12), no terms of their own; every input in groups 0..2, or those of the wiring matrices of
 * systems.py (4W-WYE, 3W-WYE, DELTA) */
#define USED_I6_ALL USED(0x7f, 0x7f, 0x7f, 0)
#define USED_I6_4W_WYE USED(0x2a, 0x2f, 0x55, 0)
#define USED_I6_3W_WYE USED(0x2a, 0x2f, 0x15, 0)
#define USED_I6_DELTA USED(0x22, 0x27, 0x15, 0)


/* derive7 reads xr[0..9] (splat_at). */
static inline __attribute__((always_inline)) void derive7(const v4d (*dense)[5], const double *xr, v4d *a0,
                                                          v4d *a1, v4d *a2, v4d *ai, const unsigned used)
{
    v4d s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s4 = s0;
#pragma GCC unroll 7
    for (int i = 0; i < 7; i++) {
        const v4d xi = splat_at(xr + i);
        if (used >> i & 1)
            s0 += xi * dense[i][0];
        if (used >> (7 + i) & 1)
            s1 += xi * dense[i][1];
        if (used >> (14 + i) & 1)
            s2 += xi * dense[i][2];
        if (used >> (21 + i) & 1)
            s4 += xi * dense[i][4];
    }
    *a0 = s0, *a1 = s1, *a2 = s2, *ai = s4;
}

/* One cycle (s rows of c inputs at x, 4 <= c <= 8) of cycle_stats with at most 12 signals; vgroup is a constant
 * where it is inlined: 0 the products' voltages are group 0, 3 their own group, 7 as 0 with c == 7 (derive7, with
 * the terms of ``used``, also a constant). Reads cs[0 .. s+2], sn[0 .. s+2] and three items past each row
 * (splat_at): the last row from last_row where that is not NULL (a copy of it with three more items).
 * Returns 0 where an input of the cycle is NaN or infinite: its sums are then not those of the reference. */
static inline __attribute__((always_inline)) int cycle_stats12(
    const groups12 *gr, const int vgroup, const unsigned used, const double *restrict x, const double *last_row,
    Py_ssize_t s, const double *restrict cs, const double *restrict sn, double *restrict o_sq0, double *restrict o_sq1, double *restrict o_pk,
    double *restrict o_re, double *restrict o_im, double *restrict o_vi)
{
    const Py_ssize_t half = s / 2, c = gr->c, hc = c - 4;
    const v4l abs_mask = (v4l){0, 0, 0, 0} + 0x7fffffffffffffffLL;
    const v4d zero = {0, 0, 0, 0};
    v4d pk0 = zero, pk1 = zero, pk2 = zero, rel = zero, reh = zero, iml = zero, imh = zero, vi = zero;
    for (int h = 0; h < 2; h++) {
        v4d sq0 = zero, sq1 = zero, sq2 = zero;
        for (Py_ssize_t j = h ? half : 0; j < (h ? s : half); j++) {
            const double *xr = j == s - 1 && last_row != NULL ? last_row : x + j * c;
            v4d a0, a1, a2, ai;
            if (vgroup == 7) {
                derive7(gr->dense, xr, &a0, &a1, &a2, &ai, used);
                if ((used >> 21) == 0)      /* the currents (signals 6..9) as groups 1 and 2 have them: the same sums */
                    ai = SHUFFLE2(a1, a2, 2, 3, 4, 5);
            } else {
                a0 = derive_group(gr, 0, xr), a1 = derive_group(gr, 1, xr), a2 = derive_group(gr, 2, xr);
                ai = derive_group(gr, 4, xr);
            }
            const v4d av = vgroup == 0 || vgroup == 7 ? a0 : derive_group(gr, 3, xr);
            const v4d f0 = (v4d)((v4l)a0 & abs_mask), f1 = (v4d)((v4l)a1 & abs_mask), f2 = (v4d)((v4l)a2 & abs_mask);
            const v4l u0 = f0 > pk0, u1 = f1 > pk1, u2 = f2 > pk2;   /* a NaN never replaces the peak */
            pk0 = (v4d)(((v4l)f0 & u0) | ((v4l)pk0 & ~u0));
            pk1 = (v4d)(((v4l)f1 & u1) | ((v4l)pk1 & ~u1));
            pk2 = (v4d)(((v4l)f2 & u2) | ((v4l)pk2 & ~u2));
            sq0 += a0 * a0;
            sq1 += a1 * a1;
            sq2 += a2 * a2;
            vi += av * ai;
            const v4d cj = splat_at(cs + j), sj = splat_at(sn + j), xl = v4_load(xr), xh = v4_load(xr + hc);
            rel += xl * cj;
            reh += xh * cj;
            iml += xl * sj;
            imh += xh * sj;
        }
        double *o = h ? o_sq1 : o_sq0;
        v4_store(o, sq0);
        v4_store(o + 4, sq1);
        v4_store(o + 8, sq2);
    }
    v4_store(o_pk, pk0), v4_store(o_pk + 4, pk1), v4_store(o_pk + 8, pk2);
    v4_store(o_vi, vi);
    double re_in[8], im_in[8];
    v4_store(re_in, rel), v4_store(re_in + hc, reh);
    v4_store(im_in, iml), v4_store(im_in + hc, imh);
    for (Py_ssize_t q = 0; q < gr->k; q++) {
        double re = 0.0, im = 0.0;
        for (Py_ssize_t i = 0; i < c; i++) {
            const double w = gr->mat[i * gr->k + q];
            if (w != 0.0) {
                re += w * re_in[i];
                im += w * im_in[i];
            }
        }
        o_re[q] = re;
        o_im[q] = im;
    }
    int finite = 1;      /* an input's DFT sums are finite unless one of its samples is NaN or infinite */
    for (Py_ssize_t i = 0; i < c; i++)
        finite &= re_in[i] * 0.0 + im_in[i] * 0.0 == 0.0;
    return finite;
}

/* Cycle cy's outputs of cycle_stats from its sums. */
static inline void cycle_outputs(Py_ssize_t cy, Py_ssize_t k, Py_ssize_t half, double rms_dft, const double *acc_sq0,
                                 const double *acc_sq1, const double *acc_pk, const double *acc_re,
                                 const double *acc_im, double *sq, double *ms, double *peak, double *fund)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        const double h0 = acc_sq0[q] / (double)half, h1 = acc_sq1[q] / (double)half;
        sq[(cy * 2) * k + q] = h0;
        sq[(cy * 2 + 1) * k + q] = h1;
        ms[cy * k + q] = (h0 + h1) / 2;
        peak[cy * k + q] = acc_pk[q];
        fund[2 * (cy * k + q)] = acc_re[q] * rms_dft;          /* RMS phasor, cosine reference */
        fund[2 * (cy * k + q) + 1] = -acc_im[q] * rms_dft;
    }
}

/* Whether the n values at x are all finite (x * 0 is 0 for them, NaN for a NaN or an infinity). */
static inline int all_finite(const double *x, Py_ssize_t n)
{
    v4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    double tail = 0.0;
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {      /* four independent sums: no chain of dependent additions */
        a0 += v4_load(x + i) * 0.0;
        a1 += v4_load(x + i + 4) * 0.0;
        a2 += v4_load(x + i + 8) * 0.0;
        a3 += v4_load(x + i + 12) * 0.0;
    }
    for (; i < n; i++)
        tail += x[i] * 0.0;
    const v4d acc = (a0 + a1) + (a2 + a3);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail == 0.0;
}

/* The sums of cycle_stats_core for one cycle (s rows of c inputs at x) with a NaN or infinite input, as the reference
 * forms them: each derived signal the sum of every input's term, zero weights included (zero times NaN or infinity
 * is NaN: such a sample is NaN in every signal), and the peak NaN where the signal has a NaN (numpy's max). The
 * fast forms leave zero weights out, or take the peak of the numbers; they serve every cycle of finite inputs. */
static __attribute__((noinline, cold)) void cycle_sums_nonfinite(const double *x, const double *mat, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k,
                                 const double *cs, const double *sn, Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi,
                                 double *sq0, double *sq1, double *pk, double *re, double *im, double *vi)
{
    for (Py_ssize_t q = 0; q < k; q++)
        sq0[q] = sq1[q] = pk[q] = re[q] = im[q] = 0.0;
    for (Py_ssize_t q = 0; q < nvi; q++)
        vi[q] = 0.0;
    for (Py_ssize_t j = 0; j < s; j++) {
        double y[CS_MAX_K];
        for (Py_ssize_t q = 0; q < k; q++) {
            double v = 0.0;
            for (Py_ssize_t i = 0; i < c; i++)
                v += x[j * c + i] * mat[i * k + q];
            y[q] = v;
        }
        double *sq = j < s / 2 ? sq0 : sq1;
        for (Py_ssize_t q = 0; q < k; q++) {
            const double a = fabs(y[q]);
            sq[q] += y[q] * y[q];
            pk[q] = isnan(pk[q]) || !(isnan(a) || a > pk[q]) ? pk[q] : a;
            re[q] += y[q] * cs[j];
            im[q] += y[q] * sn[j];
        }
        for (Py_ssize_t q = 0; q < nvi; q++)
            vi[q] += y[v0 + q] * y[i0 + q];
    }
}

/* The cycle_stats pass over m cycles (see k_cycle_stats), y a scratch block (s, kp), kp a multiple of 4. */
PER_CPU
static void cycle_stats_core(const double *x, const double *mat, Py_ssize_t m, Py_ssize_t s, Py_ssize_t c,
                             Py_ssize_t k, int kp, int p_max, const int *ell_in, const double *ell_w, const double *cs, const double *sn,
                             Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi, double *y, double *sq, double *ms,
                             double *peak, double *vi, double *fund)
{
    const Py_ssize_t half = s / 2;
    const double rms_dft = sqrt(2.0) / (double)s;
    const int vi_vec = nvi <= 4 && v0 + 4 <= kp && i0 + 4 <= kp;
    const int in_registers = kp == 12 && nvi <= 4 && c >= 4 && c <= 8;
    groups12 gr = {.c = 0};
    double last[CS_MAX_C + 3] = {0};
    if (in_registers) {
        groups12_init(&gr, mat, c, k, v0, i0, nvi);
        /* cos and sin with three items more, and the last cycle's last row (its reads past the row are past x):
         * the register form reads three items past each (splat_at). In y, which it does not use: s * kp >= 2s + 6 */
        if (s > 0) {
            memcpy(y, cs, (size_t)s * sizeof(double));
            memcpy(y + s + 3, sn, (size_t)s * sizeof(double));
            y[s] = y[s + 1] = y[s + 2] = y[2 * s + 3] = y[2 * s + 4] = y[2 * s + 5] = 0.0;
            cs = y;
            sn = y + s + 3;
        }
        if (m > 0 && s > 0)
            memcpy(last, x + ((m - 1) * s + s - 1) * c, (size_t)c * sizeof(double));
    }
    for (Py_ssize_t cy = 0; cy < m; cy++) {
        double acc_sq0[CS_MAX_K], acc_sq1[CS_MAX_K], acc_pk[CS_MAX_K], acc_re[CS_MAX_K], acc_im[CS_MAX_K];
        double acc_vi[16];
        const double *xc = x + cy * s * c, *last_row = cy == m - 1 ? last : NULL;
        int finite;
        if (in_registers) {
            /* the board's inputs, the products' voltages the first group: the terms of the system types' matrices
             * (each its own copy of the loop, the others left out), or of every input */
            const unsigned used3 = gr.used & USED(0x7f, 0x7f, 0x7f, 0);
            if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_4W_WYE)
                finite = cycle_stats12(&gr, 7, USED_I6_4W_WYE, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_3W_WYE)
                finite = cycle_stats12(&gr, 7, USED_I6_3W_WYE, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_DELTA)
                finite = cycle_stats12(&gr, 7, USED_I6_DELTA, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6)
                finite = cycle_stats12(&gr, 7, USED_I6_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7)
                finite = cycle_stats12(&gr, 7, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0)
                finite = cycle_stats12(&gr, 0, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else
                finite = cycle_stats12(&gr, 3, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
        } else if ((finite = all_finite(xc, s * c))) {
            for (Py_ssize_t j0 = 0; j0 < s; j0 += DERIVE_ROWS)    /* a few rows at a time: their lines stay in L1 */
                derive_block(xc + j0 * c, s - j0 < DERIVE_ROWS ? s - j0 : DERIVE_ROWS, c, k, kp, p_max, ell_in, ell_w,
                             y + j0 * kp);
            cycle_block_stats(y, s, kp, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im);
            if (vi_vec) {
                v4d acc = {0, 0, 0, 0};
                for (Py_ssize_t j = 0; j < s; j++)
                    acc += v4_load(y + j * kp + v0) * v4_load(y + j * kp + i0);
                v4_store(acc_vi, acc);
            } else {
                for (Py_ssize_t q = 0; q < nvi; q++) {
                    acc_vi[q] = 0.0;
                    for (Py_ssize_t j = 0; j < s; j++)
                        acc_vi[q] += y[j * kp + v0 + q] * y[j * kp + i0 + q];
                }
            }
        }
        if (!finite)
            cycle_sums_nonfinite(xc, mat, s, c, k, cs, sn, v0, i0, nvi, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                 acc_vi);
        for (Py_ssize_t q = 0; q < nvi; q++)
            vi[cy * nvi + q] = acc_vi[q] / (double)s;
        cycle_outputs(cy, k, half, rms_dft, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im, sq, ms, peak, fund);
    }
}

/* cycle_stats_core of m cycles with its scratch block and mat's ELL form: 0, -1 where the block's size overflows,
 * -2 where it cannot be allocated. Takes no Python object: runs without the GIL. */
static int cycle_stats_run(const double *x, const double *mat, Py_ssize_t m, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k,
                           const double *cs, const double *sn, Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi,
                           double *sq, double *ms, double *peak, double *vi, double *fund)
{
    const int kp = k <= CS_K12 ? CS_K12 : (int)((k + 3) & ~(Py_ssize_t)3);   /* the statistics go in fours */
    const Py_ssize_t y_bytes = ITEMS(s > 0 ? s : 1, kp, sizeof(double));
    if (y_bytes < 0)
        return -1;
    double *y = PyMem_RawMalloc((size_t)y_bytes);
    if (y == NULL)
        return -2;
    /* mat as at most P terms per derived signal (ELL format), in input order; a column with fewer
     * terms is padded with weight 0 on its own first input, which adds exact zeros at the end */
    int ell_in[CS_MAX_K * CS_MAX_C] = {0};
    double ell_w[CS_MAX_K * CS_MAX_C] = {0};
    int p_max = 1;
    for (Py_ssize_t q = 0; q < k; q++) {
        int n = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0)
                n++;
        p_max = n > p_max ? n : p_max;
    }
    for (Py_ssize_t q = 0; q < k; q++) {
        int n = 0, first = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0) {
                if (n == 0)
                    first = (int)i;
                ell_in[q * p_max + n] = (int)i;
                ell_w[q * p_max + n++] = mat[i * k + q];
            }
        for (; n < p_max; n++)
            ell_in[q * p_max + n] = first;
    }
    cycle_stats_core(x, mat, m, s, c, k, kp, p_max, ell_in, ell_w, cs, sn, v0, i0, nvi, y, sq, ms, peak, vi, fund);
    PyMem_RawFree(y);
    return 0;
}

/* cycle_stats(x (m, s, c), mat (c, k), cos (s,), sin (s,), half_ms (m, 2, k), ms (m, k), peak (m, k),
 *             vi (m, nvi), fund (m, k) complex as (re, im) pairs, m, s, c, k, v0, i0, nvi): for the derived
 *             signals y = x @ mat of every cycle, the mean square of each half and of the cycle, the peak
 *             |y|, the mean of y[v0+q] * y[i0+q], and the RMS phasor of DFT bin 1 (cosine reference).
 *             Each cycle's derived signals are formed row by row in registers (cycle_stats12), or, for the
 *             shapes that form does not take, from the nonzero entries of mat into a scratch block, then
 *             reduced. */
static PyObject *k_cycle_stats(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(9);
    Py_ssize_t m, s, c, k, v0, i0, nvi;
    if (kernel_args(args, o, 9, "nnnnnnn", &m, &s, &c, &k, &v0, &i0, &nvi))
        return NULL;
    if (k > CS_MAX_K || c > CS_MAX_C || nvi > 16 || v0 < 0 || i0 < 0 || v0 + nvi > k || i0 + nvi > k)
        return bad_args("cycle_stats: too many signals or bad v/i indices");
    const array_arg spec[] = {{"x", 0, ITEMS(m, s, c)}, {"mat", 0, ITEMS(c, k)}, {"cos", 0, ITEMS(s)},
                              {"sin", 0, ITEMS(s)}, {"half_ms", 1, ITEMS(m, 2, k)}, {"ms", 1, ITEMS(m, k)},
                              {"peak", 1, ITEMS(m, k)}, {"vi", 1, ITEMS(m, nvi)}, {"fund", 1, ITEMS(m, 2, k)}};
    if (get_arrays(o, spec, 9, b))
        return NULL;
    const double *x = b[0].view.buf, *mat = b[1].view.buf, *cs = b[2].view.buf, *sn = b[3].view.buf;
    double *sq = b[4].view.buf, *ms = b[5].view.buf, *peak = b[6].view.buf, *vi = b[7].view.buf;
    double *fund = b[8].view.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = cycle_stats_run(x, mat, m, s, c, k, cs, sn, v0, i0, nvi, sq, ms, peak, vi, fund);
    Py_END_ALLOW_THREADS
    release(b, 9);
    if (ok < 0)
        return ok == -1 ? bad_args("cycle_stats: bad dimensions") : PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* cycle_batch(buf (n, c), bounds (ncyc + 1,), real (ncyc + 1,), delays (c,), mat (c, k), cos (spc,), sin (spc,),
 *             samples (ncyc, spc, c), start, end, duration, freq (cap,), half_ms (cap, 2, k), ms (cap, k),
 *             peak (cap, k), vi (cap, nvi), fund (cap, k) complex as (re, im) pairs,
 *             n, c, ncyc, spc, k, v0, i0, nvi, cap, row, offset, fs, fmin, fmax):
 *             resample_cycles of the ncyc cycles between bounds into samples, cycle_stats of them into rows
 *             row .. row + ncyc - 1 of half_ms .. fund, and each cycle's boundaries, its duration in seconds
 *             ((end - start) / fs) and frequency (1 / duration; NaN unless it is within fmin .. fmax and both
 *             its boundaries are measured crossings, real nonzero) into the same rows of start .. freq. One
 *             call for the resampler and the per-cycle stage of a batch, writing into a cycle log's columns. */
static PyObject *k_cycle_batch(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(17);
    Py_ssize_t n, c, ncyc, spc, k, v0, i0, nvi, cap, row;
    double offset, fs, fmin, fmax;
    if (kernel_args(args, o, 17, "nnnnnnnnnndddd", &n, &c, &ncyc, &spc, &k, &v0, &i0, &nvi, &cap, &row, &offset,
                    &fs, &fmin, &fmax))
        return NULL;
    if (spc < 1 || spc > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double) || ncyc < 0 || ncyc == PY_SSIZE_T_MAX ||
        (n < 1 && ncyc > 0 && c > 0))
        return bad_args("cycle_batch: spc must be positive, and a buffer needs a row to resample");
    if (k > CS_MAX_K || c > CS_MAX_C || nvi > 16 || v0 < 0 || i0 < 0 || v0 + nvi > k || i0 + nvi > k)
        return bad_args("cycle_batch: too many signals or bad v/i indices");
    if (row < 0 || cap < 0 || row > cap || ncyc > cap - row)
        return bad_args("cycle_batch: the cycles' rows are past the columns");
    const array_arg spec[] = {{"buf", 0, ITEMS(n, c)}, {"bounds", 0, ncyc + 1}, {"real", 0, ncyc + 1},
                              {"delays", 0, ITEMS(c)}, {"mat", 0, ITEMS(c, k)}, {"cos", 0, ITEMS(spc)},
                              {"sin", 0, ITEMS(spc)}, {"samples", 1, ITEMS(ncyc, spc, c)}, {"start", 1, cap},
                              {"end", 1, cap}, {"duration", 1, cap}, {"freq", 1, cap},
                              {"half_ms", 1, ITEMS(cap, 2, k)}, {"ms", 1, ITEMS(cap, k)}, {"peak", 1, ITEMS(cap, k)},
                              {"vi", 1, ITEMS(cap, nvi)}, {"fund", 1, ITEMS(cap, 2, k)}};
    if (get_arrays(o, spec, 17, b))
        return NULL;
    double *grid = PyMem_RawMalloc((size_t)spc * sizeof(double));
    if (grid == NULL)
        return no_memory(b, 17);
    const double *bounds = b[1].view.buf, *real = b[2].view.buf;
    double *samples = b[7].view.buf, *start = b[8].view.buf, *end = b[9].view.buf, *duration = b[10].view.buf;
    double *freq = b[11].view.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < spc; j++)
        grid[j] = (double)j / (double)spc;
    resample_core(b[0].view.buf, n, c, bounds, grid, spc, offset, ncyc * spc, b[3].view.buf, samples);
    ok = cycle_stats_run(samples, b[4].view.buf, ncyc, spc, c, k, b[5].view.buf, b[6].view.buf, v0, i0, nvi,
                         (double *)b[12].view.buf + row * 2 * k, (double *)b[13].view.buf + row * k,
                         (double *)b[14].view.buf + row * k, (double *)b[15].view.buf + row * nvi,
                         (double *)b[16].view.buf + row * 2 * k);
    for (Py_ssize_t q = 0; q < ncyc; q++) {       /* as numpy: (end - start) / fs, 1 / duration, NaN unless kept */
        const double d = (bounds[q + 1] - bounds[q]) / fs, f = 1.0 / d;
        start[row + q] = bounds[q];
        end[row + q] = bounds[q + 1];
        duration[row + q] = d;
        freq[row + q] = f >= fmin && f <= fmax && real[q] != 0.0 && real[q + 1] != 0.0 ? f : NAN;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(grid);
    release(b, 17);
    if (ok < 0)
        return ok == -1 ? bad_args("cycle_batch: bad dimensions") : PyErr_NoMemory();
    Py_RETURN_NONE;
}

#define SOS_MAX_SECTIONS 16
#define SOS_MAX_COLUMNS 16
#define SQ_MAX_K 3          /* run_squares' outputs at most (the flickermeter's three voltages) */

/* A biquad section of a cascade: direct form II transposed, coefficients over a0, in scipy's order of operations
 * (the tracker's boundaries, and everything resampled between them, follow its output to the last bit). */
typedef struct {
    double b0, b1, b2, a1, a2;
} biquad;

static void biquads(const double *sos, Py_ssize_t ns, biquad *q)
{
    for (Py_ssize_t s = 0; s < ns; s++) {
        const double *c = sos + 6 * s;
        q[s].b0 = c[0] / c[3];
        q[s].b1 = c[1] / c[3];
        q[s].b2 = c[2] / c[3];
        q[s].a1 = c[4] / c[3];
        q[s].a2 = c[5] / c[3];
    }
}

static inline __attribute__((always_inline)) double biquad_step(const biquad *q, double *z0, double *z1, double v)
{
    const double y = q->b0 * v + *z0;
    *z0 = q->b1 * v - q->a1 * y + *z1;
    *z1 = q->b2 * v - q->a2 * y;
    return y;
}

/* y[i] = the cascade of ns sections q on u[i], i < n, from and into the states z (ns, 2). Called with ns a
 * constant, the states stay in registers and the sections of consecutive samples overlap. */
static inline __attribute__((always_inline)) void cascade(const biquad *q, int ns, double *z, const double *u,
                                                          double *y, Py_ssize_t n)
{
    double z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        z0[s] = z[2 * s];
        z1[s] = z[2 * s + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = u[i];
        for (int s = 0; s < ns; s++)
            v = biquad_step(q + s, z0 + s, z1 + s, v);
        y[i] = v;
    }
    for (int s = 0; s < ns; s++) {
        z[2 * s] = z0[s];
        z[2 * s + 1] = z1[s];
    }
}

static void cascade_any(const biquad *q, Py_ssize_t ns, double *z, const double *u, double *y, Py_ssize_t n)
{
    switch (ns) {
    case 1: cascade(q, 1, z, u, y, n); break;
    case 2: cascade(q, 2, z, u, y, n); break;
    case 3: cascade(q, 3, z, u, y, n); break;
    case 4: cascade(q, 4, z, u, y, n); break;
    default: cascade(q, (int)ns, z, u, y, n);
    }
}

/* sosfilt(sos (ns, 6), x (n, c), zi (ns, 2) in/out, y (n,), ns, n[, w (c,), c]): direct form II transposed
 * biquads as scipy, on x or, with weights w, on the weighted sum of x's c columns (formed sample by sample in
 * column order, a chunk at a time ahead of the filter). */
#define SOS_CHUNK 256
#define TRACK_PREFETCH_ROWS 48    /* rows ahead of the tracker's filter: ~2.7 kB of seven inputs */
static PyObject *k_sosfilt(PyObject *self, PyObject *args)
{
    PyObject *o[5] = {NULL, NULL, NULL, NULL, Py_None};
    buf_t b[5] = {{.held = 0}};
    Py_ssize_t ns, n, c = 1;
    if (kernel_args(args, o, 4, "nn|On", &ns, &n, &o[4], &c))
        return NULL;
    const int mixed = o[4] != Py_None;
    if (ns < 0 || ns > SOS_MAX_SECTIONS || c < 1 || c > SOS_MAX_COLUMNS || (!mixed && c != 1))
        return bad_args("sosfilt: too many sections, or bad column count");
    const array_arg spec[] = {{"sos", 0, ITEMS(ns, 6)}, {"x", 0, ITEMS(n, c)}, {"zi", 1, ITEMS(ns, 2)}, {"y", 1, ITEMS(n)},
                              {"w", 0, ITEMS(c)}};
    if (get_arrays(o, spec, mixed ? 5 : 4, b))
        return NULL;
    const double *x = b[1].view.buf;
    double *zi = b[2].view.buf, *y = b[3].view.buf;
    double w[SOS_MAX_COLUMNS] = {1.0};
    int nw = 0, wi[SOS_MAX_COLUMNS] = {0};   /* the nonzero weights, in column order */
    if (mixed) {
        for (Py_ssize_t k = 0; k < c; k++)
            if (((const double *)b[4].view.buf)[k] != 0.0) {
                wi[nw] = (int)k;
                w[nw++] = ((const double *)b[4].view.buf)[k];
            }
    }
    Py_BEGIN_ALLOW_THREADS
    biquad q[SOS_MAX_SECTIONS];
    biquads(b[0].view.buf, ns, q);
    if (!mixed) {
        cascade_any(q, ns, zi, x, y, n);
    } else {
        double u[SOS_CHUNK];
        for (Py_ssize_t lo = 0; lo < n; lo += SOS_CHUNK) {
            const Py_ssize_t m = n - lo < SOS_CHUNK ? n - lo : SOS_CHUNK;
            const double *xc = x + lo * c;
            if (nw == 3) {      /* the reference of a three-phase wiring */
                const double *x0 = xc + wi[0], *x1 = xc + wi[1], *x2 = xc + wi[2], w0 = w[0], w1 = w[1], w2 = w[2];
                for (Py_ssize_t i = 0; i < m; i++)
                    u[i] = ((0.0 + w0 * x0[i * c]) + w1 * x1[i * c]) + w2 * x2[i * c];
            } else {
                for (Py_ssize_t i = 0; i < m; i++) {
                    double v = 0.0;
                    for (int k = 0; k < nw; k++)
                        v += w[k] * xc[i * c + wi[k]];
                    u[i] = v;
                }
            }
            cascade_any(q, ns, zi, u, y + lo, m);
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 5);
    Py_RETURN_NONE;
}

/* harmonic_groups(lines (ns, 2 * nl) complex DFT lines as (re, im) pairs, g2 (ns, no - 1), inter2 (ns, no - 1),
 *                 phase (ns, no), ns, nl, n, no): for a window of n cycles (line h*n is harmonic h), per
 *                 signal: g2[h-1] = sum of |X|^2 over lines h*n-1 .. h*n+1 (only h*n when n < 2) for orders
 *                 h = 1 .. no-1; inter2[h] = sum of |X|^2 over lines h*n+2 .. h*n+n-2 for h = 0 .. no-2 (zero
 *                 when n < 4); phase[h] = atan2 of line h*n for h = 0 .. no-1. Needs nl >= no * n. */
static PyObject *k_harmonic_groups(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t ns, nl, n, no;
    if (kernel_args(args, o, 4, "nnnn", &ns, &nl, &n, &no))
        return NULL;
    if (n < 1 || no < 2 || ITEMS(no, n) < 0 || nl < ITEMS(no, n))
        return bad_args("harmonic_groups: needs n >= 1, no >= 2 and nl >= no * n");
    const array_arg spec[] = {{"lines", 0, ITEMS(ns, 2, nl)}, {"g2", 1, ITEMS(ns, no - 1)},
                              {"inter2", 1, ITEMS(ns, no - 1)}, {"phase", 1, ITEMS(ns, no)}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    const double *lines = b[0].view.buf;
    double *g2 = b[1].view.buf, *inter2 = b[2].view.buf, *phase = b[3].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t sg = 0; sg < ns; sg++) {
        const double *x = lines + sg * 2 * nl;
        for (Py_ssize_t h = 0; h < no; h++) {
            const Py_ssize_t c = h * n;
            phase[sg * no + h] = atan2(x[2 * c + 1], x[2 * c]);
            if (h >= 1) {
                double g = x[2 * c] * x[2 * c] + x[2 * c + 1] * x[2 * c + 1];
                if (n >= 2) {
                    const double *l = x + 2 * (c - 1), *r = x + 2 * (c + 1);
                    g += (l[0] * l[0] + l[1] * l[1]) + (r[0] * r[0] + r[1] * r[1]);
                }
                g2[sg * (no - 1) + h - 1] = g;
            }
            if (h < no - 1) {
                double acc = 0.0;
                for (Py_ssize_t j = 2; j <= n - 2; j++) {
                    const double *v = x + 2 * (c + j);
                    acc += v[0] * v[0] + v[1] * v[1];
                }
                inter2[sg * (no - 1) + h] = acc;
            }
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 4);
    Py_RETURN_NONE;
}

/* max |y[j]| over lo <= j < hi (0 for none; NaN if one is, as numpy's max): four running maxima in two two-double
 * vectors, then the rest one by one (the greatest is the same in any order). */
static inline double abs_peak(const double *y, Py_ssize_t lo, Py_ssize_t hi)
{
    const v2l magnitude = {INT64_MAX, INT64_MAX};
    v2d m0 = {0.0, 0.0}, m1 = {0.0, 0.0};
    v2l nan2 = {0, 0};
    Py_ssize_t j = lo;
    for (; j + 4 <= hi; j += 4) {
        v2d a, b;
        memcpy(&a, y + j, sizeof a);
        memcpy(&b, y + j + 2, sizeof b);
        a = (v2d)((v2l)a & magnitude);
        b = (v2d)((v2l)b & magnitude);
        nan2 |= (a != a) | (b != b);
        const v2l ga = a > m0, gb = b > m1;
        m0 = (v2d)(((v2l)a & ga) | ((v2l)m0 & ~ga));
        m1 = (v2d)(((v2l)b & gb) | ((v2l)m1 & ~gb));
    }
    const double lanes[4] = {m0[0], m0[1], m1[0], m1[1]};
    double pk = 0.0;
    int nan = (nan2[0] | nan2[1]) != 0;
    for (int l = 0; l < 4; l++)
        pk = lanes[l] > pk ? lanes[l] : pk;
    for (; j < hi; j++) {
        const double a = fabs(y[j]);
        pk = a > pk ? a : pk;
        nan |= a != a;
    }
    return nan ? NAN : pk;
}

/* The rising crossing between y[k] < 0 <= y[k+1]: the root in [0, 1] of the cubic through (-1, y[k-1]) ..
 * (2, y[k+2]) by three Newton steps from the linear estimate; *peak = max |y| over y[max(k-half, 0) .. k] (NaN if
 * one is). */
static inline double crossing_root(const double *y, Py_ssize_t k, Py_ssize_t half, double *peak)
{
    const double ym = y[k - 1], y0 = y[k], y1 = y[k + 1], y2 = y[k + 2];
    const double c1 = -ym / 3 - y0 / 2 + y1 - y2 / 6;
    const double c2 = (ym + y1) / 2 - y0;
    const double c3 = (y2 - ym) / 6 + (y0 - y1) / 2;
    double u = y0 / (y0 - y1);
    for (int it = 0; it < 3; it++)
        u -= (y0 + u * (c1 + u * (c2 + u * c3))) / (c1 + u * (2 * c2 + 3 * u * c3));
    *peak = abs_peak(y, k - half > 0 ? k - half : 0, k + 1);
    return u;
}

/* rising_crossings(y (n,), idx (n,), root (n,), peak (n,), n, lo, half) -> count: every k in lo .. n-3 with
 * y[k] < 0 <= y[k+1] (k >= 1), the root in [0, 1] of the cubic through (-1, y[k-1]) .. (2, y[k+2]) by
 * three Newton steps from the linear estimate, and max |y| over y[max(k-half, 0) .. k]. */
static PyObject *k_rising_crossings(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t n, lo, half;
    if (kernel_args(args, o, 4, "nnn", &n, &lo, &half))
        return NULL;
    const array_arg spec[] = {{"y", 0, ITEMS(n)}, {"idx", 1, ITEMS(n)}, {"root", 1, ITEMS(n)}, {"peak", 1, ITEMS(n)}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    const double *y = b[0].view.buf;
    double *idx = b[1].view.buf, *root = b[2].view.buf, *peak = b[3].view.buf;
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = lo < 1 ? 1 : lo; k + 2 < n; k++) {
        if (!(y[k] < 0 && y[k + 1] >= 0))
            continue;
        double pk;
        const double u = crossing_root(y, k, half, &pk);
        idx[count] = (double)k;
        root[count] = u;
        peak[count++] = pk;
    }
    Py_END_ALLOW_THREADS
    release(b, 4);
    return PyLong_FromSsize_t(count);
}

/* The cycle tracker's state between crossings: state (4,) of reference.track_crossings, and the boundaries found. */
typedef struct {
    double period, last;
    int last_real, reacq;
    Py_ssize_t count;
} tracking;

static inline void tracking_load(tracking *tr, const double *st)
{
    tr->period = st[0];
    tr->last = st[1];
    tr->last_real = st[2] != 0.0;
    tr->reacq = st[3] != 0.0;
    tr->count = 0;
}

static inline void tracking_store(const tracking *tr, double *st)
{
    st[0] = tr->period;
    st[1] = tr->last;
    st[2] = tr->last_real;
    st[3] = tr->reacq;
}

/* The cycle tracker's step at the rising crossing y[k] < 0 <= y[k+1] (reference.track_crossings is the definition):
 * the crossing becomes a time base + k + root - delay, the delay interpolated in ``table`` (nt entries, sampled every
 * pr[2] Hz from pr[1]) at the frequency pr[3] / period; a crossing with a peak (over ``half`` samples before it)
 * below pr[4] or before pr[5] (NaN: no such limit) is skipped, the others go through the acceptance rules with the
 * limits pr[6..10] (min and max period, least fraction of the period, largest relative step, least fraction after a
 * virtual boundary); an accepted one is written to out_t[count], out_real[count]. */
static inline void track_crossing(const double *y, Py_ssize_t k, Py_ssize_t half, double base, tracking *tr,
                                  const double *table, Py_ssize_t nt, const double *pr, double *out_t, double *out_real)
{
    const double f0 = pr[1], step = pr[2], fs = pr[3], present = pr[4], settle = pr[5];
    const double min_period = pr[6], max_period = pr[7], min_ratio = pr[8], max_step = pr[9], after_virtual = pr[10];
    double pk;
    const double u = crossing_root(y, k, half, &pk);
    const double kf = (fs / tr->period - f0) / step;
    /* int(kf) clamped to the table; NaN (a NaN period) and values past an integer's range are not converted */
    const Py_ssize_t i = kf >= 1.0 ? (kf < (double)(nt - 2) ? (Py_ssize_t)kf : nt - 2) : 0;
    const double w = kf - (double)i;
    const double delay = table[i] * (1 - w) + table[i + 1] * w;
    const double t = (base + (double)k) + u - delay;
    if (pk < present || (!isnan(settle) && t < settle))
        return;
    int real = 1;
    if (!isnan(tr->last)) {
        const double delta = t - tr->last;
        if (tr->last_real) {
            const double least = min_ratio * tr->period;
            if (delta < (min_period >= least ? min_period : least))
                return;                                    /* noise: a second crossing in one cycle */
            const int plausible = fabs(delta / tr->period - 1) <= max_step;
            if ((plausible || tr->reacq) && min_period <= delta && delta <= max_period) {
                tr->period = delta;
                tr->reacq = 0;
            } else {
                real = 0;
            }
        } else {
            if (delta < after_virtual * tr->period)
                return;
            tr->reacq = 1;
        }
    }
    tr->last = t;
    tr->last_real = real;
    out_t[tr->count] = t;
    out_real[tr->count++] = real;
}

/* track_crossings(y (n,), state (4,), table (nt,), params (11,), out_t (n,), out_real (n,), n, lo, half, nt) -> count:
 * the cycle tracker's pass over one block of its filtered reference (reference.track_crossings), track_crossing at
 * each rising crossing y[k] < 0 <= y[k+1], k from max(lo, 1) while y[k+2] is there, params[0] the index of y[0];
 * state (period, last (NaN: none), last_real, reacquiring) updated in place. */
static PyObject *k_track_crossings(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(6);
    Py_ssize_t n, lo, half, nt;
    if (kernel_args(args, o, 6, "nnnn", &n, &lo, &half, &nt))
        return NULL;
    if (nt < 2)
        return bad_args("the delay table needs two entries");
    const array_arg spec[] = {{"y", 0, ITEMS(n)}, {"state", 1, 4}, {"table", 0, nt}, {"params", 0, 11},
                              {"out_t", 1, ITEMS(n)}, {"out_real", 1, ITEMS(n)}};
    if (get_arrays(o, spec, 6, b))
        return NULL;
    const double *y = b[0].view.buf, *table = b[2].view.buf, *pr = b[3].view.buf;
    double *st = b[1].view.buf;
    tracking tr;
    Py_BEGIN_ALLOW_THREADS
    tracking_load(&tr, st);
    for (Py_ssize_t k = lo < 1 ? 1 : lo; k + 2 < n; k++)
        if (y[k] < 0 && y[k + 1] >= 0)
            track_crossing(y, k, half, pr[0], &tr, table, nt, pr, b[4].view.buf, b[5].view.buf);
    tracking_store(&tr, st);
    Py_END_ALLOW_THREADS
    release(b, 6);
    return PyLong_FromSsize_t(tr.count);
}

/* The reference filter over n rows of x (n, c) into y[0 .. n-1]: the weighted sum of the nw columns wi[] with weights
 * w[] (formed as k_sosfilt forms it, in column order from 0.0; with nw < 0, x's single column itself), then the
 * cascade of ns sections from and into the states z, sample by sample; each i with y[i-1] < 0 <= y[i] (``prev`` is
 * y[-1]) is noted as the crossing k = i - 1 + at in cand[], and the count returned. The cascade's recursion bounds the
 * loop: the weighted sum, the crossing test and the loads of the rows ahead (prefetched) run in its shadow. */
static inline __attribute__((always_inline)) Py_ssize_t filter_rows(const biquad *q, int ns, double *z,
                                                                    const double *x, Py_ssize_t c, const int *wi,
                                                                    const double *w, int nw, double *restrict y,
                                                                    Py_ssize_t n, double prev, Py_ssize_t at,
                                                                    Py_ssize_t *restrict cand)
{
    Py_ssize_t nc = 0;
    double z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        z0[s] = z[2 * s];
        z1[s] = z[2 * s + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *r = x + i * c;
        if (i + TRACK_PREFETCH_ROWS < n)
            __builtin_prefetch(r + TRACK_PREFETCH_ROWS * c);
        double v;
        if (nw < 0) {
            v = r[0];
        } else if (nw == 3) {
            v = ((0.0 + w[0] * r[wi[0]]) + w[1] * r[wi[1]]) + w[2] * r[wi[2]];
        } else {
            v = 0.0;
            for (int k = 0; k < nw; k++)
                v += w[k] * r[wi[k]];
        }
        for (int s = 0; s < ns; s++)
            v = biquad_step(q + s, z0 + s, z1 + s, v);
        y[i] = v;
        cand[nc] = i - 1 + at;
        nc += prev < 0 && v >= 0;
        prev = v;
    }
    for (int s = 0; s < ns; s++) {
        z[2 * s] = z0[s];
        z[2 * s + 1] = z1[s];
    }
    return nc;
}

/* track_block(x (n, c), w (c,), sos (ns, 6), zi (ns, 2), tail (tl,), hist (hl, c), state (5,), table (nt,),
 *             params (11,), out_t (n,), out_real (n,), n, c, ns, tl, hl, nt, mixed) -> count: the cycle tracker's
 * usual pass over a block (reference.track_block): the reference (the weighted sum of x's columns with mixed, else
 * x's single column) through the filter from zi, after the last state[4] filtered samples kept right-aligned in
 * tail; track_crossing at each rising crossing of the two from max(state[4] - 2, 1) while the sample two after it
 * is there, half the peak's window floor(period / 2), params[0] the index of x's first row; zi, tail and state
 * left for the next block, and hist the last hl rows of x when there are that many. */
static PyObject *k_track_block(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(11);
    Py_ssize_t n, c, ns, tl, hl, nt;
    int mixed;
    if (kernel_args(args, o, 11, "nnnnnnp", &n, &c, &ns, &tl, &hl, &nt, &mixed))
        return NULL;
    if (ns < 0 || ns > SOS_MAX_SECTIONS || c < 1 || c > SOS_MAX_COLUMNS || (!mixed && c != 1) || nt < 2)
        return bad_args("track_block: bad section count, column count or delay table");
    const array_arg spec[] = {{"x", 0, ITEMS(n, c)}, {"w", 0, ITEMS(c)}, {"sos", 0, ITEMS(ns, 6)},
                              {"zi", 1, ITEMS(ns, 2)}, {"tail", 1, ITEMS(tl)}, {"hist", 1, ITEMS(hl, c)},
                              {"state", 1, 5}, {"table", 0, nt}, {"params", 0, 11}, {"out_t", 1, ITEMS(n)},
                              {"out_real", 1, ITEMS(n)}};
    if (get_arrays(o, spec, 11, b))
        return NULL;
    double *st = b[6].view.buf;
    const double kept = st[4];
    if (!(kept >= 0.0 && kept <= (double)tl)) {
        release(b, 11);
        return bad_args("track_block: the tail count is not within the tail");
    }
    /* n and tl are at most their buffers' items: m and the scratch's size do not overflow */
    const Py_ssize_t t = (Py_ssize_t)kept, m = t + n;
    double *yy = PyMem_RawMalloc((size_t)m * sizeof(double) + (size_t)(m + 1) * sizeof(Py_ssize_t));
    if (yy == NULL)
        return no_memory(b, 11);
    Py_ssize_t *cand = (Py_ssize_t *)(yy + m);     /* the rising crossings, in order */
    const double *x = b[0].view.buf, *wv = b[1].view.buf, *pr = b[8].view.buf;
    double *zi = b[3].view.buf, *tail = b[4].view.buf, *hist = b[5].view.buf;
    tracking tr;
    Py_BEGIN_ALLOW_THREADS
    double w[SOS_MAX_COLUMNS];
    int nw = -1, wi[SOS_MAX_COLUMNS];      /* the nonzero weights, in column order */
    if (mixed) {
        nw = 0;
        for (Py_ssize_t k = 0; k < c; k++)
            if (wv[k] != 0.0) {
                wi[nw] = (int)k;
                w[nw++] = wv[k];
            }
    }
    biquad q[SOS_MAX_SECTIONS];
    biquads(b[2].view.buf, ns, q);
    if (t > 0)
        memcpy(yy, tail + (tl - t), (size_t)t * sizeof(double));
    /* the crossings whose pair is in the tail (the last ones of the block before waited for two samples more), then
     * those the filter meets */
    const Py_ssize_t lo = t - 2 > 1 ? t - 2 : 1;
    Py_ssize_t nc = 0;
    for (Py_ssize_t k = lo; k + 1 < t; k++)
        if (yy[k] < 0 && yy[k + 1] >= 0)
            cand[nc++] = k;
    const double prev = t > 0 ? yy[t - 1] : 0.0;
    if (ns == 2 && nw == 3)          /* the tracker's 4th-order filter on the reference of a three-phase wiring */
        nc += filter_rows(q, 2, zi, x, c, wi, w, 3, yy + t, n, prev, t, cand + nc);
    else if (ns == 2 && nw < 0)
        nc += filter_rows(q, 2, zi, x, c, wi, w, -1, yy + t, n, prev, t, cand + nc);
    else if (ns == 2)
        nc += filter_rows(q, 2, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc);
    else
        nc += filter_rows(q, (int)ns, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc);
    const double hp = floor(st[0] / 2);
    const Py_ssize_t half = hp >= 0 ? (hp < (double)m ? (Py_ssize_t)hp : m) : 0;     /* NaN: 0 */
    tracking_load(&tr, st);
    for (Py_ssize_t j = 0; j < nc; j++) {
        const Py_ssize_t k = cand[j];
        if (k >= lo && k + 2 < m)
            track_crossing(yy, k, half, pr[0] - (double)t, &tr, b[7].view.buf, nt, pr, b[9].view.buf,
                           b[10].view.buf);
    }
    tracking_store(&tr, st);
    const Py_ssize_t keep = m < tl ? m : tl;
    if (keep > 0)
        memmove(tail + (tl - keep), yy + (m - keep), (size_t)keep * sizeof(double));
    st[4] = (double)keep;
    if (n >= hl && hl > 0)
        memcpy(hist, x + (n - hl) * c, (size_t)(hl * c) * sizeof(double));
    Py_END_ALLOW_THREADS
    PyMem_RawFree(yy);
    release(b, 11);
    return PyLong_FromSsize_t(tr.count);
}

/* The nonzero weights of each column q of mat (c, k), in row order: terms[q] of them, inputs in[q * c + u] and
 * weights w[q * c + u]. */
static void sparse_columns(const double *mat, Py_ssize_t c, Py_ssize_t k, Py_ssize_t *in, double *w,
                           Py_ssize_t *terms)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        terms[q] = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0) {
                in[q * c + terms[q]] = i;
                w[q * c + terms[q]++] = mat[i * k + q];
            }
    }
}

/* One cycle of a derived signal, y[t] = sum_u x[t * c + in[u]] w[u] for t < s (nt terms, a constant when inlined),
 * and, with the cycle before it (before, else NULL), the largest |y[t] - before[t]| (0 if none; NaN differences
 * count as 0): four running maxima, t mod 4. */
static inline __attribute__((always_inline)) double signal_change(const double *x, Py_ssize_t s, Py_ssize_t c,
                                                                  const Py_ssize_t *in, const double *w, int nt,
                                                                  const double *restrict before, double *restrict y)
{
    double mx[4] = {0.0, 0.0, 0.0, 0.0};
    Py_ssize_t t = 0;
    for (; t + 4 <= s; t += 4)
        for (int j = 0; j < 4; j++) {
            double v = 0.0;
            for (int u = 0; u < nt; u++)
                v += x[(t + j) * c + in[u]] * w[u];
            y[t + j] = v;
            if (before != NULL) {
                const double d = fabs(v - before[t + j]);
                mx[j] = d > mx[j] ? d : mx[j];
            }
        }
    for (; t < s; t++) {
        double v = 0.0;
        for (int u = 0; u < nt; u++)
            v += x[t * c + in[u]] * w[u];
        y[t] = v;
        if (before != NULL) {
            const double d = fabs(v - before[t]);
            mx[0] = d > mx[0] ? d : mx[0];
        }
    }
    const double a = mx[0] > mx[1] ? mx[0] : mx[1], b = mx[2] > mx[3] ? mx[2] : mx[3];
    return a > b ? a : b;
}

static int overlapping(const buf_t *b, int n);

/* cycle_change(x (m, s, c), matrix (c, k), prev (k, s), out (m,), last (k, s), m, s, c, k, has_prev): for each
 * cycle j the largest |y[j] - y[j-1]| over its samples and signals, y = x @ matrix (zero weights left out),
 * y[-1] = prev when has_prev, else cycle 0 gives 0; NaN differences count as 0; last = y[m-1] (prev when m is
 * 0, else zeros) (reference.cycle_change). prev and last are signal-major, the transposes of the reference's (s, k):
 * each signal's samples are formed and compared in a loop of their own, and a batch's last cycle is the next
 * batch's prev as it is. */
static PyObject *k_cycle_change(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(5);
    Py_ssize_t m, s, c, k;
    int has_prev;
    if (kernel_args(args, o, 5, "nnnnp", &m, &s, &c, &k, &has_prev))
        return NULL;
    if (m < 0 || s < 1 || c < 1 || c > 8 || k < 1 || k > 64)
        return bad_args("cycle_change: bad dimensions (at most 8 inputs and 64 signals)");
    const array_arg spec[] = {{"x", 0, ITEMS(m, s, c)}, {"matrix", 0, ITEMS(c, k)},
                              {"prev", 0, has_prev ? ITEMS(k, s) : 0}, {"out", 1, ITEMS(m)}, {"last", 1, ITEMS(k, s)}};
    if (get_arrays(o, spec, 5, b))
        return NULL;
    if (overlapping(b, 5)) {        /* last is written while x and prev are read */
        release(b, 5);
        return bad_args("cycle_change: the arrays share memory");
    }
    /* the cycles' signals: the last one goes straight to last, the one before it (and so on, alternately) to y */
    double *y = m > 1 ? PyMem_RawMalloc((size_t)(s * k) * sizeof(double)) : NULL;
    if (m > 1 && y == NULL)
        return no_memory(b, 5);
    const double *x = b[0].view.buf, *mat = b[1].view.buf, *prev = b[2].view.buf;
    double *out = b[3].view.buf, *last = b[4].view.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t in[64 * 8], terms[64];
    double w[64 * 8];
    sparse_columns(mat, c, k, in, w, terms);
    const double *before = has_prev ? prev : NULL;
    for (Py_ssize_t j = 0; j < m; j++) {
        const double *xj = x + j * s * c;
        double *cur = (m - 1 - j) % 2 ? y : last;
        double mx = 0.0;
        for (Py_ssize_t q = 0; q < k; q++) {
            const double *bq = before != NULL ? before + q * s : NULL;
            double d;
            switch (terms[q]) {
            case 1: d = signal_change(xj, s, c, in + q * c, w + q * c, 1, bq, cur + q * s); break;
            case 2: d = signal_change(xj, s, c, in + q * c, w + q * c, 2, bq, cur + q * s); break;
            default: d = signal_change(xj, s, c, in + q * c, w + q * c, (int)terms[q], bq, cur + q * s);
            }
            mx = d > mx ? d : mx;
        }
        out[j] = mx;
        before = cur;
    }
    if (m == 0) {
        if (has_prev)
            memcpy(last, prev, (size_t)(s * k) * sizeof(double));
        else
            memset(last, 0, (size_t)(s * k) * sizeof(double));
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(y);
    release(b, 5);
    Py_RETURN_NONE;
}

/* numpy's sum of n doubles at stride st (the first, then the pairwise sum of the rest: numpy's reduction),
 * for n <= 129 */
static double np_sum(const double *a, Py_ssize_t n, Py_ssize_t st)
{
    if (n <= 0)
        return 0.0;
    double res = a[0];
    a += st;
    n -= 1;
    if (n < 8) {
        double r = -0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            r += a[i * st];
        return res + r;
    }
    double r[8];
    for (int j = 0; j < 8; j++)
        r[j] = a[j * st];
    Py_ssize_t i;
    for (i = 8; i < n - (n % 8); i += 8)
        for (int j = 0; j < 8; j++)
            r[j] += a[(i + j) * st];
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++)
        sum += a[i * st];
    return res + sum;
}

/* fmod(a, 360), exactly: a - 360 q is exact for an integer q (both are multiples of a's last place), and q is
 * trunc(a / 360) corrected by one where the quotient's rounding reached the next integer; beyond 2^40 (or NaN,
 * infinity) fmod itself. A tenth of fmod's time. */
static inline double fmod360(double a)
{
    if (!(fabs(a) < 1099511627776.0))
        return fmod(a, 360.0);
    const double q = (double)(long long)(a * (1.0 / 360.0));
    const double r = a - 360.0 * q;
    if (a >= 0 ? r < 0 : r > 0)
        return a - 360.0 * (q - (a >= 0 ? 1.0 : -1.0));
    if (fabs(r) >= 360.0)
        return a - 360.0 * (q + (a >= 0 ? 1.0 : -1.0));
    return r != 0.0 ? r : copysign(0.0, a);
}

/* The harmonic values of signal sg of ns of an n-cycle window of length samples from its DFT lines x (>= no * n
 * complex as pairs) into row sg of mag, inter and angle, fund[sg] and column sg of ratio (harmonic_values, below,
 * says what each is); *ref the phase of signal 0's fundamental, which signal 0 sets (it comes first). */
static inline __attribute__((always_inline)) void harmonic_signal(
    const double *x, Py_ssize_t sg, const double *rms, const double *peak, const double *h1_min, Py_ssize_t ns,
    Py_ssize_t n, Py_ssize_t no, double length, double tdd_current, Py_ssize_t tdd_from, int has_min, double *mag,
    double *inter, double *angle, double *fund, double *ratio, double *ref)
{
    const double line_ms = 2.0 / (length * length);
    const double deg = 180.0 / 3.14159265358979323846;
    double g2[128], phase[128];
    double *mg = mag + sg * no, *it = inter + sg * no, *an = angle + sg * no;
    phase[1] = 0.0;      /* (the callers ask for no >= 2 orders: the loop sets it) */
    for (Py_ssize_t h = 0; h < no; h++) {
        const Py_ssize_t c = h * n;
        phase[h] = atan2(x[2 * c + 1], x[2 * c]);
        if (h >= 1) {
            double g = x[2 * c] * x[2 * c] + x[2 * c + 1] * x[2 * c + 1];
            if (n >= 2) {
                const double *l = x + 2 * (c - 1), *r = x + 2 * (c + 1);
                g += (l[0] * l[0] + l[1] * l[1]) + (r[0] * r[0] + r[1] * r[1]);
            }
            g2[h - 1] = g * line_ms;
            mg[h] = sqrt(g2[h - 1]);
        }
        if (h < no - 1 && n >= 4) {
            double acc = 0.0;
            for (Py_ssize_t j = 2; j <= n - 2; j++) {
                const double *v = x + 2 * (c + j);
                acc += v[0] * v[0] + v[1] * v[1];
            }
            it[h] = sqrt(acc * line_ms);
        } else {
            it[h] = NAN;
        }
    }
    mg[0] = hypot(x[0], x[1]) / length;
    if (sg == 0)
        *ref = phase[1];
    for (Py_ssize_t h = 0; h < no; h++) {
        double a = (phase[h] - (double)h * *ref) * deg + 180.0;
        double r = fmod360(a);
        if (r != 0.0) {
            if (r < 0)
                r += 360.0;
        } else {
            r = 0.0;
        }
        an[h] = r - 180.0;
    }
    const double k = sqrt(2.0) / length;
    fund[2 * sg] = x[2 * n] * k;
    fund[2 * sg + 1] = x[2 * n + 1] * k;
    const double hc2 = np_sum(g2 + 1, no - 2, 1);
    const double odd = np_sum(g2 + 2, (no - 2) / 2, 2), even = np_sum(g2 + 1, (no - 1) / 2, 2);
    double ksum = 0.0;
    for (Py_ssize_t h = 0; h < no - 1; h++)
        ksum += g2[h] * (double)((h + 1) * (h + 1));
    const double gsum = np_sum(g2, no - 1, 1);
    const double h1 = mg[1];
    const double num[6] = {sqrt(hc2) * 100.0, sqrt(hc2) * 100.0, sqrt(odd) * 100.0, sqrt(even) * 100.0,
                           peak[sg], ksum};
    const double den[6] = {h1, rms[sg], h1, h1, rms[sg], gsum};
    for (int q = 0; q < 6; q++) {
        int usable = den[q] > 0;
        if (has_min && (q == 0 || q == 2 || q == 3))
            usable = usable && h1 >= h1_min[sg];
        ratio[q * ns + sg] = usable ? num[q] / den[q] : NAN;
    }
    ratio[6 * ns + sg] = (tdd_current > 0 && sg >= tdd_from) ? num[0] / tdd_current : NAN;
}

/* The harmonic values of ns signals of an n-cycle window of length samples from their DFT lines (ns, nl)
 * complex as pairs (harmonic_values, below, says what each is). */
static void harmonic_core(const double *lines, const double *rms, const double *peak, const double *h1_min,
                          Py_ssize_t ns, Py_ssize_t nl, Py_ssize_t n, Py_ssize_t no, double length, double tdd_current,
                          Py_ssize_t tdd_from, int has_min, double *mag, double *inter, double *angle, double *fund,
                          double *ratio)
{
    double ref = 0.0;
    for (Py_ssize_t sg = 0; sg < ns; sg++)
        harmonic_signal(lines + sg * 2 * nl, sg, rms, peak, h1_min, ns, n, no, length, tdd_current, tdd_from, has_min,
                        mag, inter, angle, fund, ratio, &ref);
}

/* harmonic_values(lines (ns, nl) complex, rms (ns,), peak (ns,), h1_min (ns,), mag (ns, no), inter (ns, no),
 *                 angle (ns, no), fund (ns,) complex, ratio (7, ns), ns, nl, n, no, length, tdd_current,
 *                 tdd_from, has_h1_min): the harmonic values of an n-cycle window of ``length`` samples from its
 * DFT lines, as reference.harmonic_values defines them: subgroup and interharmonic RMS, angles relative to
 * signal 0's fundamental, the fundamental phasors, and THD, THD over RMS, odd and even THD, crest factor,
 * K-factor and TDD (signals tdd_from..). Needs no <= 128 and nl >= no * n. */
static PyObject *k_harmonic_values(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(9);
    Py_ssize_t ns, nl, n, no, tdd_from;
    double length, tdd_current;
    int has_min;
    if (kernel_args(args, o, 9, "nnnnddnp", &ns, &nl, &n, &no, &length, &tdd_current, &tdd_from, &has_min))
        return NULL;
    if (n < 1 || no < 2 || no > 128 || ITEMS(no, n) < 0 || nl < ITEMS(no, n) || ns < 1)
        return bad_args("harmonic_values: needs n >= 1, 2 <= no <= 128 and nl >= no * n");
    const array_arg spec[] = {{"lines", 0, ITEMS(ns, 2, nl)}, {"rms", 0, ns}, {"peak", 0, ns},
                              {"h1_min", 0, has_min ? ns : 0}, {"mag", 1, ITEMS(ns, no)}, {"inter", 1, ITEMS(ns, no)},
                              {"angle", 1, ITEMS(ns, no)}, {"fund", 1, ITEMS(ns, 2)}, {"ratio", 1, ITEMS(7, ns)}};
    if (get_arrays(o, spec, 9, b))
        return NULL;
    const double *lines = b[0].view.buf, *rms = b[1].view.buf, *peak = b[2].view.buf, *h1_min = b[3].view.buf;
    double *mag = b[4].view.buf, *inter = b[5].view.buf, *angle = b[6].view.buf, *fund = b[7].view.buf;
    double *ratio = b[8].view.buf;
    Py_BEGIN_ALLOW_THREADS
    harmonic_core(lines, rms, peak, h1_min, ns, nl, n, no, length, tdd_current, tdd_from, has_min, mag, inter, angle,
                  fund, ratio);
    Py_END_ALLOW_THREADS
    release(b, 9);
    Py_RETURN_NONE;
}

/* y[l] (= 0 unless acc) += w[0] * x[0][l], then w[1] * x[1][l] .. w[nt-1] * x[nt-1][l] for l < len, nt <= 4: one pass
 * over y with the terms in registers. */
static inline __attribute__((always_inline)) void weighted_sum_n(const double *const *x, const double *w, int nt,
                                                                 int acc, double *restrict y, Py_ssize_t len)
{
    for (Py_ssize_t l = 0; l < len; l++) {
        double v = acc ? y[l] : 0.0;
        for (int t = 0; t < nt; t++)
            v += w[t] * x[t][l];
        y[l] = v;
    }
}

static void weighted_sum(const double *const *x, const double *w, int nt, int acc, double *restrict y, Py_ssize_t len)
{
    switch (nt) {
    case 0: weighted_sum_n(x, w, 0, acc, y, len); break;
    case 1: weighted_sum_n(x, w, 1, acc, y, len); break;
    case 2: weighted_sum_n(x, w, 2, acc, y, len); break;
    case 3: weighted_sum_n(x, w, 3, acc, y, len); break;
    default: weighted_sum_n(x, w, 4, acc, y, len); break;
    }
}

/* window_harmonics(lines (ni, nl) complex as pairs, matrix (ns, ni), ms (n, k), peak (n, k), h1_min (ns,), idx (nk, 4),
 *                  use (nk, 4), rms (ns,), mag (ns, no), inter (ns, no), angle (ns, no), fund (ns,) complex, ratio
 *                  (7, ns), msv (3, nk), ni, nl, ns, n, no, k, length, tdd_current, tdd_from, has_h1_min, nk, msv_row):
 *                  every spectral value of an n-cycle window from the DFT lines of its inputs
 *                  (reference.window_harmonics): the ns derived signals' lines (matrix times the inputs' first
 *                  no * n lines), their RMS and peak over the window from the cycles' mean squares and peaks (the
 *                  first ns of k signals), harmonic_values of them, and the mains signalling voltage of signals
 *                  msv_row .. msv_row + 2 at nk frequencies (the lines idx where use is 1). */
static PyObject *k_window_harmonics(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(14);
    Py_ssize_t ni, nl, ns, n, no, k, tdd_from, nk, msv_row;
    double length, tdd_current;
    int has_min;
    if (kernel_args(args, o, 14, "nnnnnnddnpnn", &ni, &nl, &ns, &n, &no, &k, &length, &tdd_current, &tdd_from,
                    &has_min, &nk, &msv_row))
        return NULL;
    const Py_ssize_t used = ITEMS(no, n);
    if (used < 0 || n < 1 || no < 2 || no > 128 || nl < used || ns < 1 || ns > k || ni < 1 || nk < 0 || msv_row < 0 ||
        (nk > 0 && msv_row > ns - 3))
        return bad_args("window_harmonics: bad dimensions");
    const array_arg spec[] = {{"lines", 0, ITEMS(ni, 2, nl)}, {"matrix", 0, ITEMS(ns, ni)}, {"ms", 0, ITEMS(n, k)},
                              {"peak", 0, ITEMS(n, k)}, {"h1_min", 0, has_min ? ns : 0}, {"idx", 0, ITEMS(nk, 4)},
                              {"use", 0, ITEMS(nk, 4)}, {"rms", 1, ns}, {"mag", 1, ITEMS(ns, no)},
                              {"inter", 1, ITEMS(ns, no)}, {"angle", 1, ITEMS(ns, no)}, {"fund", 1, ITEMS(ns, 2)},
                              {"ratio", 1, ITEMS(7, ns)}, {"msv", 1, ITEMS(3, nk)}};
    if (get_arrays(o, spec, 14, b))
        return NULL;
    const double *lines = b[0].view.buf, *mat = b[1].view.buf, *ms = b[2].view.buf, *pk = b[3].view.buf;
    const double *idx = b[5].view.buf, *use = b[6].view.buf;
    double *rms = b[7].view.buf, *msv = b[13].view.buf;
    for (Py_ssize_t j = 0; j < nk * 4; j++)
        if (use[j] != 0.0 && !(idx[j] >= 0 && idx[j] < (double)used))      /* NaN included */
            return release(b, 14), bad_args("window_harmonics: a signalling line beyond the window's lines");
    const Py_ssize_t n_spec = ITEMS(2, used);
    if (n_spec < 0)
        return release(b, 14), bad_args("window_harmonics: bad dimensions");
    double *spec_lines = PyMem_RawMalloc((size_t)n_spec * sizeof(double));
    double *peak = PyMem_RawMalloc((size_t)ns * sizeof(double));
    if (spec_lines == NULL || peak == NULL) {
        PyMem_RawFree(spec_lines);
        PyMem_RawFree(peak);
        return no_memory(b, 14);
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t sg = 0; sg < ns; sg++) {
        double acc = 0.0, top = pk[sg];
        for (Py_ssize_t c = 0; c < n; c++) {
            const double v = pk[c * k + sg];
            acc += ms[c * k + sg];
            top = !isnan(top) && (isnan(v) || v > top) ? v : top;      /* as numpy's max: NaN wins */
        }
        rms[sg] = sqrt(acc / (double)n);
        peak[sg] = top;
    }
    /* a signal at a time, its lines in one buffer that stays in the cache: */
    double ref = 0.0;
    double *y = spec_lines;
    for (Py_ssize_t sg = 0; sg < ns; sg++) {
        /* the derived signal's lines: the DFT is linear, the wiring matrix acts on the inputs' lines (each line the
         * sum of its inputs' terms in input order, up to four terms a pass) */
        const double *x[4];
        double w[4];
        int nt = 0, started = 0;
        for (Py_ssize_t i = 0; i < ni; i++)
            if (mat[sg * ni + i] != 0.0) {
                x[nt] = lines + i * 2 * nl;
                w[nt++] = mat[sg * ni + i];
                if (nt == 4) {
                    weighted_sum(x, w, nt, started, y, 2 * used);
                    nt = 0;
                    started = 1;
                }
            }
        if (nt > 0 || !started)
            weighted_sum(x, w, nt, started, y, 2 * used);
        /* its harmonic values */
        harmonic_signal(y, sg, rms, peak, b[4].view.buf, ns, n, no, length, tdd_current, tdd_from, has_min,
                        b[8].view.buf, b[9].view.buf, b[10].view.buf, b[11].view.buf, b[12].view.buf, &ref);
        /* and, for the signals msv_row .. msv_row + 2, its signalling voltages */
        const Py_ssize_t r = sg - msv_row;
        for (Py_ssize_t j = 0; j < (nk > 0 && r >= 0 && r < 3 ? nk : 0); j++) {
            double acc = 0.0;
            for (int t = 0; t < 4; t++) {
                const Py_ssize_t l = (Py_ssize_t)idx[j * 4 + t];
                const double power = use[j * 4 + t] != 0.0 ? y[2 * l] * y[2 * l] + y[2 * l + 1] * y[2 * l + 1] : 0.0;
                acc += power;
            }
            msv[r * nk + j] = sqrt(acc * (2.0 / (length * length)));
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(spec_lines);
    PyMem_RawFree(peak);
    release(b, 14);
    Py_RETURN_NONE;
}

/* The mean over the d rows of xb (d, c) of the square of sum_u w[u] xb[row, in[u]] (nt terms, a constant when
 * inlined): four partial sums over the rows (r mod 4), the lanes of two two-double vectors. */
static inline __attribute__((always_inline)) double run_square(const double *xb, Py_ssize_t c, Py_ssize_t d,
                                                               const Py_ssize_t *in, const double *w, int nt)
{
    v2d lo = {0.0, 0.0}, hi = {0.0, 0.0};          /* rows 0 and 1 mod 4, rows 2 and 3 mod 4 */
    Py_ssize_t r = 0;
    for (; r + 4 <= d; r += 4) {
        v2d a = {0.0, 0.0}, b = {0.0, 0.0};
        for (int u = 0; u < nt; u++) {
            const double *row = xb + r * c + in[u];
            const v2d p = {row[0], row[c]}, q = {row[2 * c], row[3 * c]};
            a += p * w[u];
            b += q * w[u];
        }
        lo += a * a;
        hi += b * b;
    }
    double acc[4] = {lo[0], lo[1], hi[0], hi[1]};
    for (; r < d; r++) {
        const double *row = xb + r * c;
        double v = 0.0;
        for (int u = 0; u < nt; u++)
            v += row[in[u]] * w[u];
        acc[0] += v * v;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) / (double)d;
}

/* run_square for K outputs at once (K and NT, each output's term count, constants when inlined): each group of four
 * rows read once for all of them, in one four-double vector (lane j: rows j mod 4, run_square's two pairs), each
 * output's sums and their order as run_square's. */
static inline __attribute__((always_inline)) void run_squares(const double *xb, Py_ssize_t c, Py_ssize_t d,
                                                              const Py_ssize_t *in, const double *w, int K, int NT,
                                                              double *o)
{
    v4d acc4[SQ_MAX_K];
    for (int q = 0; q < K; q++)
        acc4[q] = splat(0.0);
    Py_ssize_t r = 0;
    for (; r + 4 <= d; r += 4) {
        const double *row = xb + r * c;
        for (int q = 0; q < K; q++) {
            /* the first term without run_square's 0.0 + before it: that only turns -0.0 to 0.0, which squares alike */
            const double *e = row + in[q * c];
            v4d a = (v4d){e[0], e[c], e[2 * c], e[3 * c]} * w[q * c];
            for (int u = 1; u < NT; u++) {
                e = row + in[q * c + u];
                a += (v4d){e[0], e[c], e[2 * c], e[3 * c]} * w[q * c + u];
            }
            acc4[q] += a * a;
        }
    }
    for (int q = 0; q < K; q++) {
        double acc[4] = {acc4[q][0], acc4[q][1], acc4[q][2], acc4[q][3]};
        for (Py_ssize_t t = r; t < d; t++) {
            const double *row = xb + t * c;
            double v = 0.0;
            for (int u = 0; u < NT; u++)
                v += row[in[q * c + u]] * w[q * c + u];
            acc[0] += v * v;
        }
        o[q] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) / (double)d;
    }
}

/* The squares of nb runs of d rows of x (c columns) into out (nb, k): run_squares where every output has the same
 * term count (the flickermeter's three voltages: one input each, or two for line-to-line), else run_square output
 * by output. */
PER_CPU
static void squares_of_runs(const double *x, Py_ssize_t nb, Py_ssize_t c, Py_ssize_t d, Py_ssize_t k,
                            const Py_ssize_t *in, const double *w, const Py_ssize_t *terms, double *out)
{
    Py_ssize_t same = terms[0];
    for (Py_ssize_t q = 1; q < k; q++)
        same = terms[q] == same ? same : -1;
    if (k == 3 && same == 1) {
        for (Py_ssize_t blk = 0; blk < nb; blk++)
            run_squares(x + blk * d * c, c, d, in, w, 3, 1, out + blk * 3);
        return;
    }
    if (k == 3 && same == 2) {
        for (Py_ssize_t blk = 0; blk < nb; blk++)
            run_squares(x + blk * d * c, c, d, in, w, 3, 2, out + blk * 3);
        return;
    }
    /* run by run, each output in turn: the run's rows are read from memory once, by the first output */
    for (Py_ssize_t blk = 0; blk < nb; blk++) {
        const double *xb = x + blk * d * c;
        for (Py_ssize_t q = 0; q < k; q++) {
            const Py_ssize_t *iq = in + q * c;
            const double *wq = w + q * c;
            double *o = out + blk * k + q;
            switch (terms[q]) {
            case 0: *o = run_square(xb, c, d, iq, wq, 0); break;
            case 1: *o = run_square(xb, c, d, iq, wq, 1); break;
            case 2: *o = run_square(xb, c, d, iq, wq, 2); break;
            case 3: *o = run_square(xb, c, d, iq, wq, 3); break;
            default: *o = run_square(xb, c, d, iq, wq, (int)terms[q]);
            }
        }
    }
}

/* The nonzero weights of each column of matrix (c, k) (sparse_columns) in one allocation: the weights, their inputs,
 * then each column's term count; NULL when out of memory. */
static double *sparse_alloc(const double *mat, Py_ssize_t c, Py_ssize_t k, Py_ssize_t **in, Py_ssize_t **terms)
{
    double *w = PyMem_RawMalloc((size_t)(k * c) * sizeof(double) + (size_t)(k * c + k) * sizeof(Py_ssize_t));
    if (w == NULL)
        return NULL;
    *in = (Py_ssize_t *)(w + k * c);
    *terms = *in + k * c;
    sparse_columns(mat, c, k, *in, w, *terms);
    return w;
}

/* block_squares(x (n, c), matrix (c, k), out (n / d, k), n, c, k, d): the mean over each run of d rows of the
 * squares of y = x @ matrix (zero weights left out), reference.block_squares. */
static PyObject *k_block_squares(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(3);
    Py_ssize_t n, c, k, d;
    if (kernel_args(args, o, 3, "nnnn", &n, &c, &k, &d))
        return NULL;
    if (n < 0 || c < 1 || k < 1 || d < 1)
        return bad_args("block_squares: bad dimensions");
    const Py_ssize_t nb = n / d;
    const array_arg spec[] = {{"x", 0, ITEMS(n, c)}, {"matrix", 0, ITEMS(c, k)}, {"out", 1, ITEMS(nb, k)}};
    if (get_arrays(o, spec, 3, b))
        return NULL;
    Py_ssize_t *in, *terms;
    double *w = sparse_alloc(b[1].view.buf, c, k, &in, &terms);
    if (w == NULL)
        return no_memory(b, 3);
    Py_BEGIN_ALLOW_THREADS
    squares_of_runs(b[0].view.buf, nb, c, d, k, in, w, terms, b[2].view.buf);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(w);
    release(b, 3);
    Py_RETURN_NONE;
}

/* flicker_squares(x (n, c), matrix (c, k), carry (d, c), out (nout, k), times (nout,), n, c, k, d, nc, nout, t_first,
 *                 step) -> count: block_squares of the rows carry[:nc] then x (reference.flicker_squares): count =
 * (nc + n) / d runs into out, each run's time ((j + 0.5) * step) + t_first into times, and the rows past the last
 * whole run into carry (the next call's first rows). */
static PyObject *k_flicker_squares(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(5);
    Py_ssize_t n, c, k, d, nc, nout;
    double t_first, step;
    if (kernel_args(args, o, 5, "nnnnnndd", &n, &c, &k, &d, &nc, &nout, &t_first, &step))
        return NULL;
    if (n < 0 || c < 1 || k < 1 || d < 1 || nc < 0 || nc >= d)
        return bad_args("flicker_squares: bad dimensions, or carried rows not fewer than a run");
    const array_arg spec[] = {{"x", 0, ITEMS(n, c)}, {"matrix", 0, ITEMS(c, k)}, {"carry", 1, ITEMS(d, c)},
                              {"out", 1, ITEMS(nout, k)}, {"times", 1, ITEMS(nout)}};
    if (get_arrays(o, spec, 5, b))
        return NULL;
    /* n is at most x's items and nc below carry's: the sum does not overflow */
    const Py_ssize_t count = (nc + n) / d;
    if (count > nout) {
        release(b, 5);
        return bad_args("flicker_squares: the output has fewer rows than the runs");
    }
    Py_ssize_t *in, *terms;
    double *w = sparse_alloc(b[1].view.buf, c, k, &in, &terms);
    if (w == NULL)
        return no_memory(b, 5);
    const double *x = b[0].view.buf;
    double *carry = b[2].view.buf, *out = b[3].view.buf, *times = b[4].view.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t used = 0, j = 0;         /* rows of x taken, runs written */
    if (nc > 0) {                       /* the carried rows and the first of x make the first run, if enough */
        used = d - nc < n ? d - nc : n;
        memcpy(carry + nc * c, x, (size_t)(used * c) * sizeof(double));
        if (nc + used == d) {
            squares_of_runs(carry, 1, c, d, k, in, w, terms, out);
            j = 1;
        }
    }
    if (nc == 0 || nc + used == d) {
        const Py_ssize_t nb = (n - used) / d;
        squares_of_runs(x + used * c, nb, c, d, k, in, w, terms, out + j * k);
        j += nb;
        used += nb * d;
        memcpy(carry, x + used * c, (size_t)((n - used) * c) * sizeof(double));
    }
    for (Py_ssize_t i = 0; i < count; i++)
        times[i] = ((double)i + 0.5) * step + t_first;
    Py_END_ALLOW_THREADS
    PyMem_RawFree(w);
    release(b, 5);
    return PyLong_FromSsize_t(count);
}

/* event_screen(u (n, ch), history (h, ch), cand (n,), params (3,), n, h, ch, n_rvc, rvc_enabled) -> maybe: the
 * voltage events' screen of a batch of Urms(1/2) values (reference.event_screen). params: dip, swell, RVC
 * threshold. maybe: some row has its least value below dip or its greatest above swell (a row with a NaN has
 * neither); cand[i] (0/1): row i differs from the mean of the n_rvc rows before it (history, then u) by more
 * than the RVC threshold in some channel (never with a NaN, nor before n_rvc rows are known). */
/* The screen of n rows u (n, ch) after the h rows hist (h, ch) before them (event_screen's definition); c: a work
 * area of (h + n + 1) * ch doubles, or NULL when the RVC screen is off or too few rows are known. Returns maybe. */
static int screen_rows(const double *u, const double *hist, Py_ssize_t n, Py_ssize_t h, Py_ssize_t ch, Py_ssize_t n_rvc,
                       double dip, double swell, double thr, double *cand, double *c)
{
    int maybe = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *row = u + i * ch;
        double lo = row[0], hi = row[0];
        int nan = isnan(row[0]);
        for (Py_ssize_t q = 1; q < ch; q++) {
            nan |= isnan(row[q]);
            lo = row[q] < lo ? row[q] : lo;
            hi = row[q] > hi ? row[q] : hi;
        }
        if (!nan && (lo < dip || hi > swell))
            maybe = 1;
        cand[i] = 0.0;
    }
    if (c == NULL)
        return maybe;
    /* running sums of hist then u, row 0 zero: c[i] is the sum of the first i rows */
    const Py_ssize_t total = h + n;
    for (Py_ssize_t q = 0; q < ch; q++)
        c[q] = 0.0;
    for (Py_ssize_t i = 0; i < total; i++) {
        const double *row = i < h ? hist + i * ch : u + (i - h) * ch;
        for (Py_ssize_t q = 0; q < ch; q++)
            c[(i + 1) * ch + q] = i == 0 ? row[q] : c[i * ch + q] + row[q];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const Py_ssize_t idx = h + i;
        if (idx < n_rvc)
            continue;
        const double *row = u + i * ch;
        double dev = 0.0;
        int nan = 0;
        for (Py_ssize_t q = 0; q < ch; q++) {
            const double mean = (c[idx * ch + q] - c[(idx - n_rvc) * ch + q]) / (double)n_rvc;
            const double d = fabs(row[q] - mean);
            nan |= isnan(d);
            dev = d > dev ? d : dev;
        }
        cand[i] = (!nan && dev > thr) ? 1.0 : 0.0;
    }
    return maybe;
}

static PyObject *k_event_screen(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t n, h, ch, n_rvc;
    int rvc_enabled;
    if (kernel_args(args, o, 4, "nnnnp", &n, &h, &ch, &n_rvc, &rvc_enabled))
        return NULL;
    if (n < 0 || h < 0 || ch < 1 || n_rvc < 1)
        return bad_args("event_screen: bad dimensions");
    const array_arg spec[] = {{"u", 0, ITEMS(n, ch)}, {"history", 0, ITEMS(h, ch)}, {"cand", 1, n}, {"params", 0, 3}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    const double *u = b[0].view.buf, *hist = b[1].view.buf, *pr = b[3].view.buf;
    double *cand = b[2].view.buf;
    double *c = NULL;
    if (rvc_enabled && h + n > n_rvc) {
        c = PyMem_RawMalloc((size_t)((h + n + 1) * ch) * sizeof(double));
        if (c == NULL) {
            release(b, 4);
            return PyErr_NoMemory();
        }
    }
    int maybe;
    Py_BEGIN_ALLOW_THREADS
    maybe = screen_rows(u, hist, n, h, ch, n_rvc, pr[0], pr[1], pr[2], cand, c);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(c);
    release(b, 4);
    return PyBool_FromLong(maybe);
}

/* biquad_step on two channels at once (a two-double vector each), the same operations in each lane. */
static inline __attribute__((always_inline)) v2d biquad_step2(const biquad *q, v2d *z0, v2d *z1, v2d v)
{
    const v2d y = q->b0 * v + *z0;
    *z0 = q->b1 * v - q->a1 * y + *z1;
    *z1 = q->b2 * v - q->a2 * y;
    return y;
}

/* a where the mask m is all ones, else b (m from a comparison of v2d: 0 or -1 in each lane) */
static inline v2d select2(v2l m, v2d a, v2d b)
{
    return (v2d)(((v2l)a & m) | ((v2l)b & ~m));
}

/* Two adjacent channels of flicker_chain at once, each lane as flicker_channel computes it: the chain's work is
 * throughput-bound (the sections' recursions overlap), so a channel costs half. */
static void flicker_pair(const double *ms, Py_ssize_t n, Py_ssize_t ch, const biquad *q, int ns, double *zi,
                         double gain, double *y)
{
    v2d z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        memcpy(&z0[s], zi + (2 * s) * ch, sizeof(v2d));
        memcpy(&z1[s], zi + (2 * s + 1) * ch, sizeof(v2d));
    }
    const v2d zero = {0.0, 0.0}, inf = {INFINITY, INFINITY};
    for (Py_ssize_t i = 0; i < n; i++) {
        v2d x;
        memcpy(&x, ms + i * ch, sizeof x);
        const v2d ref = biquad_step2(q, z0, z1, x);
        v2d v = x;
        for (int s = 1; s < ns - 1; s++)
            v = biquad_step2(q + s, z0 + s, z1 + s, v);
        v /= select2(ref > zero, ref, inf);
        v *= v;
        const v2d out = biquad_step2(q + ns - 1, z0 + ns - 1, z1 + ns - 1, v) * gain;
        memcpy(y + i * ch, &out, sizeof out);
    }
    for (int s = 0; s < ns; s++) {
        memcpy(zi + (2 * s) * ch, &z0[s], sizeof(v2d));
        memcpy(zi + (2 * s + 1) * ch, &z1[s], sizeof(v2d));
    }
}

/* One channel of flicker_chain: its samples ms[i * ch], its states zi[(2 s + j) * ch], its output y[i * ch]. */
static void flicker_channel(const double *ms, Py_ssize_t n, Py_ssize_t ch,
                                                                  const biquad *q, int ns, double *zi, double gain,
                                                                  double *y)
{
    double z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        z0[s] = zi[(2 * s) * ch];
        z1[s] = zi[(2 * s + 1) * ch];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const double x = ms[i * ch];
        const double ref = biquad_step(q, z0, z1, x);
        double v = x;
        for (int s = 1; s < ns - 1; s++)
            v = biquad_step(q + s, z0 + s, z1 + s, v);
        v /= ref > 0 ? ref : INFINITY;
        v *= v;
        y[i * ch] = biquad_step(q + ns - 1, z0 + ns - 1, z1 + ns - 1, v) * gain;
    }
    for (int s = 0; s < ns; s++) {
        zi[(2 * s) * ch] = z0[s];
        zi[(2 * s + 1) * ch] = z1[s];
    }
}

static inline __attribute__((always_inline)) v4d biquad_step4(const biquad *q, v4d *z0, v4d *z1, v4d v)
{
    const v4d y = q->b0 * v + *z0;
    *z0 = q->b1 * v - q->a1 * y + *z1;
    *z1 = q->b2 * v - q->a2 * y;
    return y;
}

/* Three channels of flicker_chain at once (the flickermeter's three voltages), each lane as flicker_channel computes
 * it, the fourth lane a copy of the third; with ns a constant the states stay in registers where there are enough
 * (AVX-512: 32). */
static inline __attribute__((always_inline)) void flicker_three_ns(const double *ms, Py_ssize_t n, const biquad *q,
                                                                   int ns, double *zi, double gain, double *y)
{
    v4d z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        const double *a = zi + (2 * s) * 3, *b = zi + (2 * s + 1) * 3;
        z0[s] = (v4d){a[0], a[1], a[2], a[2]};
        z1[s] = (v4d){b[0], b[1], b[2], b[2]};
    }
    const v4d zero = splat(0.0), inf = splat(INFINITY);
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *r = ms + i * 3;
        const v4d x = {r[0], r[1], r[2], r[2]};
        const v4d ref = biquad_step4(q, z0, z1, x);
        v4d v = x;
        for (int s = 1; s < ns - 1; s++)
            v = biquad_step4(q + s, z0 + s, z1 + s, v);
        const v4l pos = ref > zero;
        v /= (v4d)(((v4l)ref & pos) | ((v4l)inf & ~pos));
        v *= v;
        const v4d out = biquad_step4(q + ns - 1, z0 + ns - 1, z1 + ns - 1, v) * gain;
        double *o = y + i * 3;
        o[0] = out[0];
        o[1] = out[1];
        o[2] = out[2];
    }
    for (int s = 0; s < ns; s++)
        for (int l = 0; l < 3; l++) {
            zi[(2 * s) * 3 + l] = z0[s][l];
            zi[(2 * s + 1) * 3 + l] = z1[s][l];
        }
}

/* flicker_three_ns with the flickermeter's eight sections (block 1's reference, the band-pass and weighting's six,
 * the smoothing). */
PER_CPU
static void flicker_three8(const double *ms, Py_ssize_t n, const biquad *q, double *zi, double gain, double *y)
{
    flicker_three_ns(ms, n, q, 8, zi, gain, y);
}

/* flicker_chain(ms (n, ch), sos (ns, 6), zi (ns, 2, ch), y (n, ch), n, ns, ch, gain): blocks 3 and 4 of the
 * flickermeter on its decimated mean squares, per channel and sample (reference.flicker_chain): section 0 is the
 * block 1 reference (a low-pass of ms), sections 1 .. ns-2 the band-pass and weighting chain on ms, whose output
 * is divided by the reference (0 where the reference is not positive) and squared, section ns-1 the smoothing;
 * y is that times gain. zi (each section's state, per channel) is updated in place. Sections as sosfilt. */
static PyObject *k_flicker_chain(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t n, ns, ch;
    double gain;
    if (kernel_args(args, o, 4, "nnnd", &n, &ns, &ch, &gain))
        return NULL;
    if (n < 0 || ns < 3 || ns > SOS_MAX_SECTIONS || ch < 1)
        return bad_args("flicker_chain: needs 3 to SOS_MAX_SECTIONS sections");
    const array_arg spec[] = {{"ms", 0, ITEMS(n, ch)}, {"sos", 0, ITEMS(ns, 6)}, {"zi", 1, ITEMS(ns, 2, ch)},
                              {"y", 1, ITEMS(n, ch)}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    const double *ms = b[0].view.buf, *sos = b[1].view.buf;
    double *zi = b[2].view.buf, *y = b[3].view.buf;
    Py_BEGIN_ALLOW_THREADS
    biquad q[SOS_MAX_SECTIONS];
    biquads(sos, ns, q);
    Py_ssize_t c = 0;
    if (ch == 3 && ns == 8) {
        flicker_three8(ms, n, q, zi, gain, y);
        c = ch;
    }
    for (; c + 2 <= ch; c += 2)
        flicker_pair(ms + c, n, ch, q, (int)ns, zi + c, gain, y + c);
    for (; c < ch; c++)
        flicker_channel(ms + c, n, ch, q, (int)ns, zi + c, gain, y + c);
    Py_END_ALLOW_THREADS
    release(b, 4);
    Py_RETURN_NONE;
}

/* Max-deviation unbalance in % of the present values of x[0..2] (reference._unbalance): NaN with fewer than
 * two, or a mean not positive. The mean adds them in order. */
static double unbalance3(const double *x, const int *present)
{
    double sum = 0.0, v[3];
    int n = 0;
    for (int k = 0; k < 3; k++)
        if (present[k])
            v[n++] = x[k];
    if (n < 2)
        return NAN;
    for (int k = 0; k < n; k++)
        sum += v[k];
    const double avg = sum / n;
    double dev = fabs(v[0] - avg);
    for (int k = 1; k < n; k++)
        dev = fabs(v[k] - avg) > dev ? fabs(v[k] - avg) : dev;
    return avg > 0 ? 100 * dev / avg : NAN;
}

/* |p| / s at most 1, NaN without s; negative when leading (IEEE: p * q < 0) or, IEC, when p < 0. */
static double signed_pf1(double p, double q, double s, int ieee)
{
    double mag = NAN;
    if (s > 0) {
        mag = fabs(p) / s;
        mag = mag < 1.0 ? mag : 1.0;
    }
    const int negative = ieee ? !(p * q >= 0) : !(p >= 0);
    return negative ? -mag : mag;
}

/* Sum of n values in the order numpy's sum of a contiguous array adds them (pairwise, blocks of 8). */
static double pairwise_sum(const double *a, Py_ssize_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        Py_ssize_t i;
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    Py_ssize_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

#define IV_SIGNALS 11
/* The arguments of the kernels of a run of m cycles' measures (interval_values, interval_energy): the arrays ms
 * (m, 11), vi (m, 3), fund (m, 11) complex as pairs and duration (m,), then the kernel's own n_own (spec), then
 * m, the creep current and the kernel's switch. On success the buffers b[0 .. 4 + n_own - 1] are held. An own
 * array of PER_CYCLE items has one per cycle. */
#define RUN_MAX_ARRAYS 12
#define PER_CYCLE (-1)
typedef struct {
    Py_ssize_t m;
    double creep;
    int flag;
} cycle_run;

static int cycle_run_args(PyObject *args, PyObject **o, const array_arg *own, int n_own, buf_t *b, cycle_run *run)
{
    if (kernel_args(args, o, 4 + n_own, "ndp", &run->m, &run->creep, &run->flag))
        return -1;
    const Py_ssize_t m = run->m;
    if (m < 0 || n_own > RUN_MAX_ARRAYS - 4) {
        bad_args("a run of cycles needs a cycle count of 0 or more");
        return -1;
    }
    array_arg spec[RUN_MAX_ARRAYS] = {{"ms", 0, ITEMS(m, IV_SIGNALS)}, {"vi", 0, ITEMS(m, 3)},
                                      {"fund", 0, ITEMS(m, 2, IV_SIGNALS)}, {"duration", 0, m}};
    for (int i = 0; i < n_own; i++) {
        spec[4 + i] = own[i];
        if (own[i].min_items == PER_CYCLE)
            spec[4 + i].min_items = m;
    }
    return get_arrays(o, spec, 4 + n_own, b);
}

#define IV_SIZE 57
/* interval_values(ms (m, 11), vi (m, 3), fund (m, 11) complex as pairs, duration (m,), freq (m,), weights (m,),
 *                 present (3,), seq (3, 3) complex as pairs, out (57,), m, creep, ieee): the values of the
 *                 interval made of m cycles, flat in reference.INTERVAL_VALUES order (reference.interval_values):
 *                 v_ln v_ll i i_n i_res (RMS of the weighted mean squares), p q s s_vect pf dpf quadrant p1 (a, b,
 *                 c, total), freq, v_seq i_seq, v_u0 v_u2 i_u0 i_u2, v_unbal v_ll_unbal i_unbal. Weighted sums
 *                 add the cycles in order. */
static PyObject *k_interval_values(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(9);
    cycle_run run;
    const array_arg own[] = {{"freq", 0, PER_CYCLE}, {"weights", 0, PER_CYCLE}, {"present", 0, 3}, {"seq", 0, 18},
                             {"out", 1, IV_SIZE}};
    if (cycle_run_args(args, o, own, 5, b, &run))
        return NULL;
    const Py_ssize_t m = run.m;
    const double *ms = b[0].view.buf, *vi = b[1].view.buf, *fund = b[2].view.buf, *dur = b[3].view.buf;
    const double *freq = b[4].view.buf, *w = b[5].view.buf, *pr = b[6].view.buf, *seq = b[7].view.buf;
    double *out = b[8].view.buf;
    double *valid_dur = PyMem_RawMalloc((size_t)(m > 0 ? m : 1) * sizeof(double));
    if (valid_dur == NULL)
        return no_memory(b, 9);
    Py_BEGIN_ALLOW_THREADS
    double wms[IV_SIGNALS] = {0}, wvi[3] = {0}, s1r[3] = {0}, s1i[3] = {0}, fr[IV_SIGNALS] = {0}, fi[IV_SIGNALS] = {0};
    Py_ssize_t n_valid = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        const double wi = w[i];
        const double *f = fund + 2 * IV_SIGNALS * i;
        for (int q = 0; q < IV_SIGNALS; q++) {
            wms[q] += wi * ms[i * IV_SIGNALS + q];
            fr[q] += wi * f[2 * q];
            fi[q] += wi * f[2 * q + 1];
        }
        for (int k = 0; k < 3; k++) {
            wvi[k] += wi * vi[i * 3 + k];
            const double vr = f[2 * k], vim = f[2 * k + 1], ir = f[2 * (6 + k)], ii = f[2 * (6 + k) + 1];
            s1r[k] += wi * (vr * ir + vim * ii);          /* V conj(I) */
            s1i[k] += wi * (vim * ir - vr * ii);
        }
        if (!isnan(freq[i]))
            valid_dur[n_valid++] = dur[i];
    }
    int present[3], lines[3];
    for (int k = 0; k < 3; k++)
        present[k] = pr[k] != 0.0;
    for (int k = 0; k < 3; k++)
        lines[k] = present[k] && present[(k + 1) % 3];
    double *o_rms = out, *o_p = out + 11, *o_q = out + 15, *o_s = out + 19, *o_sv = out + 23, *o_pf = out + 27;
    double *o_dpf = out + 31, *o_quad = out + 35, *o_p1 = out + 39, *o_f = out + 43, *o_seq = out + 44;
    double *o_u = out + 50, *o_unb = out + 54;
    for (int q = 0; q < IV_SIGNALS; q++)
        o_rms[q] = sqrt(wms[q]);
    /* power as metrology.power.interval_power: a phase below the creep current carries nothing */
    for (int k = 0; k < 3; k++) {
        const int live = present[k] && sqrt(wms[6 + k]) >= run.creep;
        o_p[k] = live ? wvi[k] : 0.0;
        o_q[k] = live ? s1i[k] : 0.0;
        o_p1[k] = live ? s1r[k] : 0.0;
        o_s[k] = live ? sqrt(wms[k] * wms[6 + k]) : 0.0;
    }
    o_p[3] = o_p[0] + o_p[1] + o_p[2];
    o_q[3] = o_q[0] + o_q[1] + o_q[2];
    o_p1[3] = o_p1[0] + o_p1[1] + o_p1[2];
    o_s[3] = o_s[0] + o_s[1] + o_s[2];
    static const double quadrant[4] = {1, 2, 4, 3};
    for (int k = 0; k < 4; k++) {
        o_sv[k] = hypot(o_p[k], o_q[k]);
        o_pf[k] = signed_pf1(o_p[k], o_q[k], o_s[k], run.flag);
        o_dpf[k] = signed_pf1(o_p1[k], o_q[k], hypot(o_p1[k], o_q[k]), run.flag);
        o_quad[k] = quadrant[!(o_p[k] >= 0) + 2 * !(o_q[k] >= 0)];
    }
    o_f[0] = n_valid ? (double)n_valid / pairwise_sum(valid_dur, n_valid) : NAN;
    /* symmetrical components of the weighted fundamentals: (V, I) x (zero, positive, negative) */
    for (int r = 0; r < 2; r++) {
        const int s0 = r ? 6 : 0;
        for (int j = 0; j < 3; j++) {
            double re = 0.0, im = 0.0;
            for (int k = 0; k < 3; k++) {
                const double mr = seq[2 * (k * 3 + j)], mi = seq[2 * (k * 3 + j) + 1];
                re += fr[s0 + k] * mr - fi[s0 + k] * mi;
                im += fr[s0 + k] * mi + fi[s0 + k] * mr;
            }
            o_seq[r * 3 + j] = hypot(re, im);
        }
        const double zero = o_seq[r * 3], pos = o_seq[r * 3 + 1], neg = o_seq[r * 3 + 2];
        const int ok = present[0] && present[1] && present[2] && pos > 0;
        o_u[2 * r] = ok ? 100 * zero / pos : NAN;
        o_u[2 * r + 1] = ok ? 100 * neg / pos : NAN;
    }
    o_unb[0] = unbalance3(o_rms, present);
    o_unb[1] = unbalance3(o_rms + 3, lines);
    o_unb[2] = unbalance3(o_rms + 6, present);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(valid_dur);
    release(b, 9);
    Py_RETURN_NONE;
}

#define IE_QUANTITIES 20
/* One cycle's energy in hours (dt) into the sums e (IE_QUANTITIES, 4), as metrology.energy.cycle_energy:
 * p, q, sa the phases' W, var and VA (creep applied), v and ia their mean squares (ia zero where not live).
 * Quantities: wh_del wh_rec varh_del varh_rec varh_q1..q4 vah_del vah_rec vah_vect_del vah_vect_rec qh_del
 * qh_rec ah_del ah_rec v2h_del v2h_rec i2h_del i2h_rec; the rec sums of W, var and Qh are kept negative. */
static void add_cycle_energy(double e[IE_QUANTITIES][4], const double p3[3], const double q3[3], const double sa3[3],
                             const double v3[3], const double ia3[3], double dt)
{
    static const double sqrt3_2 = 0.86602540378443864676;
    double p[4], q[4], sa[4], v[4], ia[4], am[4];
    for (int k = 0; k < 3; k++) {
        p[k] = p3[k];
        q[k] = q3[k];
        sa[k] = sa3[k];
        v[k] = v3[k];
        ia[k] = ia3[k];
        am[k] = sqrt(ia3[k]);
    }
    p[3] = p[0] + p[1] + p[2];
    q[3] = q[0] + q[1] + q[2];
    sa[3] = sa[0] + sa[1] + sa[2];
    v[3] = v[0] + v[1] + v[2];
    ia[3] = ia[0] + ia[1] + ia[2];
    am[3] = am[0] + am[1] + am[2];
    for (int c = 0; c < 4; c++) {
        const double qh = p[c] / 2 + q[c] * sqrt3_2;
        const double by_w[6] = {p[c] * dt, sa[c] * dt, hypot(p[c], q[c]) * dt, am[c] * dt, v[c] * dt, ia[c] * dt};
        static const int del_row[6] = {0, 8, 10, 14, 16, 18};     /* wh vah vah_vect ah v2h i2h */
        const int d = p[c] >= 0, pos_q = q[c] >= 0, pos_qh = qh >= 0;
        for (int j = 0; j < 6; j++)
            e[del_row[j] + !d][c] += by_w[j];
        const double q_h = q[c] * dt, qh_h = qh * dt;
        e[pos_q ? 2 : 3][c] += q_h;
        e[4 + (d ? (pos_q ? 0 : 3) : (pos_q ? 1 : 2))][c] += fabs(q_h);
        e[pos_qh ? 12 : 13][c] += qh_h;
    }
}

/* interval_energy(ms (m, 11), vi (m, 3), fund (m, 11) complex as pairs, duration (m,), present (3,), loss (11,),
 *                 out (2, 20, 4), m, creep, compensate): the energy of m cycles (reference.interval_energy): row 0
 *                 uncompensated, row 1 with the losses added (when compensate; else left as it is). loss: rated VA
 *                 (all phases), Vcal, Ical, then delivered and received fe_w cu_w fe_var cu_var in %. */
static PyObject *k_interval_energy(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(7);
    cycle_run run;
    const array_arg own[] = {{"present", 0, 3}, {"loss", 0, 11}, {"out", 1, 2 * IE_QUANTITIES * 4}};
    if (cycle_run_args(args, o, own, 3, b, &run))
        return NULL;
    const Py_ssize_t m = run.m;
    const double *ms = b[0].view.buf, *vi = b[1].view.buf, *fund = b[2].view.buf, *dur = b[3].view.buf;
    const double *pr = b[4].view.buf, *loss = b[5].view.buf;
    double *out = b[6].view.buf;
    Py_BEGIN_ALLOW_THREADS
    double e[IE_QUANTITIES][4] = {{0}}, ec[IE_QUANTITIES][4] = {{0}};
    int present[3], n_present = 0;
    for (int k = 0; k < 3; k++) {
        present[k] = pr[k] != 0.0;
        n_present += present[k];
    }
    const double va_r = loss[0] / (n_present > 1 ? n_present : 1);
    const double v_cal2 = loss[1] * loss[1], i_cal2 = loss[2] * loss[2];
    for (Py_ssize_t i = 0; i < m; i++) {
        const double dt = dur[i] / 3600.0;
        const double *f = fund + 2 * IV_SIGNALS * i;
        double p[3], q[3], sa[3], v[3], ia[3], s1i[3], im[3];
        int live[3];
        for (int k = 0; k < 3; k++) {
            v[k] = ms[i * IV_SIGNALS + k];
            im[k] = ms[i * IV_SIGNALS + 6 + k];
            const double vr = f[2 * k], vim = f[2 * k + 1], ir = f[2 * (6 + k)], ii = f[2 * (6 + k) + 1];
            s1i[k] = vim * ir - vr * ii;          /* the imaginary part of V conj(I) */
            live[k] = present[k] && sqrt(im[k]) >= run.creep;
            p[k] = live[k] ? vi[i * 3 + k] : 0.0;
            q[k] = live[k] ? s1i[k] : 0.0;
            sa[k] = live[k] ? sqrt(v[k] * im[k]) : 0.0;
            ia[k] = live[k] ? im[k] : 0.0;
        }
        add_cycle_energy(e, p, q, sa, v, ia, dt);
        if (!run.flag)
            continue;
        /* the losses of each phase (metrology.energy.loss_power) on W and var; every present phase is live */
        double pc[3], qc[3], sac[3];
        for (int k = 0; k < 3; k++) {
            const double *coef = loss + (p[k] >= 0 ? 3 : 7);
            const double v2 = loss[1] > 0 ? v[k] / v_cal2 : 0.0, i2 = loss[2] > 0 ? im[k] / i_cal2 : 0.0;
            const double w_loss = present[k] ? (v2 * coef[0] + i2 * coef[1]) / 100 * va_r : 0.0;
            const double var_loss = present[k] ? (v2 * v2 * coef[2] + i2 * coef[3]) / 100 * va_r : 0.0;
            const int live_c = present[k] && sqrt(im[k]) >= 0.0;
            pc[k] = live_c ? (live[k] ? vi[i * 3 + k] : 0.0) + w_loss : 0.0;
            qc[k] = live_c ? (live[k] ? s1i[k] : 0.0) + var_loss : 0.0;
            sac[k] = live_c ? sqrt(v[k] * im[k]) : 0.0;
        }
        add_cycle_energy(ec, pc, qc, sac, v, ia, dt);
    }
    for (int j = 0; j < IE_QUANTITIES; j++) {
        const int negate = j == 1 || j == 3 || j == 13;       /* wh_rec varh_rec qh_rec: as positive amounts */
        for (int c = 0; c < 4; c++) {
            out[j * 4 + c] = negate ? -e[j][c] : e[j][c];
            if (run.flag)
                out[(IE_QUANTITIES + j) * 4 + c] = negate ? -ec[j][c] : ec[j][c];
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 7);
    Py_RETURN_NONE;
}

/* Whether any two of the n buffers share memory. */
static int overlapping(const buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const char *a0 = b[i].view.buf, *b0 = b[j].view.buf;
            if (a0 < b0 + b[j].view.len && b0 < a0 + b[i].view.len)
                return 1;
        }
    return 0;
}

/* aggregate_add's pass on item j (scalar). */
static inline void aggregate_one(const double *x, const double *sq, double *total, double *count, double *peak,
                                 double *finite, double *latest, Py_ssize_t j)
{
    const double v = x[j], y = sq[j] != 0.0 ? v * v : v, p = peak[j];
    const int valid = y == y;
    total[j] += valid ? y : 0.0;
    count[j] += valid ? 1.0 : 0.0;
    peak[j] = v == v && (p != p || v > p) ? v : p;
    finite[j] = v - v == 0.0 ? 1.0 : finite[j];
    latest[j] = v;
}

/* aggregate_add's pass, two items at a time: every operation done for both and the results selected by masks
 * (the compiler does not turn the scalar selects, NaN tests among them, into vector code itself). On buffers
 * that share memory, one item at a time in order. */
static void aggregate_pass(const double *x, const double *sq, double *total, double *count, double *peak,
                           double *finite, double *latest, Py_ssize_t w, int apart)
{
    Py_ssize_t j = 0;
    const v2d zero = {0.0, 0.0}, one = {1.0, 1.0};
    for (; apart && j + 2 <= w; j += 2) {
        v2d v, s, p, f, t, n;
        memcpy(&v, x + j, 16);
        memcpy(&s, sq + j, 16);
        memcpy(&p, peak + j, 16);
        memcpy(&f, finite + j, 16);
        memcpy(&t, total + j, 16);
        memcpy(&n, count + j, 16);
        const v2d y = select2(s != zero, v * v, v);
        const v2l valid = y == y, greater = (v == v) & ((p != p) | (v > p));
        t += select2(valid, y, zero);
        n += select2(valid, one, zero);
        p = select2(greater, v, p);
        f = select2((v - v) == zero, one, f);
        memcpy(total + j, &t, 16);
        memcpy(count + j, &n, 16);
        memcpy(peak + j, &p, 16);
        memcpy(finite + j, &f, 16);
        memcpy(latest + j, &v, 16);
    }
    for (; j < w; j++)
        aggregate_one(x, sq, total, count, peak, finite, latest, j);
}

/* aggregate_add(x (w,), square (w,), total (w,), count (w,), peak (w,), finite (w,), latest (w,), w): one
 *               interval's values x into the running sums of an aggregation (reference.aggregate_add): x, squared
 *               where square is 1, to total and count where not NaN; peak the greater of it and x ignoring NaN
 *               (np.fmax); finite 1 where x is finite; latest x. */
static PyObject *k_aggregate_add(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(7);
    Py_ssize_t w;
    if (kernel_args(args, o, 7, "n", &w))
        return NULL;
    const array_arg spec[] = {{"x", 0, ITEMS(w)}, {"square", 0, ITEMS(w)}, {"total", 1, ITEMS(w)}, {"count", 1, ITEMS(w)},
                              {"peak", 1, ITEMS(w)}, {"finite", 1, ITEMS(w)}, {"latest", 1, ITEMS(w)}};
    if (get_arrays(o, spec, 7, b))
        return NULL;
    const double *x = b[0].view.buf, *sq = b[1].view.buf;
    double *total = b[2].view.buf, *count = b[3].view.buf, *peak = b[4].view.buf, *finite = b[5].view.buf;
    double *latest = b[6].view.buf;
    aggregate_pass(x, sq, total, count, peak, finite, latest, w, !overlapping(b, 7));
    release(b, 7);
    Py_RETURN_NONE;
}

/* cycle_times(start (m,), end (m,), half_end (2m,), start_ns (m,) int64, end_ns (m,) int64, half_end_ns (2m,) int64,
 *             m, origin_ns, ns_per_sample): the clock times of m cycles from their boundaries (fractional sample
 *             indices), reference.cycle_times: each index times ns_per_sample rounded half to even, plus origin_ns;
 *             half_end the index where each half cycle ends (the middle of the cycle, its end). */
static PyObject *k_cycle_times(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(6);
    Py_ssize_t m;
    long long origin;
    double scale;
    if (kernel_args(args, o, 6, "nLd", &m, &origin, &scale))
        return NULL;
    if (m < 0)
        return bad_args("cycle_times: bad cycle count");
    const array_arg spec[] = {{"start", 0, m, 0}, {"end", 0, m, 0}, {"half_end", 1, ITEMS(2, m), 0}, {"start_ns", 1, m, 1},
                              {"end_ns", 1, m, 1}, {"half_end_ns", 1, ITEMS(2, m), 1}};
    if (get_arrays(o, spec, 6, b))
        return NULL;
    const double *start = b[0].view.buf, *end = b[1].view.buf;
    double *half = b[2].view.buf;
    long long *start_ns = b[3].view.buf, *end_ns = b[4].view.buf, *half_ns = b[5].view.buf;
    for (Py_ssize_t i = 0; i < m; i++) {
        half[2 * i] = (start[i] + end[i]) / 2;
        half[2 * i + 1] = end[i];
        start_ns[i] = origin + (long long)nearbyint(start[i] * scale);
        end_ns[i] = origin + (long long)nearbyint(end[i] * scale);
        half_ns[2 * i] = origin + (long long)nearbyint(half[2 * i] * scale);
        half_ns[2 * i + 1] = end_ns[i];
    }
    release(b, 6);
    Py_RETURN_NONE;
}

/* len rows of the first ni items of src (rows c apart) into dst (rows w apart), two items a move. */
static inline __attribute__((always_inline)) void copy_rows(const double *src, double *dst, Py_ssize_t len,
                                                            Py_ssize_t c, Py_ssize_t w, Py_ssize_t ni)
{
    for (Py_ssize_t j = 0; j < len; j++, src += c, dst += w) {
        Py_ssize_t t = 0;
        for (; t + 2 <= ni; t += 2) {
            v2d v;
            memcpy(&v, src + t, sizeof v);
            memcpy(dst + t, &v, sizeof v);
        }
        if (t < ni)
            dst[t] = src[t];
    }
}

/* window_append(samples (m, s, c), inputs (ni,), win (width, w), m, s, c, ni, width, w, lo, hi, at): cycles lo .. hi-1
 *               of the resampled inputs into a window's rows from row at on, column t the input inputs[t]
 *               (reference.window_append): win[at + (k - lo) * s + j, t] = samples[k, j, inputs[t]], t < ni; the
 *               columns from ni on are left as they are. Each sample's inputs stay side by side, as the window's
 *               DFT loads them (four to a vector). */
static PyObject *k_window_append(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(3);
    Py_ssize_t m, s, c, ni, width, w, lo, hi, at;
    if (kernel_args(args, o, 3, "nnnnnnnnn", &m, &s, &c, &ni, &width, &w, &lo, &hi, &at))
        return NULL;
    const Py_ssize_t len = ITEMS(hi - lo, s);
    if (lo < 0 || hi > m || hi < lo || len < 0 || at < 0 || width < 0 || at > width - len || ni < 0 || ni > w ||
        ni > CS_MAX_C)
        return bad_args("window_append: the cycles do not fit the window");
    const array_arg spec[] = {{"samples", 0, ITEMS(m, s, c), 0}, {"inputs", 0, ITEMS(ni), 0},
                              {"win", 1, ITEMS(width, w), 0}};
    if (get_arrays(o, spec, 3, b))
        return NULL;
    const double *x = b[0].view.buf, *inputs = b[1].view.buf;
    double *win = b[2].view.buf;
    int in_order = ni <= c;       /* inputs 0 .. ni-1: each row a straight copy */
    for (Py_ssize_t t = 0; t < ni; t++) {
        if (!(inputs[t] >= 0 && inputs[t] < (double)c)) {
            release(b, 3);
            return bad_args("window_append: an input index out of range");
        }
        in_order &= inputs[t] == (double)t;
    }
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t col[CS_MAX_C];
    for (Py_ssize_t t = 0; t < ni; t++)
        col[t] = (Py_ssize_t)inputs[t];
    const double *src = x + lo * s * c;
    double *dst = win + at * w;
    if (in_order && ni == 7)        /* the board's seven inputs: the count known to the compiler */
        copy_rows(src, dst, len, c, w, 7);
    else if (in_order)
        copy_rows(src, dst, len, c, w, ni);
    else
        for (Py_ssize_t j = 0; j < len; j++, src += c, dst += w)
            for (Py_ssize_t t = 0; t < ni; t++)
                dst[t] = src[col[t]];
    Py_END_ALLOW_THREADS
    release(b, 3);
    Py_RETURN_NONE;
}

/* half_cycle_rms(half_ms (m, 2, k), prev (k,), channels (nc,), urms (2m, k), watched (2m, nc), m, k, nc, has_prev):
 *                Urms(1/2) of m cycles from their half-cycle mean squares (reference.half_cycle_rms): each value the
 *                RMS of its half and the half before it (prev before the first; without it, the first half
 *                alone), and the columns channels of them. */
/* Urms(1/2) (2m, k) of m cycles from their half-cycle mean squares half (m, 2, k), the half before the first prev
 * (NULL: the first half alone), and its columns channels (nc) into watched (2m, nc) (half_cycle_rms' definition). */
static void urms_rows(const double *half, const double *prev, const double *channels, double *urms, double *watched,
                      Py_ssize_t m, Py_ssize_t k, Py_ssize_t nc)
{
    for (Py_ssize_t r = 0; r < 2 * m; r++) {
        const double *h = half + r * k, *before = r ? h - k : (prev != NULL ? prev : h);
        for (Py_ssize_t q = 0; q < k; q++)
            urms[r * k + q] = sqrt((before[q] + h[q]) / 2);
        for (Py_ssize_t q = 0; q < nc; q++)
            watched[r * nc + q] = urms[r * k + (Py_ssize_t)channels[q]];
    }
}

/* Every entry of channels (nc) a column index below k (NaN is not). */
static int channels_in_range(const double *channels, Py_ssize_t nc, Py_ssize_t k)
{
    for (Py_ssize_t q = 0; q < nc; q++)
        if (!(channels[q] >= 0 && channels[q] < (double)k))
            return 0;
    return 1;
}

static PyObject *k_half_cycle_rms(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(5);
    Py_ssize_t m, k, nc;
    int has_prev;
    if (kernel_args(args, o, 5, "nnnp", &m, &k, &nc, &has_prev))
        return NULL;
    if (m < 1 || k < 1 || nc < 0)
        return bad_args("half_cycle_rms: needs a cycle and a signal");
    const array_arg spec[] = {{"half_ms", 0, ITEMS(2, m, k), 0}, {"prev", 0, has_prev ? k : 0, 0},
                              {"channels", 0, nc, 0}, {"urms", 1, ITEMS(2, m, k), 0}, {"watched", 1, ITEMS(2, m, nc), 0}};
    if (get_arrays(o, spec, 5, b))
        return NULL;
    const double *channels = b[2].view.buf;
    if (!channels_in_range(channels, nc, k)) {
        release(b, 5);
        return bad_args("half_cycle_rms: a channel out of range");
    }
    urms_rows(b[0].view.buf, has_prev ? b[1].view.buf : NULL, channels, b[3].view.buf, b[4].view.buf, m, k, nc);
    release(b, 5);
    Py_RETURN_NONE;
}

/* half_cycle_events(half_ms (m, 2, k), prev (k,), channels (nc,), hist (n_rvc, nc), params (3,), urms (2m, k),
 *                   watched (2m, nc), cand (2m,), m, k, nc, n_rvc, hist_n, has_prev, rvc_enabled, open) -> hist_n or -1:
 * a batch's Urms(1/2) and the voltage events' screen in one pass (reference.half_cycle_events): half_cycle_rms from
 * prev (when has_prev), then event_screen of the watched columns after the last hist_n rows of hist (right-aligned:
 * rows n_rvc - hist_n ..). prev becomes the batch's last half. With no event open (open false), no value beyond the
 * dip or swell threshold and no RVC candidate the batch is quiet: its watched rows join hist (its last n_rvc rows
 * kept) and the new row count is returned; otherwise hist is left as it was and -1 says the values need looking at
 * one by one. */
static PyObject *k_half_cycle_events(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(8);
    Py_ssize_t m, k, nc, n_rvc, hist_n;
    int has_prev, rvc_enabled, open;
    if (kernel_args(args, o, 8, "nnnnnppp", &m, &k, &nc, &n_rvc, &hist_n, &has_prev, &rvc_enabled, &open))
        return NULL;
    if (m < 1 || k < 1 || nc < 1 || n_rvc < 1 || hist_n < 0 || hist_n > n_rvc)
        return bad_args("half_cycle_events: bad dimensions");
    const array_arg spec[] = {{"half_ms", 0, ITEMS(2, m, k)}, {"prev", 1, k}, {"channels", 0, nc},
                              {"hist", 1, ITEMS(n_rvc, nc)}, {"params", 0, 3}, {"urms", 1, ITEMS(2, m, k)},
                              {"watched", 1, ITEMS(2, m, nc)}, {"cand", 1, ITEMS(2, m)}};
    if (get_arrays(o, spec, 8, b))
        return NULL;
    const double *half = b[0].view.buf, *channels = b[2].view.buf, *pr = b[4].view.buf;
    double *prev = b[1].view.buf, *hist = b[3].view.buf, *urms = b[5].view.buf, *watched = b[6].view.buf;
    double *cand = b[7].view.buf;
    if (!channels_in_range(channels, nc, k)) {
        release(b, 8);
        return bad_args("half_cycle_events: a channel out of range");
    }
    const Py_ssize_t n = 2 * m;
    double *c = NULL;
    if (rvc_enabled && hist_n + n > n_rvc) {
        c = PyMem_RawMalloc((size_t)((hist_n + n + 1) * nc) * sizeof(double));
        if (c == NULL)
            return no_memory(b, 8);
    }
    Py_ssize_t result;
    Py_BEGIN_ALLOW_THREADS
    urms_rows(half, has_prev ? prev : NULL, channels, urms, watched, m, k, nc);
    memcpy(prev, half + (n - 1) * k, (size_t)k * sizeof(double));
    double *rows = hist + (n_rvc - hist_n) * nc;
    const int maybe = screen_rows(watched, rows, n, hist_n, nc, n_rvc, pr[0], pr[1], pr[2], cand, c);
    int quiet = !open && !maybe;
    for (Py_ssize_t i = 0; quiet && i < n; i++)
        quiet = cand[i] == 0.0;
    result = -1;
    if (quiet) {
        /* the last n_rvc rows of the history then the batch, right-aligned */
        const Py_ssize_t keep = hist_n + n < n_rvc ? hist_n + n : n_rvc;
        const Py_ssize_t from_hist = keep - (n < keep ? n : keep);
        memmove(hist + (n_rvc - keep) * nc, hist + (n_rvc - from_hist) * nc, (size_t)(from_hist * nc) * sizeof(double));
        const Py_ssize_t from_new = keep - from_hist;
        memcpy(hist + (n_rvc - from_new) * nc, watched + (n - from_new) * nc, (size_t)(from_new * nc) * sizeof(double));
        result = keep;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(c);
    release(b, 8);
    return PyLong_FromSsize_t(result);
}

/* window_finish(fund (s, 2), v (nc,), absent (nc,), msv (nc, nk), angle (s,), dev (4, nc), msv_out (nc, nk), s, nc, nk,
 *               udin): the last values of a window (reference.window_finish): each signal's fundamental angle from
 *               the first's, degrees in [-180, 180) (numpy's arctan2, degrees and remainder, step by step); the
 *               voltages v plus absent (0, or NaN for a channel the system lacks) clipped at udin from below and from
 *               above and their under- and over-deviation in % of udin (deviation.window_values); msv plus absent
 *               per channel. */
static double remainder_like_numpy(double a, double b)
{
    double mod = fmod(a, b);
    if (mod != 0.0) {              /* NaN included, as numpy's divmod */
        if ((b < 0) != (mod < 0))
            mod += b;
    } else {
        mod = copysign(0.0, b);
    }
    return mod;
}

static PyObject *k_window_finish(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(7);
    Py_ssize_t s, nc, nk;
    double udin;
    if (kernel_args(args, o, 7, "nnnd", &s, &nc, &nk, &udin))
        return NULL;
    if (s < 1 || nc < 0 || nk < 0)
        return bad_args("window_finish: needs a signal");
    const array_arg spec[] = {{"fund", 0, ITEMS(2, s), 0}, {"v", 0, nc, 0}, {"absent", 0, nc, 0},
                              {"msv", 0, ITEMS(nc, nk), 0}, {"angle", 1, s, 0}, {"dev", 1, ITEMS(4, nc), 0},
                              {"msv_out", 1, ITEMS(nc, nk), 0}};
    if (get_arrays(o, spec, 7, b))
        return NULL;
    const double *fund = b[0].view.buf, *v = b[1].view.buf, *absent = b[2].view.buf, *msv = b[3].view.buf;
    double *angle = b[4].view.buf, *dev = b[5].view.buf, *msv_out = b[6].view.buf;
    const double first = atan2(fund[1], fund[0]);
    for (Py_ssize_t j = 0; j < s; j++) {
        double a = atan2(fund[2 * j + 1], fund[2 * j]) - first;
        a *= 180.0 / 3.141592653589793238462643383279502884;
        a += 180.0;
        angle[j] = remainder_like_numpy(a, 360.0) - 180.0;
    }
    for (Py_ssize_t q = 0; q < nc; q++) {
        const double x = v[q] + absent[q];
        const double under = isnan(x) || x <= udin ? x : udin, over = isnan(x) || x >= udin ? x : udin;
        dev[q] = under;
        dev[nc + q] = over;
        dev[2 * nc + q] = (udin - under) / udin * 100.0;
        dev[3 * nc + q] = (over - udin) / udin * 100.0;
        for (Py_ssize_t k = 0; k < nk; k++)
            msv_out[q * nk + k] = msv[q * nk + k] + absent[q];
    }
    release(b, 7);
    Py_RETURN_NONE;
}

/* ---- the window's real DFT ----
 *
 * The first nl lines of the real DFT of each column of x (N, w), as numpy's rfft gives them, for N/2 a product of
 * 2, 3, 4 and 5 (the 10/12-cycle windows: 512 samples a cycle): four columns at a time, one in each lane of a
 * vector, so every butterfly works on four inputs at once. The N real samples of a column are the N/2 complex ones
 * z[n] = x[2n] + i x[2n+1]; a mixed-radix decimation-in-time FFT of z (its input read in digit-reversed order,
 * then radix-p stages in place, the twiddles from a table of cos and sin); then X[k] = E[k] + W_N^k O[k] with
 * E, O the even and odd samples' DFTs taken from Z[k] and conj(Z[N/2 - k]). */

#define RFFT_MAX_STAGES 32
#define RFFT_BLOCK 256             /* points of two groups' sub-transforms that stay in the first-level cache */
typedef struct {
    Py_ssize_t m;                  /* N / 2: the complex transform's length */
    int ns, radix[RFFT_MAX_STAGES];
    Py_ssize_t span[RFFT_MAX_STAGES];  /* each stage's points per sub-transform before it */
    int in_block;                  /* the first stages, whose sub-transforms have at most RFFT_BLOCK points */
    Py_ssize_t block;              /* their points: the work area is transformed this many at a time by them */
    Py_ssize_t *perm;              /* input position i reads z[perm[i]] */
    double *tw_re, *tw_im;         /* each stage's twiddles W_L^(j q), q = 1..p-1, j < L/p; then W_N^k, k <= m */
    Py_ssize_t tw_at[RFFT_MAX_STAGES + 1];
    v4d *work;                     /* (2, 2, m): two groups' re, im */
} rfft_plan;

static rfft_plan rfft_plans[4];    /* the window lengths seen (10 and 12 cycles, and short windows) */

static void rfft_plan_free(rfft_plan *p)
{
    PyMem_RawFree(p->perm);
    PyMem_RawFree(p->tw_re);
    PyMem_RawFree(p->tw_im);
    free(p->work);
    memset(p, 0, sizeof *p);
}

/* The plan for m complex points (made once, while the GIL is held): NULL when m has another prime factor. */
static rfft_plan *rfft_plan_for(Py_ssize_t m)
{
    for (int i = 0; i < 4; i++)
        if (rfft_plans[i].m == m)
            return &rfft_plans[i];
    int ns = 0, radix[RFFT_MAX_STAGES];
    Py_ssize_t rest = m;
    while (rest % 4 == 0 && ns < RFFT_MAX_STAGES)
        radix[ns++] = 4, rest /= 4;
    for (int p = 2; p <= 5 && ns < RFFT_MAX_STAGES; p++)
        while (rest % p == 0 && ns < RFFT_MAX_STAGES)
            radix[ns++] = p, rest /= p;
    if (rest != 1 || m < 2)
        return NULL;
    rfft_plan *p = &rfft_plans[0];
    for (int i = 0; i < 4; i++)
        if (rfft_plans[i].m == 0) {
            p = &rfft_plans[i];
            break;
        }
    rfft_plan_free(p);
    p->ns = ns;
    memcpy(p->radix, radix, sizeof radix);
    Py_ssize_t ntw = m + 1;
    p->in_block = 0;
    p->block = 1;
    for (int s = 0, l = 1; s < ns; s++) {
        p->span[s] = l;
        if (p->in_block == s && (Py_ssize_t)l * radix[s] <= RFFT_BLOCK)
            p->in_block = s + 1, p->block = (Py_ssize_t)l * radix[s];
        p->tw_at[s] = ntw - (m + 1);
        ntw += (Py_ssize_t)l * (radix[s] - 1);
        l *= radix[s];
    }
    p->perm = PyMem_RawMalloc((size_t)m * sizeof(Py_ssize_t));
    p->tw_re = PyMem_RawMalloc((size_t)ntw * sizeof(double));
    p->tw_im = PyMem_RawMalloc((size_t)ntw * sizeof(double));
    p->work = aligned_alloc(64, (size_t)(4 * m) * sizeof(v4d));     /* vectors of up to eight: their alignment */
    if (p->perm == NULL || p->tw_re == NULL || p->tw_im == NULL || p->work == NULL) {
        rfft_plan_free(p);
        return NULL;
    }
    /* digit reversal: position i = d_0 + p_0 (d_1 + p_1 (...)), its fastest digit the first stage's, reads
     * z[d_0 m/p_0 + d_1 m/(p_0 p_1) + ...] */
    for (Py_ssize_t i = 0; i < m; i++) {
        Py_ssize_t rem = i, src = 0, span = m;
        for (int s = 0; s < ns; s++) {
            span /= radix[s];
            src += (rem % radix[s]) * span;
            rem /= radix[s];
        }
        p->perm[i] = src;
    }
    const double two_pi = 6.283185307179586476925286766559;
    double *re = p->tw_re + m + 1, *im = p->tw_im + m + 1;
    for (int s = 0, l = 1; s < ns; s++) {
        const int r = radix[s];
        const Py_ssize_t big = (Py_ssize_t)l * r;
        for (Py_ssize_t j = 0; j < l; j++)
            for (int q = 1; q < r; q++) {
                const double a = -two_pi * (double)(j * q) / (double)big;
                *re++ = cos(a);
                *im++ = sin(a);
            }
        l *= r;
    }
    for (Py_ssize_t k = 0; k <= m; k++) {      /* W_N^k, N = 2m */
        const double a = -two_pi * (double)k / (double)(2 * m);
        p->tw_re[k] = cos(a);
        p->tw_im[k] = sin(a);
    }
    p->m = m;
    return p;
}

/* One stage's butterflies in place: radix r, l points per sub-transform before it (its twiddles tr, ti); a
 * function NAME for vectors of type V (the lanes independent: every lane's arithmetic the same at any width). */
#define RFFT_STAGE(NAME, V)                                                                                 \
static inline __attribute__((always_inline)) void NAME(V *restrict re, V *restrict im, Py_ssize_t m, int r, \
                                                       Py_ssize_t l, const double *tr, const double *ti)    \
{                                                                                                           \
    const Py_ssize_t big = l * r;                                                                           \
    const double c3 = -0.5, s3 = 0.86602540378443864676;                                                    \
    const double c51 = 0.30901699437494742410, c52 = -0.80901699437494742410;                               \
    const double s51 = 0.95105651629515357212, s52 = 0.58778525229247312917;                                \
    for (Py_ssize_t b = 0; b < m; b += big)                                                                 \
        for (Py_ssize_t j = 0; j < l; j++) {                                                                \
            V ar[5], ai[5];                                                                                 \
            const double *wr = tr + j * (r - 1), *wi = ti + j * (r - 1);                                    \
            ar[0] = re[b + j], ai[0] = im[b + j];                                                           \
            for (int q = 1; q < r; q++) {                                                                   \
                const V xr = re[b + j + q * l], xi = im[b + j + q * l];                                     \
                if (j == 0) {                                                                               \
                    ar[q] = xr, ai[q] = xi;                                                                 \
                } else {                                                                                    \
                    const double c = wr[q - 1], s = wi[q - 1];                                              \
                    ar[q] = xr * c - xi * s;                                                                \
                    ai[q] = xr * s + xi * c;                                                                \
                }                                                                                           \
            }                                                                                               \
            V *o_r = re + b + j, *o_i = im + b + j;                                                         \
            if (r == 4) {                                                                                   \
                const V t0r = ar[0] + ar[2], t0i = ai[0] + ai[2], t1r = ar[0] - ar[2], t1i = ai[0] - ai[2]; \
                const V t2r = ar[1] + ar[3], t2i = ai[1] + ai[3];                                           \
                const V t3r = ai[1] - ai[3], t3i = ar[3] - ar[1];          /* (a1 - a3) times -i */         \
                o_r[0] = t0r + t2r, o_i[0] = t0i + t2i;                                                     \
                o_r[l] = t1r + t3r, o_i[l] = t1i + t3i;                                                     \
                o_r[2 * l] = t0r - t2r, o_i[2 * l] = t0i - t2i;                                             \
                o_r[3 * l] = t1r - t3r, o_i[3 * l] = t1i - t3i;                                             \
            } else if (r == 2) {                                                                            \
                o_r[0] = ar[0] + ar[1], o_i[0] = ai[0] + ai[1];                                             \
                o_r[l] = ar[0] - ar[1], o_i[l] = ai[0] - ai[1];                                             \
            } else if (r == 3) {                                                                            \
                const V sr = ar[1] + ar[2], si = ai[1] + ai[2], dr = ar[1] - ar[2], di = ai[1] - ai[2];     \
                const V mr = ar[0] + c3 * sr, mi = ai[0] + c3 * si;                                         \
                o_r[0] = ar[0] + sr, o_i[0] = ai[0] + si;                                                   \
                o_r[l] = mr + s3 * di, o_i[l] = mi - s3 * dr;                                               \
                o_r[2 * l] = mr - s3 * di, o_i[2 * l] = mi + s3 * dr;                                       \
            } else {   /* r == 5 */                                                                         \
                const V b1r = ar[1] + ar[4], b1i = ai[1] + ai[4], b4r = ar[1] - ar[4], b4i = ai[1] - ai[4]; \
                const V b2r = ar[2] + ar[3], b2i = ai[2] + ai[3], b3r = ar[2] - ar[3], b3i = ai[2] - ai[3]; \
                const V t1r = ar[0] + c51 * b1r + c52 * b2r, t1i = ai[0] + c51 * b1i + c52 * b2i;           \
                const V t2r = ar[0] + c52 * b1r + c51 * b2r, t2i = ai[0] + c52 * b1i + c51 * b2i;           \
                const V u1r = s51 * b4r + s52 * b3r, u1i = s51 * b4i + s52 * b3i;                           \
                const V u2r = s52 * b4r - s51 * b3r, u2i = s52 * b4i - s51 * b3i;                           \
                o_r[0] = ar[0] + b1r + b2r, o_i[0] = ai[0] + b1i + b2i;                                     \
                o_r[l] = t1r + u1i, o_i[l] = t1i - u1r;                      /* t1 - i u1 */                \
                o_r[4 * l] = t1r - u1i, o_i[4 * l] = t1i + u1r;              /* t1 + i u1 */                \
                o_r[2 * l] = t2r + u2i, o_i[2 * l] = t2i - u2r;                                             \
                o_r[3 * l] = t2r - u2i, o_i[3 * l] = t2i + u2r;                                             \
            }                                                                                               \
        }                                                                                                   \
}

RFFT_STAGE(rfft_stage, v4d)

/* Stage s of the transform on the len points at re, im (a whole number of its sub-transforms): a function NAME for
 * vectors of type V, STAGE the butterflies' function for them. */
#define RFFT_RUN_STAGE(NAME, STAGE, V)                                                                          \
static inline __attribute__((always_inline)) void NAME(const rfft_plan *p, int s, V *re, V *im, Py_ssize_t len) \
{                                                                                                               \
    const int r = p->radix[s];                                                                                  \
    const Py_ssize_t l = p->span[s], at = p->m + 1 + p->tw_at[s];                                               \
    if (r == 4)                                                                                                 \
        STAGE(re, im, len, 4, l, p->tw_re + at, p->tw_im + at);                                                 \
    else if (r == 2)                                                                                            \
        STAGE(re, im, len, 2, l, p->tw_re + at, p->tw_im + at);                                                 \
    else if (r == 3)                                                                                            \
        STAGE(re, im, len, 3, l, p->tw_re + at, p->tw_im + at);                                                 \
    else                                                                                                        \
        STAGE(re, im, len, 5, l, p->tw_re + at, p->tw_im + at);                                                 \
}

RFFT_RUN_STAGE(rfft_run_stage, rfft_stage, v4d)

/* The transforms of ng groups of four columns (x + g of a window x (N, w): group t its columns 4t .. 4t+3, the
 * last group's ncols <= 4 of them, its lanes past them zero), group t in the work area at work + 2 t m, and the
 * first nl lines of group t's first nrows[t] columns into out[t] ((nrows[t], nl) complex as pairs).
 * A sample's columns are side by side: a full group is one load, the groups' loads of a sample share a cache line.
 * The first stages (their sub-transforms of p->block points) run a block at a time as it is gathered, while it
 * is in the first-level cache; the others over the whole work area. Each butterfly as the stage order has it. */
PER_CPU
static void rfft_groups(const rfft_plan *p, const double *x, Py_ssize_t w, int ng, Py_ssize_t ncols,
                        const Py_ssize_t *nrows, Py_ssize_t nl, double *const *out)
{
    const Py_ssize_t m = p->m, blk = p->block;
    v4d *re = p->work, *im = p->work + m;
    for (Py_ssize_t b0 = 0; b0 < m; b0 += blk) {
        if (ng == 2 && ncols == 4)
            for (Py_ssize_t i = b0; i < b0 + blk; i++) {
                const double *a = x + 2 * p->perm[i] * w;
                re[i] = v4_load(a);
                im[i] = v4_load(a + w);
                re[2 * m + i] = v4_load(a + 4);
                im[2 * m + i] = v4_load(a + w + 4);
            }
        else if (ng == 1 && ncols == 4)
            for (Py_ssize_t i = b0; i < b0 + blk; i++) {
                const double *a = x + 2 * p->perm[i] * w;
                re[i] = v4_load(a);
                im[i] = v4_load(a + w);
            }
        else
            for (int t = 0; t < ng; t++) {
                const Py_ssize_t nc = t == ng - 1 ? ncols : 4;
                for (Py_ssize_t i = b0; i < b0 + blk; i++) {
                    const double *a = x + 2 * p->perm[i] * w + 4 * t;
                    v4d r = splat(0.0), q = splat(0.0);
                    for (Py_ssize_t l = 0; l < nc; l++)
                        r[l] = a[l], q[l] = a[w + l];
                    re[2 * t * m + i] = r, im[2 * t * m + i] = q;
                }
            }
        for (int t = 0; t < ng; t++)
            for (int s = 0; s < p->in_block; s++)
                rfft_run_stage(p, s, re + 2 * t * m + b0, im + 2 * t * m + b0, blk);
    }
    for (int t = 0; t < ng; t++) {
        v4d *gr = re + 2 * t * m, *gi = im + 2 * t * m;
        for (int s = p->in_block; s < p->ns; s++)
            rfft_run_stage(p, s, gr, gi, m);
        double *o = out[t];
        for (Py_ssize_t k = 0; k < nl; k++) {
            const Py_ssize_t kk = k == 0 ? 0 : m - k;     /* Z[m] is Z[0] */
            const Py_ssize_t k0 = k == m ? 0 : k;
            const v4d zr = gr[k0], zi = gi[k0], cr = gr[kk], ci = -gi[kk];   /* Z[k], conj(Z[m - k]) */
            const v4d er = (zr + cr) * 0.5, ei = (zi + ci) * 0.5;            /* E[k] */
            const v4d or_ = (zi - ci) * 0.5, oi = (cr - zr) * 0.5;           /* O[k] = (Z - conj) / 2i */
            const double wr = p->tw_re[k], wi = p->tw_im[k];
            const v4d xr = er + (or_ * wr - oi * wi), xi = ei + (or_ * wi + oi * wr);
            for (int l = 0; l < 4 && l < nrows[t]; l++) {
                o[(l * nl + k) * 2] = xr[l];
                o[(l * nl + k) * 2 + 1] = xi[l];
            }
        }
    }
}

#ifdef X86_CLONES
/* On a CPU with AVX-512 (asked at run time), eight columns in the lanes of one 512-bit vector: half the
 * instructions of two groups of four. Elsewhere the groups of four: without AVX-512 (and on aarch64's NEON) an
 * eight-lane vector takes four or more registers, and a radix-4 or -5 butterfly's operands no longer fit in them. */
#define RFFT_WIDE 1
typedef double v8d __attribute__((vector_size(64)));
RFFT_STAGE(rfft_stage8, v8d)
RFFT_RUN_STAGE(rfft_run_stage8, rfft_stage8, v8d)

/* rfft_groups for the eight columns of x (N, w) from x on, w >= 8: the first nl lines of the first nrows <= 8 of
 * them into out ((nrows, nl) complex as pairs). The same stages in the same order, eight lanes a vector. */
__attribute__((target("avx512f"))) static void rfft_wide(const rfft_plan *p, const double *x, Py_ssize_t w,
                                                         Py_ssize_t nrows, Py_ssize_t nl, double *out)
{
    const Py_ssize_t m = p->m, blk = p->block;
    v8d *re = (v8d *)p->work, *im = re + m;
    for (Py_ssize_t b0 = 0; b0 < m; b0 += blk) {
        for (Py_ssize_t i = b0; i < b0 + blk; i++) {
            const double *a = x + 2 * p->perm[i] * w;
            memcpy(&re[i], a, sizeof(v8d));
            memcpy(&im[i], a + w, sizeof(v8d));
        }
        for (int s = 0; s < p->in_block; s++)
            rfft_run_stage8(p, s, re + b0, im + b0, blk);
    }
    for (int s = p->in_block; s < p->ns; s++)
        rfft_run_stage8(p, s, re, im, m);
    for (Py_ssize_t k = 0; k < nl; k++) {
        const Py_ssize_t kk = k == 0 ? 0 : m - k;     /* Z[m] is Z[0] */
        const Py_ssize_t k0 = k == m ? 0 : k;
        const v8d zr = re[k0], zi = im[k0], cr = re[kk], ci = -im[kk];   /* Z[k], conj(Z[m - k]) */
        const v8d er = (zr + cr) * 0.5, ei = (zi + ci) * 0.5;            /* E[k] */
        const v8d or_ = (zi - ci) * 0.5, oi = (cr - zr) * 0.5;           /* O[k] = (Z - conj) / 2i */
        const double wr = p->tw_re[k], wi = p->tw_im[k];
        const v8d xr = er + (or_ * wr - oi * wi), xi = ei + (or_ * wi + oi * wr);
        for (int l = 0; l < 8 && l < nrows; l++) {
            out[(l * nl + k) * 2] = xr[l];
            out[(l * nl + k) * 2 + 1] = xi[l];
        }
    }
}
#endif

/* window_rfft(x (N, w), out (ni, nl) complex as pairs, ni, N, w, nl[, wide]) -> True, or False (out untouched) when
 * N / 2 has a prime factor above 5: the first nl <= N/2 + 1 lines of the real DFT of each of the first ni <= w
 * columns. wide (default true): eight columns a vector where the CPU has AVX-512; false: four (the same lines). */
static PyObject *k_window_rfft(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(2);
    Py_ssize_t ni, big_n, w, nl;
    int wide = 1;
    if (kernel_args(args, o, 2, "nnnn|p", &ni, &big_n, &w, &nl, &wide))
        return NULL;
    if (ni < 0 || w < ni || big_n < 4 || big_n % 2 || nl < 0 || nl > big_n / 2 + 1)
        return bad_args("window_rfft: bad dimensions");
    const array_arg spec[] = {{"x", 0, ITEMS(big_n, w)}, {"out", 1, ITEMS(ni, nl, 2)}};
    if (get_arrays(o, spec, 2, b))
        return NULL;
    if (ni == 0) {     /* no column: nothing to plan (N is then bounded by no buffer) */
        release(b, 2);
        Py_RETURN_TRUE;
    }
    rfft_plan *p = rfft_plan_for(big_n / 2);
    if (p == NULL) {
        release(b, 2);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    const double *x = b[0].view.buf;
    double *out = b[1].view.buf;
    /* the plan's work area is shared: the GIL stays held. Two groups of four columns at a time. */
    for (Py_ssize_t g = 0; g < ni; g += 8) {
        const int ng = ni - g > 4 ? 2 : 1;
        const Py_ssize_t last = w - g - 4 * (ng - 1);     /* the last group's columns */
#ifdef RFFT_WIDE
        if (wide && ng == 2 && w - g >= 8 && __builtin_cpu_supports("avx512f")) {
            rfft_wide(p, x + g, w, ni - g < 8 ? ni - g : 8, nl, out + g * nl * 2);
            continue;
        }
#endif
        const Py_ssize_t nrows[2] = {ni - g < 4 ? ni - g : 4, ni - g - 4 < 4 ? ni - g - 4 : 4};
        double *const outs[2] = {out + g * nl * 2, out + (g + 4) * nl * 2};
        rfft_groups(p, x + g, w, ng, last < 4 ? last : 4, nrows, nl, outs);
    }
    release(b, 2);
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"resample_cycles", k_resample_cycles, METH_VARARGS, "Lagrange resampling at spc positions per cycle."},
    {"cycle_stats", k_cycle_stats, METH_VARARGS, "Half-cycle sums of squares, peaks, v*i sums and DFT bin 1 of x @ mat."},
    {"cycle_batch", k_cycle_batch, METH_VARARGS, "resample_cycles and cycle_stats of a batch into a cycle log's rows."},
    {"sosfilt", k_sosfilt, METH_VARARGS, "Cascade of biquads (direct form II transposed) with state."},
    {"rising_crossings", k_rising_crossings, METH_VARARGS, "Rising zero crossings: index, cubic root, peak before."},
    {"track_crossings", k_track_crossings, METH_VARARGS, "The cycle tracker's crossings, delays and acceptance rules."},
    {"track_block", k_track_block, METH_VARARGS, "The cycle tracker's filter, crossings and acceptance over a block."},
    {"flicker_squares", k_flicker_squares, METH_VARARGS, "block_squares of carried rows and a block, with times."},
    {"cycle_change", k_cycle_change, METH_VARARGS, "Largest change of the derived signals from one cycle to the next."},
    {"harmonic_values", k_harmonic_values, METH_VARARGS, "Harmonic values of a window from its DFT lines."},
    {"block_squares", k_block_squares, METH_VARARGS, "Mean square of x @ matrix over runs of d rows."},
    {"event_screen", k_event_screen, METH_VARARGS, "Dip/swell and RVC screen of a batch of Urms(1/2) values."},
    {"flicker_chain", k_flicker_chain, METH_VARARGS, "The flickermeter's filters, division and squaring per sample."},
    {"harmonic_groups", k_harmonic_groups, METH_VARARGS, "Harmonic and interharmonic subgroup energies and line phases."},
    {"interval_values", k_interval_values, METH_VARARGS, "Every value of an interval from its cycles' measures."},
    {"interval_energy", k_interval_energy, METH_VARARGS, "Energy of a run of cycles, uncompensated and compensated."},
    {"window_harmonics", k_window_harmonics, METH_VARARGS, "Every spectral value of a window from its inputs' lines."},
    {"aggregate_add", k_aggregate_add, METH_VARARGS, "One interval into the running sums of an aggregation."},
    {"cycle_times", k_cycle_times, METH_VARARGS, "Clock times of cycles and half cycles from their boundaries."},
    {"window_append", k_window_append, METH_VARARGS, "Cycles of resampled inputs into a window's rows."},
    {"half_cycle_rms", k_half_cycle_rms, METH_VARARGS, "Urms(1/2) from half-cycle mean squares."},
    {"half_cycle_events", k_half_cycle_events, METH_VARARGS, "Urms(1/2) and the voltage events' screen of a batch."},
    {"window_finish", k_window_finish, METH_VARARGS, "A window's angles, deviations and signalling voltages."},
    {"window_rfft", k_window_rfft, METH_VARARGS, "The first lines of the real DFT of each row of a window."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "Metrology C kernels.", -1, methods};

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""      /* built without setup.py: the start-up check cannot tell its source */
#endif

PyMODINIT_FUNC PyInit__ckernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
