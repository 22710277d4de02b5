/* A window's or a second's values and energy from its cycles, the aggregations' sums, the cycles' clock
 * times. */
#include "kernels.h"

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
CK_HIDDEN PyObject *k_interval_values(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_interval_energy(PyObject *self, PyObject *args)
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

/* aggregate_add's pass over several rows on buffers apart: four items at a time, their sums held in vectors while
 * every row of x is added to them in order (the same operations, in the same order, as a call a row), then stored;
 * the items past the last four one row after the other. Per CPU: AVX2 takes the four in one register. */
PER_CPU
static void aggregate_rows(const double *x, const double *sq, double *total, double *count, double *peak,
                           double *finite, double *latest, Py_ssize_t w, Py_ssize_t rows)
{
    const v4d zero = splat(0.0), one = splat(1.0);
    Py_ssize_t j = 0;
    for (; j + 4 <= w; j += 4) {
        v4d t = v4_load(total + j), n = v4_load(count + j), p = v4_load(peak + j), f = v4_load(finite + j);
        v4d v = zero;
        const v4l square = v4_load(sq + j) != zero;
        for (Py_ssize_t r = 0; r < rows; r++) {
            v = v4_load(x + r * w + j);
            const v4d y = (v4d)(((v4l)(v * v) & square) | ((v4l)v & ~square));
            const v4l valid = y == y, greater = (v == v) & ((p != p) | (v > p)), fin = (v - v) == zero;
            t += (v4d)((v4l)y & valid);
            n += (v4d)((v4l)one & valid);
            p = (v4d)(((v4l)v & greater) | ((v4l)p & ~greater));
            f = (v4d)(((v4l)one & fin) | ((v4l)f & ~fin));
        }
        v4_store(total + j, t);
        v4_store(count + j, n);
        v4_store(peak + j, p);
        v4_store(finite + j, f);
        v4_store(latest + j, v);
    }
    for (Py_ssize_t r = 0; r < rows; r++)
        for (Py_ssize_t k = j; k < w; k++)
            aggregate_one(x + r * w, sq, total, count, peak, finite, latest, k);
}

/* aggregate_add(x (rows, w), square (w,), total (w,), count (w,), peak (w,), finite (w,), latest (w,), w, rows):
 *               the values x of rows intervals, one after the other, into the running sums of an aggregation
 *               (reference.aggregate_add): each row's x, squared where square is 1, to total and count where not
 *               NaN; peak the greater of it and x ignoring NaN (np.fmax); finite 1 where x is finite; latest x. An
 *               item's sums take the rows in order, as a call a row would. On buffers that share memory, a row at
 *               a time. */
CK_HIDDEN PyObject *k_aggregate_add(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(7);
    Py_ssize_t w, rows;
    if (kernel_args(args, o, 7, "nn", &w, &rows))
        return NULL;
    if (w < 0 || rows < 0)
        return bad_args("aggregate_add: bad dimensions");
    const array_arg spec[] = {{"x", 0, ITEMS(rows, w)}, {"square", 0, ITEMS(w)}, {"total", WRITTEN_SHARED, ITEMS(w)},
                              {"count", WRITTEN_SHARED, ITEMS(w)}, {"peak", WRITTEN_SHARED, ITEMS(w)},
                              {"finite", WRITTEN_SHARED, ITEMS(w)}, {"latest", WRITTEN_SHARED, ITEMS(w)}};
    if (get_arrays(o, spec, 7, b))
        return NULL;
    const double *x = b[0].view.buf, *sq = b[1].view.buf;
    double *total = b[2].view.buf, *count = b[3].view.buf, *peak = b[4].view.buf, *finite = b[5].view.buf;
    double *latest = b[6].view.buf;
    if (overlapping(b, 7))
        for (Py_ssize_t r = 0; r < rows; r++)
            for (Py_ssize_t j = 0; j < w; j++)
                aggregate_one(x + r * w, sq, total, count, peak, finite, latest, j);
    else if (rows > 0)
        aggregate_rows(x, sq, total, count, peak, finite, latest, w, rows);
    release(b, 7);
    Py_RETURN_NONE;
}

/* aggregate_result(sums (5, w), kind (w,), bounds (nk + 1,), out (w,), w, nk): the values of an aggregation from its
 *                  running sums (rows: total, count, peak, finite, latest; reference.aggregate_result): a value (the
 *                  items bounds[k] .. bounds[k + 1] - 1) with no finite item keeps its latest; else each item by its
 *                  kind, 1: the square root of the mean total / count (NaN with no count), 2: the mean, 3: the peak,
 *                  else the latest. */
CK_HIDDEN PyObject *k_aggregate_result(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(4);
    Py_ssize_t w, nk;
    if (kernel_args(args, o, 4, "nn", &w, &nk))
        return NULL;
    if (w < 0 || nk < 0)
        return bad_args("aggregate_result: bad dimensions");
    const array_arg spec[] = {{"sums", 0, ITEMS(5, w)}, {"kind", 0, ITEMS(w)}, {"bounds", 0, ITEMS(nk + 1)},
                              {"out", 1, ITEMS(w)}};
    if (get_arrays(o, spec, 4, b))
        return NULL;
    const double *sums = b[0].view.buf, *kind = b[1].view.buf, *bounds = b[2].view.buf;
    double *out = b[3].view.buf;
    /* the values tile the items: bounds from 0 to w, none going back (NaN refused) */
    int tiled = bounds[0] == 0.0 && bounds[nk] == (double)w;
    for (Py_ssize_t k = 0; k < nk; k++)
        tiled &= bounds[k] <= bounds[k + 1] && bounds[k + 1] == floor(bounds[k + 1]);
    if (!tiled) {
        release(b, 4);
        return bad_args("aggregate_result: the values' bounds do not tile the items");
    }
    const double *total = sums, *count = sums + w, *peak = sums + 2 * w, *finite = sums + 3 * w, *latest = sums + 4 * w;
    for (Py_ssize_t k = 0; k < nk; k++) {
        const Py_ssize_t lo = (Py_ssize_t)bounds[k], hi = (Py_ssize_t)bounds[k + 1];
        int any = 0;
        for (Py_ssize_t j = lo; j < hi; j++)
            any |= finite[j] != 0.0;
        for (Py_ssize_t j = lo; j < hi; j++) {
            double v = latest[j];
            if (any && (kind[j] == 1.0 || kind[j] == 2.0)) {
                const double mean = count[j] > 0.0 ? total[j] / count[j] : NAN;
                v = kind[j] == 1.0 ? sqrt(mean) : mean;
            } else if (any && kind[j] == 3.0) {
                v = peak[j];
            }
            out[j] = v;
        }
    }
    release(b, 4);
    Py_RETURN_NONE;
}

/* cycle_times(start (m,), end (m,), ns (4m,) int64, m, origin_ns, ns_per_sample): the clock times of m cycles from
 *             their boundaries (fractional sample indices), reference.cycle_times: each index times ns_per_sample
 *             rounded half to even, plus origin_ns; ns holds start_ns (m), end_ns (m) and half_end_ns (2m), the
 *             times where each half cycle ends (the middle of the cycle, (start + end) / 2, then its end). */
CK_HIDDEN PyObject *k_cycle_times(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(3);
    Py_ssize_t m;
    long long origin;
    double scale;
    if (kernel_args(args, o, 3, "nLd", &m, &origin, &scale))
        return NULL;
    if (m < 0)
        return bad_args("cycle_times: bad cycle count");
    const array_arg spec[] = {{"start", 0, m, 0}, {"end", 0, m, 0}, {"ns", 1, ITEMS(4, m), 1}};
    if (get_arrays(o, spec, 3, b))
        return NULL;
    const double *start = b[0].view.buf, *end = b[1].view.buf;
    long long *start_ns = b[2].view.buf, *end_ns = start_ns + m, *half_ns = start_ns + 2 * m;
    for (Py_ssize_t i = 0; i < m; i++) {
        start_ns[i] = origin + (long long)nearbyint(start[i] * scale);
        end_ns[i] = origin + (long long)nearbyint(end[i] * scale);
        half_ns[2 * i] = origin + (long long)nearbyint((start[i] + end[i]) / 2 * scale);
        half_ns[2 * i + 1] = end_ns[i];
    }
    release(b, 3);
    Py_RETURN_NONE;
}
