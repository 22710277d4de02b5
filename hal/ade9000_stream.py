"""Waveform streaming from the ADE9000: ping-pong halves of the waveform buffer on PAGE_FULL.

The chip fills its 256-frame buffer (8 ms at 32 kSPS) round and round; PAGE_FULL fires when page 7
(first half) or page 15 (second half) is complete. On each interrupt we clear PAGE_FULL first (so a
page completing during the read re-arms it), work out how many frames the chip has produced, read
every complete half we have not delivered yet, and hand out blocks with their first frame index and
time stamp.

Frame count: WFB_LAST_PAGE gives the count modulo the buffer (page resolution); the host clock since
the previous interrupt gives it coarsely. Snapping the clock estimate to the page count is exact
while interrupt latency stays under half a buffer period (4 ms), which is also the deadline for not
losing data at all. A half the chip has (nearly) overwritten is never read: the frames are counted as
lost, the next block carries FLAG_GAP and ``lost_frames``, and reading resumes at the newest complete
half. A read the chip overtook while it was in progress (checked after the read) is discarded the same way.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hal.ade9000 import Ade9000, EnergyReading
from hal.errors import ChipError, MeterTimeoutError
from hal.regmap import bit, field_get, field_prep, regmap

log = logging.getLogger("hal.ade9000")

RM = regmap()
WFB = RM.waveform_buffer
WORDS_PER_FRAME = int(WFB["words_per_frame"])
SAMPLE_SHIFT = int(WFB["sample_shift"])     # a buffer word is the 24-bit code shifted left this much
BUFFER_FRAMES = int(WFB["words"]) // WORDS_PER_FRAME       # 256
HALF_FRAMES = BUFFER_FRAMES // 2                           # 128
PAGE_FRAMES = int(WFB["page_words"]) // WORDS_PER_FRAME    # 16
SAMPLE_RATE_HZ = float(RM.const("WAVEFORM_RATE_HZ"))
FRAME_NS = 1e9 / SAMPLE_RATE_HZ
SAFETY_FRAMES = PAGE_FRAMES   # a half within one page of being overwritten is treated as lost
N_CHANNELS = 7
IRQ_TIMEOUT_S = 0.1           # 25 half-buffer periods without PAGE_FULL means the stream has stopped
MAX_BRACKET_NS = 1_000_000    # a page-register read bracketed by clock readings further apart is repeated
BRACKET_TRIES = 20

FLAG_GAP = 1 << 0             # block flags, kept as they are on the samples ring (firmware.ipc.samples)
FLAG_CHIP_RESET = 1 << 1

_PAGE_FULL = bit(RM["STATUS0"], "PAGE_FULL")
_EGYRDY = bit(RM["STATUS0"], "EGYRDY")


@dataclass
class RawBlock:
    first_index: int            # frame index since streaming started, gaps counted
    timestamp_ns: int           # CLOCK_REALTIME of the first frame
    codes: np.ndarray           # int32 (n, 7), 24-bit codes, burst order IA VA IB VB IC VC IN
    flags: int = 0
    lost_frames: int = 0


def decode_frames(raw: bytes) -> np.ndarray:
    """Big-endian buffer words (frames of 8) -> int32 (n, 7) 24-bit codes (arithmetic shift right by 4)."""
    words = np.frombuffer(raw, dtype=">i4").reshape(-1, WORDS_PER_FRAME)
    return words[:, :N_CHANNELS].astype(np.int32) >> SAMPLE_SHIFT


@dataclass
class StreamStats:
    blocks: int = 0
    frames: int = 0
    gaps: int = 0
    lost_frames: int = 0
    torn_reads: int = 0
    interrupts: int = 0
    slow_reads: int = 0


class WaveformStream:
    def __init__(self, chip: Ade9000) -> None:
        self.chip = chip
        self.stats = StreamStats()
        self.next_index = 0
        self._pending_lost = 0
        self._pending_flags = 0
        self._anchor_count = 0
        self._anchor_ns = 0
        self._rt_offset_ns = 0

    def start(self, chip_reset: bool = False) -> None:
        """Enable capture; frame 0 is the first frame after the enabling write.

        The write is bracketed by clock readings (repeated if the scheduler stretched it) because the
        frame count of every later interrupt is reckoned from this moment.
        """
        clock = self.chip.clock
        cfg = self.chip.read("WFB_CFG")
        wfb = RM["WFB_CFG"]
        off, on = cfg & ~wfb.field("WF_CAP_EN").mask, cfg | field_prep(wfb, "WF_CAP_EN", 1)
        for _ in range(BRACKET_TRIES):
            self.chip.write("WFB_CFG", off)
            self.chip.write("STATUS0", _PAGE_FULL)
            before = clock.monotonic_ns()
            self.chip.write("WFB_CFG", on, verify=False)
            after = clock.monotonic_ns()
            if after - before <= MAX_BRACKET_NS:
                break
            self.stats.slow_reads += 1
        if self.chip.read("WFB_CFG") != on:
            raise ChipError(f"ade9000 on {self.chip.where}: WFB_CFG did not take the capture enable")
        self._anchor_ns = (before + after) // 2
        self._rt_offset_ns = clock.realtime_ns() - clock.monotonic_ns()
        self._anchor_count = 0
        self.next_index = 0
        self._pending_flags = FLAG_CHIP_RESET if chip_reset else 0
        self.chip.refresh_config_crc()          # WFB_CFG is covered by the configuration CRC

    def poll(self, timeout_s: float = IRQ_TIMEOUT_S) -> list[RawBlock | EnergyReading]:
        """Wait for IRQ0 and service it: sample blocks for PAGE_FULL, an energy reading for EGYRDY."""
        chip = self.chip
        if not chip.gpio.wait_low(chip.irq0_pin, timeout_s):
            raise MeterTimeoutError(f"ade9000 on {chip.where}: no interrupt on IRQ0 (GPIO {chip.irq0_pin}) for "
                                    f"{timeout_s} s while streaming; check the IRQ0 wiring and that the DSP runs")
        self.stats.interrupts += 1
        status = chip.read("STATUS0")
        handled = status & (_PAGE_FULL | _EGYRDY)
        if handled:
            chip.write("STATUS0", handled)     # clear first: a page completing during the read re-arms it
        out: list[RawBlock | EnergyReading] = []
        if status & _PAGE_FULL:
            out.extend(self._read_pages())
        if status & _EGYRDY:
            count, _ = self._produced()
            out.append(chip.read_energy(frame_count=count))
        return out

    def stop(self) -> None:
        """Nothing runs between interrupts here; present for the threaded stream's interface."""

    def blocks(self, max_blocks: int | None = None) -> Iterator[RawBlock]:
        """Sample blocks only (energy readings are dropped); for tests and replay."""
        n = 0
        while max_blocks is None or n < max_blocks:
            for item in self.poll():
                if isinstance(item, RawBlock):
                    yield item
                    n += 1

    # ------------------------------------------------------------------ internals
    def _produced(self) -> tuple[int, int]:
        """(frames produced since start, at page resolution; monotonic ns of that count).

        The page register is read between two clock readings; a read the scheduler stretched beyond
        ``MAX_BRACKET_NS`` is repeated, so the count and its time agree to well under a page and the
        snap to the page count can never slip by a whole buffer (which would splice samples).
        """
        clock = self.chip.clock
        for _ in range(BRACKET_TRIES):
            before = clock.monotonic_ns()
            stat = self.chip.read("WFB_TRG_STAT")
            after = clock.monotonic_ns()
            if after - before <= MAX_BRACKET_NS:
                break
            self.stats.slow_reads += 1
        else:
            raise MeterTimeoutError(f"ade9000 on {self.chip.where}: reading WFB_TRG_STAT took over "
                                    f"{MAX_BRACKET_NS / 1e6:g} ms {BRACKET_TRIES} times; the host is too loaded "
                                    "to stream")
        now = (before + after) // 2
        last_page = field_get(RM["WFB_TRG_STAT"], "WFB_LAST_PAGE", stat)
        base = ((last_page + 1) * PAGE_FRAMES) % BUFFER_FRAMES
        expected = self._anchor_count + (now - self._anchor_ns) / FRAME_NS
        count = base + BUFFER_FRAMES * round((expected - base) / BUFFER_FRAMES)
        count = max(count, self._anchor_count)
        self._anchor_count, self._anchor_ns = count, now
        return count, now

    def _read_pages(self) -> list[RawBlock]:
        count, now = self._produced()
        out = []
        while count >= self.next_index + HALF_FRAMES:
            if count > self.next_index + BUFFER_FRAMES - SAFETY_FRAMES:
                newest = (count // HALF_FRAMES) * HALF_FRAMES - HALF_FRAMES
                self._lose(newest - self.next_index)
                if count > newest + BUFFER_FRAMES - SAFETY_FRAMES:
                    self._lose(HALF_FRAMES)
                    continue
            start = self.next_index
            slot = start % BUFFER_FRAMES
            raw = self.chip.burst_read(int(WFB["start"]) + slot * WORDS_PER_FRAME, HALF_FRAMES * WORDS_PER_FRAME)
            after_count, after_now = self._produced()
            if after_count > start + BUFFER_FRAMES - SAFETY_FRAMES:   # page resolution: be conservative
                self.stats.torn_reads += 1
                log.warning("waveform read of frames %d.. overtaken by the chip; discarded", start)
                self._lose(HALF_FRAMES)
                count, now = after_count, after_now
                continue
            ts = self._rt_offset_ns + now - int(round((count - 1 - start) * FRAME_NS))
            block = RawBlock(start, ts, decode_frames(raw), self._pending_flags, self._pending_lost)
            self._pending_flags, self._pending_lost = 0, 0
            self.next_index += HALF_FRAMES
            self.stats.blocks += 1
            self.stats.frames += HALF_FRAMES
            out.append(block)
        return out

    def mark_gap(self, lost_frames: int, flags: int = FLAG_GAP) -> None:
        """The next block carries ``flags`` and ``lost_frames`` more lost frames (frames lost where this stream
        did not see them: another reader of the chip, such as the C read loop, handing the stream back)."""
        self._pending_flags |= flags
        self._pending_lost += lost_frames

    def take_pending(self) -> tuple[int, int]:
        """(flags, lost frames) the next block would carry, handed to another reader; the stream owes none then."""
        owed = self._pending_flags, self._pending_lost
        self._pending_flags, self._pending_lost = 0, 0
        return owed

    @property
    def timing(self) -> tuple[int, int, int]:
        """(anchor frame count, anchor monotonic ns, realtime - monotonic ns): how frames map to time."""
        return self._anchor_count, self._anchor_ns, self._rt_offset_ns

    def _lose(self, frames: int) -> None:
        if frames <= 0:
            return
        self.stats.gaps += 1
        self.stats.lost_frames += frames
        self._pending_lost += frames
        self._pending_flags |= FLAG_GAP
        self.next_index += frames
        log.warning("waveform buffer: %d frames lost before frame %d", frames, self.next_index)
