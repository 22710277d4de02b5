/* A window's rows, and the first lines of their real DFT (mixed radix 4, 2, 3, 5; inputs in vector lanes). */
#include "kernels.h"

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
CK_HIDDEN PyObject *k_window_append(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(3);
    Py_ssize_t m, s, c, ni, width, w, lo, hi, at;
    if (kernel_args(args, o, 3, "nnnnnnnnn", &m, &s, &c, &ni, &width, &w, &lo, &hi, &at))
        return NULL;
    if (lo < 0 || hi > m || hi < lo)     /* before hi - lo is formed: it cannot overflow */
        return bad_args("window_append: the cycles do not fit the window");
    const Py_ssize_t len = ITEMS(hi - lo, s);
    if (len < 0 || at < 0 || width < 0 || at > width - len || ni < 0 || ni > w || ni > CS_MAX_C)
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

/* The plan for m complex points (made once, while the GIL is held): NULL when m has another prime factor, or with a
 * MemoryError set. */
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
        PyErr_NoMemory();          /* a MemoryError, not False (which says N / 2 has another prime factor) */
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
CK_HIDDEN PyObject *k_window_rfft(PyObject *self, PyObject *args)
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
