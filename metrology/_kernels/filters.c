/* Biquad cascades as scipy's sosfilt, with state, on a signal or on a weighted sum of inputs. */
#include "kernels.h"

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
CK_HIDDEN PyObject *k_sosfilt(PyObject *self, PyObject *args)
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
