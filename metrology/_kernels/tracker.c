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

#define TRACK_SQ_MAX_K 8       /* the block squares' outputs at most (the flickermeter has three) */

/* The flickermeter's block 2 in the tracker's pass (reference.flicker_squares is the definition): the squares of
 * the outputs of y = row @ matrix (each the sum of its nonzero terms, in row order) summed over runs of d rows, four
 * partial sums a run (its rows mod 4; the rows past its last four in the first) as flicker.c's run_square adds them,
 * then their mean into out[j]. A run's rows come one at a time (sq_row); they may start in the carried rows. */
typedef struct {
    Py_ssize_t from, to;                 /* the rows of x that sq_row takes (whole runs) */
    Py_ssize_t k, d, rr, j;              /* outputs, rows a run, the row within the open run, runs written */
    const Py_ssize_t *in, *terms;        /* sparse_columns of the matrix */
    const double *w;
    double *out;                         /* (runs, k) */
    double acc[TRACK_SQ_MAX_K][4];
} run_sums;

static inline void sq_row(run_sums *sq, const double *r, Py_ssize_t c)
{
    const Py_ssize_t d = sq->d, rr = sq->rr, k = sq->k;
    const int lane = rr < d - d % 4 ? (int)(rr & 3) : 0;
    for (Py_ssize_t q = 0; q < k; q++) {
        const Py_ssize_t *iq = sq->in + q * c;
        const double *wq = sq->w + q * c;
        double v = 0.0;
        for (Py_ssize_t u = 0; u < sq->terms[q]; u++)
            v += r[iq[u]] * wq[u];
        sq->acc[q][lane] += v * v;
    }
    if (rr + 1 < d) {
        sq->rr = rr + 1;
        return;
    }
    double *o = sq->out + sq->j * k;
    for (Py_ssize_t q = 0; q < k; q++) {
        double *a = sq->acc[q];
        o[q] = ((a[0] + a[1]) + (a[2] + a[3])) / (double)d;
        a[0] = a[1] = a[2] = a[3] = 0.0;
    }
    sq->j++;
    sq->rr = 0;
}

/* The reference filter over n rows of x (n, c) into y[0 .. n-1]: the weighted sum of the nw columns wi[] with weights
 * w[] (formed as k_sosfilt forms it, in column order from 0.0; with nw < 0, x's single column itself), then the
 * cascade of ns sections from and into the states z, sample by sample; each i with y[i-1] < 0 <= y[i] (``prev`` is
 * y[-1]) is noted as the crossing k = i - 1 + at in cand[], and the count returned; with ``rows`` (not NULL) each row
 * of x is copied there too, and with ``sq`` (not NULL) its rows from .. to - 1 go to the block squares. The cascade's
 * recursion bounds the loop: the weighted sum, the crossing test, the row's copy and squares and the loads of the rows
 * ahead (prefetched) run in its shadow. */
static inline __attribute__((always_inline)) Py_ssize_t filter_rows(const biquad *q, int ns, double *z,
                                                                    const double *x, Py_ssize_t c, const int *wi,
                                                                    const double *w, int nw, double *restrict y,
                                                                    Py_ssize_t n, double prev, Py_ssize_t at,
                                                                    Py_ssize_t *restrict cand, double *restrict rows,
                                                                    run_sums *sq, int SQK)
{
    Py_ssize_t nc = 0;
    double z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        z0[s] = z[2 * s];
        z1[s] = z[2 * s + 1];
    }
    /* the block squares' state in locals for the three-output forms (SQK > 0) */
    Py_ssize_t sq_from = 0, sq_to = 0, sq_d = 1, sq_last4 = 0, rr = 0, sq_j = 0;
    Py_ssize_t sq_in[3][2] = {{0}};
    double sq_w[3][2] = {{0.0}}, acc[3][4];
    if (SQK > 0) {
        sq_from = sq->from;
        sq_to = sq->to;
        sq_d = sq->d;
        sq_last4 = sq_d - sq_d % 4;
        rr = sq->rr;
        sq_j = sq->j;
        for (int o = 0; o < 3; o++) {
            for (int t = 0; t < SQK; t++) {
                sq_in[o][t] = sq->in[o * c + t];
                sq_w[o][t] = sq->w[o * c + t];
            }
            for (int l = 0; l < 4; l++)
                acc[o][l] = sq->acc[o][l];
        }
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
        if (SQK > 0 && i >= sq_from && i < sq_to) {
            /* three outputs of SQK terms each (constants): the sums in locals, in run_square's order */
            const int lane = rr < sq_last4 ? (int)(rr & 3) : 0;
            for (int o = 0; o < 3; o++) {
                double u = 0.0;
                for (int t = 0; t < SQK; t++)
                    u += r[sq_in[o][t]] * sq_w[o][t];
                acc[o][lane] += u * u;
            }
            if (++rr == sq_d) {
                double *out = sq->out + sq_j * 3;
                for (int o = 0; o < 3; o++) {
                    out[o] = ((acc[o][0] + acc[o][1]) + (acc[o][2] + acc[o][3])) / (double)sq_d;
                    acc[o][0] = acc[o][1] = acc[o][2] = acc[o][3] = 0.0;
                }
                sq_j++;
                rr = 0;
            }
        } else if (SQK < 0 && i >= sq->from && i < sq->to) {
            sq_row(sq, r, c);
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
    if (SQK > 0) {
        sq->rr = rr;
        sq->j = sq_j;
        for (int o = 0; o < 3; o++)
            for (int l = 0; l < 4; l++)
                sq->acc[o][l] = acc[o][l];
    }
    return nc;
}

/* track_block(x (n, c), w (c,), sos (ns, 6), zi (ns, 2), tail (tl,), hist (hl, c), state (5,), table (nt,),
 *             params (11,), out_t (n,), out_real (n,), rows (n, c) if copy, matrix (c, k), carry (d, c),
 *             out (nout, k), times (nout,) if squares, n, c, ns, tl, hl, nt, mixed, copy, k, d, nr, nout, squares,
 *             t_first, step) -> count:
 * the cycle tracker's usual pass over a block (reference.track_block): the reference (the weighted sum of x's
 * columns with mixed, else x's single column) through the filter from zi, after the last state[4] filtered samples
 * kept right-aligned in tail; track_crossing at each rising crossing of the two from max(state[4] - 2, 1) while the
 * sample two after it is there, half the peak's window floor(period / 2), params[0] the index of x's first row; zi,
 * tail and state left for the next block, hist the last hl rows of x when there are that many, and with copy x's
 * rows in rows (the resampler's store: the filter's loop reads every row anyway, and the copy runs in the shadow of
 * its recursion); with squares, the flickermeter's block 2 of the nr carried rows and x (flicker_squares(x, matrix,
 * carry, nr, t_first, step, out, times), its runs' squares taken in the filter's loop as well). */
CK_HIDDEN PyObject *k_track_block(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(16);
    Py_ssize_t n, c, ns, tl, hl, nt, k, d, nr, nout;
    int mixed, copy, squares;
    double t_first, step;
    if (kernel_args(args, o, 16, "nnnnnnppnnnnpdd", &n, &c, &ns, &tl, &hl, &nt, &mixed, &copy, &k, &d, &nr, &nout,
                    &squares, &t_first, &step))
        return NULL;
    if (ns < 0 || ns > SOS_MAX_SECTIONS || c < 1 || c > SOS_MAX_COLUMNS || (!mixed && c != 1) || nt < 2)
        return bad_args("track_block: bad section count, column count or delay table");
    if (squares && (n < 0 || k < 1 || k > TRACK_SQ_MAX_K || d < 1 || nr < 0 || nr >= d))
        return bad_args("track_block: bad squares' outputs or run, or carried rows not fewer than a run");
    const array_arg spec[] = {{"x", 0, ITEMS(n, c)}, {"w", 0, ITEMS(c)}, {"sos", 0, ITEMS(ns, 6)},
                              {"zi", 1, ITEMS(ns, 2)}, {"tail", 1, ITEMS(tl)}, {"hist", 1, ITEMS(hl, c)},
                              {"state", 1, 5}, {"table", 0, nt}, {"params", 0, 11}, {"out_t", 1, ITEMS(n)},
                              {"out_real", 1, ITEMS(n)}, {"rows", 1, copy ? ITEMS(n, c) : 0},
                              {"matrix", 0, squares ? ITEMS(c, k) : 0}, {"carry", 1, squares ? ITEMS(d, c) : 0},
                              {"out", 1, squares ? ITEMS(nout, k) : 0}, {"times", 1, squares ? ITEMS(nout) : 0}};
    if (get_arrays(o, spec, 16, b))
        return NULL;
    double *st = b[6].view.buf;
    const double kept = st[4];
    if (!(kept >= 0.0 && kept <= (double)tl)) {
        release(b, 16);
        return bad_args("track_block: the tail count is not within the tail");
    }
    /* n is at most x's items and nr below carry's: the sum does not overflow */
    const Py_ssize_t runs = squares ? (nr + n) / d : 0;
    if (runs > nout) {
        release(b, 16);
        return bad_args("track_block: the squares' output has fewer rows than the runs");
    }
    /* n and tl are at most their buffers' items: m and the scratch's size do not overflow */
    const Py_ssize_t t = (Py_ssize_t)kept, m = t + n;
    /* the filtered samples, the crossings, and the matrix's sparse columns (k * c weights, inputs, k term counts) */
    const Py_ssize_t kc = squares ? k * c : 0;
    double *yy = PyMem_RawMalloc((size_t)(m + kc) * sizeof(double) +
                                 (size_t)(m + 1 + kc + (squares ? k : 0)) * sizeof(Py_ssize_t));
    if (yy == NULL)
        return no_memory(b, 16);
    Py_ssize_t *cand = (Py_ssize_t *)(yy + m + kc);     /* the rising crossings, in order */
    const double *x = b[0].view.buf, *wv = b[1].view.buf, *pr = b[8].view.buf;
    double *zi = b[3].view.buf, *tail = b[4].view.buf, *hist = b[5].view.buf;
    double *rows = copy ? b[11].view.buf : NULL;
    run_sums runs_of, *sq = NULL;
    tracking tr;
    Py_BEGIN_ALLOW_THREADS
    if (squares) {
        /* as flicker_squares: the carried rows and the first of x make the first run, if enough; then x's whole runs
         * in the filter's loop; the rows past them carried */
        double *carry = b[13].view.buf, *times = b[15].view.buf;
        Py_ssize_t *in = cand + m + 1;
        sq = &runs_of;
        memset(sq, 0, sizeof *sq);
        sq->k = k;
        sq->d = d;
        sq->in = in;
        sq->terms = in + kc;
        sq->w = yy + m;
        sq->out = b[14].view.buf;
        sparse_columns(b[12].view.buf, c, k, in, yy + m, in + kc);
        Py_ssize_t used = 0;
        if (nr > 0) {
            used = d - nr < n ? d - nr : n;
            memcpy(carry + nr * c, x, (size_t)(used * c) * sizeof(double));
            if (nr + used == d)
                for (Py_ssize_t r = 0; r < d; r++)
                    sq_row(sq, carry + r * c, c);
        }
        sq->from = sq->to = used;
        if (nr == 0 || nr + used == d)
            sq->to = used + (n - used) / d * d;
        for (Py_ssize_t j = 0; j < runs; j++)
            times[j] = ((double)j + 0.5) * step + t_first;
    }
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
    /* the squares' form: none, three outputs of one input each (wye) or two (line to line), or any */
    int sqk = 0;
    if (sq != NULL) {
        sqk = -1;
        if (k == 3 && sq->terms[0] == sq->terms[1] && sq->terms[1] == sq->terms[2] &&
            (sq->terms[0] == 1 || sq->terms[0] == 2))
            sqk = (int)sq->terms[0];
    }
    if (ns == 2 && nw == 3 && sqk == 1)     /* the tracker's 4th-order filter on a wye wiring's reference */
        nc += filter_rows(q, 2, zi, x, c, wi, w, 3, yy + t, n, prev, t, cand + nc, rows, sq, 1);
    else if (ns == 2 && nw == 3 && sqk == 2)
        nc += filter_rows(q, 2, zi, x, c, wi, w, 3, yy + t, n, prev, t, cand + nc, rows, sq, 2);
    else if (ns == 2 && nw == 3 && sqk == 0)
        nc += filter_rows(q, 2, zi, x, c, wi, w, 3, yy + t, n, prev, t, cand + nc, rows, sq, 0);
    else if (ns == 2 && sqk == 1)
        nc += filter_rows(q, 2, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc, rows, sq, 1);
    else if (ns == 2 && sqk == 2)
        nc += filter_rows(q, 2, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc, rows, sq, 2);
    else if (ns == 2 && nw < 0 && sqk == 0)
        nc += filter_rows(q, 2, zi, x, c, wi, w, -1, yy + t, n, prev, t, cand + nc, rows, sq, 0);
    else
        nc += filter_rows(q, (int)ns, zi, x, c, wi, w, nw, yy + t, n, prev, t, cand + nc, rows, sq, sqk);
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
    if (sq != NULL && (nr == 0 || nr + n >= d))      /* the rows past the last whole run (else added to carry) */
        memcpy(b[13].view.buf, x + sq->to * c, (size_t)((n - sq->to) * c) * sizeof(double));
    Py_END_ALLOW_THREADS
    PyMem_RawFree(yy);
    release(b, 16);
    return PyLong_FromSsize_t(tr.count);
}
