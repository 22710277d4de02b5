/*
 * Per-sample kernels of the metrology pipeline.
 *
 * Why this is in C: these loops run over every sample of every channel (7 x 32,000 per second in,
 * 11 x 30,720 per second out at 60 Hz) and do a few multiply-adds per sample with data-dependent
 * indexing (interpolation taps at fractional positions) or a recursion (IIR filter). numpy can
 * only express them with large temporaries (6 gathered taps per output sample, per channel) or a
 * Python-level wrapper per call (scipy's sosfilt costs ~150 us per 1024-sample block in
 * argument handling alone), which kept the whole pipeline near 16x real time on one core; the
 * target is 100x. Each function here has a numpy definition in reference.py with the same
 * arguments, and tests/unit/test_metrology_kernels.py checks that both agree.
 *
 * Arrays are passed through the buffer protocol (C-contiguous float64), so the extension needs
 * neither numpy headers nor numpy at build time. Outputs are written into caller-allocated buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} buf_t;

static int get_buf(PyObject *obj, buf_t *b, int writable, Py_ssize_t min_items, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    if (b->view.itemsize != 8 || b->view.format == NULL || strcmp(b->view.format, "d") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous float64 array", name);
        return -1;
    }
    if (b->view.len / 8 < min_items) {
        PyErr_Format(PyExc_ValueError, "%s has %zd items, needs %zd", name, b->view.len / 8, min_items);
        return -1;
    }
    return 0;
}

static void release(buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i].held)
            PyBuffer_Release(&b[i].view);
}

/* 6-point Lagrange weights for taps at -2..3 around floor(p), mu = p - floor(p): each weight is the
 * product of the five other factors (mu - offset) over a constant, formed from shared prefix and suffix
 * products (12 multiplications instead of 24 and six divisions). */
static inline void lagrange6(double mu, double w[6])
{
    const double a = mu + 2, b = mu + 1, c = mu, d = mu - 1, e = mu - 2, f = mu - 3;
    const double ab = a * b, abc = ab * c, abcd = abc * d;
    const double ef = e * f, def = d * ef, cdef = c * def;
    w[0] = b * cdef * (-1.0 / 120.0);
    w[1] = a * cdef * (1.0 / 24.0);
    w[2] = ab * def * (-1.0 / 12.0);
    w[3] = abc * ef * (1.0 / 12.0);
    w[4] = abcd * f * (-1.0 / 24.0);
    w[5] = abcd * e * (1.0 / 120.0);
}

/* resample(buf (n, c), pos (m,), delays (c,), out (m, c)) */
static PyObject *k_resample(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    buf_t b[4] = {{0}};
    Py_ssize_t n, c, m;
    if (!PyArg_ParseTuple(args, "OOOOnnn", &o[0], &o[1], &o[2], &o[3], &n, &c, &m))
        return NULL;
    if (get_buf(o[0], &b[0], 0, n * c, "buf") || get_buf(o[1], &b[1], 0, m, "pos") ||
        get_buf(o[2], &b[2], 0, c, "delays") || get_buf(o[3], &b[3], 1, m * c, "out")) {
        release(b, 4);
        return NULL;
    }
    const double *x = b[0].view.buf, *pos = b[1].view.buf, *delay = b[2].view.buf;
    double *out = b[3].view.buf;
    int same = 1;
    for (Py_ssize_t ch = 1; ch < c; ch++)
        if (delay[ch] != delay[0])
            same = 0;
    Py_BEGIN_ALLOW_THREADS
    double w[6];
    for (Py_ssize_t i = 0; i < m; i++) {
        for (Py_ssize_t ch = 0; ch < c; ch++) {
            if (ch == 0 || !same) {
                double p = pos[i] + delay[ch];
                double base = floor(p);
                lagrange6(p - base, w);
                Py_ssize_t k0 = (Py_ssize_t)base - 2;
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
    Py_END_ALLOW_THREADS
    release(b, 4);
    Py_RETURN_NONE;
}

/* cycle_stats(x (m, s, c), mat (c, k), cos (s,), sin (s,), sq (m, 2, k), peak (m, k), vi (m, nvi), fre (m, k),
 *             fim (m, k), m, s, c, k, v0, i0, nvi): for the derived signals y = x @ mat of every cycle,
 *             half-cycle sums of squares, peaks, sum of y[v0+q] * y[i0+q], and the DFT bin 1 sums
 *             sum y cos, sum y sin (the caller scales and signs them). The derived signals are formed
 *             sample by sample from the nonzero entries of mat (a wiring matrix is mostly zeros) and
 *             never stored. */
#define CS_MAX_K 64
#define CS_MAX_C 16
static PyObject *k_cycle_stats(PyObject *self, PyObject *args)
{
    PyObject *o[9];
    buf_t b[9] = {{0}};
    Py_ssize_t m, s, c, k, v0, i0, nvi;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOnnnnnnn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                          &o[8], &m, &s, &c, &k, &v0, &i0, &nvi))
        return NULL;
    if (k > CS_MAX_K || c > CS_MAX_C || nvi > 16 || v0 < 0 || i0 < 0 || v0 + nvi > k || i0 + nvi > k) {
        PyErr_SetString(PyExc_ValueError, "cycle_stats: too many signals or bad v/i indices");
        return NULL;
    }
    if (get_buf(o[0], &b[0], 0, m * s * c, "x") || get_buf(o[1], &b[1], 0, c * k, "mat") ||
        get_buf(o[2], &b[2], 0, s, "cos") || get_buf(o[3], &b[3], 0, s, "sin") ||
        get_buf(o[4], &b[4], 1, m * 2 * k, "sq") || get_buf(o[5], &b[5], 1, m * k, "peak") ||
        get_buf(o[6], &b[6], 1, m * nvi, "vi") || get_buf(o[7], &b[7], 1, m * k, "fre") ||
        get_buf(o[8], &b[8], 1, m * k, "fim")) {
        release(b, 9);
        return NULL;
    }
    const double *x = b[0].view.buf, *mat = b[1].view.buf, *cs = b[2].view.buf, *sn = b[3].view.buf;
    double *sq = b[4].view.buf, *peak = b[5].view.buf, *vi = b[6].view.buf;
    double *fre = b[7].view.buf, *fim = b[8].view.buf;
    const Py_ssize_t half = s / 2;
    Py_BEGIN_ALLOW_THREADS
    /* nonzero entries of mat, by derived signal */
    int nz_start[CS_MAX_K + 1], nz_in[CS_MAX_K * CS_MAX_C];
    double nz_w[CS_MAX_K * CS_MAX_C];
    int nnz = 0;
    for (Py_ssize_t q = 0; q < k; q++) {
        nz_start[q] = nnz;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0) {
                nz_in[nnz] = (int)i;
                nz_w[nnz++] = mat[i * k + q];
            }
    }
    nz_start[k] = nnz;
    for (Py_ssize_t cy = 0; cy < m; cy++) {
        double acc_sq[2][CS_MAX_K] = {{0}}, acc_pk[CS_MAX_K] = {0}, acc_re[CS_MAX_K] = {0}, acc_im[CS_MAX_K] = {0};
        double acc_vi[16] = {0}, y[CS_MAX_K];
        const double *cyc = x + cy * s * c;
        for (Py_ssize_t j = 0; j < s; j++) {
            const double *row = cyc + j * c;
            const int h = j >= half;
            const double cj = cs[j], sj = sn[j];
            for (Py_ssize_t q = 0; q < k; q++) {
                double v = 0.0;
                for (int t = nz_start[q]; t < nz_start[q + 1]; t++)
                    v += nz_w[t] * row[nz_in[t]];
                y[q] = v;
                acc_sq[h][q] += v * v;
                const double a = fabs(v);
                if (a > acc_pk[q])
                    acc_pk[q] = a;
                acc_re[q] += v * cj;
                acc_im[q] += v * sj;
            }
            for (Py_ssize_t q = 0; q < nvi; q++)
                acc_vi[q] += y[v0 + q] * y[i0 + q];
        }
        for (Py_ssize_t q = 0; q < k; q++) {
            sq[(cy * 2) * k + q] = acc_sq[0][q];
            sq[(cy * 2 + 1) * k + q] = acc_sq[1][q];
            peak[cy * k + q] = acc_pk[q];
            fre[cy * k + q] = acc_re[q];
            fim[cy * k + q] = acc_im[q];
        }
        for (Py_ssize_t q = 0; q < nvi; q++)
            vi[cy * nvi + q] = acc_vi[q];
    }
    Py_END_ALLOW_THREADS
    release(b, 9);
    Py_RETURN_NONE;
}

/* sosfilt(sos (ns, 6), x (n,), zi (ns, 2) in/out, y (n,)): direct form II transposed biquads, as scipy. */
#define SOS_MAX_SECTIONS 16
static PyObject *k_sosfilt(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    buf_t b[4] = {{0}};
    Py_ssize_t ns, n;
    if (!PyArg_ParseTuple(args, "OOOOnn", &o[0], &o[1], &o[2], &o[3], &ns, &n))
        return NULL;
    if (get_buf(o[0], &b[0], 0, ns * 6, "sos") || get_buf(o[1], &b[1], 0, n, "x") ||
        get_buf(o[2], &b[2], 1, ns * 2, "zi") || get_buf(o[3], &b[3], 1, n, "y")) {
        release(b, 4);
        return NULL;
    }
    if (ns > SOS_MAX_SECTIONS) {
        release(b, 4);
        PyErr_SetString(PyExc_ValueError, "sosfilt: too many sections");
        return NULL;
    }
    const double *sos = b[0].view.buf, *x = b[1].view.buf;
    double *zi = b[2].view.buf, *y = b[3].view.buf;
    Py_BEGIN_ALLOW_THREADS
    /* Sample by sample through the whole cascade: each section's recursion is its own dependency
     * chain, so the processor overlaps the sections of consecutive samples. Each section computes
     * exactly what it would computing one section at a time over the block. */
    double cb0[SOS_MAX_SECTIONS], cb1[SOS_MAX_SECTIONS], cb2[SOS_MAX_SECTIONS];
    double ca1[SOS_MAX_SECTIONS], ca2[SOS_MAX_SECTIONS], z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (Py_ssize_t sct = 0; sct < ns; sct++) {
        const double *c = sos + 6 * sct;
        cb0[sct] = c[0] / c[3];
        cb1[sct] = c[1] / c[3];
        cb2[sct] = c[2] / c[3];
        ca1[sct] = c[4] / c[3];
        ca2[sct] = c[5] / c[3];
        z0[sct] = zi[2 * sct];
        z1[sct] = zi[2 * sct + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = x[i];
        for (Py_ssize_t sct = 0; sct < ns; sct++) {
            const double yi = cb0[sct] * v + z0[sct];
            z0[sct] = cb1[sct] * v - ca1[sct] * yi + z1[sct];
            z1[sct] = cb2[sct] * v - ca2[sct] * yi;
            v = yi;
        }
        y[i] = v;
    }
    for (Py_ssize_t sct = 0; sct < ns; sct++) {
        zi[2 * sct] = z0[sct];
        zi[2 * sct + 1] = z1[sct];
    }
    Py_END_ALLOW_THREADS
    release(b, 4);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"resample", k_resample, METH_VARARGS, "6-point Lagrange interpolation of every column at fractional rows."},
    {"cycle_stats", k_cycle_stats, METH_VARARGS, "Half-cycle sums of squares, peaks, v*i sums and DFT bin 1 of x @ mat."},
    {"sosfilt", k_sosfilt, METH_VARARGS, "Cascade of biquads (direct form II transposed) with state."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "Metrology C kernels.", -1, methods};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
