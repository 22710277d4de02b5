/* A window's spectral values from its DFT lines: subgroups, interharmonics, angles, THD, K-factor, TDD,
 * signalling voltages, and the window's last values. */
#include "kernels.h"

/* harmonic_groups(lines (ns, 2 * nl) complex DFT lines as (re, im) pairs, g2 (ns, no - 1), inter2 (ns, no - 1),
 *                 phase (ns, no), ns, nl, n, no): for a window of n cycles (line h*n is harmonic h), per
 *                 signal: g2[h-1] = sum of |X|^2 over lines h*n-1 .. h*n+1 (only h*n when n < 2) for orders
 *                 h = 1 .. no-1; inter2[h] = sum of |X|^2 over lines h*n+2 .. h*n+n-2 for h = 0 .. no-2 (zero
 *                 when n < 4); phase[h] = atan2 of line h*n for h = 0 .. no-1. Needs nl >= no * n. */
CK_HIDDEN PyObject *k_harmonic_groups(PyObject *self, PyObject *args)
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
        atan2_lines(x, n, no, phase + sg * no);
        for (Py_ssize_t h = 0; h < no; h++) {
            const Py_ssize_t c = h * n;
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
    atan2_lines(x, n, no, phase);       /* (the callers ask for no >= 2 orders: phase[1] is set) */
    for (Py_ssize_t h = 0; h < no; h++) {
        const Py_ssize_t c = h * n;
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
CK_HIDDEN PyObject *k_harmonic_values(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_window_harmonics(PyObject *self, PyObject *args)
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

CK_HIDDEN PyObject *k_window_finish(PyObject *self, PyObject *args)
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
    atan2_lines(fund, 1, s, angle);
    const double first = angle[0];
    for (Py_ssize_t j = 0; j < s; j++) {
        double a = angle[j] - first;
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
