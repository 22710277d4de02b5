/*
 * The ADE9000 waveform read loop in a thread that never takes the GIL.
 *
 * Why C: the chip gives the host 4 ms per half buffer (3.5 ms with the one-page safety margin). A
 * Python loop misses that whenever the interpreter pauses (garbage collection, another thread
 * holding the GIL, an import), even on a PC. This thread blocks on the IRQ0 line's file descriptor
 * and per interrupt does what hal/ade9000_stream.py does, transfer for transfer: STATUS0 read and
 * clear, WFB_TRG_STAT read bracketed by clock readings, the half-buffer burst reads, the overtaken
 * check, and the energy registers at EGYRDY. Results go to a ring of about four seconds that Python
 * drains when it can. hal/ade9000_stream.py stays the reference; tests check that both deliver the
 * same blocks from the same simulated chip.
 *
 * Transports: "spidev" (SPI_IOC_MESSAGE on /dev/spidevB.C) and "socket" (a SOCK_SEQPACKET peer that
 * answers each transfer: the simulated chip's process). IRQ lines: "gpio" (a Linux GPIO v2 line
 * request fd with falling-edge events, time-stamped by the kernel) and "pipe" (8-byte CLOCK_MONOTONIC
 * time stamps written by the simulated chip at each falling edge). Register addresses and bit masks
 * come from the register map through the Python constructor; nothing here knows an address.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/gpio.h>
#include <linux/spi/spidev.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4          /* Linux 4.4; older C libraries do not name it */
#endif
/* The stack the thread may use, touched before the first interrupt so that no call deeper than any before it
 * faults a page in at the deadline (the process is locked as it faults, not populated: see Loop_start). */
#define STACK_PREFAULT_BYTES (64 * 1024)

#define MAX_XFER 65536
#define N_ENERGY_REGS 18
#define ENERGY_SLOTS 64
#define CRC_READ_RETRIES 3
#define BRACKET_TRIES 20
#define MAX_BRACKET_NS 1000000LL
#define LAT_BUCKETS 2000           /* 10-us buckets up to 20 ms, then one overflow bucket */
#define LAT_BUCKET_NS 10000LL

enum { T_SPIDEV = 0, T_SOCKET = 1 };
enum { IRQ_PIPE = 0, IRQ_GPIO = 1 };
enum { FAULT_NONE = 0, FAULT_TIMEOUT = 1, FAULT_BUS = 2, FAULT_CHIP = 3 };

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint16_t crc_table[256];
static uint16_t crc_init_value;
/* SPI command word and waveform-buffer word format, set from the register map by set_protocol() */
static int cmd_addr_shift = -1, cmd_read_bit, wfb_sample_shift;

static inline uint16_t cmd_word(uint32_t addr, int read) {
    return (uint16_t)((addr << cmd_addr_shift) | (read ? 1u << cmd_read_bit : 0u));
}

static uint16_t crc16(const uint8_t *p, size_t n) {
    uint16_t crc = crc_init_value;
    for (size_t i = 0; i < n; i++) crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ p[i]) & 0xFF]);
    return crc;
}

/* ------------------------------------------------------------------ transport */

typedef struct {
    PyObject_HEAD
    int kind, fd;
    uint32_t speed_hz;
    int max_transfer;
    pthread_mutex_t mu;
    uint8_t buf[MAX_XFER + 1];
    unsigned long long transfers, bytes, messages;   /* messages: kernel calls (SPI_IOC_MESSAGE) or socket requests */
} Transport;

/* One chip-select transaction; the caller holds t->mu. Returns 0 or an errno. */
static int xfer_locked(Transport *t, const uint8_t *tx, uint8_t *rx, size_t n) {
    if (n > (size_t)t->max_transfer || n > MAX_XFER) return EMSGSIZE;
    if (t->kind == T_SPIDEV) {
        struct spi_ioc_transfer tr;
        memset(&tr, 0, sizeof tr);
        tr.tx_buf = (uintptr_t)tx;
        tr.rx_buf = (uintptr_t)rx;
        tr.len = (uint32_t)n;
        tr.speed_hz = t->speed_hz;
        tr.bits_per_word = 8;
        if (ioctl(t->fd, SPI_IOC_MESSAGE(1), &tr) < 0) return errno;
    } else {
        t->buf[0] = 'X';
        memcpy(t->buf + 1, tx, n);
        if (send(t->fd, t->buf, n + 1, 0) != (ssize_t)(n + 1)) return errno ? errno : EIO;
        ssize_t got = recv(t->fd, rx, n, 0);
        if (got != (ssize_t)n) return got < 0 ? errno : EPROTO;
    }
    t->messages++;
    t->transfers++;
    t->bytes += n;
    return 0;
}

/* Mutexes the read loop shares with Python threads are priority-inheriting: a Python thread preempted by
 * ordinary load while it holds one (a register read between blocks, a drain) is raised to the loop's
 * SCHED_FIFO priority until it lets go, instead of holding the loop past its deadline. */
static void init_pi_mutex(pthread_mutex_t *mu) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT) != 0) {
        pthread_mutexattr_destroy(&a);
        pthread_mutex_init(mu, NULL);
        return;
    }
    pthread_mutex_init(mu, &a);
    pthread_mutexattr_destroy(&a);
}

/* Several chip-select transactions in one kernel call (SPI_IOC_MESSAGE(n), chip select released between
 * them) or one message to the simulated chip: the energy registers are read this way at EGYRDY. */
#define MAX_MULTI 32
static int xfer_multi(Transport *t, uint8_t *const tx[], uint8_t *const rx[], const size_t len[], int n) {
    if (n < 1 || n > MAX_MULTI) return EINVAL;
    size_t sum = 0;
    for (int i = 0; i < n; i++) sum += len[i];
    if (sum > (size_t)t->max_transfer) return EMSGSIZE;   /* spidev bounds a whole message by its bufsiz */
    pthread_mutex_lock(&t->mu);
    int err = 0;
    size_t total = 0;
    if (t->kind == T_SPIDEV) {
        struct spi_ioc_transfer tr[MAX_MULTI];
        memset(tr, 0, sizeof tr);
        for (int i = 0; i < n; i++) {
            tr[i].tx_buf = (uintptr_t)tx[i];
            tr[i].rx_buf = (uintptr_t)rx[i];
            tr[i].len = (uint32_t)len[i];
            tr[i].speed_hz = t->speed_hz;
            tr[i].bits_per_word = 8;
            tr[i].cs_change = i + 1 < n;
            total += len[i];
        }
        if (ioctl(t->fd, SPI_IOC_MESSAGE(n), tr) < 0) err = errno;
    } else {
        size_t off = 2;
        t->buf[0] = 'M';
        t->buf[1] = (uint8_t)n;
        for (int i = 0; i < n && !err; i++) {
            if (off + 2 + len[i] > sizeof t->buf) { err = EMSGSIZE; break; }
            t->buf[off] = (uint8_t)(len[i] >> 8);
            t->buf[off + 1] = (uint8_t)(len[i] & 0xFF);
            memcpy(t->buf + off + 2, tx[i], len[i]);
            off += 2 + len[i];
            total += len[i];
        }
        if (!err && send(t->fd, t->buf, off, 0) != (ssize_t)off) err = errno ? errno : EIO;
        if (!err) {
            ssize_t got = recv(t->fd, t->buf, sizeof t->buf, 0);
            if (got != (ssize_t)total) err = got < 0 ? errno : EPROTO;
            else for (int i = 0, o = 0; i < n; o += (int)len[i], i++) memcpy(rx[i], t->buf + o, len[i]);
        }
    }
    if (!err) { t->transfers += (unsigned long long)n; t->bytes += total; t->messages++; }
    pthread_mutex_unlock(&t->mu);
    return err;
}

static int xfer(Transport *t, const uint8_t *tx, uint8_t *rx, size_t n) {
    pthread_mutex_lock(&t->mu);
    int err = xfer_locked(t, tx, rx, n);
    pthread_mutex_unlock(&t->mu);
    return err;
}

/* A control message to the simulated chip's process (socket transport only): op byte + payload. */
static ssize_t request(Transport *t, const uint8_t *msg, size_t n, uint8_t *reply, size_t cap) {
    pthread_mutex_lock(&t->mu);
    ssize_t got = -1;
    if (send(t->fd, msg, n, 0) == (ssize_t)n) got = recv(t->fd, reply, cap, 0);
    t->messages++;
    pthread_mutex_unlock(&t->mu);
    return got;
}

static int Transport_init(Transport *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"kind", "fd", "speed_hz", "max_transfer", NULL};
    const char *kind;
    unsigned int speed = 0;
    int max_transfer = 4096;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "si|Ii", kwlist, &kind, &self->fd, &speed, &max_transfer)) return -1;
    if (strcmp(kind, "spidev") == 0) self->kind = T_SPIDEV;
    else if (strcmp(kind, "socket") == 0) self->kind = T_SOCKET;
    else { PyErr_Format(PyExc_ValueError, "transport kind %s: allowed 'spidev', 'socket'", kind); return -1; }
    if (max_transfer < 8 || max_transfer > MAX_XFER) {
        PyErr_Format(PyExc_ValueError, "max_transfer %d outside 8..%d", max_transfer, MAX_XFER);
        return -1;
    }
    self->speed_hz = speed;
    self->max_transfer = max_transfer;
    init_pi_mutex(&self->mu);
    return 0;
}

static PyObject *Transport_transfer(Transport *self, PyObject *arg) {
    Py_buffer tx;
    if (PyObject_GetBuffer(arg, &tx, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, tx.len);
    if (!out) { PyBuffer_Release(&tx); return NULL; }
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = xfer(self, tx.buf, (uint8_t *)PyBytes_AS_STRING(out), (size_t)tx.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&tx);
    if (err) { Py_DECREF(out); errno = err; return PyErr_SetFromErrno(PyExc_OSError); }
    return out;
}

static PyObject *Transport_request(Transport *self, PyObject *args) {
    Py_buffer msg;
    Py_ssize_t cap = 65536;
    if (self->kind != T_SOCKET) { PyErr_SetString(PyExc_ValueError, "request needs the socket transport"); return NULL; }
    if (!PyArg_ParseTuple(args, "y*|n", &msg, &cap)) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap);
    if (!out) { PyBuffer_Release(&msg); return NULL; }
    ssize_t got;
    Py_BEGIN_ALLOW_THREADS
    got = request(self, msg.buf, (size_t)msg.len, (uint8_t *)PyBytes_AS_STRING(out), (size_t)cap);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&msg);
    if (got < 0) { Py_DECREF(out); return PyErr_SetFromErrno(PyExc_OSError); }
    _PyBytes_Resize(&out, got);
    return out;
}

static PyObject *Transport_counters(Transport *self, PyObject *unused) {
    return Py_BuildValue("(KK)", self->transfers, self->bytes);
}

static PyMethodDef Transport_methods[] = {
    {"transfer", (PyCFunction)Transport_transfer, METH_O, "One full-duplex transaction, the GIL released."},
    {"request", (PyCFunction)Transport_request, METH_VARARGS, "A control message to the simulated chip."},
    {"counters", (PyCFunction)Transport_counters, METH_NOARGS, "(transfers, bytes)."},
    {NULL}};

static PyTypeObject TransportType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hal._rtloop.Transport",
    .tp_basicsize = sizeof(Transport),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Transport_init,
    .tp_methods = Transport_methods,
};

/* ------------------------------------------------------------------ loop */

typedef struct {
    int64_t first_index, timestamp_ns;
    uint32_t flags, lost_frames;
} BlockHead;

typedef struct {
    int64_t count, mono_ns;
    uint32_t raw[N_ENERGY_REGS];
} EnergyRec;

typedef struct {
    PyObject_HEAD
    Transport *tr;
    int irq_kind, irq_fd, irq_pin, timeout_ms;
    /* register map */
    uint16_t status0, trg_stat, wfb_start, energy_addr[N_ENERGY_REGS];
    uint32_t page_full, egyrdy, last_page_mask;
    int last_page_shift, buffer_frames, page_frames, words_per_frame, n_ch;
    double frame_ns;
    /* stream state (the thread owns it while running) */
    int64_t anchor_count, anchor_ns, rt_offset_ns, next_index, pending_lost;
    uint32_t pending_flags;
    uint32_t gap_flag;          /* the block flag of lost frames: hal.ade9000_stream.FLAG_GAP, given at init */
    /* ring */
    int n_slots;
    BlockHead *heads;
    int32_t *codes;
    uint8_t *raw;
    uint64_t w_pos, r_pos;
    EnergyRec energy[ENERGY_SLOTS];
    uint64_t e_w, e_r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* thread */
    pthread_t thread;
    int running, stop, priority, sched_err, mlock_err;
    int fault;
    char fault_msg[256];
    int64_t stall_ns;          /* fault injection: sleep this long before serving each of the next stall_count IRQs */
    int stall_count;
    /* counters */
    unsigned long long interrupts, blocks, frames, gaps, lost_frames, torn_reads, slow_reads, crc_errors,
        ring_overflows, energy_reads;
    unsigned long long lat[LAT_BUCKETS + 1];
    int64_t lat_max_ns;
    unsigned long long lat_n;
} Loop;

static void set_fault(Loop *L, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&L->mu);
    L->fault = code;
    vsnprintf(L->fault_msg, sizeof L->fault_msg, fmt, ap);
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    va_end(ap);
}

static int read_reg(Loop *L, uint16_t addr, int nbytes, uint32_t *value) {
    uint8_t tx[8] = {0}, rx[8];
    uint16_t cmd = cmd_word(addr, 1);
    tx[0] = cmd >> 8;
    tx[1] = cmd & 0xFF;
    for (int attempt = 0; attempt <= CRC_READ_RETRIES; attempt++) {
        int err = xfer(L->tr, tx, rx, (size_t)(nbytes + 4));
        if (err) { set_fault(L, FAULT_BUS, "spi: transfer failed: %s", strerror(err)); return -1; }
        uint32_t v = 0;
        for (int i = 0; i < nbytes; i++) v = (v << 8) | rx[2 + i];
        uint16_t crc = (uint16_t)((rx[2 + nbytes] << 8) | rx[3 + nbytes]);
        if (crc16(rx + 2, (size_t)nbytes) == crc) { *value = v; return 0; }
        int ones = crc == 0xFFFF;
        for (int i = 0; i < nbytes; i++) ones &= rx[2 + i] == 0xFF;
        if (ones) {
            set_fault(L, FAULT_CHIP, "reading register %#x returned all ones: no chip is answering; check the "
                      "wiring (MISO), the 3.3 V supply and the chip select", addr);
            return -1;
        }
        __atomic_add_fetch(&L->crc_errors, 1, __ATOMIC_RELAXED);
    }
    set_fault(L, FAULT_BUS, "CRC mismatch reading register %#x %d times; check SPI signal integrity (cable "
              "length, SCLK speed, ground)", addr, CRC_READ_RETRIES + 1);
    return -1;
}

/* The frame count at page resolution from a WFB_TRG_STAT value read at about `now`: the host clock's estimate
 * since the anchor, snapped to the page the chip names (an estimate off by less than half a buffer snaps right). */
static int64_t snap(Loop *L, uint32_t stat, int64_t now) {
    int64_t last_page = (stat & L->last_page_mask) >> L->last_page_shift;
    int64_t bf = L->buffer_frames;
    int64_t base = ((last_page + 1) * L->page_frames) % bf;
    double expected = (double)L->anchor_count + (double)(now - L->anchor_ns) / L->frame_ns;
    int64_t count = base + bf * (int64_t)nearbyint((expected - (double)base) / (double)bf);
    if (count < L->anchor_count) count = L->anchor_count;
    L->anchor_count = count;
    L->anchor_ns = now;
    return count;
}

/* Frames produced since capture start, at page resolution, and the monotonic time of that count. */
static int produced(Loop *L, int64_t *count_out, int64_t *now_out) {
    int64_t before = 0, after = 0;
    uint32_t stat = 0;
    int t;
    for (t = 0; t < BRACKET_TRIES; t++) {
        before = mono_ns();
        if (read_reg(L, L->trg_stat, 2, &stat)) return -1;
        after = mono_ns();
        if (after - before <= MAX_BRACKET_NS) break;
        L->slow_reads++;
    }
    if (t == BRACKET_TRIES) {
        set_fault(L, FAULT_TIMEOUT, "reading WFB_TRG_STAT took over 1 ms %d times; the host is too loaded to stream",
                  BRACKET_TRIES);
        return -1;
    }
    int64_t now = (before + after) / 2;
    *count_out = snap(L, stat, now);
    *now_out = now;
    return 0;
}

/* A register read as the last transaction of a message: its value when its CRC holds (0), else -1 (the caller
 * reads it again alone, with retries). */
static int reg_from_rx(const uint8_t *rx, int nbytes, uint32_t *value) {
    uint32_t v = 0;
    for (int i = 0; i < nbytes; i++) v = (v << 8) | rx[2 + i];
    if (crc16(rx + 2, (size_t)nbytes) != (uint16_t)((rx[2 + nbytes] << 8) | rx[3 + nbytes])) return -1;
    *value = v;
    return 0;
}

/* SPI clock time of n bytes at the transport's speed (the simulated chip's socket is given the board's too). */
static int64_t wire_ns(const Transport *t, size_t n) {
    return t->speed_hz ? (int64_t)((double)n * 8e9 / t->speed_hz) : 0;
}

/* A half read ahead in the message that cleared PAGE_FULL: the frames from `start` in L->raw and the count read
 * after them, used by read_pages when `start` is the half it reads first. */
typedef struct {
    int valid;
    int64_t start, after_count, after_now;
} Ahead;

/* One message of an interrupt's service (SPI_IOC_MESSAGE(n); the order on the wire is the order of separate
 * transactions): STATUS0 read first when `status` is given, then the bits `clear` of STATUS0 cleared, STATUS0 read
 * back and, with `want_count`, a WFB_TRG_STAT snap. Where the transfer limit takes it, the message goes on with the
 * half buffer the stream reads next and a second WFB_TRG_STAT read (`ahead`): in the usual case, one half complete
 * and not overtaken, that is the whole interrupt's work, checked by read_pages as a separate read would be (the
 * snap before it says the half was complete, the one after it that the chip did not overtake it); otherwise it is
 * dropped and read again.
 *
 * `*status_ok` says whether `*status` was read (its CRC held). `*irq` is what the read-back says of IRQ0: 1 still
 * asserted by a source the loop serves (set before the clear, or not cleared: no falling edge will come for it), 0
 * released (any new source makes an edge), -1 unknown (its CRC failed). Returns 1 with the count snapped, 0 when
 * it must be read alone (CRC, a stretched bracket, not asked), -1 on a fault. */
static int exchange(Loop *L, uint32_t *status, int *status_ok, uint32_t clear, int want_count, int *irq,
                    int64_t *count, int64_t *now, Ahead *ahead) {
    uint8_t ftx[8] = {0}, frx[8], wtx[6], wrx[6], stx[8] = {0}, srx[8], ttx[6] = {0}, trx[6], t2rx[6], htx[MAX_XFER];
    const size_t half_bytes = (size_t)(L->buffer_frames / 2 * L->words_per_frame * 4);
    uint16_t cmd = cmd_word(L->status0, 0), scmd = cmd_word(L->status0, 1), tcmd = cmd_word(L->trg_stat, 1);
    uint16_t hcmd = cmd_word((uint16_t)(L->wfb_start + (L->next_index % L->buffer_frames) * L->words_per_frame), 1);
    ftx[0] = stx[0] = scmd >> 8; ftx[1] = stx[1] = scmd & 0xFF;
    wtx[0] = cmd >> 8; wtx[1] = cmd & 0xFF;
    wtx[2] = clear >> 24; wtx[3] = (clear >> 16) & 0xFF; wtx[4] = (clear >> 8) & 0xFF; wtx[5] = clear & 0xFF;
    ttx[0] = tcmd >> 8; ttx[1] = tcmd & 0xFF;
    uint8_t *tx[6], *rx[6];
    size_t len[6], total = 0;
    int n = 0;
#define PUT(t, r, l) do { tx[n] = (t); rx[n] = (r); len[n] = (l); total += (l); n++; } while (0)
    if (status) PUT(ftx, frx, 8);
    PUT(wtx, wrx, 6);
    PUT(stx, srx, 8);
    if (want_count) PUT(ttx, trx, 6);
    int with_half = want_count && total + half_bytes + 2 + 6 <= (size_t)L->tr->max_transfer;
    if (with_half) {
        memset(htx, 0, half_bytes + 2);
        htx[0] = hcmd >> 8; htx[1] = hcmd & 0xFF;
        PUT(htx, L->raw, half_bytes + 2);
        PUT(ttx, t2rx, 6);
    }
#undef PUT
    ahead->valid = 0;
    ahead->start = L->next_index;
    int64_t before = mono_ns();
    int err = xfer_multi(L->tr, tx, rx, len, n);
    int64_t after = mono_ns();
    if (err) { set_fault(L, FAULT_BUS, "spi: transfer failed: %s", strerror(err)); return -1; }
    uint32_t back, stat, stat2;
    if (status) *status_ok = reg_from_rx(frx, 4, status) == 0;
    *irq = reg_from_rx(srx, 4, &back) ? -1 : (back & (L->page_full | L->egyrdy)) != 0;
    if ((status && !*status_ok) || *irq < 0)          /* each failed check counted, as read_reg counts them */
        __atomic_add_fetch(&L->crc_errors, (status && !*status_ok) + (*irq < 0), __ATOMIC_RELAXED);
    if (!want_count) return 0;
    if (reg_from_rx(trx, 2, &stat)) { __atomic_add_fetch(&L->crc_errors, 1, __ATOMIC_RELAXED); return 0; }
    /* the first snap comes before the half on the wire: its bracket ends where the half begins */
    int64_t tail = with_half ? wire_ns(L->tr, half_bytes + 2 + 6) : 0;
    if (after - tail - before > MAX_BRACKET_NS) { L->slow_reads++; return 0; }
    *now = (before + after - tail) / 2;
    if (*now < before) *now = before;
    *count = snap(L, stat, *now);
    if (with_half) {
        memmove(L->raw, L->raw + 2, half_bytes);
        if (reg_from_rx(t2rx, 2, &stat2)) __atomic_add_fetch(&L->crc_errors, 1, __ATOMIC_RELAXED);
        else {
            /* the second snap is the message's last transaction: read at `after` */
            ahead->after_count = snap(L, stat2, after);
            ahead->after_now = after;
            ahead->valid = 1;
        }
    }
    return 1;
}

static void lose(Loop *L, int64_t frames) {
    if (frames <= 0) return;
    L->gaps++;
    L->lost_frames += (unsigned long long)frames;
    L->pending_lost += frames;
    L->pending_flags |= L->gap_flag;
    L->next_index += frames;
}

static void wake_readers(Loop *L) {
    pthread_mutex_lock(&L->mu);
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

/* One half buffer of `half_bytes` from `addr` into L->raw. Where the transport takes the half and a WFB_TRG_STAT
 * read in one message (spidev.bufsiz 8192, the simulated chip's socket), both go in one SPI_IOC_MESSAGE and the
 * count after the read comes with it (1); else the half is split to the transfer limit and the count is left to
 * the caller (0). -1 on a fault. */
static int read_half(Loop *L, uint16_t addr, size_t half_bytes, int64_t *after_count, int64_t *after_now) {
    uint8_t tx[MAX_XFER];
    if (half_bytes + 2 + 6 <= (size_t)L->tr->max_transfer) {
        uint8_t stx[6] = {0}, srx[6];
        uint16_t cmd = cmd_word(addr, 1), scmd = cmd_word(L->trg_stat, 1);
        memset(tx, 0, half_bytes + 2);
        tx[0] = cmd >> 8; tx[1] = cmd & 0xFF;
        stx[0] = scmd >> 8; stx[1] = scmd & 0xFF;
        uint8_t *txs[2] = {tx, stx}, *rxs[2] = {L->raw, srx};
        size_t lens[2] = {half_bytes + 2, 6};
        int64_t before = mono_ns();
        int err = xfer_multi(L->tr, txs, rxs, lens, 2);
        int64_t after = mono_ns();
        if (err) { set_fault(L, FAULT_BUS, "spi: transfer failed: %s", strerror(err)); return -1; }
        memmove(L->raw, L->raw + 2, half_bytes);
        uint32_t stat;
        if (reg_from_rx(srx, 2, &stat)) { __atomic_add_fetch(&L->crc_errors, 1, __ATOMIC_RELAXED); return 0; }
        /* the status read is the message's last transaction: read at `after`, less at most the bracket's slack */
        if (after - before > MAX_BRACKET_NS + wire_ns(L->tr, half_bytes + 8)) { L->slow_reads++; return 0; }
        *after_count = snap(L, stat, after);
        *after_now = after;
        return 1;
    }
    size_t done = 0, per = (size_t)((L->tr->max_transfer - 2) / 4) * 4;
    uint8_t *rx = L->raw;
    while (done < half_bytes) {
        size_t k = half_bytes - done < per ? half_bytes - done : per;
        uint16_t cmd = cmd_word(addr, 1);
        memset(tx, 0, k + 2);
        tx[0] = cmd >> 8; tx[1] = cmd & 0xFF;
        int err = xfer(L->tr, tx, rx + done, k + 2);
        if (err) { set_fault(L, FAULT_BUS, "spi: transfer failed: %s", strerror(err)); return -1; }
        /* the two command bytes clocked in are dropped: shift the data down over them */
        memmove(rx + done, rx + done + 2, k);
        done += k;
        addr = (uint16_t)(addr + k / 4);
    }
    return 0;
}

/* Every complete half not yet delivered, from the count `count` snapped at `now` after PAGE_FULL was cleared. */
static int read_pages(Loop *L, int64_t count, int64_t now, Ahead *ahead) {
    const int64_t half = L->buffer_frames / 2, bf = L->buffer_frames, safety = L->page_frames;
    const size_t half_bytes = (size_t)(half * L->words_per_frame * 4);
    while (count >= L->next_index + half) {
        if (count > L->next_index + bf - safety) {
            int64_t newest = (count / half) * half - half;
            lose(L, newest - L->next_index);
            if (count > newest + bf - safety) { lose(L, half); continue; }
        }
        int64_t start = L->next_index;
        int64_t slot = start % bf;
        uint16_t addr = (uint16_t)(L->wfb_start + slot * L->words_per_frame);
        int64_t after_count, after_now;
        int with_count;
        if (ahead->valid && ahead->start == start) {       /* read in the message that cleared PAGE_FULL */
            after_count = ahead->after_count;
            after_now = ahead->after_now;
            with_count = 1;
        } else {
            with_count = read_half(L, addr, half_bytes, &after_count, &after_now);
        }
        ahead->valid = 0;
        if (with_count < 0) return -1;
        if (!with_count && produced(L, &after_count, &after_now)) return -1;
        if (after_count > start + bf - safety) {
            L->torn_reads++;
            lose(L, half);
            count = after_count;
            now = after_now;
            continue;
        }
        int64_t ts = L->rt_offset_ns + now - (int64_t)nearbyint((double)(count - 1 - start) * L->frame_ns);
        pthread_mutex_lock(&L->mu);
        int full = L->w_pos - L->r_pos >= (uint64_t)L->n_slots;
        pthread_mutex_unlock(&L->mu);
        if (full) {
            /* Python has not drained for the ring's length: the samples are lost here, and said so */
            L->ring_overflows++;
            lose(L, half);
            continue;
        }
        uint64_t s = L->w_pos % (uint64_t)L->n_slots;
        BlockHead *h = &L->heads[s];
        h->first_index = start;
        h->timestamp_ns = ts;
        h->flags = L->pending_flags;
        h->lost_frames = (uint32_t)L->pending_lost;
        int32_t *out = L->codes + s * (uint64_t)(half * L->n_ch);
        for (int64_t f = 0; f < half; f++) {
            const uint8_t *w = L->raw + f * L->words_per_frame * 4;
            for (int c = 0; c < L->n_ch; c++) {
                const uint8_t *b = w + 4 * c;
                int32_t v = (int32_t)(((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3]);
                out[f * L->n_ch + c] = v >> wfb_sample_shift;
            }
        }
        L->pending_flags = 0;
        L->pending_lost = 0;
        L->next_index += half;
        L->blocks++;
        L->frames += (unsigned long long)half;
        pthread_mutex_lock(&L->mu);
        L->w_pos++;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
    }
    return 0;
}

static int read_energy(Loop *L) {
    int64_t count, now;
    if (produced(L, &count, &now)) return -1;
    EnergyRec rec;
    rec.count = count;
    rec.mono_ns = now;
    uint8_t txb[N_ENERGY_REGS][8], rxb[N_ENERGY_REGS][8];
    uint8_t *tx[N_ENERGY_REGS], *rx[N_ENERGY_REGS];
    size_t len[N_ENERGY_REGS];
    for (int k = 0; k < N_ENERGY_REGS; k++) {
        uint16_t cmd = cmd_word(L->energy_addr[k], 1);
        memset(txb[k], 0, sizeof txb[k]);
        txb[k][0] = cmd >> 8;
        txb[k][1] = cmd & 0xFF;
        tx[k] = txb[k];
        rx[k] = rxb[k];
        len[k] = 8;
    }
    int err = xfer_multi(L->tr, tx, rx, len, N_ENERGY_REGS);
    if (err) { set_fault(L, FAULT_BUS, "spi: transfer failed: %s", strerror(err)); return -1; }
    for (int k = 0; k < N_ENERGY_REGS; k++) {
        uint32_t v = ((uint32_t)rxb[k][2] << 24) | ((uint32_t)rxb[k][3] << 16) | ((uint32_t)rxb[k][4] << 8) | rxb[k][5];
        uint16_t crc = (uint16_t)((rxb[k][6] << 8) | rxb[k][7]);
        if (crc16(rxb[k] + 2, 4) == crc) rec.raw[k] = v;
        else if (read_reg(L, L->energy_addr[k], 4, &rec.raw[k])) return -1;   /* counted, retried singly */
        else __atomic_add_fetch(&L->crc_errors, 1, __ATOMIC_RELAXED);
    }
    L->energy_reads++;
    pthread_mutex_lock(&L->mu);
    if (L->e_w - L->e_r >= ENERGY_SLOTS) L->e_r++;      /* the oldest is dropped; Python counts the jump */
    L->energy[L->e_w % ENERGY_SLOTS] = rec;
    L->e_w++;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

/* 1 when IRQ0 is low (asserted), 0 when high, -1 on error. */
static int irq_low(Loop *L) {
    if (L->irq_kind == IRQ_GPIO) {
        struct gpio_v2_line_values v = {.bits = 0, .mask = 1};
        if (ioctl(L->irq_fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &v) < 0) return -1;
        return !(v.bits & 1);
    }
    uint8_t msg[3] = {'L', (uint8_t)(L->irq_pin >> 8), (uint8_t)(L->irq_pin & 0xFF)}, reply[4];
    if (request(L->tr, msg, 3, reply, sizeof reply) != 1) return -1;
    return reply[0] == 0;
}

static void note_latency(Loop *L, int64_t event_ns, int64_t wake_ns) {
    int64_t d = wake_ns - event_ns;
    if (d < 0) d = 0;
    int64_t b = d / LAT_BUCKET_NS;
    L->lat[b < LAT_BUCKETS ? b : LAT_BUCKETS]++;
    if (d > L->lat_max_ns) L->lat_max_ns = d;
    L->lat_n++;
}

/* Edge time stamps queued on the IRQ fd (non-blocking): each one's wait until this service started. */
static void drain_edges(Loop *L, int64_t wake) {
    if (L->irq_kind == IRQ_GPIO) {
        struct gpio_v2_line_event ev[16];
        ssize_t n;
        while ((n = read(L->irq_fd, ev, sizeof ev)) > 0)
            for (ssize_t i = 0; i < n / (ssize_t)sizeof ev[0]; i++) note_latency(L, (int64_t)ev[i].timestamp_ns, wake);
    } else {
        int64_t ts[64];
        ssize_t n;
        while ((n = read(L->irq_fd, ts, sizeof ts)) > 0)
            for (ssize_t i = 0; i < n / 8; i++) note_latency(L, ts[i], wake);
    }
}

/* Wait for IRQ0: 1 asserted, 0 timeout, -1 error. Records each edge's latency to the start of its service. The
 * line's level is read first only when `check_level`: after a service whose read-back of STATUS0 said IRQ0 was
 * released, its next assertion is a falling edge, which the poll sees. */
static int irq_wait(Loop *L, int check_level) {
    int low = check_level ? irq_low(L) : 0;
    if (low < 0) { set_fault(L, FAULT_BUS, "IRQ0 line: cannot read its level: %s", strerror(errno)); return -1; }
    if (!low) {
        struct pollfd p = {.fd = L->irq_fd, .events = POLLIN};
        int r = poll(&p, 1, L->timeout_ms);
        if (r < 0) return errno == EINTR ? 0 : -1;
        if (r == 0) return 0;
    }
    drain_edges(L, mono_ns());
    return 1;
}

static void prefault_stack(void) {
    volatile unsigned char pad[STACK_PREFAULT_BYTES];
    memset((void *)pad, 0, sizeof pad);
}

static void *loop_main(void *arg) {
    Loop *L = arg;
    prefault_stack();
    if (L->priority > 0) {
        struct sched_param sp = {.sched_priority = L->priority};
        L->sched_err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    }
    int idle_ms = 0, check_level = 1, asserted = 0;
    while (!__atomic_load_n(&L->stop, __ATOMIC_ACQUIRE)) {
        int r = 1;
        if (asserted) drain_edges(L, mono_ns());
        else r = irq_wait(L, check_level);
        asserted = 0;
        check_level = 1;
        if (r < 0) break;
        if (r == 0) {
            idle_ms += L->timeout_ms;
            if (idle_ms >= 100) {
                set_fault(L, FAULT_TIMEOUT, "no interrupt on IRQ0 (GPIO %d) for 0.1 s while streaming; check the "
                          "IRQ0 wiring and that the DSP runs", L->irq_pin);
                break;
            }
            continue;
        }
        idle_ms = 0;
        if (__atomic_load_n(&L->stall_count, __ATOMIC_ACQUIRE) > 0) {
            struct timespec ts = {L->stall_ns / 1000000000LL, L->stall_ns % 1000000000LL};
            nanosleep(&ts, NULL);
            __atomic_sub_fetch(&L->stall_count, 1, __ATOMIC_ACQ_REL);
        }
        L->interrupts++;
        uint32_t status = 0;
        int64_t count = 0, now = 0;
        int snapped = 0, irq = -1, status_ok = 0;
        Ahead ahead = {0}, unused;
        const size_t half_bytes = (size_t)(L->buffer_frames / 2 * L->words_per_frame * 4);
        const int one_message = 8 + 6 + 8 + 6 + half_bytes + 2 + 6 <= (size_t)L->tr->max_transfer;
        int exchanged = one_message;
        if (one_message) {
            /* the whole usual interrupt in one message: STATUS0, PAGE_FULL cleared whether set or not (the halves
             * are read by the count, which is snapped after the clear, so a page completing in between is read),
             * the snap, the next half, the snap after it; EGYRDY is cleared only once seen, below */
            snapped = exchange(L, &status, &status_ok, L->page_full, 1, &irq, &count, &now, &ahead);
            if (snapped < 0) break;
            if (!status_ok && read_reg(L, L->status0, 4, &status)) break;     /* retried, counted */
            if (status & L->egyrdy) {
                int64_t c2, n2;
                if (exchange(L, NULL, NULL, L->egyrdy, 0, &irq, &c2, &n2, &unused) < 0) break;
            }
        } else {
            if (read_reg(L, L->status0, 4, &status)) break;
            uint32_t served = status & (L->page_full | L->egyrdy);
            if (served) {
                snapped = exchange(L, NULL, NULL, served, (status & L->page_full) != 0, &irq, &count, &now, &ahead);
                if (snapped < 0) break;
                exchanged = 1;
            }
        }
        uint32_t handled = status & (L->page_full | L->egyrdy);
        if (exchanged) {
            asserted = irq == 1;
            check_level = irq < 0;
        }
        /* with PAGE_FULL cleared unseen (one message), the halves are looked for by the count every time */
        if ((status & L->page_full) || one_message) {
            if (!snapped && produced(L, &count, &now)) break;
            if (read_pages(L, count, now, &ahead)) break;
        }
        if ((status & L->egyrdy) && read_energy(L)) break;
        if (!handled) {
            /* IRQ0 held low by a source this loop does not serve: wait for it to change rather than spin */
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
            check_level = 1;
            asserted = 0;
        }
    }
    wake_readers(L);
    return NULL;
}

static void Loop_dealloc(Loop *self) {
    if (self->running) {
        __atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
        pthread_join(self->thread, NULL);
    }
    Py_XDECREF(self->tr);
    free(self->heads);
    free(self->codes);
    free(self->raw);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Loop_init(Loop *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"transport", "irq_kind", "irq_fd", "irq_pin", "status0", "page_full", "egyrdy",
                             "trg_stat", "last_page_mask", "last_page_shift", "wfb_start", "energy_addrs",
                             "buffer_frames", "page_frames", "words_per_frame", "frame_ns", "ring_slots", "gap_flag",
                             NULL};
    PyObject *tr, *addrs;
    const char *irq_kind;
    int status0, trg_stat, wfb_start;
    unsigned int page_full, egyrdy, lpm;
    int n_ch = 7;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!siiiIIiIiiOiiidiI", kwlist, &TransportType, &tr, &irq_kind,
                                     &self->irq_fd, &self->irq_pin, &status0, &page_full, &egyrdy, &trg_stat, &lpm,
                                     &self->last_page_shift, &wfb_start, &addrs, &self->buffer_frames,
                                     &self->page_frames, &self->words_per_frame, &self->frame_ns, &self->n_slots,
                                     &self->gap_flag))
        return -1;
    if (strcmp(irq_kind, "pipe") == 0) self->irq_kind = IRQ_PIPE;
    else if (strcmp(irq_kind, "gpio") == 0) self->irq_kind = IRQ_GPIO;
    else { PyErr_Format(PyExc_ValueError, "irq kind %s: allowed 'pipe', 'gpio'", irq_kind); return -1; }
    PyObject *seq = PySequence_Fast(addrs, "energy_addrs must be a sequence");
    if (!seq) return -1;
    if (PySequence_Fast_GET_SIZE(seq) != N_ENERGY_REGS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "energy_addrs: need %d addresses", N_ENERGY_REGS);
        return -1;
    }
    for (int k = 0; k < N_ENERGY_REGS; k++)
        self->energy_addr[k] = (uint16_t)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, k));
    Py_DECREF(seq);
    if (PyErr_Occurred()) return -1;
    if (self->n_slots < 16 || self->buffer_frames < 32 || self->words_per_frame < n_ch) {
        PyErr_SetString(PyExc_ValueError, "ring_slots >= 16, buffer_frames >= 32, words_per_frame >= 7");
        return -1;
    }
    self->n_ch = n_ch;
    self->status0 = (uint16_t)status0;
    self->trg_stat = (uint16_t)trg_stat;
    self->wfb_start = (uint16_t)wfb_start;
    self->page_full = page_full;
    self->egyrdy = egyrdy;
    self->last_page_mask = lpm;
    self->timeout_ms = 10;
    Py_INCREF(tr);
    self->tr = (Transport *)tr;
    int64_t half = self->buffer_frames / 2;
    self->heads = calloc((size_t)self->n_slots, sizeof(BlockHead));
    self->codes = calloc((size_t)(self->n_slots * half * n_ch), sizeof(int32_t));
    self->raw = calloc((size_t)(half * self->words_per_frame * 4 + 16), 1);
    if (!self->heads || !self->codes || !self->raw) { PyErr_NoMemory(); return -1; }
    /* touch every page now so the thread never faults one in at the deadline */
    memset(self->codes, 0, (size_t)(self->n_slots * half * n_ch) * sizeof(int32_t));
    memset(self->raw, 0, (size_t)(half * self->words_per_frame * 4 + 16));
    init_pi_mutex(&self->mu);
    pthread_cond_init(&self->cv, NULL);
    return 0;
}

static PyObject *Loop_start(Loop *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"anchor_count", "anchor_ns", "rt_offset_ns", "next_index", "pending_flags",
                             "pending_lost", "priority", "lock_memory", NULL};
    unsigned int flags = 0;
    int lock_memory = 0;
    self->priority = 0;
    if (self->running) { PyErr_SetString(PyExc_RuntimeError, "the loop is already running"); return NULL; }
    if (cmd_addr_shift < 0) { PyErr_SetString(PyExc_RuntimeError, "set_protocol() was not called"); return NULL; }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LLLL|ILip", kwlist, &self->anchor_count, &self->anchor_ns,
                                     &self->rt_offset_ns, &self->next_index, &flags, &self->pending_lost,
                                     &self->priority, &lock_memory))
        return NULL;
    self->pending_flags = flags;
    self->fault = FAULT_NONE;
    self->fault_msg[0] = 0;
    self->stop = 0;
    self->sched_err = 0;
    self->mlock_err = 0;
    /* Locked as faulted in (MCL_ONFAULT), not populated: what the loop uses is touched already (its ring and
     * buffers above, its stack in loop_main) and stays resident; populating would also fault in every other
     * thread's whole stack, the allocator's reserves, and break the copy-on-write sharing of the pages this
     * process was forked with from the supervisor (docs/memory.md). */
    if (lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0) {
        self->mlock_err = errno;
        /* at least the ring: what the thread writes at the deadline */
        int64_t half = self->buffer_frames / 2;
        mlock(self->codes, (size_t)(self->n_slots * half * self->n_ch) * sizeof(int32_t));
    }
    int err = pthread_create(&self->thread, NULL, loop_main, self);
    if (err) { errno = err; return PyErr_SetFromErrno(PyExc_OSError); }
    self->running = 1;
    Py_RETURN_NONE;
}

static PyObject *Loop_stop(Loop *self, PyObject *unused) {
    if (self->running) {
        __atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
        self->running = 0;
    }
    return Py_BuildValue("(LLLLIL)", self->anchor_count, self->anchor_ns, self->rt_offset_ns, self->next_index,
                         self->pending_flags, self->pending_lost);
}

static PyObject *Loop_wait(Loop *self, PyObject *arg) {
    double timeout = PyFloat_AsDouble(arg);
    if (PyErr_Occurred()) return NULL;
    int ready;
    Py_BEGIN_ALLOW_THREADS
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    int64_t ns = dl.tv_nsec + (int64_t)(timeout * 1e9);
    dl.tv_sec += ns / 1000000000LL;
    dl.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&self->mu);
    while (self->w_pos == self->r_pos && self->e_w == self->e_r && !self->fault && self->running &&
           !__atomic_load_n(&self->stop, __ATOMIC_ACQUIRE)) {
        if (pthread_cond_timedwait(&self->cv, &self->mu, &dl) == ETIMEDOUT) break;
    }
    ready = self->w_pos != self->r_pos || self->e_w != self->e_r || self->fault;
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ready);
}

/* Every record written since the last drain, in order: blocks then energy readings. */
static PyObject *Loop_drain(Loop *self, PyObject *unused) {
    PyObject *blocks = PyList_New(0), *energy = PyList_New(0);
    if (!blocks || !energy) return NULL;
    int64_t half = self->buffer_frames / 2;
    pthread_mutex_lock(&self->mu);
    uint64_t w = self->w_pos, ew = self->e_w, er = self->e_r;
    pthread_mutex_unlock(&self->mu);
    for (uint64_t p = self->r_pos; p < w; p++) {
        uint64_t s = p % (uint64_t)self->n_slots;
        BlockHead *h = &self->heads[s];
        PyObject *codes = PyBytes_FromStringAndSize((const char *)(self->codes + s * (uint64_t)(half * self->n_ch)),
                                                    (Py_ssize_t)(half * self->n_ch * 4));
        PyObject *t = Py_BuildValue("(LLIIN)", h->first_index, h->timestamp_ns, h->flags, h->lost_frames, codes);
        if (!t || PyList_Append(blocks, t) < 0) return NULL;
        Py_DECREF(t);
    }
    for (uint64_t p = er; p < ew; p++) {
        EnergyRec *r = &self->energy[p % ENERGY_SLOTS];
        PyObject *raw = PyTuple_New(N_ENERGY_REGS);
        for (int k = 0; k < N_ENERGY_REGS; k++) PyTuple_SET_ITEM(raw, k, PyLong_FromUnsignedLong(r->raw[k]));
        PyObject *t = Py_BuildValue("(LLN)", r->count, r->mono_ns, raw);
        if (!t || PyList_Append(energy, t) < 0) return NULL;
        Py_DECREF(t);
    }
    pthread_mutex_lock(&self->mu);
    self->r_pos = w;
    if (self->e_r == er) self->e_r = ew;
    pthread_mutex_unlock(&self->mu);
    return Py_BuildValue("(NN)", blocks, energy);
}

static PyObject *Loop_fault(Loop *self, PyObject *unused) {
    if (!self->fault) Py_RETURN_NONE;
    return Py_BuildValue("(is)", self->fault, self->fault_msg);
}

static PyObject *Loop_stats(Loop *self, PyObject *unused) {
    Transport *t = self->tr;
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsKsisisi}", "interrupts", self->interrupts, "blocks", self->blocks,
                         "frames", self->frames, "gaps", self->gaps, "lost_frames", self->lost_frames,
                         "torn_reads", self->torn_reads, "slow_reads", self->slow_reads, "crc_errors",
                         self->crc_errors, "ring_overflows", self->ring_overflows, "energy_reads",
                         self->energy_reads, "transfers", t->transfers, "bytes", t->bytes, "messages", t->messages,
                         "sched_errno",
                         self->sched_err, "mlock_errno", self->mlock_err, "running", self->running);
}

/* Wake-up latency from the IRQ0 edge's time stamp to the thread running: (count, p50, p99, max) in ns. */
static PyObject *Loop_latency_over(Loop *self, PyObject *arg) {
    long long ns = PyLong_AsLongLong(arg);
    if (ns == -1 && PyErr_Occurred()) return NULL;
    long long first = ns < 0 ? 0 : ns / LAT_BUCKET_NS;
    unsigned long long n = 0;
    for (long long b = first < LAT_BUCKETS ? first : LAT_BUCKETS; b <= LAT_BUCKETS; b++) n += self->lat[b];
    return PyLong_FromUnsignedLongLong(n);
}

static PyObject *Loop_latency(Loop *self, PyObject *args) {
    int reset = 0;
    if (!PyArg_ParseTuple(args, "|p", &reset)) return NULL;
    unsigned long long n = self->lat_n, acc = 0;
    double p50 = NAN, p99 = NAN;
    for (int b = 0; b <= LAT_BUCKETS && n; b++) {
        acc += self->lat[b];
        double upper = (double)(b + 1) * LAT_BUCKET_NS;
        if (isnan(p50) && acc * 2 >= n) p50 = upper;
        if (isnan(p99) && acc * 100 >= n * 99) p99 = upper;
    }
    PyObject *out = Py_BuildValue("(KddL)", n, p50, p99, (long long)self->lat_max_ns);
    if (reset) {
        memset(self->lat, 0, sizeof self->lat);
        self->lat_n = 0;
        self->lat_max_ns = 0;
    }
    return out;
}

static PyObject *Loop_stall(Loop *self, PyObject *args) {
    double seconds;
    int count;
    if (!PyArg_ParseTuple(args, "di", &seconds, &count)) return NULL;
    if (seconds < 0 || seconds > 10 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "stall: 0..10 s, count >= 0");
        return NULL;
    }
    self->stall_ns = (int64_t)(seconds * 1e9);
    __atomic_store_n(&self->stall_count, count, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyMethodDef Loop_methods[] = {
    {"stall", (PyCFunction)Loop_stall, METH_VARARGS,
     "Fault injection: the thread sleeps `seconds` before serving each of the next `count` interrupts."},
    {"start", (PyCFunction)(void (*)(void))Loop_start, METH_VARARGS | METH_KEYWORDS, "Start the thread."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS, "Stop and join; returns the stream state to continue from."},
    {"wait", (PyCFunction)Loop_wait, METH_O, "Wait up to the timeout (s) for records or a fault."},
    {"drain", (PyCFunction)Loop_drain, METH_NOARGS, "([block tuples], [energy tuples]) since the last drain."},
    {"fault", (PyCFunction)Loop_fault, METH_NOARGS, "(code, message) once the thread stopped on a fault."},
    {"stats", (PyCFunction)Loop_stats, METH_NOARGS, "Counters."},
    {"latency", (PyCFunction)Loop_latency, METH_VARARGS, "(n, p50_ns, p99_ns, max_ns) of the wake-ups."},
    {"latency_over", (PyCFunction)Loop_latency_over, METH_O,
     "Number of wake-ups later than the given ns (10-us resolution; above 20 ms, all in one bucket)."},
    {NULL}};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hal._rtloop.Loop",
    .tp_basicsize = sizeof(Loop),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
};

static PyObject *set_crc(PyObject *mod, PyObject *args) {
    unsigned int poly, init;
    if (!PyArg_ParseTuple(args, "II", &poly, &init)) return NULL;
    for (int byte = 0; byte < 256; byte++) {
        uint16_t crc = (uint16_t)(byte << 8);
        for (int i = 0; i < 8; i++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ poly) : (uint16_t)(crc << 1);
        crc_table[byte] = crc;
    }
    crc_init_value = (uint16_t)init;
    Py_RETURN_NONE;
}

static PyObject *set_protocol(PyObject *mod, PyObject *args) {
    int shift, read_bit, sample_shift;
    if (!PyArg_ParseTuple(args, "iii", &shift, &read_bit, &sample_shift)) return NULL;
    if (shift < 0 || shift > 15 || read_bit < 0 || read_bit > 15 || sample_shift < 0 || sample_shift > 31) {
        PyErr_SetString(PyExc_ValueError, "set_protocol: shifts out of range");
        return NULL;
    }
    cmd_addr_shift = shift;
    cmd_read_bit = read_bit;
    wfb_sample_shift = sample_shift;
    Py_RETURN_NONE;
}

static PyObject *gpio_line_request(PyObject *mod, PyObject *args) {
    const char *path;
    unsigned int offset;
    if (!PyArg_ParseTuple(args, "sI", &path, &offset)) return NULL;
    int chip = open(path, O_RDONLY | O_CLOEXEC);
    if (chip < 0) return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    struct gpio_v2_line_request req;
    memset(&req, 0, sizeof req);
    req.offsets[0] = offset;
    req.num_lines = 1;
    strncpy(req.consumer, "openmeter-irq0", sizeof req.consumer - 1);
    req.config.flags = GPIO_V2_LINE_FLAG_INPUT | GPIO_V2_LINE_FLAG_EDGE_FALLING | GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
    int r = ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req);
    int err = errno;
    close(chip);
    if (r < 0) { errno = err; return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path); }
    fcntl(req.fd, F_SETFL, fcntl(req.fd, F_GETFL) | O_NONBLOCK);
    return PyLong_FromLong(req.fd);
}

static PyMethodDef module_methods[] = {
    {"set_crc", set_crc, METH_VARARGS, "Set the CRC-16 polynomial and initial value (from the register map)."},
    {"set_protocol", set_protocol, METH_VARARGS,
     "Set the command word's address shift and read bit and the waveform word's sample shift (register map)."},
    {"gpio_line_request", gpio_line_request, METH_VARARGS,
     "Request a GPIO line as a pulled-up input with falling-edge events; returns the request fd."},
    {NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "hal._rtloop", NULL, -1, module_methods, NULL, NULL,
                                       NULL, NULL};

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""      /* built without setup.py: the start-up check cannot tell its source */
#endif

PyMODINIT_FUNC PyInit__rtloop(void) {
    if (PyType_Ready(&TransportType) < 0 || PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) { Py_DECREF(m); return NULL; }
    Py_INCREF(&TransportType);
    PyModule_AddObject(m, "Transport", (PyObject *)&TransportType);
    Py_INCREF(&LoopType);
    PyModule_AddObject(m, "Loop", (PyObject *)&LoopType);
    return m;
}
