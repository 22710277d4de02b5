/* A kernel's arguments: its arrays with their sizes checked, then its scalars. A numpy array is read through
 * numpy's C API where the build had numpy's headers (KERNELS_NUMPY_API): its data pointer, size and flags, with the
 * checks the buffer protocol makes (writable, C-contiguous, native float64 or int64). The buffer protocol builds
 * a format string and shape for every array it exports, a quarter of a microsecond each, and a kernel takes up to
 * seventeen arrays a call. Any other object goes through the buffer protocol. */
#include "kernels.h"

#ifdef KERNELS_NUMPY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* numpy's C API for this file (the module's start calls it): 0, or -1 with an ImportError set. numpy raises a
 * RuntimeError for a numpy older than the one the module was built with; as an ImportError it makes the pipeline
 * take its numpy references (metrology._kernels), as a module that does not load at all does. */
int kernel_args_init(void)
{
    if (_import_array() >= 0)
        return 0;
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    PyObject *text = value != NULL ? PyObject_Str(value) : NULL;
    PyErr_Format(PyExc_ImportError, "the metrology kernels cannot use this numpy: %s",
                 text != NULL ? PyUnicode_AsUTF8(text) : "numpy's C API did not load");
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(trace);
    return -1;
}

/* The numpy array a as a buffer in b, with the buffer protocol's errors in its order: 0, or -1 with the error set. */
static int array_buf(PyArrayObject *a, buf_t *b, int writable, const char *name, int int64)
{
    if (writable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s is read-only", name);
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a)) {
        PyErr_Format(PyExc_ValueError, "%s is not C-contiguous", name);
        return -1;
    }
    const int t = PyArray_TYPE(a);
    if (PyArray_ITEMSIZE(a) != 8 || !PyArray_ISNOTSWAPPED(a) ||
        !(int64 ? t == NPY_LONG || t == NPY_LONGLONG : t == NPY_DOUBLE)) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %s array", name, int64 ? "int64" : "float64");
        return -1;
    }
    b->view.buf = PyArray_DATA(a);
    b->view.len = PyArray_NBYTES(a);
    return 0;
}
#else
int kernel_args_init(void)
{
    return 0;
}
#endif

static int get_buf(PyObject *obj, buf_t *b, int writable, Py_ssize_t min_items, const char *name, int int64)
{
    b->held = 0;
#ifdef KERNELS_NUMPY_API
    if (PyArray_Check(obj)) {
        if (array_buf((PyArrayObject *)obj, b, writable, name, int64))
            return -1;
    } else
#endif
    {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
            return -1;
        b->held = 1;
        const char *f = b->view.format;
        const int ok = f != NULL && (int64 ? (strcmp(f, "l") == 0 || strcmp(f, "q") == 0) : strcmp(f, "d") == 0);
        if (b->view.itemsize != 8 || !ok) {
            PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %s array", name, int64 ? "int64" : "float64");
            return -1;
        }
    }
    if (b->view.len > 0 && ((uintptr_t)b->view.buf & 7) != 0) {   /* vectorised loops assume a double's alignment */
        PyErr_Format(PyExc_ValueError, "%s is not aligned to 8 bytes", name);
        return -1;
    }
    if (min_items < 0) {
        PyErr_Format(PyExc_ValueError, "%s: a size is negative or too large", name);
        return -1;
    }
    if (b->view.len / 8 < min_items) {
        PyErr_Format(PyExc_ValueError, "%s has %zd items, needs %zd", name, b->view.len / 8, min_items);
        return -1;
    }
    return 0;
}

/* The product of n sizes, to be compared with a buffer's items: -1 (which get_buf refuses) when one is negative or
 * the product of those that are not zero overflows, so that no size formed from them in a kernel overflows. */
Py_ssize_t items_of(const Py_ssize_t *f, int n)
{
    Py_ssize_t nonzero = 1;
    int zero = 0;
    for (int i = 0; i < n; i++) {
        if (f[i] < 0 || (f[i] > 0 && __builtin_mul_overflow(nonzero, f[i], &nonzero)))
            return -1;
        zero |= f[i] == 0;
    }
    return zero ? 0 : nonzero;
}

void release(buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i].held)
            PyBuffer_Release(&b[i].view);
}

/* A kernel's arguments: its n arrays first, into o[] (borrowed), then the scalars that fmt (PyArg_ParseTuple's
 * format) names, into the pointers that follow: 0, or -1 with the error set. */
int kernel_args(PyObject *args, PyObject **o, int n, const char *fmt, ...)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < n) {
        PyErr_Format(PyExc_TypeError, "the kernel takes %d arrays, then its sizes", n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        o[i] = PyTuple_GET_ITEM(args, i);
    PyObject *rest = PyTuple_GetSlice(args, n, PyTuple_GET_SIZE(args));
    if (rest == NULL)
        return -1;
    va_list va;
    va_start(va, fmt);
    const int ok = PyArg_VaParse(rest, fmt, va);
    va_end(va);
    Py_DECREF(rest);
    return ok ? 0 : -1;
}

/* The buffer of spec[] that the kernel writes (WRITTEN) and that shares memory with another of the n, or -1. A
 * kernel that writes one array while it reads another would read what it had written (and memcpy between them is
 * undefined), where the reference reads its inputs as they were given. */
static int written_shared(const buf_t *b, const array_arg *spec, int n)
{
    for (int i = 0; i < n; i++) {
        if (spec[i].writable != WRITTEN || b[i].view.len == 0)
            continue;
        const char *a0 = b[i].view.buf;
        for (int j = 0; j < n; j++) {
            const char *b0 = b[j].view.buf;
            if (j != i && a0 < b0 + b[j].view.len && b0 < a0 + b[i].view.len)
                return i;
        }
    }
    return -1;
}

/* The buffers b[0 .. n-1] of the arrays o[0 .. n-1] as spec[] asks: 0, or -1 with the error set and none held. */
int get_arrays(PyObject *const *o, const array_arg *spec, int n, buf_t *b)
{
    for (int i = 0; i < n; i++)
        if (get_buf(o[i], &b[i], spec[i].writable != READ, spec[i].min_items, spec[i].name, spec[i].int64)) {
            release(b, n);
            return -1;
        }
    const int shared = written_shared(b, spec, n);
    if (shared >= 0) {
        PyErr_Format(PyExc_ValueError, "%s is written and shares memory with another array", spec[shared].name);
        release(b, n);
        return -1;
    }
    return 0;
}

/* The arguments' dimensions do not fit together: a ValueError saying why. */
PyObject *bad_args(const char *why)
{
    PyErr_SetString(PyExc_ValueError, why);
    return NULL;
}

/* A scratch allocation failed: let go of the n buffers held. */
PyObject *no_memory(buf_t *b, int n)
{
    release(b, n);
    return PyErr_NoMemory();
}

/* Whether any two of the n buffers share memory. */
int overlapping(const buf_t *b, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const char *a0 = b[i].view.buf, *b0 = b[j].view.buf;
            if (a0 < b0 + b[j].view.len && b0 < a0 + b[i].view.len)
                return 1;
        }
    return 0;
}
