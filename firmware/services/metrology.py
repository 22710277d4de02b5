"""The metrology service: samples ring in, measurement snapshot out, every second, indefinitely.

It reads sample blocks from the acquisition's ring, joins contiguous blocks into batches (a few
thousand frames: the pipeline's cost per call is mostly fixed, so batching is what keeps up on a
CM4), runs ``metrology.pipeline.Pipeline`` (the same class ``meter replay`` runs) and, for every
1-s interval, publishes the point-map keys of ``metrology.publish`` to the ``measurements``
snapshot and hands the second's ``EnergyIncrement`` to the revenue registers, whose billed
totals are the published energy points (NaN, "not available", while the registers are faulted).

Samples are never bridged: a block flagged GAP or CHIP_RESET by the HAL, a first index that does not
follow on, or blocks this service lost to a ring overrun restart the pipeline's windows; the
affected intervals carry the gap flag and the lost time is counted in ``gaps`` and ``lost_s`` (shown by
``metrology.info``). Energy is never lost: ``firmware.revenue.gapfill`` registers the seconds in
order, holding back those around a gap until the ADE9000's record of that time has arrived on the
``chip_intervals`` ring, and adds the chip's energy of the frames no measured cycle covers; it also
publishes the running cross-check of the two energy paths.

The disturbance counters (``pq_*_count``) carry on across restarts: they are kept in ``data_dir/pq_counters.json``
and set back to zero only by ``metrology.pq_counters_reset``.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from firmware import extensions
from firmware.catalogue.values import pick, split_names
from firmware.io import PUBLISHED as IO_PUBLISHED
from firmware.io.reader import IoReader
from firmware.ipc import names, pqrecords
from firmware.ipc.ring import Ring, RingReader
from firmware.ipc.samples import SampleBlock, physical
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.revenue.gapfill import GapFill
from firmware.revenue.runtime import GuardedRevenue, revenue_commands
from firmware.service import Service, command, main
from firmware.storage.atomic import atomic_write
from firmware.timesync import SNAPSHOT_NAME as TIME_SNAPSHOT_NAME
from firmware.timesync.reader import STALE_S, TimeSynced
from metrology import _kernels
from metrology.events import VOLTAGE_KINDS, PqEvent
from metrology.pipeline import FeedResult, Pipeline
from metrology.pqpublish import aggregate_points, counter_points
from metrology.publish import publish
from metrology.settings import from_config

BATCH_FRAMES = 4096              # ~128 ms of samples per pipeline call
BATCH_WAIT_S = 0.15              # after a first block, wait this long for the rest of a batch (latency bound)
ATTACH_TIMEOUT_S = 10.0
GAP_LOG_INTERVAL_S = 10.0        # sample gaps are summarised in the log at most this often
PQ_COUNTERS_FILE = "pq_counters.json"   # under data_dir: the disturbance counters, carried across restarts
PQ_COUNTERS_SYNC_S = 10.0        # saved whenever they change; a change this long after the last sync syncs


class MetrologyService(Service):
    name = "metrology"
    step_interval_s = 0.05

    def setup(self) -> None:
        self.settings = from_config(self.config["metrology"], self.config["pq"])
        for stale in extensions.check():       # a stale kernel extension is replaced by the numpy reference
            self.log.warning("stale C extension %s", stale)
        self.log.info(_kernels.BACKEND_NOTE)
        self.ring = Ring.attach(self.ctx.shm_name(names.SAMPLES), timeout_s=ATTACH_TIMEOUT_S)
        self.reader = RingReader(self.ring, start="latest")
        layout = snapshot_layout()
        self._layout_names = {name for name, _ in layout}
        self.snapshot = Snapshot.create(self.ctx.shm_name(names.MEASUREMENTS), layout)
        self.pipeline = Pipeline(self.settings)
        # PQ records for the recorder: a ring never waits for its reader, so metering cannot stall on it
        self.pq_ring = pqrecords.create_ring(self.ctx.shm_name(names.PQ_EVENTS), self.config["pq"].ring_records)
        self._last_event: PqEvent | None = None
        self._counts_path = self.ctx.data_dir / PQ_COUNTERS_FILE
        self._counts_synced = time.monotonic()
        self.pipeline.set_disturbance_counts(self._load_counts())   # published with every second
        self._gaps_unlogged = self._frames_unlogged = 0
        self._gap_logged_at = -GAP_LOG_INTERVAL_S
        self.present = self.pipeline.wiring.signal_present()
        self.counters = {"blocks": 0, "frames": 0, "seconds": 0, "gaps": 0, "lost_s": 0.0, "overruns": 0,
                         "pq_records": 0}
        s = self.settings
        self.revenue = GuardedRevenue.for_service(self.config, self.ctx.data_dir, self.ctx.board_path, s.pt_ratio,
                                                  s.ct_ratio, self.log, io_snapshot=self.ctx.shm_name(names.IO),
                                                  time_snapshot=self.ctx.shm_name(TIME_SNAPSHOT_NAME))
        self.io = IoReader(self.ctx.shm_name(names.IO))
        self.gapfill = GapFill(s, self.config["revenue"].accuracy_class, self.revenue.on_second,
                               self.revenue.energy_paths, ring_name=self.ctx.shm_name(names.CHIP_INTERVALS),
                               logger=self.log, energy_interval_s=self.config["acquisition"].energy_interval)
        self.time_synced = TimeSynced(self.ctx.shm_name(TIME_SNAPSHOT_NAME),
                                      max(STALE_S, 3 * self.config["time"].poll))
        self.endpoints = [f"shm:{self.ctx.shm_name(names.MEASUREMENTS)}"]

    # ------------------------------------------------------------------ loop

    def step(self) -> None:
        blocks = self._read_batch()
        if not blocks:
            self.gapfill.poll()          # chip records still arrive and held seconds still time out
            return
        for group in _contiguous(blocks):      # a group shares one calibration: see _contiguous
            first = group[0]
            codes = np.concatenate([b.codes for b in group]) if len(group) > 1 else first.codes
            x = physical(codes, first.scale, first.offset)     # one conversion for the whole run
            if first.restarts and first.lost_frames:
                self.counters["lost_s"] += first.lost_frames / first.sample_rate_hz
            self.pipeline.apply_calibration(first.phase_deg)
            result = self.pipeline.feed_values(x, first.first_index, first.timestamp_ns, first.restarts,
                                               first.lost_frames)
            if result.gap:
                self.counters["gaps"] += 1
                self._note_gap(first.lost_frames)
            # registers the seconds that are ready (with the chip's energy of any gap) before they publish
            self.gapfill.on_feed(result, first.first_index, x.shape[0], first.timestamp_ns)
            self._pq(result)
            for second in result.seconds:
                self._publish_second(second)
        self.heartbeat(**self.counters, **self.gapfill.info())

    def _pq(self, result: FeedResult) -> None:
        """Aggregates and counters to the snapshot as they close, then the PQ records to the recorder's ring (a
        recorder that reads the snapshot on such a record sees these values)."""
        update: dict[str, float | np.ndarray] = {}
        for item in (*result.three_s, *result.ten_min, *result.two_h):
            update.update(aggregate_points(item))
        for ev in result.events:
            if isinstance(ev, PqEvent) and ev.kind in VOLTAGE_KINDS:
                self._last_event = ev
        if result.events:
            update.update(self._pq_counters())
            self._save_counts()
        if update:
            self.snapshot.publish(update)
        records = pqrecords.feed_records(result)
        for record in records:
            self.pq_ring.write(record)
        self.counters["pq_records"] += len(records)

    def _pq_counters(self) -> dict[str, float]:
        p = self.pipeline
        return counter_points(p.disturbance_counts(), p.flagger.in_event, self._last_event)

    def _load_counts(self) -> dict[str, int]:
        try:
            saved = json.loads(self._counts_path.read_text())
            return {str(k): int(v) for k, v in saved.items() if isinstance(v, int) and v >= 0}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            self.log.warning("%s unreadable (%s): the disturbance counters start from zero", self._counts_path, exc)
            return {}

    def _save_counts(self, sync: bool = False) -> None:
        """Replaced whole each time (a killed process leaves the old or the new file, never half of one)."""
        now = time.monotonic()
        sync = sync or now - self._counts_synced >= PQ_COUNTERS_SYNC_S
        try:
            atomic_write(self._counts_path, json.dumps(self.pipeline.disturbance_counts()).encode(), sync=sync)
        except OSError as exc:
            self.log.warning("disturbance counters not saved: %s", exc)
            return
        if sync:
            self._counts_synced = now

    def _note_gap(self, lost_frames: int) -> None:
        """One line per GAP_LOG_INTERVAL_S at most, with what the gaps since the last one cost (the acquisition
        service warns of the same losses; this says what metrology did about them)."""
        self._gaps_unlogged += 1
        self._frames_unlogged += lost_frames
        now = time.monotonic()
        if now - self._gap_logged_at >= GAP_LOG_INTERVAL_S:
            self.log.info("%d sample gaps (%d frames lost) since the last report: windows restarted, the gaps' "
                             "energy is filled from the chip's accumulators", self._gaps_unlogged,
                             self._frames_unlogged)
            self._gaps_unlogged = self._frames_unlogged = 0
            self._gap_logged_at = now

    def _read_batch(self) -> list[SampleBlock]:
        out: list[SampleBlock] = []
        frames = 0
        lost_before = self.reader.lost
        data = self.reader.read(timeout_s=self.step_interval_s)
        deadline = time.monotonic() + BATCH_WAIT_S
        while data is not None:
            block = SampleBlock.decode(data)
            out.append(block)
            frames += block.n_frames
            if frames >= BATCH_FRAMES or self.stopping.is_set():
                break
            # at real time the blocks come one by one (4 ms): wait for a whole batch rather than run
            # the pipeline per block, whose cost is mostly per call
            data = self.reader.read(timeout_s=max(deadline - time.monotonic(), 0.0))
        if self.reader.lost != lost_before:
            # this service fell behind and the ring overwrote blocks: the next block's index jumps,
            # which the pipeline treats as a gap
            self.counters["overruns"] += self.reader.lost - lost_before
        self.counters["blocks"] += len(out)
        self.counters["frames"] += frames
        return out

    def _publish_second(self, second: Any) -> None:
        # energy points read the persisted revenue registers (NaN while they are faulted), never the
        # pipeline's since-start totals, so a billed value never jumps; the registers took this second
        # already unless it waits for the chip's record of a gap (gapfill)
        out = publish(dict(second.values), self.revenue.totals(), self.present)
        out.update({k: v for k, v in self.revenue.values().items() if k in self._layout_names})
        out.update(self.gapfill.values())
        out["time_synced"] = self.time_synced.value()
        out.update(self._pq_counters())
        io = self.io.read()            # the io service's inputs, outputs and alarms, for the protocols
        if io is not None and not io.stale:
            out.update({k: v for k, v in io.values.items() if k in IO_PUBLISHED and k in self._layout_names})
        self.snapshot.publish(out, timestamp_ns=second.end_ns)
        self.counters["seconds"] += 1

    def teardown(self) -> None:
        if getattr(self, "pipeline", None) is not None and getattr(self, "_counts_path", None) is not None:
            self._save_counts(sync=True)
        if getattr(self, "gapfill", None) is not None:
            self.gapfill.close()
        if getattr(self, "revenue", None) is not None:
            self.revenue.close()          # persists the registers at once (SIGTERM costs nothing)
        for name in ("snapshot", "ring", "time_synced", "pq_ring", "io"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def dump_config(self) -> dict[str, Any]:
        s = getattr(self, "settings", None)
        return {"kernels": _kernels.BACKEND, "system_type": s.system_type if s else None,
                "nominal_frequency": s.nominal_frequency if s else None, **getattr(self, "counters", {})}

    def commands(self) -> dict[str, Any]:
        """Service commands plus the revenue registers' (demand_reset, billing_reset, test_mode_enter, ...)."""
        return {**revenue_commands(lambda: getattr(self, "revenue", None)), **super().commands()}

    @command("pq_counters_reset")
    def cmd_pq_counters_reset(self, user: str = "") -> dict[str, Any]:
        """Set the disturbance counters (dips, swells, interruptions, RVCs, transients) back to zero."""
        before = self.pipeline.disturbance_counts()
        self.pipeline.set_disturbance_counts({})
        self._save_counts(sync=True)
        self.snapshot.publish(self._pq_counters())
        self.log.info("disturbance counters reset by %s (were %s)", user or "?", before)
        return {"before": before, "after": self.pipeline.disturbance_counts()}

    @command("read")
    def cmd_read(self, user: str = "", names: Any = "") -> dict[str, Any]:
        """Latest published values of catalogue quantities by name (``meter read``), from this service's own
        snapshot: the values every other interface reads."""
        values = self.snapshot.read()
        updated_ns = float(values.get("_updated_ns", 0.0))
        return {"updated": updated_ns / 1e9 if updated_ns else None, "count": int(values.get("_count", 0)),
                "values": pick(values, split_names(names))}

    @command("energy")
    def cmd_energy(self, user: str = "") -> dict[str, Any]:
        """Cumulative energy since the service started (the revenue registers keep the billed totals)."""
        tot = self.pipeline.registers.total
        return {q: [float(v) for v in getattr(tot, q)] for q in tot.quantities()} | {"duration_s": tot.duration_s,
                                                                                     "gap_s": tot.gap_s}


def _contiguous(blocks: list[SampleBlock]) -> list[list[SampleBlock]]:
    """Runs of blocks that follow on sample by sample with one calibration; a flagged or discontinuous block, or
    one calibrated differently, starts a new run."""
    groups: list[list[SampleBlock]] = []
    for b in blocks:
        if groups:
            last = groups[-1][-1]
            if (not b.restarts and b.first_index == last.first_index + last.n_frames
                    and b.scale == last.scale and b.offset == last.offset and b.phase_deg == last.phase_deg):
                groups[-1].append(b)
                continue
        groups.append([b])
    return groups


if __name__ == "__main__":
    sys.exit(main(MetrologyService))
