/* What the metrology kernels' C files share: the arguments' buffers and checks, vectors of doubles, the
 * per-CPU clones, biquads, and each file's kernels for the module's table. */
#ifndef METROLOGY_KERNELS_H
#define METROLOGY_KERNELS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* functions of one file that another calls: inside the module only */
#define CK_HIDDEN __attribute__((visibility("hidden")))

/* two doubles, an SSE2 or NEON register: stores of two samples at a time where the compiler would not pair them */
typedef double v2d __attribute__((vector_size(16)));

typedef long long v2l __attribute__((vector_size(16)));

typedef struct {
    Py_buffer view;
    int held;
} buf_t;

#define ITEMS(...) \
    items_of((const Py_ssize_t[]){__VA_ARGS__}, (int)(sizeof((Py_ssize_t[]){__VA_ARGS__}) / sizeof(Py_ssize_t)))

/* A kernel's N array arguments (o) and their buffers (b, none held yet). */
#define KERNEL_ARRAYS(N) \
    PyObject *o[N];      \
    buf_t b[N] = {{.held = 0}}

/* An array argument of a kernel: the name its errors give, whether the kernel writes it (READ, WRITTEN: no other of
 * its arrays may share its memory, WRITTEN_SHARED: the kernel takes such sharing into account), the items it needs,
 * and whether it holds int64 (else float64). */
enum { READ = 0, WRITTEN = 1, WRITTEN_SHARED = 2 };

typedef struct {
    const char *name;
    int writable;
    Py_ssize_t min_items;
    int int64;
} array_arg;

/* Four doubles as one value: GCC/Clang vector extensions, lowered to whatever the target has (two SSE2 or NEON
 * registers, one AVX register). Loads and stores go through memcpy: no alignment is assumed. */
typedef double v4d __attribute__((vector_size(32)));

typedef long long v4l __attribute__((vector_size(32)));

#pragma GCC diagnostic ignored "-Wpsabi"     /* the v4d helpers are inlined: no ABI crosses a call */

static inline v4d v4_load(const double *p)
{
    v4d v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(double *p, v4d v)
{
    memcpy(p, &v, sizeof v);
}

static inline v4d splat(double v)
{
    return (v4d){v, v, v, v};
}

/* The lanes i, j, k, l (constants) of the eight of a, b. */
#if defined(__clang__)

#define SHUFFLE2(a, b, i, j, k, l) __builtin_shufflevector((a), (b), (i), (j), (k), (l))
#else

#define SHUFFLE2(a, b, i, j, k, l) __builtin_shuffle((a), (b), (v4l){(i), (j), (k), (l)})
#endif

/* p[0] in every lane as one broadcast load (a vector built from a scalar takes a shuffle more in the per-CPU
 * clones): reads p[0..3], which the caller keeps inside its buffers. */
static inline v4d splat_at(const double *p)
{
    return SHUFFLE2(v4_load(p), v4_load(p), 0, 0, 0, 0);
}

/* The per-sample passes are compiled three times on x86-64, for the baseline, x86-64-v3 (AVX2) and x86-64-v4
 * (AVX-512: twice the vector registers), and the loader picks the one the CPU runs; elsewhere (aarch64: NEON) once.
 * setup.py builds with -ffp-contract=off: no multiply-add is fused, so every clone gives the same bits as the
 * reference's order of operations does. */
/* -DNO_CLONES: the baseline form alone, neither the clones nor the AVX-512 DFT (a sanitizer's build: one form of
 * each function, no ifunc). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__linux__) && \
    defined(__GLIBC__) && !defined(NO_CLONES)   /* x86-64-vN: gcc 11's names; the loader's choice: a glibc ifunc */

#define PER_CPU __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

#define X86_CLONES 1
#else

#define PER_CPU
#endif

#define CS_MAX_C 16

#define SOS_MAX_SECTIONS 16

#define SOS_MAX_COLUMNS 16

/* A biquad section of a cascade: direct form II transposed, coefficients over a0, in scipy's order of operations
 * (the tracker's boundaries, and everything resampled between them, follow its output to the last bit). */
typedef struct {
    double b0, b1, b2, a1, a2;
} biquad;

static inline void biquads(const double *sos, Py_ssize_t ns, biquad *q)
{
    for (Py_ssize_t s = 0; s < ns; s++) {
        const double *c = sos + 6 * s;
        q[s].b0 = c[0] / c[3];
        q[s].b1 = c[1] / c[3];
        q[s].b2 = c[2] / c[3];
        q[s].a1 = c[4] / c[3];
        q[s].a2 = c[5] / c[3];
    }
}

static inline __attribute__((always_inline)) double biquad_step(const biquad *q, double *z0, double *z1, double v)
{
    const double y = q->b0 * v + *z0;
    *z0 = q->b1 * v - q->a1 * y + *z1;
    *z1 = q->b2 * v - q->a2 * y;
    return y;
}

/* y[i] = the cascade of ns sections q on u[i], i < n, from and into the states z (ns, 2). Called with ns a
 * constant, the states stay in registers and the sections of consecutive samples overlap. */
static inline __attribute__((always_inline)) void cascade(const biquad *q, int ns, double *z, const double *u,
                                                          double *y, Py_ssize_t n)
{
    double z0[SOS_MAX_SECTIONS], z1[SOS_MAX_SECTIONS];
    for (int s = 0; s < ns; s++) {
        z0[s] = z[2 * s];
        z1[s] = z[2 * s + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = u[i];
        for (int s = 0; s < ns; s++)
            v = biquad_step(q + s, z0 + s, z1 + s, v);
        y[i] = v;
    }
    for (int s = 0; s < ns; s++) {
        z[2 * s] = z0[s];
        z[2 * s + 1] = z1[s];
    }
}

/* The nonzero weights of each column q of mat (c, k), in row order: terms[q] of them, inputs in[q * c + u] and
 * weights w[q * c + u]. */
static inline void sparse_columns(const double *mat, Py_ssize_t c, Py_ssize_t k, Py_ssize_t *in, double *w,
                           Py_ssize_t *terms)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        terms[q] = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0) {
                in[q * c + terms[q]] = i;
                w[q * c + terms[q]++] = mat[i * k + q];
            }
    }
}

/* biquad_step on two channels at once (a two-double vector each), the same operations in each lane. */
static inline __attribute__((always_inline)) v2d biquad_step2(const biquad *q, v2d *z0, v2d *z1, v2d v)
{
    const v2d y = q->b0 * v + *z0;
    *z0 = q->b1 * v - q->a1 * y + *z1;
    *z1 = q->b2 * v - q->a2 * y;
    return y;
}

/* a where the mask m is all ones, else b (m from a comparison of v2d: 0 or -1 in each lane) */
static inline v2d select2(v2l m, v2d a, v2d b)
{
    return (v2d)(((v2l)a & m) | ((v2l)b & ~m));
}

/* args.c */
CK_HIDDEN int kernel_args_init(void);
CK_HIDDEN Py_ssize_t items_of(const Py_ssize_t *f, int n);
CK_HIDDEN void release(buf_t *b, int n);
CK_HIDDEN int kernel_args(PyObject *args, PyObject **o, int n, const char *fmt, ...);
CK_HIDDEN int get_arrays(PyObject *const *o, const array_arg *spec, int n, buf_t *b);
CK_HIDDEN PyObject *bad_args(const char *why);
CK_HIDDEN PyObject *no_memory(buf_t *b, int n);
CK_HIDDEN int overlapping(const buf_t *b, int n);

/* vmath.c */
CK_HIDDEN void atan2_lines(const double *x, Py_ssize_t stride, Py_ssize_t count, double *out);

/* resample.c */
CK_HIDDEN void resample_core(const double *x, Py_ssize_t n, Py_ssize_t c, const double *bounds, const double *grid,
                             Py_ssize_t spc, double offset, Py_ssize_t m, const double *delay, double *out);
CK_HIDDEN PyObject *k_resample_cycles(PyObject *self, PyObject *args);

/* cycles.c */
CK_HIDDEN PyObject *k_cycle_stats(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_cycle_batch(PyObject *self, PyObject *args);

/* filters.c */
CK_HIDDEN PyObject *k_sosfilt(PyObject *self, PyObject *args);

/* harmonics.c */
CK_HIDDEN PyObject *k_harmonic_groups(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_harmonic_values(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_window_harmonics(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_window_finish(PyObject *self, PyObject *args);

/* tracker.c */
CK_HIDDEN PyObject *k_rising_crossings(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_track_crossings(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_track_block(PyObject *self, PyObject *args);

/* events.c */
CK_HIDDEN PyObject *k_cycle_change(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_event_screen(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_half_cycle_rms(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_half_cycle_events(PyObject *self, PyObject *args);

/* flicker.c */
CK_HIDDEN PyObject *k_block_squares(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_flicker_squares(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_flicker_chain(PyObject *self, PyObject *args);

/* intervals.c */
CK_HIDDEN PyObject *k_interval_values(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_interval_energy(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_aggregate_add(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_aggregate_result(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_cycle_times(PyObject *self, PyObject *args);

/* window.c */
CK_HIDDEN PyObject *k_window_append(PyObject *self, PyObject *args);
CK_HIDDEN PyObject *k_window_rfft(PyObject *self, PyObject *args);

#endif
