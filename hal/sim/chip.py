"""A simulated ADE9000 that speaks the chip's SPI byte protocol: a drop-in for the ``spidev.SpiDev`` object.

What it does: the register file of ``hal/ade9000_map.toml`` with reset values and access rules
(read-only writes ignored, write-1-to-clear status, 16/32-bit widths); the 16-bit command word
(``addr << 4``, bit 3 = read) with big-endian data; CRC_SPI appended to single-register reads and
kept in its register; burst reads of the waveform buffer and of 0x500-0x6BC; RESET pin and
CONFIG1.SWRST with RSTDONE after ``RSTDONE_DELAY_NS``; IRQ0 = STATUS0 & MASK0, IRQ1 = STATUS1 &
MASK1 or RSTDONE, driven on the simulated GPIO; RUN; the waveform buffer in streaming mode (WF_MODE
3, WF_SRC 0, 32 kSPS) with PAGE_FULL and WFB_TRG_STAT.WFB_LAST_PAGE; xIRMS, xVRMS, xWATT, xVAR, xVA,
xPERIOD and NIRMS from the same signal every 0.1 s; the energy accumulators xWATTHR, xVARHR, xVAHR
(45 bits, HI/LO split) latched or added at EGYRDY every EGY_TIME+1 DSP samples; xIGAIN, xVGAIN and
xPGAIN applied to that energy path; CRC_RSLT over the registers marked ``crc`` with CRC_CHG and
CRC_DONE.

Fault injection (``faults``): CRC errors (a bit flipped on MISO after the CRC was computed, as
line noise would), a host that wakes late and misses pages, a chip that never finishes reset, an
absent chip (MISO reads all ones), and a configuration upset (``upset``).

What it does not model: the sinc4/IIR filter responses and the high-pass filter (codes are ideal
samples of the signal plus the ADC model's errors and noise); the 8 kSPS and resampled waveform
sources and the trigger capture modes; xPCF, fundamental powers, THD, PF, RMS1/2 and 10/12-cycle
registers; dip, swell, overcurrent, zero-crossing and phase-sequence detection; CF pulse outputs,
no-load detection, multipoint calibration, the digital integrator (so Rogowski coils are only a
flat sensitivity), temperature, power modes PSM0-3, WR_LOCK, SPI timing and clock speed; the
DREADY and EVENT pins.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hal.board import ChannelParams, default_channels
from hal.clock import Clock
from hal.crc import crc16_ccitt
from hal.regmap import Register, bit, energy_join, energy_split, field_get, field_prep, regmap
from hal.sim.dsp import (BUFFER_FRAMES, FRAME_NS, FRAMES_PER_DSP_SAMPLE, GAIN_ONE, MEASURE_FRAMES, N_PAGES,
                         PAGE_FRAMES, WORDS_PER_FRAME, FrameSource, Measurements, Source, normalise)

RSTDONE_DELAY_NS = 1_000_000        # simulated reset-to-RSTDONE time (1 ms)
MEASURE_STEP_FRAMES = 256           # the measurement path catches up in steps of 8 ms: small, cheap pauses
MAX_MEASURE_LAG_FRAMES = 4096       # a deferred measurement path is brought up to date in sync() beyond this
_RM = regmap()
_WFB_START = int(_RM.waveform_buffer["start"])
_SAMPLE_SHIFT = int(_RM.waveform_buffer["sample_shift"])
_WFB_END = int(_RM.waveform_buffer["end"])
_PAGE_FULL = bit(_RM["STATUS0"], "PAGE_FULL")
_EGYRDY = bit(_RM["STATUS0"], "EGYRDY")
_RSTDONE = bit(_RM["STATUS1"], "RSTDONE")
_CRC_CHG = bit(_RM["STATUS1"], "CRC_CHG")
_CRC_DONE = bit(_RM["STATUS1"], "CRC_DONE")
_CRC_REGS = tuple(sorted((r for r in _RM.registers.values() if r.crc), key=lambda r: r.addr))


@dataclass
class Faults:
    crc_errors: int = 0            # the next N single-register reads arrive with one bit flipped
    late_pages: int = 0            # the next interrupt wait returns this many pages late
    never_ready: bool = False      # RSTDONE never comes
    absent: bool = False           # nothing on the bus: MISO reads all ones


class SimAde9000:
    """The chip. Pass it to ``hal.spi.open_spi("sim", device=chip)``; pins go to a ``SimGpio``."""

    def __init__(self, source: Source, clock: Clock, channels: tuple[ChannelParams, ...] | None = None,
                 gpio: Any = None, irq0_pin: int = 22, irq1_pin: int = 23, reset_pin: int | None = 25,
                 noise: bool = True, seed: int = 1, nominal_hz: float = 50.0) -> None:
        self.clock = clock
        self.channels = channels or default_channels()
        self.frames = FrameSource(source, self.channels, noise, seed, nominal_hz)
        self.meas = Measurements(nominal_hz)
        self.faults = Faults()
        self.gpio = gpio
        self.irq0_pin, self.irq1_pin, self.reset_pin = irq0_pin, irq1_pin, reset_pin
        # spidev attributes the driver may set
        self.mode, self.max_speed_hz, self.bits_per_word = 0, 20_000_000, 8
        self.transactions = 0
        self.page_sync = False         # produce whole pages only (the chip's own process; see frames_due)
        self.defer_measure = False     # the measurement path runs when catch_up() is called (the chip's own
                                       # process calls it while the host is quiet), not inside sync()
        self._wfb = np.zeros((BUFFER_FRAMES, WORDS_PER_FRAME), dtype=np.int32)
        self._in_reset = False
        self._power_on_reset()
        if gpio is not None:
            gpio.attach_chip(self)

    # ------------------------------------------------------------------ reset and state
    def _power_on_reset(self) -> None:
        self.regs = {r.addr: r.reset & r.value_mask for r in _RM.registers.values()}
        self.regs[_RM["STATUS1"].addr] = 0
        self._ready_at_ns: int | None = None if self.faults.never_ready else self.clock.monotonic_ns() + RSTDONE_DELAY_NS
        self._running = False
        self._produced = 0
        self._measured = 0
        self._capture_start: int | None = None
        self._egy_start = 0
        self._crc_forced = False
        self._wfb[:] = 0
        self.meas.reset()
        self._recompute_crc(initial=True)
        self._update_pins()

    def set_reset_pin(self, high: bool) -> None:
        """Called by the simulated GPIO when the driver drives RESET (active low)."""
        if not high:
            self._in_reset = True
        elif self._in_reset:
            self._in_reset = False
            self._power_on_reset()

    def upset(self, name: str, xor_mask: int) -> None:
        """Flip bits of a configuration register, as a brown-out or a stray write would."""
        reg = _RM[name]
        self.regs[reg.addr] ^= xor_mask & reg.value_mask
        self._recompute_crc()

    # ------------------------------------------------------------------ spidev drop-in
    def open(self, bus: int = 0, device: int = 0) -> None:
        """Nothing to open: present for spidev compatibility."""

    def close(self) -> None:
        """Nothing to close: present for spidev compatibility."""

    def xfer2(self, data: Any) -> list[int]:
        return list(self.transfer(bytes(data)))

    xfer = xfer2
    xfer3 = xfer2

    def transfer(self, tx: bytes) -> bytes:
        self.transactions += 1
        if self.faults.absent or self._in_reset or len(tx) < 2:
            return b"\xff" * len(tx)
        self.sync()
        cmd = int.from_bytes(tx[:2], "big")
        addr = (cmd >> _RM.spi["command_addr_shift"]) & ((1 << _RM.spi["command_addr_bits"]) - 1)
        read = bool(cmd & (1 << _RM.spi["command_read_bit"]))
        self.regs[_RM["LAST_CMD"].addr] = cmd
        if read:
            out = b"\x00\x00" + self._read(addr, len(tx) - 2)
        else:
            self._write(addr, tx[2:])
            out = b"\x00" * len(tx)
        self._update_pins()
        return out

    def _read(self, addr: int, n: int) -> bytes:
        if _WFB_START <= addr <= _WFB_END:
            return self._read_wfb(addr, n)
        if _RM.is_burst(addr):
            words = [self._value(a) for a in range(addr, addr + (n + 3) // 4)]
            return b"".join(w.to_bytes(4, "big") for w in words)[:n]
        reg = _RM.by_addr.get(addr)
        width = reg.nbytes if reg else 4
        data = self._value(addr).to_bytes(width, "big")
        crc = crc16_ccitt(data)
        self.regs[_RM["CRC_SPI"].addr] = crc
        if self.faults.crc_errors > 0:
            self.faults.crc_errors -= 1
            data = bytes([data[0] ^ 0x01]) + data[1:]
        return (data + crc.to_bytes(2, "big") + b"\x00" * n)[:n]

    def _read_wfb(self, addr: int, n: int) -> bytes:
        words = (n + 3) // 4
        flat = (self._wfb.reshape(-1).astype(">i4")).view(">u4")
        idx = (addr - _WFB_START + np.arange(words)) % flat.size
        return flat[idx].tobytes()[:n]

    def _value(self, addr: int) -> int:
        return self.regs.get(addr, 0)

    def _write(self, addr: int, data: bytes) -> None:
        reg = _RM.by_addr.get(addr)
        if reg is None or not reg.writable or len(data) < reg.nbytes:
            return
        value = int.from_bytes(data[:reg.nbytes], "big")
        if reg.access == "w1c":
            self.regs[addr] &= ~value & reg.value_mask
            return
        old = self.regs[addr]
        self.regs[addr] = value
        if reg.name == "CONFIG1" and field_get(reg, "SWRST", value):
            self.regs[addr] = value & ~bit(reg, "SWRST")
            self._power_on_reset()
        elif reg.name == "RUN":
            self._set_run(bool(field_get(reg, "START", value)))
        elif reg.name == "WFB_CFG":
            self._set_capture(old, value, reg)
        elif reg.name == "CRC_FORCE" and field_get(reg, "FORCE_CRC_UPDATE", value):
            self.regs[addr] = 0
            self._crc_forced = True
            self._recompute_crc()
            self.regs[_RM["STATUS1"].addr] |= _CRC_DONE
        elif reg.name == "EP_CFG" and not self._energy_on(old) and self._energy_on(value):
            self._measure(self._produced)
            self._egy_start = self._produced
            self.meas.take_energy()
        if reg.crc and old != value:
            self._recompute_crc()

    def _recompute_crc(self, initial: bool = False) -> None:
        data = b"".join(self.regs[r.addr].to_bytes(r.nbytes, "big") for r in _CRC_REGS)
        crc = crc16_ccitt(data)
        addr = _RM["CRC_RSLT"].addr
        if not initial and self._crc_forced and crc != self.regs[addr]:
            self.regs[_RM["STATUS1"].addr] |= _CRC_CHG
        self.regs[addr] = crc

    def _set_run(self, on: bool) -> None:
        if on and not self._running:
            self._running = True
            self._produced = 0
            self._measured = 0
            self._egy_start = 0
            self.frames.restart(self.clock.monotonic_ns())
            self.meas.reset()
            if self._capture_start is not None:
                self._capture_start = 0
        elif not on:
            self._running = False

    def _set_capture(self, old: int, value: int, reg: Register) -> None:
        was, now = field_get(reg, "WF_CAP_EN", old), field_get(reg, "WF_CAP_EN", value)
        if now and not was:
            self._capture_start = self._produced
            self._wfb[:] = 0
        elif was and not now:
            self._capture_start = None

    # ------------------------------------------------------------------ time
    def frames_due(self, now_ns: int | None = None) -> int:
        """Frames the ADC has produced since RUN by ``now_ns`` (sample n is taken at RUN + n * 31.25 us).

        With ``page_sync`` the count advances a whole waveform page (16 frames) at a time: every state a
        host can see (WFB_LAST_PAGE, PAGE_FULL, the 0.1-s registers, EGYRDY at whole-page intervals) changes
        only at page boundaries, and producing in pages keeps the cost per SPI transaction small.
        """
        if not self._running:
            return self._produced
        now = self.clock.monotonic_ns() if now_ns is None else now_ns
        due = max(0, (now - self.frames.t0_ns) // FRAME_NS + 1)
        if self.page_sync:
            due = max(self._produced, due - due % PAGE_FRAMES)
        return due

    def sync(self) -> None:
        """Bring registers, the waveform buffer and the pins up to the clock's present."""
        if self._ready_at_ns is not None and self.clock.monotonic_ns() >= self._ready_at_ns:
            self.regs[_RM["STATUS1"].addr] |= _RSTDONE
            self._ready_at_ns = None
        if self._running:
            target = self.frames_due()
            while self._produced < target:
                self._produce(min(target, self._next_boundary()))
        self._update_pins()

    def _energy_on(self, value: int | None = None) -> bool:
        """EP_CFG.EGY_PWR_EN of ``value`` (the register's own value when None)."""
        reg = _RM["EP_CFG"]
        return bool(field_get(reg, "EGY_PWR_EN", self.regs[reg.addr] if value is None else value))

    def _egy_frames(self) -> int:
        return (int(self.regs[_RM["EGY_TIME"].addr]) + 1) * FRAMES_PER_DSP_SAMPLE

    def _next_boundary(self) -> int:
        n = self._produced
        marks = [(n // MEASURE_FRAMES + 1) * MEASURE_FRAMES, n + 4096]
        if self._energy_on():
            egy = self._egy_frames()
            marks.append(self._egy_start + ((n - self._egy_start) // egy + 1) * egy)
        return min(marks)

    def _produce(self, end: int) -> None:
        """Frames up to ``end`` into the waveform buffer, IRQ0 for a completed half at once; then the measurement
        path catches up (unless deferred), in steps and always at its own boundaries (0.1-s registers, energy
        latch)."""
        start = self._produced
        self._produced = end
        if self._capture_start is not None:
            self._fill_wfb(start, end, self.frames.codes(start, end))
            self._update_pins()
        if not self.defer_measure:
            while self.catch_up():
                pass
        elif end - self._measured > MAX_MEASURE_LAG_FRAMES:
            self.catch_up()              # behind: one bounded step here, never the whole backlog at once

    def catch_up(self) -> bool:
        """One step of the measurement path towards the frames produced (at most ``MEASURE_STEP_FRAMES``, never
        across a 0.1-s or energy-latch boundary, latching at one); False when there was nothing to do."""
        m = self._measured
        if m >= self._produced:
            return False
        end = min(self._produced, (m // MEASURE_FRAMES + 1) * MEASURE_FRAMES, m + MEASURE_STEP_FRAMES)
        egy_due = False
        if self._energy_on():
            egy = self._egy_frames()
            latch = self._egy_start + ((m - self._egy_start) // egy + 1) * egy
            end = min(end, latch)
            egy_due = end == latch
        self._measure(end)
        if egy_due:
            ep_cfg = self.regs[_RM["EP_CFG"].addr]
            self._latch_energy(overwrite=bool(field_get(_RM["EP_CFG"], "EGY_LD_ACCUM", ep_cfg)))
            self._update_pins()
        return True

    def _measure(self, end: int) -> None:
        if end <= self._measured:
            return
        codes = self.frames.codes(self._measured, end)
        self._measured = end
        gains = self._gains()
        vconsel = field_get(_RM["ACCMODE"], "VCONSEL", self.regs[_RM["ACCMODE"].addr])
        if self.meas.add(normalise(codes), *gains, accumulate=self._energy_on(), vconsel=vconsel,
                         **self._no_load()):
            for name, value in self.meas.registers(gains[2]).items():
                reg = _RM[name]
                self.regs[reg.addr] = value & reg.value_mask

    def _no_load(self) -> dict[str, Any]:
        """The no-load gate as the registers set it: EP_CFG.NOLOAD_TMR (64 << n samples at 8 kSPS; 7 off) and the
        three xNL_LVL thresholds."""
        tmr = field_get(_RM["EP_CFG"], "NOLOAD_TMR", self.regs[_RM["EP_CFG"].addr])
        levels = np.array([float(self.regs[_RM[n].addr]) for n in ("ACT_NL_LVL", "REACT_NL_LVL", "APP_NL_LVL")])
        return {"nl_levels": levels, "nl_period_frames": 0 if tmr == 7 else (64 << tmr) * FRAMES_PER_DSP_SAMPLE}

    def _gains(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def g(fmt: str) -> np.ndarray:
            return np.array([1 + _RM[fmt.format(p)].to_signed(self.regs[_RM[fmt.format(p)].addr]) / GAIN_ONE
                             for p in "ABC"])
        return g("{}VGAIN"), g("{}IGAIN"), g("{}PGAIN")

    def _fill_wfb(self, start: int, end: int, codes: np.ndarray) -> None:
        assert self._capture_start is not None
        c0, c1 = start - self._capture_start, end - self._capture_start
        if c1 <= 0:
            return
        keep = min(c1 - max(c0, 0), BUFFER_FRAMES)
        slots = np.arange(c1 - keep, c1) % BUFFER_FRAMES
        self._wfb[slots, :7] = codes[-keep:].astype(np.int32) << _SAMPLE_SHIFT
        pages_done = c1 // PAGE_FRAMES
        if pages_done > max(c0, 0) // PAGE_FRAMES:
            irqen = self.regs[_RM["WFB_PG_IRQEN"].addr]
            first = max(c0, 0) // PAGE_FRAMES + 1
            if any(irqen >> ((k - 1) % N_PAGES) & 1 for k in range(max(first, pages_done - N_PAGES), pages_done + 1)):
                self.regs[_RM["STATUS0"].addr] |= _PAGE_FULL
            stat = _RM["WFB_TRG_STAT"]
            last_page = (pages_done - 1) % N_PAGES
            self.regs[stat.addr] = ((self.regs[stat.addr] & ~stat.field("WFB_LAST_PAGE").mask)
                                    | field_prep(stat, "WFB_LAST_PAGE", last_page))

    def _latch_energy(self, overwrite: bool) -> None:
        acc = self.meas.take_energy()
        for p, ph in enumerate("ABC"):
            for k, kind in enumerate(("WATTHR", "VARHR", "VAHR")):
                hi, lo = _RM[f"{ph}{kind}_HI"], _RM[f"{ph}{kind}_LO"]
                prev = 0 if overwrite else energy_join(hi, lo, self.regs[hi.addr], self.regs[lo.addr])
                self.regs[hi.addr], self.regs[lo.addr] = energy_split(hi, lo, prev + int(acc[p, k]))
        self.regs[_RM["STATUS0"].addr] |= _EGYRDY

    def _update_pins(self) -> None:
        if self.gpio is None:
            return
        s0, s1 = self.regs[_RM["STATUS0"].addr], self.regs[_RM["STATUS1"].addr]
        irq0_low = bool(s0 & self.regs[_RM["MASK0"].addr])
        irq1_low = bool(s1 & (self.regs[_RM["MASK1"].addr] | _RSTDONE))
        if self.faults.absent:
            irq0_low = irq1_low = False
        self.gpio.drive(self.irq0_pin, not irq0_low)
        self.gpio.drive(self.irq1_pin, not irq1_low)

    def next_event_ns(self) -> int | None:
        """Clock time of the next status change that can move an interrupt line, or None."""
        times = []
        if self._ready_at_ns is not None:
            times.append(self._ready_at_ns)
        if self._running:
            mask0 = self.regs[_RM["MASK0"].addr]
            n = self._produced
            if mask0 & _PAGE_FULL and self._capture_start is not None:
                irqen = self.regs[_RM["WFB_PG_IRQEN"].addr]
                c = n - self._capture_start
                for k in range(c // PAGE_FRAMES + 1, c // PAGE_FRAMES + N_PAGES + 1):
                    if irqen >> ((k - 1) % N_PAGES) & 1:
                        times.append(self._frame_done_ns(self._capture_start + k * PAGE_FRAMES))
                        break
            if mask0 & _EGYRDY and self._energy_on():
                egy = (int(self.regs[_RM["EGY_TIME"].addr]) + 1) * FRAMES_PER_DSP_SAMPLE
                times.append(self._frame_done_ns(self._egy_start + ((n - self._egy_start) // egy + 1) * egy))
        return min(times) if times else None

    def _frame_done_ns(self, count: int) -> int:
        """Clock time at which ``count`` frames have been produced (whole pages with ``page_sync``)."""
        if self.page_sync:
            count += -count % PAGE_FRAMES
        return self.frames.t0_ns + (count - 1) * FRAME_NS

    def take_lateness_ns(self) -> int:
        """Consume the late-pages fault: how long the host sleeps past the interrupt it was waiting for."""
        pages, self.faults.late_pages = self.faults.late_pages, 0
        return pages * PAGE_FRAMES * FRAME_NS
