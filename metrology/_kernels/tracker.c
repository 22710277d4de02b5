/* The cycle tracker: rising crossings of the filtered reference, their delays and acceptance rules, a
 * block in one call. */
#include "kernels.h"

#define TRACK_PREFETCH_ROWS 48    /* rows ahead of the tracker's filter: ~2.7 kB of seven inputs */
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
CK_HIDDEN PyObject *k_rising_crossings(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_track_crossings(PyObject *self, PyObject *args)
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
 * y[-1]) is noted as the crossing k = i - 1 + at in cand[], and the count returned; with ``rows`` (not NULL) each row
 * of x is copied there too. The cascade's recursion bounds the loop: the weighted sum, the crossing test, the row's
 * copy and the loads of the rows ahead (prefetched) run in its shadow. */
static inline __attribute__((always_inline)) Py_ssize_t filter_rows(const biquad *q, int ns, double *z,
                                                                    const double *x, Py_ssize_t c, const int *wi,
                                                                    const double *w, int nw, double *restrict y,
                                                                    Py_ssize_t n, double prev, Py_ssize_t at,
                                                                    Py_ssize_t *restrict cand, double *restrict rows)
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
        if (rows != NULL) {
            double *d = rows + i * c;
            if (c == 7)              /* the board's seven inputs: a copy of fixed size, a few moves */
                memcpy(d, r, 7 * sizeof(double));
            else
                for (Py_ssize_t k = 0; k < c; k++)
                    d[k] = r[k];
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
 *             params (11,), out_t (n,), out_real (n,), rows (n, c) if copy, n, c, ns, tl, hl, nt, mixed, copy)
 *             -> count:
 * the cycle tracker's usual pass over a block (reference.track_block): the reference (the weighted sum of x's
 * columns with mixed, else x's single column) through the filter from zi, after the last state[4] filtered samples
 * kept right-aligned in tail; track_crossing at each rising crossing of the two from max(state[4] - 2, 1) while the
 * sample two after it is there, half the peak's window floor(period / 2), params[0] the index of x's first row; zi,
 * tail and state left for the next block, hist the last hl rows of x when there are that many, and with copy x's
 * rows in rows (the resampler's store: the filter's loop reads every row anyway, and the copy runs in the shadow of
 * its recursion). */
CK_HIDDEN PyObject *k_track_block(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(12);
    Py_ssize_t n, c, ns, tl, hl, nt;
    int mixed, copy;
    if (kernel_args(args, o, 12, "nnnnnnpp", &n, &c, &ns, &tl, &hl, &nt, &mixed, &copy))
        return NULL;
    if (ns < 0 || ns > SOS_MAX_SECTIONS || c < 1 || c > SOS_MAX_COLUMNS || (!mixed && c != 1) || nt < 2)
        return bad_args("track_block: bad section count, column count or delay table");
    const array_arg spec[] = {{"x", 0, ITEMS(n, c)}, {"w", 0, ITEMS(c)}, {"sos", 0, ITEMS(ns, 6)},
                              {"zi", 1, ITEMS(ns, 2)}, {"tail", 1, ITEMS(tl)}, {"hist", 1, ITEMS(hl, c)},
                              {"state", 1, 5}, {"table", 0, nt}, {"params", 0, 11}, {"out_t", 1, ITEMS(n)},
                              {"out_real", 1, ITEMS(n)}, {"rows", 1, copy ? ITEMS(n, c) : 0}};
    if (get_arrays(o, spec, 12, b))
        return NULL;
    double *st = b[6].view.buf;
    const double kept = st[4];
    if (!(kept >= 0.0 && kept <= (double)tl)) {
        release(b, 12);
        return bad_args("track_block: the tail count is not within the tail");
    }
    /* n and tl are at most their buffers' items: m and the scratch's size do not overflow */
    const Py_ssize_t t = (Py_ssize_t)kept, m = t + n;
    double *yy = PyMem_RawMalloc((size_t)m * sizeof(double) + (size_t)(m + 1) * sizeof(Py_ssize_t));
    if (yy == NULL)
        return no_memory(b, 12);
    Py_ssize_t *cand = (Py_ssize_t *)(yy + m);     /* the rising crossings, in order */
    const double *x = b[0].view.buf, *wv = b[1].view.buf, *pr = b[8].view.buf;
    double *zi = b[3].view.buf, *tail = b[4].view.buf, *hist = b[5].view.buf;
    double *rows = copy ? b[11].view.buf : NULL;
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
        nc += filter_rows(q, 2, zi, x, c, wi, w, 3, yy + t, n, prev, t, cand + nc, rows);
    else if (ns == 2 && nw < 0)
        nc += filter_rows(q, 2, zi, x, c, wi, w, -1, yy + t, n, prev, t, cand + nc, rows);
    else if (ns == 2)
        nc += filter_rows(q, 2, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc, rows);
    else
        nc += filter_rows(q, (int)ns, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc, rows);
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
    release(b, 12);
    return PyLong_FromSsize_t(tr.count);
}
