/* Synchronous resampling: 512 samples per cycle between tracked boundaries (6-point Lagrange, a delay
 * per input). */
#include "kernels.h"

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
CK_HIDDEN void resample_core(const double *x, Py_ssize_t n, Py_ssize_t c, const double *bounds, const double *grid,
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
CK_HIDDEN PyObject *k_resample_cycles(PyObject *self, PyObject *args)
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
