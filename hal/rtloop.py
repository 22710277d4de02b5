"""The waveform stream with its read loop in C (``hal/_rtloop.c``): the deadline belongs to a thread without the GIL.

``RtStream`` has the interface of ``hal.ade9000_stream.WaveformStream`` (``start``, ``poll``, ``stats``,
``next_index``, ``stop``) and the same meaning, transfer for transfer: the Python class
brings the capture up (the capture-enable write and its time anchor), then the C thread takes over the
IRQ0 line and the SPI transport and services every interrupt, filling a ring of ``RING_S`` seconds that
``poll`` drains. Python may pause for up to that long without losing a sample. On a fault (no interrupt,
a bus or CRC error, an unresponsive chip) the thread stops and ``poll`` raises the same exception the
Python stream would, after handing out what was read before it.

Every SPI transaction of the driver goes through the one C ``Transport`` (its mutex orders them), so the
Python driver's register reads between interrupts (health, configuration CRC) never interleave with the
thread's inside a transaction.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from hal.ade9000 import Ade9000, EnergyReading
from hal.ade9000_stream import (BUFFER_FRAMES, FLAG_GAP, FRAME_NS, HALF_FRAMES, N_CHANNELS, PAGE_FRAMES, SAMPLE_SHIFT,
                                WFB, WORDS_PER_FRAME, RawBlock, StreamStats, WaveformStream)
from hal.errors import BusError, ChipError, MeterTimeoutError
from hal.regmap import bit, regmap

log = logging.getLogger("hal.ade9000")

try:
    from hal import _rtloop  # type: ignore[attr-defined]

    NATIVE = True
except ImportError:  # no C compiler at install time: the Python stream is used and says why
    _rtloop = None
    NATIVE = False

RM = regmap()
RING_S = 4.0                  # seconds of samples the C ring holds for a paused Python side
REALTIME_PRIORITY = 50        # SCHED_FIFO, below the kernel's threaded IRQ handlers (50 by default on PREEMPT_RT)
_FAULTS = {1: MeterTimeoutError, 2: BusError, 3: ChipError}
_LOSS_LOG_INTERVAL_S = 10.0
# wake-ups later than these are counted: 3.5 ms is the half-buffer deadline less a read, 8 ms the whole buffer
LATENCY_MARKS_MS = (1.0, 2.0, 3.5, 5.5, 8.0)


def _require() -> Any:
    if _rtloop is None:
        raise BusError("the C read loop (hal._rtloop) is not built: reinstall with a C compiler (make venv), or set "
                       "acquisition.read_loop = \"python\"")
    _rtloop.set_crc(int(RM.spi["crc_poly"]), int(RM.spi["crc_init"]))
    _rtloop.set_protocol(int(RM.spi["command_addr_shift"]), int(RM.spi["command_read_bit"]), SAMPLE_SHIFT)
    return _rtloop


def _lock_process_memory() -> int:
    """mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): pages stay resident once used, none is populated
    (hal/_rtloop.c, Loop_start, says why); returns 0 or the errno of the refusal."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if libc.mlockall(1 | 2 | 4) == 0 else ctypes.get_errno()


def transport(kind: str, fd: int, speed_hz: int = 0, max_transfer: int = 4096) -> Any:
    """The C transport over a spidev file descriptor or the simulated chip's socket."""
    return _require().Transport(kind, fd, speed_hz, max_transfer)


def gpio_line(chip_path: str, offset: int) -> int:
    """Request a GPIO line (pulled-up input, falling-edge events, kernel time stamps); returns its fd."""
    try:
        return int(_require().gpio_line_request(chip_path, offset))
    except OSError as exc:
        raise BusError(f"gpio: cannot request line {offset} of {chip_path} for IRQ0: {exc}; is another program "
                       "holding it (gpioinfo), and may this user open the GPIO character device?") from exc


class TransportDevice:
    """A spidev-like device (``xfer2``) over a C transport, so ``hal.spi.SpiBus`` and the C loop share it."""

    def __init__(self, transport: Any, owner: Any = None) -> None:
        self.transport = transport
        self._owner = owner          # kept open as long as the device (the spidev object or the chip's process)

    def xfer2(self, data: Any) -> bytes:
        return self.transport.transfer(bytes(data))

    def close(self) -> None:
        if self._owner is not None and hasattr(self._owner, "close"):
            self._owner.close()


class RtStream:
    def __init__(self, chip: Ade9000, transport: Any, irq_kind: str, irq_fd: int, *, priority: int = REALTIME_PRIORITY,
                 lock_memory: bool = False) -> None:
        lib = _require()
        self.chip = chip
        self.ref = WaveformStream(chip)
        self.priority, self.lock_memory = priority, lock_memory
        status0, trg = RM["STATUS0"], RM["WFB_TRG_STAT"]
        page = trg.field("WFB_LAST_PAGE")
        slots = int(RING_S * 1e9 / (HALF_FRAMES * FRAME_NS))
        self.loop = lib.Loop(transport, irq_kind, irq_fd, chip.irq0_pin, status0.addr, bit(status0, "PAGE_FULL"),
                             bit(status0, "EGYRDY"), trg.addr, page.mask, page.lsb, int(WFB["start"]),
                             [RM[n].addr for n in Ade9000.energy_registers()], BUFFER_FRAMES, PAGE_FRAMES,
                             WORDS_PER_FRAME, float(FRAME_NS), slots, FLAG_GAP)
        self.stats = StreamStats()
        self._running = False
        self._fault: Exception | None = None
        self._last_loss_log = 0.0
        self._lost_logged = 0
        self.priority_note = ""
        self._mlock_errno = _lock_process_memory() if lock_memory else 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, chip_reset: bool = False) -> None:
        """Enable capture (Python, as the reference does), then hand the stream to the C thread."""
        self.stop()
        self.ref.start(chip_reset=chip_reset)
        r = self.ref
        self._fault = None
        # the process was locked before capture (its pages as they are used, _lock_process_memory); where that
        # was refused, the loop locks at least its ring
        flags, lost = r.take_pending()
        self.loop.start(*r.timing, r.next_index, flags, lost, self.priority, bool(self._mlock_errno))
        self._running = True
        self._note_priority()

    def stop(self) -> None:
        """Stop the thread; the stream's position and what it still owes the next block come back to Python."""
        if not self._running:
            return
        _, _, _, next_index, flags, lost = self.loop.stop()
        self._running = False
        self.ref.next_index = next_index
        self.ref.mark_gap(lost, flags)
        self._sync_stats()

    @property
    def next_index(self) -> int:
        """Frame index of the next block (exact while the thread is stopped)."""
        return int(self.ref.next_index)

    def _note_priority(self) -> None:
        s = self.loop.stats()
        notes = []
        if self.priority and s["sched_errno"]:
            notes.append(f"SCHED_FIFO refused ({os.strerror(s['sched_errno'])})")
        if self.lock_memory and s["mlock_errno"]:
            notes.append(f"mlockall refused ({os.strerror(s['mlock_errno'])}; only the ring is locked)")
        note = "; ".join(notes)
        if note and note != self.priority_note:
            log.warning("waveform read loop runs without real-time guarantees: %s", note)
        self.priority_note = note

    # ------------------------------------------------------------------ data
    def poll(self, timeout_s: float = 0.1) -> list[RawBlock | EnergyReading]:
        if self._fault is not None:
            raise self._fault
        self.loop.wait(timeout_s)
        blocks, energy = self.loop.drain()
        out: list[RawBlock | EnergyReading] = []
        for first, ts, flags, lost, raw in blocks:
            codes = np.frombuffer(raw, dtype=np.int32).reshape(HALF_FRAMES, N_CHANNELS)
            out.append(RawBlock(first, ts, codes, flags, lost))
        offset = self.ref.timing[2]
        for count, mono_ns, regs in energy:
            out.append(self.chip.energy_from_raw(regs, offset + mono_ns, count))
        self._sync_stats()
        fault = self.loop.fault()
        if fault is not None:
            code, message = fault
            self.stop()
            self._fault = _FAULTS.get(code, BusError)(f"ade9000 on {self.chip.where}: {message}")
            if not out:
                raise self._fault
        return out

    def _sync_stats(self) -> None:
        s = self.loop.stats()
        st = self.stats
        st.blocks, st.frames, st.gaps, st.lost_frames = s["blocks"], s["frames"], s["gaps"], s["lost_frames"]
        st.torn_reads, st.interrupts, st.slow_reads = s["torn_reads"], s["interrupts"], s["slow_reads"]
        self.chip.stats.extra["loop_crc_errors"] = s["crc_errors"]
        self.chip.stats.extra["ring_overflows"] = s["ring_overflows"]
        lost = st.lost_frames - self._lost_logged
        now = os.times().elapsed
        if lost and now - self._last_loss_log >= _LOSS_LOG_INTERVAL_S:
            log.warning("waveform buffer: %d frames lost since the last report (%d gaps in all, %d ring overflows)",
                        lost, st.gaps, s["ring_overflows"])
            self._lost_logged, self._last_loss_log = st.lost_frames, now

    def latency(self, reset: bool = False) -> dict[str, float]:
        """Wake-up latency of the thread from the IRQ0 edge: count, p50, p99 and max in microseconds."""
        over = {f"over_{ms:g}ms": self.loop.latency_over(int(ms * 1e6)) for ms in LATENCY_MARKS_MS}
        n, p50, p99, mx = self.loop.latency(reset)
        return {"count": n, "p50_us": p50 / 1e3, "p99_us": p99 / 1e3, "max_us": mx / 1e3, **over}
