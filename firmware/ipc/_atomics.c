/*
 * Memory-ordering primitives and futex wake-ups for the shared-memory ring and snapshot.
 *
 * Why C: Python has no acquire/release loads and stores and no futex. The ring and the
 * seqlock'd snapshot are shared between processes on a CM4 (aarch64, weakly ordered), where a
 * reader must never see a slot's "complete" sequence number before the data it guards. These
 * functions give the exact ordering (GCC __atomic builtins) and let a reader sleep in the kernel
 * until the writer publishes (FUTEX_WAIT/FUTEX_WAKE on a word in the shared mapping), so readers
 * never busy-poll. Every function takes a writable buffer (the mmap) and a byte offset.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *addr_of(Py_buffer *view, Py_ssize_t offset, Py_ssize_t size) {
    if (offset < 0 || offset + size > view->len || (offset % size) != 0) {
        PyErr_Format(PyExc_ValueError, "offset %zd is out of range or not %zd-byte aligned", offset, size);
        return NULL;
    }
    return (char *)view->buf + offset;
}

static PyObject *load_u64(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off;
    if (!PyArg_ParseTuple(args, "w*n", &view, &off)) return NULL;
    uint64_t *p = addr_of(&view, off, 8);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    uint64_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *store_u64(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off; unsigned long long v;
    if (!PyArg_ParseTuple(args, "w*nK", &view, &off, &v)) return NULL;
    uint64_t *p = addr_of(&view, off, 8);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    __atomic_store_n(p, (uint64_t)v, __ATOMIC_RELEASE);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *add_u32(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off; long delta;
    if (!PyArg_ParseTuple(args, "w*nl", &view, &off, &delta)) return NULL;
    uint32_t *p = addr_of(&view, off, 4);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    uint32_t v = __atomic_add_fetch(p, (uint32_t)delta, __ATOMIC_ACQ_REL);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(v);
}

static PyObject *load_u32(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off;
    if (!PyArg_ParseTuple(args, "w*n", &view, &off)) return NULL;
    uint32_t *p = addr_of(&view, off, 4);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    uint32_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(v);
}

static PyObject *fence_acquire(PyObject *self, PyObject *noargs) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    Py_RETURN_NONE;
}

static PyObject *fence_release(PyObject *self, PyObject *noargs) {
    __atomic_thread_fence(__ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* futex_wait(buf, off, expected, timeout_s) -> True if woken or the word already differed, False on timeout. */
static PyObject *futex_wait(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off; unsigned long expected; double timeout_s;
    if (!PyArg_ParseTuple(args, "w*nkd", &view, &off, &expected, &timeout_s)) return NULL;
    uint32_t *p = addr_of(&view, off, 4);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    struct timespec ts;
    if (timeout_s < 0) timeout_s = 0;
    ts.tv_sec = (time_t)timeout_s;
    ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
    long rc;
    int err;
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, p, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
    err = errno;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc == 0 || err == EAGAIN || err == EINTR) Py_RETURN_TRUE;
    if (err == ETIMEDOUT) Py_RETURN_FALSE;
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *futex_wake(PyObject *self, PyObject *args) {
    Py_buffer view; Py_ssize_t off; int n;
    if (!PyArg_ParseTuple(args, "w*ni", &view, &off, &n)) return NULL;
    uint32_t *p = addr_of(&view, off, 4);
    if (!p) { PyBuffer_Release(&view); return NULL; }
    long rc = syscall(SYS_futex, p, FUTEX_WAKE, n, NULL, NULL, 0);
    PyBuffer_Release(&view);
    if (rc < 0) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}


/* Ring layout constants; must match firmware/ipc/ring.py. */
#define RING_HEADER_SIZE 4096
#define RING_SLOT_HEADER 16
#define RING_OFF_SLOT_SIZE 16
#define RING_OFF_N_SLOTS 24
#define RING_OFF_STRIDE 32
#define RING_OFF_HEAD 64
#define RING_OFF_WAKE 128
#define RING_OFF_WAITERS 132

/* ring_write(buf, data) -> position. The whole publish protocol of Ring.write in one call. */
static PyObject *ring_write(PyObject *self, PyObject *args) {
    Py_buffer ring, data;
    if (!PyArg_ParseTuple(args, "w*y*", &ring, &data)) return NULL;
    char *base = ring.buf;
    uint64_t slot_size = *(uint64_t *)(base + RING_OFF_SLOT_SIZE);
    uint64_t n_slots = *(uint64_t *)(base + RING_OFF_N_SLOTS);
    uint64_t stride = *(uint64_t *)(base + RING_OFF_STRIDE);
    if ((uint64_t)data.len > slot_size) {
        PyErr_Format(PyExc_ValueError, "record of %zd bytes does not fit a slot of %llu bytes", data.len,
                     (unsigned long long)slot_size);
        PyBuffer_Release(&ring); PyBuffer_Release(&data);
        return NULL;
    }
    uint64_t *head = (uint64_t *)(base + RING_OFF_HEAD);
    uint64_t pos = __atomic_load_n(head, __ATOMIC_ACQUIRE);
    char *slot = base + RING_HEADER_SIZE + (pos % n_slots) * stride;
    uint64_t *seq = (uint64_t *)slot;
    __atomic_store_n(seq, 2 * pos + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(slot + RING_SLOT_HEADER, data.buf, (size_t)data.len);
    *(uint64_t *)(slot + 8) = (uint64_t)data.len;
    __atomic_store_n(seq, 2 * pos + 2, __ATOMIC_RELEASE);
    __atomic_store_n(head, pos + 1, __ATOMIC_RELEASE);
    uint32_t *wake = (uint32_t *)(base + RING_OFF_WAKE);
    __atomic_add_fetch(wake, 1, __ATOMIC_ACQ_REL);
    if (__atomic_load_n((uint32_t *)(base + RING_OFF_WAITERS), __ATOMIC_ACQUIRE))
        syscall(SYS_futex, wake, FUTEX_WAKE, 0x7FFFFFFF, NULL, NULL, 0);
    PyBuffer_Release(&ring); PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(pos);
}

/* ring_copy(buf, position) -> bytes (the record), None (not written yet) or False (overwritten). */
static PyObject *ring_copy(PyObject *self, PyObject *args) {
    Py_buffer ring; unsigned long long pos;
    if (!PyArg_ParseTuple(args, "w*K", &ring, &pos)) return NULL;
    char *base = ring.buf;
    uint64_t slot_size = *(uint64_t *)(base + RING_OFF_SLOT_SIZE);
    uint64_t n_slots = *(uint64_t *)(base + RING_OFF_N_SLOTS);
    uint64_t stride = *(uint64_t *)(base + RING_OFF_STRIDE);
    char *slot = base + RING_HEADER_SIZE + (pos % n_slots) * stride;
    uint64_t *seq = (uint64_t *)slot;
    uint64_t want = 2 * pos + 2;
    uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    PyObject *out;
    if (s1 < want) { out = Py_None; Py_INCREF(out); goto done; }
    if (s1 > want) { out = Py_False; Py_INCREF(out); goto done; }
    uint64_t len = *(volatile uint64_t *)(slot + 8);
    if (len > slot_size) { out = Py_False; Py_INCREF(out); goto done; }
    out = PyBytes_FromStringAndSize(slot + RING_SLOT_HEADER, (Py_ssize_t)len);
    if (!out) goto done;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(seq, __ATOMIC_RELAXED) != want) { Py_DECREF(out); out = Py_False; Py_INCREF(out); }
done:
    PyBuffer_Release(&ring);
    return out;
}

static PyMethodDef methods[] = {
    {"ring_write", ring_write, METH_VARARGS, "Publish one record in a ring (see firmware/ipc/ring.py)."},
    {"ring_copy", ring_copy, METH_VARARGS, "Copy the record at a position if it is complete and intact."},
    {"load_u64", load_u64, METH_VARARGS, "Acquire-load of an aligned u64."},
    {"store_u64", store_u64, METH_VARARGS, "Release-store of an aligned u64."},
    {"load_u32", load_u32, METH_VARARGS, "Acquire-load of an aligned u32."},
    {"add_u32", add_u32, METH_VARARGS, "Atomic add on an aligned u32; returns the new value."},
    {"fence_acquire", fence_acquire, METH_NOARGS, "Acquire fence (orders earlier loads before later ones)."},
    {"fence_release", fence_release, METH_NOARGS, "Release fence (orders earlier stores before later ones)."},
    {"futex_wait", futex_wait, METH_VARARGS, "Sleep while the u32 equals expected, up to timeout_s."},
    {"futex_wake", futex_wake, METH_VARARGS, "Wake up to n sleepers on the u32."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_atomics", NULL, -1, methods};

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""      /* built without setup.py: the start-up check cannot tell its source */
#endif

PyMODINIT_FUNC PyInit__atomics(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
