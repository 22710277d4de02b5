/* The flickermeter: the voltages' boxcar mean squares (block 2) and its filter chain (blocks 3 and 4). */
#include "kernels.h"

#define SQ_MAX_K 3          /* run_squares' outputs at most (the flickermeter's three voltages) */

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
CK_HIDDEN PyObject *k_block_squares(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_flicker_squares(PyObject *self, PyObject *args)
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
CK_HIDDEN PyObject *k_flicker_chain(PyObject *self, PyObject *args)
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
