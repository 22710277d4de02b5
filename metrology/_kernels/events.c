/* The disturbances' screens: the transients' cycle-to-cycle change, Urms(1/2) and the voltage events'
 * screen. */
#include "kernels.h"

/* The larger of mx and d in each lane; a NaN d leaves mx (d > mx is false). */
static inline __attribute__((always_inline)) v4d max_kept(v4d mx, v4d d)
{
    const v4l take = (v4l)(d > mx);
    return (v4d)(((v4l)d & take) | ((v4l)mx & ~take));
}

/* |v - b| in each lane (the sign bit cleared). */
static inline __attribute__((always_inline)) v4d abs_diff(v4d v, v4d b)
{
    const v4l magnitude = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    return (v4d)((v4l)(v - b) & magnitude);
}

/* Four samples t .. t + 3 of a derived signal, sum_u x[(t + j) * c + in[u]] w[u] in lane j (nt terms in order,
 * from 0.0): each lane the sum the scalar loop forms. */
static inline __attribute__((always_inline)) v4d signal4(const double *r, Py_ssize_t c, const Py_ssize_t *in,
                                                         const double *w, int nt)
{
    v4d v = splat(0.0);
    for (int u = 0; u < nt; u++) {
        const double *p = r + in[u];
        v += (v4d){p[0], p[c], p[2 * c], p[3 * c]} * splat(w[u]);
    }
    return v;
}

/* One cycle of a derived signal, y[t] = sum_u x[t * c + in[u]] w[u] for t < s (nt terms, a constant when inlined),
 * and, with the cycle before it (before, else NULL), the largest |y[t] - before[t]| (0 if none; NaN differences
 * count as 0): sixteen samples a step, four running maxima of four lanes (a maximum's compare and select wait for
 * the last one's). */
static inline __attribute__((always_inline)) double signal_change(const double *x, Py_ssize_t s, Py_ssize_t c,
                                                                  const Py_ssize_t *in, const double *w, int nt,
                                                                  const double *restrict before, double *restrict y)
{
    v4d mx[4] = {splat(0.0), splat(0.0), splat(0.0), splat(0.0)};
    Py_ssize_t t = 0;
    for (; t + 16 <= s; t += 16)
        for (int j = 0; j < 4; j++) {
            const v4d v = signal4(x + (t + 4 * j) * c, c, in, w, nt);
            v4_store(y + t + 4 * j, v);
            if (before != NULL)
                mx[j] = max_kept(mx[j], abs_diff(v, v4_load(before + t + 4 * j)));
        }
    double m = 0.0;
    for (; t < s; t++) {
        double v = 0.0;
        for (int u = 0; u < nt; u++)
            v += x[t * c + in[u]] * w[u];
        y[t] = v;
        if (before != NULL) {
            const double d = fabs(v - before[t]);
            m = d > m ? d : m;
        }
    }
    const v4d all = max_kept(max_kept(mx[0], mx[1]), max_kept(mx[2], mx[3]));
    for (int j = 0; j < 4; j++)
        m = all[j] > m ? all[j] : m;
    return m;
}

/* cycle_change's pass over the m cycles of x (its definition below): the signals of cycle j into last when
 * m - 1 - j is even, else into y (s * k doubles, used when m > 1), each compared with those of the cycle before
 * (prev for the first when has_prev). */
PER_CPU static void change_pass(const double *x, const double *mat, const double *prev, double *out, double *last,
                                double *y, Py_ssize_t m, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k, int has_prev)
{
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
}

/* cycle_change(x (m, s, c), matrix (c, k), prev (k, s), out (m,), last (k, s), m, s, c, k, has_prev) -> the largest
 * of out (0 when m is 0): for each cycle j the largest |y[j] - y[j-1]| over its samples and signals, y = x @ matrix
 * (zero weights left out), y[-1] = prev when has_prev, else cycle 0 gives 0; NaN differences count as 0;
 * last = y[m-1] (prev when m is 0, else zeros) (reference.cycle_change). prev and last are signal-major (k, s): each
 * signal's samples are formed and compared in a loop of their own, and a batch's last cycle is the next batch's prev
 * as it is. */
CK_HIDDEN PyObject *k_cycle_change(PyObject *self, PyObject *args)
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
    /* the cycles' signals: the last one goes straight to last, the one before it (and so on, alternately) to y */
    double *y = m > 1 ? PyMem_RawMalloc((size_t)(s * k) * sizeof(double)) : NULL;
    if (m > 1 && y == NULL)
        return no_memory(b, 5);
    const double *x = b[0].view.buf, *mat = b[1].view.buf, *prev = b[2].view.buf;
    double *out = b[3].view.buf, *last = b[4].view.buf;
    Py_BEGIN_ALLOW_THREADS
    change_pass(x, mat, prev, out, last, y, m, s, c, k, has_prev);
    if (m == 0) {
        if (has_prev)
            memcpy(last, prev, (size_t)(s * k) * sizeof(double));
        else
            memset(last, 0, (size_t)(s * k) * sizeof(double));
    }
    Py_END_ALLOW_THREADS
    double largest = 0.0;
    for (Py_ssize_t j = 0; j < m; j++)
        largest = out[j] > largest ? out[j] : largest;
    PyMem_RawFree(y);
    release(b, 5);
    return PyFloat_FromDouble(largest);
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

CK_HIDDEN PyObject *k_event_screen(PyObject *self, PyObject *args)
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

CK_HIDDEN PyObject *k_half_cycle_rms(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_half_cycle_events(PyObject *self, PyObject *args)
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
