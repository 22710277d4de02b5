"""Gap fill and path cross-check in the metrology service: the chip's energy records meet the sample path.

The acquisition service writes one ``firmware.ipc.chipenergy.ChipEnergyRecord`` per ADE9000 energy interval
to the ``chip_intervals`` ring. ``GapFill`` reads them and, between the pipeline and the revenue registers:

- **finds holes**: frames between two measured cycles (a HAL gap, a ring overrun of this service, a chip
  reset: every discontinuity leaves one, lost frames plus the partial cycles around them; and the first
  samples after a start, before the pipeline's first zero crossing), cut at whole
  clock seconds so that each piece lands in its own second, demand subinterval and TOU rate;
- **holds back** registration, in order, until the records covering a hole have arrived (the chip reports
  an interval after it ends, about a second after the samples) and at most ``hold_max_s``; a hole whose
  records do not come in time is registered with what is known and counted as unfilled;
- **fills** each second's hole pieces with the records' energy (``metrology.gapfill``) and registers the
  second with ``filled_s`` (time filled) and ``gap_s`` (time still missing), which the load profile flags;
- **cross-checks** the two paths on the frames both measured (``metrology.crosscheck``) and raises the
  ``energy_paths_differ`` status bit and event while their active-energy difference exceeds
  ``[revenue] accuracy_class``.

Without the ring (an acquisition that does not write it) nothing is held back and every hole is unfilled.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from firmware.ipc.chipenergy import ChipEnergyRecord
from firmware.ipc.ring import Ring, RingReader
from hal.errors import IPCError
from metrology.crosscheck import PathComparison, cycle_flows, nominal_flow
from metrology.energy import EnergyIncrement
from metrology.gapfill import (NS_PER_S, apparent_gain, apportion, fill_energy, no_load_va, phase_gain,
                              split_by_second)
from metrology.settings import MetrologySettings

log = logging.getLogger("metrology")

HOLD_MAX_S = 5.0            # longest a second waits for the chip record of its hole (the chip reports within ~1 s)
HOLD_MARGIN_S = 2.0         # with a longer energy interval: the interval plus this (the record comes after it ends)
HOLE_MIN_FRAMES = 0.5       # cycles tile the stream exactly; anything wider between two is a hole
ATTACH_RETRY_S = 1.0        # how often to look for the chip_intervals ring while it is absent
LEDGER_S = 600.0            # chip records kept, in stream time: a hole is filled while its records are here
CLEAR_FRACTION = 0.8        # the status bit clears below 80 % of the class (no flapping at the limit)
MIN_FLOW_FRACTION = 0.01    # compare only above 1 % of nominal VA (IEC 62053-22 specifies from 1 % In)


class ChipRecords:
    """The chip records of the acquisition epoch the sample stream belongs to, oldest first."""

    def __init__(self, keep_frames: float) -> None:
        self.keep_frames = keep_frames
        self.records: deque[ChipEnergyRecord] = deque()
        self.epoch: int | None = None
        self.through = -math.inf       # records are complete up to this frame (later ones have not come)
        self._changed = False           # a new epoch came before the samples said they restarted
        self._stale: set[int] = set()

    def add(self, r: ChipEnergyRecord) -> bool:
        if r.epoch in self._stale:
            return False
        if self.epoch is None:
            self.epoch = r.epoch
        elif r.epoch != self.epoch:
            self._clear()
            self.epoch, self._changed = r.epoch, True
        self.records.append(r)
        self.through = max(self.through, r.end_index)
        while self.records and self.records[0].end_index < self.through - self.keep_frames:
            self.records.popleft()
        return True

    def stream_restarted(self) -> None:
        """The sample indices started over: records of the old epoch no longer describe the samples."""
        if self._changed:
            self._changed = False          # the records already follow the new acquisition
            return
        if self.epoch is not None:
            self._stale.add(self.epoch)
        self._clear()
        self.epoch = None

    def _clear(self) -> None:
        self.records.clear()
        self.through = -math.inf

    def overlapping(self, lo: float, hi: float) -> list[ChipEnergyRecord]:
        return [r for r in self.records if r.end_index > lo and r.start_index < hi]


@dataclass
class _Hole:
    lo: float
    hi: float
    pieces: int                   # seconds it touches that are not registered yet
    filled: float = 0.0           # frames filled so far
    wh: float = 0.0               # total active energy filled (net, primary Wh)
    startup: bool = False         # the samples before the first cycle after a start: not a gap


@dataclass
class _Second:
    key: int                      # clock second (UNIX s) the entry registers
    mono_s: float                 # monotonic time of the second's end, for the registers' clock-set check
    held_since: float
    parts: list[Any] = field(default_factory=list)                            # pipeline 1-s intervals
    pieces: list[tuple[_Hole, float, float]] = field(default_factory=list)    # hole frames in this second


class GapFill:
    def __init__(self, settings: MetrologySettings, accuracy_class_pct: float,
                 register: Callable[..., None], paths_differ: Callable[[bool, float, dict[str, Any]], None],
                 ring_name: str | None = None, clock: Callable[[], float] | None = None,
                 logger: logging.Logger = log, energy_interval_s: float = 1.0) -> None:
        import time

        self.settings = settings
        self.fs = settings.sample_rate_hz
        self.gain = phase_gain(settings)
        self.apparent = apparent_gain(settings)
        self.no_load = no_load_va(settings)
        self.limit_pct = accuracy_class_pct
        self.hold_max_s = max(HOLD_MAX_S, energy_interval_s + HOLD_MARGIN_S)
        self.register = register
        self.paths_differ = paths_differ
        self.ring_name = ring_name
        self.clock = clock or time.monotonic
        self.log = logger
        self.compensated = settings.losses.enabled
        self.records = ChipRecords(LEDGER_S * self.fs)
        self.compare = PathComparison(self.fs, self.gain, MIN_FLOW_FRACTION * nominal_flow(settings),
                                      apparent_gain=self.apparent)
        self.ring: Ring | None = None
        self.reader: RingReader | None = None
        self._attach_at = 0.0
        self.queue: list[_Second] = []
        self.last_end: float | None = None     # frame where the last measured cycle ended
        self.next_index: int | None = None     # frame after the last one fed
        self._started = False                  # last_end is the first frame fed, not a cycle's end
        self.covered_ns = -math.inf            # stream time of the latest cycle start
        self.reference: tuple[EnergyIncrement, EnergyIncrement | None] | None = None
        self.differ = False
        self.result = self.compare.result()
        self.counters = {"gaps_filled": 0, "gaps_unfilled": 0, "fill_wh": 0.0, "fill_s": 0.0,
                         "unfilled_s": 0.0, "chip_records": 0, "chip_records_lost": 0}

    # ------------------------------------------------------------------ input

    def on_feed(self, result: Any, first_index: int, n_frames: int, timestamp_ns: int) -> None:
        """One ``Pipeline.feed_values`` call: its frames, clock and result (cycles and closed seconds)."""
        now = self.clock()
        if self.next_index is not None and first_index < self.next_index:
            self._stream_restarted()
        self.next_index = first_index + n_frames
        if self.last_end is None:
            # the pipeline's first cycle starts at the first zero crossing after its filter settled: the
            # samples before it are a hole like any other, which the chip measured
            self.last_end, self._started = float(first_index), True
        origin_ns = timestamp_ns - first_index * NS_PER_S / self.fs
        cm = result.cycles
        if cm is not None and cm.count:
            self.covered_ns = max(self.covered_ns, int(result.cycle_start_ns[-1]))    # int: a float of UNIX ns is 256 ns coarse
            if self.last_end is not None and cm.start[0] - self.last_end > HOLE_MIN_FRAMES:
                self._hole(self.last_end, float(cm.start[0]), origin_ns, now, self._started)
            self.last_end, self._started = float(cm.end[-1]), False
            self.compare.add_cycles(cm.start, cm.end, cycle_flows(cm, self.settings))
        for second in result.seconds:
            self._entry(int(second.start_ns // NS_PER_S), now).parts.append(second)
        self.poll()

    def _stream_restarted(self) -> None:
        self.last_end = None
        self.records.stream_restarted()
        self.compare.restart()

    def _hole(self, lo: float, hi: float, origin_ns: float, now: float, startup: bool = False) -> None:
        pieces = split_by_second(lo, hi, origin_ns, self.fs)
        hole = _Hole(lo, hi, len(pieces), startup=startup)
        for key, a, b in pieces:
            self._entry(key, now).pieces.append((hole, a, b))

    def _entry(self, key: int, now: float) -> _Second:
        """The queued entry of clock second ``key``, made (in key order) when there is none."""
        at = len(self.queue)
        while at and self.queue[at - 1].key > key:
            at -= 1
        if at and self.queue[at - 1].key == key:
            return self.queue[at - 1]
        # the monotonic time at the second's end: now, less how far the stream has gone past that end (a
        # second inside a hole, or one closed late by a stall), so the registers see no clock set
        behind_s = max(0.0, (self.covered_ns - (key + 1) * NS_PER_S) / NS_PER_S)
        entry = _Second(key, now - behind_s, now)
        self.queue.insert(at, entry)
        return entry

    # ------------------------------------------------------------------ chip records and release

    def poll(self) -> None:
        """Read the chip records that arrived, compare the paths, register every second that is ready."""
        self._read_records()
        if self.compare.update():
            self.result = self.compare.result()
            self._check()
        now = self.clock()
        while self.queue and self._ready(self.queue[0], now):
            self._release(self.queue.pop(0))

    def _read_records(self) -> None:
        if self.reader is None:
            if self.ring_name is None or self.clock() < self._attach_at:
                return
            try:
                self.ring = Ring.attach(self.ring_name)
            except IPCError:
                self._attach_at = self.clock() + ATTACH_RETRY_S
                return
            self.reader = RingReader(self.ring, start="latest")
            self.log.info("chip energy records from %s: lost samples are filled from the chip's accumulators",
                          self.ring_name)
        lost = self.reader.lost
        while (data := self.reader.read(0.0)) is not None:
            try:
                r = ChipEnergyRecord.decode(data)
            except ValueError as exc:
                self.log.warning("chip_intervals: %s; record ignored", exc)
                continue
            self.counters["chip_records"] += 1
            if self.records.add(r):
                self.compare.add_record(r)
        if self.reader.lost != lost:
            self.counters["chip_records_lost"] += self.reader.lost - lost

    def _ready(self, entry: _Second, now: float) -> bool:
        if now - entry.held_since >= self.hold_max_s:
            return True
        if self.covered_ns < (entry.key + 1) * NS_PER_S:
            return False                    # a hole that touches this second may not be known yet
        if entry.pieces and self.reader is not None:
            return self.records.through >= max(b for _, _, b in entry.pieces)
        return True

    def _release(self, entry: _Second) -> None:
        start_ns = entry.key * NS_PER_S
        inc = _sum([p.energy for p in entry.parts], start_ns, False)
        comp = _sum([p.energy_comp for p in entry.parts if p.energy_comp is not None], start_ns, True) \
            if self.compensated else None
        values = max(entry.parts, key=lambda p: p.duration_s).values if entry.parts else {}
        if inc.duration_s > 0:
            self.reference = (_sum([inc], start_ns, False), _sum([comp], start_ns, True) if comp is not None else None)
        if self.covered_ns >= (entry.key + 1) * NS_PER_S:
            # every hole touching this second is known: what is missing is exactly the unfilled hole time
            # (the pipeline's gap_s counts the lost frames in the second before the gap)
            inc.gap_s = 0.0
            if comp is not None:
                comp.gap_s = 0.0
        ref, ref_comp = self.reference if self.reference is not None else (None, None)
        for hole, a, b in entry.pieces:
            shares = apportion(self.records.overlapping(a, b), a, b)
            fill, fill_comp = fill_energy(shares, self.fs, self.gain, ref, ref_comp, comp is not None, self.no_load,
                                          self.apparent)
            # before the first cycle after a start, what the chip did not record is part of the outage the start
            # ends (the interval is flagged so), not a gap in the measurement
            missing_s = 0.0 if hole.startup else max(0.0, (b - a) / self.fs - fill.filled_s)
            inc.add(fill)
            inc.gap_s += missing_s
            if comp is not None and fill_comp is not None:
                comp.add(fill_comp)
                comp.gap_s += missing_s
            hole.filled += fill.filled_s * self.fs
            hole.wh += float(fill.net("wh")[3])
            hole.pieces -= 1
            if hole.pieces == 0:
                self._hole_done(hole)
        self.register(inc, comp, values, (entry.key + 1) * 1.0, entry.mono_s)

    def _hole_done(self, hole: _Hole) -> None:
        frames = hole.hi - hole.lo
        missing = frames - hole.filled
        self.counters["fill_s"] += hole.filled / self.fs
        self.counters["fill_wh"] += hole.wh
        if hole.startup:
            self.log.debug("%.1f ms of samples before the first cycle: %.1f ms filled from the chip",
                           frames / self.fs * 1e3, hole.filled / self.fs * 1e3)
            if missing > HOLE_MIN_FRAMES:
                self.counters["unfilled_s"] += missing / self.fs
        elif missing > HOLE_MIN_FRAMES:
            self.counters["gaps_unfilled"] += 1
            self.counters["unfilled_s"] += missing / self.fs
            why = "no chip records" if self.reader is None else "no chip record covers it"
            self.log.warning("%.1f ms of samples before index %d have no energy (%s); the load-profile interval "
                             "is flagged gap_unfilled", missing / self.fs * 1e3, int(hole.hi), why)
        else:
            self.counters["gaps_filled"] += 1
            self.log.debug("%.1f ms of samples before index %d filled from the chip: %.6f Wh",
                           frames / self.fs * 1e3, int(hole.hi), hole.wh)

    # ------------------------------------------------------------------ cross-check

    def _check(self) -> None:
        res = self.result
        d = float(res.difference_pct[0])
        if not math.isfinite(d):
            return
        was = self.differ
        if abs(d) > self.limit_pct:
            self.differ = True
        elif abs(d) <= CLEAR_FRACTION * self.limit_pct:
            self.differ = False
        if self.differ and not was:
            self.log.warning("energy paths differ: the samples' active energy is %+.3f %% of the chip's over the "
                             "last %.0f s both measured, beyond the accuracy class (%.2f %%)", d, res.common_s,
                             self.limit_pct)
        elif was and not self.differ:
            self.log.info("energy paths agree again: %+.3f %% (accuracy class %.2f %%)", d, self.limit_pct)
        # every time, not only on a change: registers restarted after a fault learn the state at once
        info = {"difference_pct": round(d, 4), "limit_pct": self.limit_pct, "common_s": round(res.common_s, 1)}
        self.paths_differ(self.differ, self._stream_now_s(), info)

    def _stream_now_s(self) -> float:
        return self.covered_ns / NS_PER_S if math.isfinite(self.covered_ns) else 0.0

    def values(self) -> dict[str, float]:
        """The cross-check and gap-fill points of energypaths.toml."""
        res = self.result
        c = self.counters
        return {"energy_check_wh": float(res.difference_pct[0]), "energy_check_varh": float(res.difference_pct[1]),
                "energy_check_vah": float(res.difference_pct[2]), "energy_check_s": res.common_s,
                "energy_paths_differ": 1.0 if self.differ else 0.0,
                "energy_gaps_filled": float(c["gaps_filled"]), "energy_gaps_unfilled": float(c["gaps_unfilled"]),
                "energy_fill_wh": c["fill_wh"]}

    def info(self) -> dict[str, Any]:
        """Counters for the heartbeat and ``metrology.info`` (JSON: NaN as null)."""
        check = {k: (v if math.isfinite(v) else None) for k, v in self.values().items() if k.startswith("energy_check")}
        return {**self.counters, "held_seconds": len(self.queue), "chip_ring": self.reader is not None, **check}

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = self.reader = None


def _sum(parts: list[EnergyIncrement], start_ns: int, compensated: bool) -> EnergyIncrement:
    out = EnergyIncrement(start_ns=start_ns, compensated=compensated)
    for p in parts:
        out.add(p)
    return out
