"""The recorder service: owns the PQ logs. Reads the events ring (metrology's PQ records) and the samples ring,
and writes

- PQ events (start and end of dips, swells, interruptions, RVC; transients) into the meter's event log
  (``firmware.storage.eventlog``, priorities from ``[pq]``) and, with their full detail, into ``pq_events``;
- waveform captures around each event (the kinds in ``[pq] capture_on``) and on command, as COMTRADE 2013 in
  ``data_dir/waveforms`` (``firmware.recorder.capture``);
- high-speed RMS bursts (``pq_hsrms``) and the 3-s, 10-min and 2-h aggregates (``pq_aggregates``,
  ``firmware.recorder.store``) into ``data_dir/recorder.db``;
- the data recorders (``firmware.recorder.datarec``).

When acquisition restarts (from the diagnostics page, or after a fault) its sample count starts again: the
samples held and the index metrology has measured up to follow the new count, so captures go on; a capture
that was waiting for samples of the old count fails (they are gone). Each capture's outcome (written, or failed and
why) is kept for ``capture_status``, so ``meter pq capture`` reports a capture whose file never appears.

It can be killed at any moment: the position in the events ring is saved every second with what it wrote, and
on restart it reads again from there (the ring holds ``[pq] ring_records``, about a minute at the usual rate); a record seen
twice is recognised (an aggregate by its kind and end, an event by its kind and start) and not stored twice. A capture waiting for its
post-trigger samples when the process dies is lost; the samples ring does not hold them long enough.
"""
from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware.ipc import names, pqrecords
from firmware.ipc.ring import Ring, RingReader
from firmware.ipc.samples import SampleBlock, physical
from firmware.ipc.snapshot import Snapshot
from firmware.config.sections.pq import capture_format
from firmware.recorder.capture import WAVEFORMS_DIR, CaptureDirectory, SampleHistory, capture_name
from firmware.recorder.datarec import DataRecorders
from firmware.recorder.hsrms import HsRms, burst_detail
from firmware.recorder.store import EVENTS_COLUMNS, EVENTS_TABLE, RECORDER_DB, AggregateStore, read_aggregates
from firmware.service import Service, command, main
from firmware.storage.eventlog import Event, EventLog
from firmware.storage.logstore import LogStore
from hal.errors import MeterError
from metrology.settings import SAMPLE_RATE_HZ

ATTACH_TIMEOUT_S = 10.0
SAVE_INTERVAL_S = 1.0              # the ring position is saved this often: a kill re-reads at most this much
# Sample blocks converted to V and A together (a drain of the acquisition brings 16; a backlog after a stall
# is taken in runs of this many, so the conversion's memory stays small)
RUN_BLOCKS = 32
MAX_RECORDS_PER_STEP = 100         # a backlog is worked off in steps, captures and heartbeats between them
HISTORY_MARGIN_S = 4.0             # samples kept beyond a capture's span: events come a batch or two late, an
                                   # RVC only when it ends (a second of steady voltage after it)
CAPTURE_WAIT_S = 5.0               # a capture whose post-trigger samples never come is written with what there is
CAPTURE_OUTCOMES = 64              # outcomes of the latest captures kept for capture_status
HSRMS_TABLE = "pq_hsrms"
MAX_REASON_CHARS = 64              # an alarm's name is at most 32 ([[alarms.setpoint]] name)


@dataclass
class PendingCapture:
    name: str
    kind: str
    trigger_index: float
    trigger_ns: int
    ascii_: bool
    queued_at: float


class RecorderService(Service):
    name = "recorder"
    step_interval_s = 0.25

    def setup(self) -> None:
        cfg = self.cfg = self.config["pq"]
        data = self.ctx.data_dir
        self.eventlog = EventLog.from_config(self.config)
        self.aggregates = AggregateStore(data, {"3s": cfg.aggregate_depth_3s, "10min": cfg.aggregate_depth_10min,
                                                "2h": cfg.aggregate_depth_2h})
        self.events = LogStore(data / RECORDER_DB, EVENTS_TABLE, EVENTS_COLUMNS, cfg.event_depth)
        self.events.sql(f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_start ON {EVENTS_TABLE}(start_ns)")
        self.events.sql("CREATE TABLE IF NOT EXISTS recorder_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self.bursts = LogStore(data / RECORDER_DB, HSRMS_TABLE, {"kind": "TEXT", "start_ns": "INTEGER",
                                                                 "detail": "JSON"}, cfg.hsrms_depth)
        self.recorders = DataRecorders(data, self.config["recorders"])
        self.format = capture_format(self.config, SAMPLE_RATE_HZ)
        self.groups = tuple(cfg.capture_groups)
        self.history = SampleHistory(self.format.span_s + HISTORY_MARGIN_S, SAMPLE_RATE_HZ)
        self.captures = CaptureDirectory(data / WAVEFORMS_DIR, cfg.capture_depth)
        self.hsrms = HsRms(cfg.hsrms_pre_s, cfg.hsrms_post_s)
        self.pending: list[PendingCapture] = []
        # name -> (status, detail) of the latest captures: "pending", "written" (the .cfg path) or "failed" (why);
        # written by the loop and the control thread, read by capture_status
        self.outcomes: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()
        self._outcomes_lock = threading.Lock()
        # what one step read, written in one transaction per table (a burst of events costs one disk write each)
        self._log_rows: list[tuple[Event, float]] = []
        self._event_rows: list[tuple[float, dict[str, Any]]] = []
        self._burst_rows: list[tuple[float, dict[str, Any]]] = []
        self._batch_keys: set[tuple[str, int]] = set()
        self.requests: collections.deque[PendingCapture] = collections.deque()   # from the control thread
        self._last_capture_ns = 0
        self._measured_index = 0.0           # the sample index metrology has measured up to (hsrms records)
        self.counters = {"records": 0, "events": 0, "aggregates": 0, "captures": 0, "captures_overwritten": 0,
                         "captures_held_off": 0, "captures_partial": 0, "bursts": 0, "duplicates": 0,
                         "ring_lost": 0, "samples_lost": 0, "captures_failed": 0, "acquisition_restarts": 0, "capture_write_s_max": 0.0, "capture_write_s_total": 0.0}
        self.pq_ring = Ring.attach(self.ctx.shm_name(names.PQ_EVENTS), timeout_s=ATTACH_TIMEOUT_S)
        self.reader = RingReader(self.pq_ring, start="oldest")
        saved = self._state("pq_position")
        if saved is not None and self.reader.position <= saved <= self.pq_ring.head:
            self.reader.position = saved
        self.samples_ring = Ring.attach(self.ctx.shm_name(names.SAMPLES), timeout_s=ATTACH_TIMEOUT_S)
        self.samples = RingReader(self.samples_ring, start="latest")
        self.measurements = Snapshot.attach(self.ctx.shm_name(names.MEASUREMENTS), timeout_s=ATTACH_TIMEOUT_S)
        self._saved_at = time.monotonic()
        self._saved_position = self.reader.position
        self.endpoints = [f"file:{data / RECORDER_DB}", f"dir:{data / WAVEFORMS_DIR}"]

    # ------------------------------------------------------------------ loop

    def step(self) -> None:
        if not self.pending:           # captures read the samples they wait for themselves, oldest first
            self._read_samples()
        first = self.reader.read(timeout_s=self.step_interval_s)
        n = 0
        while first is not None:
            self._handle(first)
            n += 1
            if n >= MAX_RECORDS_PER_STEP:
                break
            first = self.reader.read(0.0)
        self._flush()
        self.counters["records"] += n
        self.counters["ring_lost"] = self.reader.lost
        while self.requests:
            self.pending.append(self.requests.popleft())
        self._captures()
        self.recorders.poll(time.time(), self._latest)
        now = time.monotonic()
        if now - self._saved_at >= SAVE_INTERVAL_S and self.reader.position != self._saved_position:
            self._save_position()
        self.heartbeat(**self.counters, captures_overwritten_total=self.captures.overwritten)

    def _read_samples(self, until: float | None = None) -> None:
        """Samples up to ``until`` (default: where metrology has measured): the rest stays on the samples ring
        (seconds long), so a recorder that is behind with its records still finds a trigger's samples there."""
        lost = self.samples.lost
        if until is None:
            until = self._measured_index
        run: list[SampleBlock] = []      # blocks that follow on from the history: converted and added together
        while True:
            end = run[-1].first_index + run[-1].n_frames if run else self.history.end
            if (run or self.history.count) and end >= until:
                break
            data = self.samples.read(0.0)
            if data is None:
                break
            block = SampleBlock.decode(data)
            if run and (block.first_index != end or block.scale != run[0].scale or block.offset != run[0].offset
                        or len(run) >= RUN_BLOCKS):
                self._add_samples(run)
                run = []
            if run or block.first_index == end or not self.history.count:
                run.append(block)
                continue
            # frames lost before it, or acquisition counting again: the history decides, at once
            restarts = self.history.restarts
            self._add_samples([block])
            if self.history.restarts != restarts and block.first_index < until:
                self._count_restarted(block.first_index)
                until = self._measured_index
        if run:
            self._add_samples(run)
        self.counters["samples_lost"] += self.samples.lost - lost

    def _add_samples(self, run: list[SampleBlock]) -> None:
        """Blocks that follow one another with one calibration, converted to V and A in one pass (one conversion
        per block cost the recorder 0.2 % of a core)."""
        first = run[0]
        codes = np.concatenate([b.codes for b in run]) if len(run) > 1 else first.codes
        self.history.add(first.first_index, physical(codes, first.scale, first.offset))

    def _count_restarted(self, first_index: int) -> None:
        """Acquisition started its sample count again: metrology measures from ``first_index`` on, and the
        captures waiting for samples of the old count get none: they are decided now (and fail)."""
        self.log.info("samples ring: acquisition restarted its sample count (now at %d); captures follow it",
                      first_index)
        self._measured_index = float(first_index)
        self.counters["acquisition_restarts"] += 1
        for p in self.pending:
            p.queued_at = -math.inf

    def _handle(self, data: bytes) -> None:
        try:
            kind, meta, arrays = pqrecords.decode(data)
        except MeterError as exc:
            self.log.warning("events ring: unreadable record skipped (%s)", exc)
            return
        if kind == "hsrms":
            # the newest record's: it follows acquisition's count when that starts again
            self._measured_index = float(meta.get("end_index", 0.0))
            for burst in self.hsrms.add(int(meta["t0_ns"]), arrays["dt_ns"], arrays["urms"]):
                self._burst_rows.append((burst.start_ns / 1e9, {"kind": burst.kind, "start_ns": burst.start_ns,
                                                                 "detail": burst_detail(burst)}))
                self.counters["bursts"] += 1
        elif kind == "aggregate":
            if self.aggregates.append(meta["kind"], meta["end_ns"] / 1e9, meta["flagged"], meta["gap"], arrays):
                self.counters["aggregates"] += 1
                self.recorders.on_aggregate(meta, arrays, self._latest())
            else:
                self.counters["duplicates"] += 1
        elif kind == "start":
            self._on_start(meta)
        elif kind == "event":
            self._on_event(meta)

    def _latest(self) -> dict[str, Any]:
        """The newest 1-s values of the measurement snapshot."""
        return dict(self.measurements.read())

    def _priority(self, kind: str) -> int:
        return int(getattr(self.cfg, f"priority_{kind}"))

    def _on_start(self, meta: dict[str, Any]) -> None:
        kind, start_ns = meta["kind"], int(meta["start_ns"])
        if self._seen(f"{kind}_start", start_ns):
            self.counters["duplicates"] += 1
            return
        self._log_rows.append((Event(self._priority(kind), "pq", f"{kind}_start",
                                     f"{kind} started on {meta['initiator']}", detail=meta), start_ns / 1e9))
        self._store_event(f"{kind}_start", start_ns, 0.0, meta)
        self.hsrms.trigger(kind, start_ns)
        self._trigger(kind, float(meta["start_index"]), start_ns)

    def _on_event(self, meta: dict[str, Any]) -> None:
        kind, start_ns = meta["kind"], int(meta["start_ns"])
        if self._seen(kind, start_ns):
            self.counters["duplicates"] += 1
            return
        self._store_event(kind, start_ns, float(meta["duration_s"]), meta)
        self._log_rows.append((Event(self._priority(kind), "pq", kind, describe(meta), detail=meta),
                               int(meta["end_ns"]) / 1e9))
        self.counters["events"] += 1
        self.recorders.on_event(meta, self._latest())
        if kind in ("transient", "rvc"):        # these come only when they end (an RVC may become a dip)
            if kind == "rvc":
                self.hsrms.trigger(kind, start_ns)
            self._trigger(kind, float(meta["start_index"]), start_ns)

    def _store_event(self, kind: str, start_ns: int, duration_s: float, meta: dict[str, Any]) -> None:
        self._event_rows.append((start_ns / 1e9, {"kind": kind, "start_ns": start_ns, "duration_s": duration_s,
                                                  "detail": meta}))
        self._batch_keys.add((kind, start_ns))

    def _flush(self) -> None:
        if self._event_rows:
            self.events.append_many(self._event_rows)
        if self._log_rows:
            self.eventlog.record_many(self._log_rows)
        if self._burst_rows:
            self.bursts.append_many(self._burst_rows)
        self._event_rows, self._log_rows, self._burst_rows = [], [], []
        self._batch_keys.clear()

    def _seen(self, kind: str, start_ns: int) -> bool:
        if (kind, start_ns) in self._batch_keys:
            return True
        return bool(self.events.sql(f"SELECT 1 FROM {EVENTS_TABLE} WHERE kind = ? AND start_ns = ? LIMIT 1",
                                    (kind, start_ns)))

    # ------------------------------------------------------------------ captures

    def _trigger(self, kind: str, index: float, trigger_ns: int) -> None:
        if kind not in self.cfg.capture_on:
            return
        if 0 <= trigger_ns - self._last_capture_ns < self.cfg.capture_holdoff * 1e9:
            self.counters["captures_held_off"] += 1
            return
        self._last_capture_ns = max(self._last_capture_ns, trigger_ns)
        name = capture_name(trigger_ns, kind, self.groups[0])
        if (self.captures.dir / f"{name}.cfg").exists():
            return                    # written before a restart
        self.pending.append(PendingCapture(name, kind, index, trigger_ns, False, time.monotonic()))
        self._outcome(name, "pending", "")

    def _outcome(self, name: str, status: str, detail: str) -> None:
        with self._outcomes_lock:
            self.outcomes[name] = (status, detail)
            self.outcomes.move_to_end(name)
            while len(self.outcomes) > CAPTURE_OUTCOMES:
                self.outcomes.popitem(last=False)

    def _captures(self) -> None:
        """Write the waiting captures oldest first, reading the samples ring only as far as each needs: a backlog
        of triggers still finds its samples, which stay on the ring until read."""
        keep = []
        for p in sorted(self.pending, key=lambda c: c.trigger_index):
            lo, hi = self.format.span(p.trigger_index)
            self._read_samples(hi)
            if self.history.end < hi and time.monotonic() - p.queued_at < CAPTURE_WAIT_S:
                keep.append(p)
                continue
            raw = self.history.window(lo, hi)
            if raw is None:
                why = (f"its samples are no longer held (trigger at sample {p.trigger_index:.0f}, held "
                       f"{self.history.start}..{self.history.end})")
                self.log.warning("capture %s: %s", p.name, why)
                self.counters["captures_failed"] += 1
                self._outcome(p.name, "failed", why)
                continue
            first = max(lo, self.history.start)
            if first > lo or first + raw.shape[0] < hi or np.isnan(raw[:, 0]).any():
                self.counters["captures_partial"] += 1      # cut short, or frames lost inside it (written missing)
                if np.isnan(raw[:, 0]).all():
                    self.log.warning("capture %s: every sample of it was lost by the acquisition; written with "
                                     "its samples missing", p.name)
            before = self.captures.overwritten
            t0 = time.perf_counter()
            for group in self.groups:        # the first group's file under the capture's own name
                name = p.name if group == self.groups[0] else capture_name(p.trigger_ns, p.kind, group)
                self.captures.write(name, self.format, raw, first, p.trigger_index, p.trigger_ns, p.ascii_, group)
            took = time.perf_counter() - t0
            self.counters["capture_write_s_max"] = max(self.counters["capture_write_s_max"], took)
            self.counters["capture_write_s_total"] += took
            self.counters["captures"] += 1
            self.counters["captures_overwritten"] += self.captures.overwritten - before
            self._outcome(p.name, "written", str(self.captures.dir / f"{p.name}.cfg"))
        self.pending = keep

    def _save_position(self) -> None:
        self.events.sql("INSERT INTO recorder_state (key, value) VALUES ('pq_position', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (self.reader.position,))
        self._saved_position = self.reader.position
        self._saved_at = time.monotonic()

    def _state(self, key: str) -> int | None:
        rows = self.events.sql("SELECT value FROM recorder_state WHERE key = ?", (key,))
        return int(rows[0][0]) if rows else None

    def teardown(self) -> None:
        if getattr(self, "reader", None) is not None and getattr(self, "events", None) is not None:
            self._flush()
            self._save_position()
        for name in ("eventlog", "aggregates", "events", "bursts", "recorders", "pq_ring", "samples_ring",
                     "measurements"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def dump_config(self) -> dict[str, Any]:
        return {**getattr(self, "counters", {}), "pending_captures": len(getattr(self, "pending", [])),
                "cpu_s": time.process_time()}

    # ------------------------------------------------------------------ commands

    @command("capture")
    def cmd_capture(self, user: str = "", ascii: bool = False, reason: str = "") -> dict[str, Any]:
        """A waveform capture now, as [pq] capture_mode sets it (one file per capture_groups). ``reason`` is
        why (an alarm's name, sent by the io service for an alarm's capture action): such a capture is named
        ..._alarm and its event carries the reason."""
        if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
            raise MeterError(f"recorder.capture: 'reason' must be text of at most {MAX_REASON_CHARS} characters")
        if not self.history.count:
            raise MeterError("recorder.capture: no samples received yet; is acquisition running?")
        index = float(self.history.end)
        if index <= self._measured_index < index + self.history.size:
            index = self._measured_index         # not one of an old count (acquisition restarted)
        ns = time.time_ns()
        kind = "alarm" if reason else "command"
        name = capture_name(ns, kind, self.groups[0])
        self._outcome(name, "pending", "")
        self.requests.append(PendingCapture(name, kind, index, ns, bool(ascii), time.monotonic()))
        self.eventlog.record(Event(self._priority("transient"), "pq", "capture_command", name, user=user,
                                   detail={"reason": reason} if reason else None))
        return {"name": name, "cfg": str(self.captures.dir / f"{name}.cfg"), "status": "pending",
                "wait_s": self.capture_wait_s()}

    def capture_wait_s(self) -> float:
        """The longest a capture asked now can take to be written or to fail: its post-trigger cycles, then
        CAPTURE_WAIT_S for samples that never come."""
        return round(self.format.cycles[1] / self.format.nominal_hz + CAPTURE_WAIT_S + 2 * self.step_interval_s, 3)

    @command("capture_status")
    def cmd_capture_status(self, name: str, user: str = "") -> dict[str, Any]:
        """What became of capture ``name`` (one of the latest CAPTURE_OUTCOMES): ``pending``, ``written`` (with
        the .cfg path) or ``failed`` (with why); ``unknown`` for a name the recorder has not captured lately."""
        if not isinstance(name, str) or len(name) > 80:
            raise MeterError("recorder.capture_status: 'name' must be a capture name")
        with self._outcomes_lock:
            status, detail = self.outcomes.get(name, ("unknown", ""))
        out = {"name": name, "status": status}
        if status == "written":
            out["cfg"] = detail
        elif status == "failed":
            out["reason"] = detail
        return out

    @command("captures")
    def cmd_captures(self, user: str = "") -> dict[str, Any]:
        files = self.captures.list()
        return {"directory": str(self.captures.dir), "depth": self.captures.depth,
                "overwritten": self.captures.overwritten, "captures": [f.stem for f in files]}

    @command("events")
    def cmd_events(self, user: str = "", since_ts: float | None = None, until_ts: float | None = None,
                   limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.events.read(since_ts=since_ts, limit=None)
        rows = [r for r in rows if until_ts is None or r["ts"] <= float(until_ts)]
        return rows[:min(int(limit), 10000)]

    @command("aggregates")
    def cmd_aggregates(self, user: str = "", kind: str = "10min", since_ts: float | None = None,
                       until_ts: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return read_aggregates(self.ctx.data_dir, kind, since_ts, until_ts)[-min(int(limit), 10000):]

    @command("hsrms")
    def cmd_hsrms(self, user: str = "", since_ts: float | None = None, limit: int = 10) -> list[dict[str, Any]]:
        return self.bursts.read(since_ts=since_ts, limit=min(int(limit), 1000))

    @command("recorders")
    def cmd_recorders(self, user: str = "") -> list[dict[str, Any]]:
        return self.recorders.describe()

    @command("read")
    def cmd_read(self, user: str = "", recorder: int = 1, since_ts: float | None = None,
                 until_ts: float | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        """Records of data recorder ``recorder`` (1-16) in [since_ts, until_ts]."""
        return self.recorders.read(int(recorder), since_ts, until_ts, min(int(limit), 100000))


def describe(meta: dict[str, Any]) -> str:
    """The event log's effect text of a finished PQ event."""
    kind = meta["kind"]
    chans = ",".join(meta.get("channels", []))
    if kind == "transient":
        return f"transient {meta['peak_v']:.1f} V on {chans}"
    if kind == "rvc":
        return (f"RVC ΔUmax {meta['delta_umax_pct']:.2f} % ΔUss {meta['delta_uss_pct']:.2f} % of Udin, "
                f"{meta['duration_s']:.3f} s on {chans}")
    what = "highest" if kind == "swell" else "residual"
    text = f"{kind} {what} {meta['extreme_pct']:.2f} % of Udin, {meta['duration_s']:.3f} s on {chans}"
    if meta.get("itic"):
        text += f"; ITIC {meta['itic']}"
    if meta.get("semi_f47"):
        text += f", SEMI F47 {meta['semi_f47']}"
    if meta.get("direction"):
        text += f"; {meta['direction']} ({float(meta['direction_confidence']):.2f})"
    return text


if __name__ == "__main__":
    sys.exit(main(RecorderService))
