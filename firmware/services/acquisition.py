"""The acquisition service: owns the ADE9000, streams its samples to the samples ring, publishes the chip's energy.

Outputs (shared memory, names prefixed by the meter instance):

- ``samples``: a ring of ``firmware.ipc.samples.SampleBlock`` records, 128 frames (4 ms) each, in the
  order IA VA IB VB IC VC IN with each channel's calibrated scale. A block after lost frames has
  FLAG_GAP and ``lost_frames``; the first block after a chip re-initialisation has FLAG_CHIP_RESET;
  every block from the simulated board has FLAG_SIMULATED.
- ``chip_energy``: a snapshot with the chip's own accumulators (the second, independent energy path):
  per phase Wh, varh, VAh of the last EGYRDY interval and their running totals since the service
  started, plus stream health counters.
- ``chip_intervals``: a ring with one ``firmware.ipc.chipenergy.ChipEnergyRecord`` per EGYRDY interval,
  naming the sample-stream frames it covers, from which metrology fills the energy of lost samples.

IRQ0 is served by the C read loop (``hal.rtloop``; ``acquisition.read_loop = "c"``) with the GIL released,
or by the Python reference (``"python"``). With the C loop the Python side drains its ring every
``DRAIN_INTERVAL_S`` rather than at each block, so the interpreter (and each reader of the samples ring) wakes
some 15 times a second, not 250. On the simulated board in real time the chip runs in its own
process (``hal.sim.chipd``), so it keeps time whether this service keeps up or not.

On a bus or chip fault the chip is reset and brought up again (up to ``acquisition.max_restarts``);
the frame index keeps counting across it so consumers see a gap, never spliced samples.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.config import Config
from firmware.config.board import Board, load_board
from firmware.ipc import chipenergy, names
from firmware.ipc.ring import Ring
from firmware.ipc.samples import FLAG_CHIP_RESET, FLAG_GAP, FLAG_SIMULATED, SampleBlock, block_size
from firmware.ipc.snapshot import Snapshot
from firmware.service import Service, command, main
from hal import ade9000_stream as st
from hal.ade9000 import ChipSettings, EnergyReading
from metrology.gapfill import no_load_va
from metrology.settings import from_config as metrology_settings
from hal.clock import Clock
from hal.errors import BusError, ChipError, MeterError, MeterTimeoutError
from hal.hardware import Hardware, open_hardware

BLOCK_FRAMES = st.HALF_FRAMES
ENERGY_LAYOUT = [
    ("chip_wh", 3), ("chip_varh", 3), ("chip_vah", 3),                 # last interval, per phase
    ("chip_wh_total", 3), ("chip_varh_total", 3), ("chip_vah_total", 3),  # since the service started
    ("chip_interval_s", 1), ("chip_intervals", 1),
    ("blocks", 1), ("gaps", 1), ("lost_frames", 1), ("crc_errors", 1), ("chip_resets", 1),
    ("config_crc_changes", 1),
]
SIM_DIP_RESIDUAL, SIM_DIP_S = 0.6, 0.1     # [simulation] dips: 100 ms to 60 % on phase A
REALTIME_PRIORITY = 50        # SCHED_FIFO, below the kernel's threaded IRQ handlers (50 by default on PREEMPT_RT)
FREEZE_MAX_S = 5.0            # longest pause the freeze test hook may ask for (the C ring holds 4 s)
# How often the C loop's ring is drained onto the samples ring: metrology takes 4096-frame batches (128 ms), so a
# batch waits at most half a batch for it; the C ring holds 4 s (hal.rtloop.RING_S). Each drain wakes this
# interpreter and every reader of the samples ring once: 64 ms rather than 32 took 0.3 % of a core off
# acquisition and some 0.15 % off metrology on the development VM.
DRAIN_INTERVAL_S = 0.064


def signal_source(config: Config, line_hz: int) -> Any:
    """The simulated board's input: the configured load profile, connected as ``[metrology] system_type`` says
    (a delta meter sees line-to-line voltages and no neutral current, as on a real delta installation)."""
    import dataclasses

    from hal.sim.signals import Connected, ThreePhase, VoltageEvent, day_profile, steady

    sim, wiring = config["simulation"], config["metrology"].system_type
    if sim.profile == "day":
        source = day_profile(time_scale=sim.time_scale, nominal_hz=line_hz)
    elif sim.profile == "steady":
        source = steady(nominal_hz=line_hz)
    elif sim.profile == "no_load":
        source = steady(i_rms=0.0, nominal_hz=line_hz)
    else:
        return Connected(ThreePhase(v_rms=(0.0,) * 3, i_rms=(0.0,) * 3, nominal_hz=line_hz), wiring)
    # the simulated chip's signal runs on the monotonic clock (hal.sim.chip stamps frame 0 with it): dips count
    # from now
    now = time.monotonic()
    dips = tuple(VoltageEvent("sag", SIM_DIP_RESIDUAL, now + t, SIM_DIP_S, "A", 0.0) for t in sim.dips)
    return Connected(dataclasses.replace(source, events=source.events + dips) if dips else source, wiring)


@dataclass
class Totals:
    wh: np.ndarray
    intervals: int = 0


REPORT_EARLY_FRACTION = 0.05   # a report may come this fraction of an interval before the grid's next latch


class EnergyIntervals:
    """Locates each chip energy interval in the sample stream's frame numbering.

    The chip latches every ``frames`` frames (EGY_TIME + 1 DSP samples, exact); the interrupt that reports a
    latch comes after it, so the frame count read then is an upper bound of the boundary. Boundaries are
    therefore placed on the chip's grid at the earliest position any report allows: within a page of the truth
    after the first few intervals, however late single interrupts are served.
    """

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.end: int | None = None

    def reset(self) -> None:
        self.end = None

    def place(self, count: int) -> tuple[int, int, int]:
        """(start, end, flags) of the energy reported at frame count ``count``: from the end of the previous
        report (the accumulators add up, so latches nobody read are inside it), one interval for the first."""
        if self.end is None:
            end = start = count
            start -= self.frames
        else:
            # the latches since the last report: a report comes just after its latch (or a little before the grid
            # when an earlier report was late), never most of an interval after it unless interrupts went unserved
            k = max(1, math.floor((count - self.end) / self.frames + REPORT_EARLY_FRACTION))
            end = min(self.end + k * self.frames, count)
            start = end - k * self.frames
        self.end = end
        return start, end, 0


class Acquisition:
    """The work of the service without the process around it: bring up, pump blocks, publish energy."""

    def __init__(self, board: Board, settings: ChipSettings, ring: Ring, energy: Snapshot, *, source: Any = None,
                 realtime: bool = True, clock: Clock | None = None, max_restarts: int = 10,
                 intervals: Ring | None = None, read_loop: str = "python", lock_memory: bool = False) -> None:
        self.board, self.settings = board, settings
        self.ring, self.energy, self.intervals = ring, energy, intervals
        self.max_restarts = max_restarts
        self.read_loop = read_loop
        self.hw: Hardware = open_hardware(board, settings, source=source, realtime=realtime, clock=clock,
                                          read_loop=read_loop, lock_memory=lock_memory)
        self.scale = tuple(ch.scale() for ch in settings.channels)
        self.offset = tuple(ch.cal_offset for ch in settings.channels)
        self.phase_deg = tuple(ch.cal_phase_deg for ch in settings.channels)
        self.extra_flags = FLAG_SIMULATED if board.simulated else 0
        self.totals = Totals(np.zeros((3, 3)))
        self.restarts = 0
        self.index_base = 0            # frame index of the current stream's frame 0
        self.last_problem = ""
        self.epoch = time.time_ns() & (2**63 - 1)
        self.egy = EnergyIntervals(int(round(settings.energy_interval_s * st.SAMPLE_RATE_HZ)))
        self._outage_lost = 0          # frames lost to a re-initialisation, reported by the next block
        self._egy_flags = 0
        self.last_gap_frames = 0
        self.last_gap_unix_s = 0.0

    def start(self, chip_reset: bool = False) -> None:
        self.hw.stream.stop()
        self.hw.chip.bring_up()
        self.egy.reset()
        self.hw.stream.start(chip_reset=chip_reset)

    def pump(self, timeout_s: float = st.IRQ_TIMEOUT_S) -> int:
        """Service one interrupt; returns the number of sample blocks written. Recovers from chip faults."""
        try:
            items = self.hw.stream.poll(timeout_s)
        except (BusError, ChipError, MeterTimeoutError) as exc:
            self._recover(exc)
            return 0
        written = 0
        with self.ring.batch():          # the blocks of one drain wake metrology and the recorder once
            for item in items:
                if isinstance(item, EnergyReading):
                    self._publish_energy(item)
                else:
                    self._write_block(item)
                    written += 1
        return written

    def _write_block(self, raw: st.RawBlock) -> None:
        flags = self.extra_flags | (raw.flags & (FLAG_GAP | FLAG_CHIP_RESET))   # the same bits on the ring
        lost = raw.lost_frames + self._outage_lost
        if self._outage_lost:
            flags |= FLAG_GAP
            self._outage_lost = 0
        if lost:
            self.last_gap_frames = lost
            self.last_gap_unix_s = raw.timestamp_ns / 1e9
        block = SampleBlock(self.index_base + raw.first_index, raw.timestamp_ns, st.SAMPLE_RATE_HZ, raw.codes,
                            self.scale, flags, lost, self.offset, self.phase_deg)
        with self.ring.reserve() as slot:
            slot.commit(block.encode_into(slot.buffer))

    def _publish_energy(self, r: EnergyReading) -> None:
        self.totals.wh += r.wh
        self.totals.intervals += 1
        if self.intervals is not None and r.frame_count >= 0:
            start, end, flags = self.egy.place(r.frame_count)
            interval_s = r.interval_s * (end - start) / self.egy.frames
            record = chipenergy.ChipEnergyRecord(self.epoch, self.index_base + start, self.index_base + end,
                                                 r.timestamp_ns, interval_s, r.wh[:, 0], r.wh[:, 1], r.wh[:, 2],
                                                 flags | self._egy_flags)
            self._egy_flags = 0
            self.intervals.write(record.encode())
        problems = self.hw.chip.check_health()
        for p in problems:
            self.hw.chip.stats.extra["health_problems"] = self.hw.chip.stats.extra.get("health_problems", 0) + 1
            self.last_problem = p
        self.energy.publish({
            "chip_wh": r.wh[:, 0], "chip_varh": r.wh[:, 1], "chip_vah": r.wh[:, 2],
            "chip_wh_total": self.totals.wh[:, 0], "chip_varh_total": self.totals.wh[:, 1],
            "chip_vah_total": self.totals.wh[:, 2], "chip_interval_s": r.interval_s,
            "chip_intervals": self.totals.intervals, **self.counters(),
        }, timestamp_ns=r.timestamp_ns)
        if problems:
            self._recover(ChipError("; ".join(problems)))

    def counters(self) -> dict[str, float]:
        s, c = self.hw.stream.stats, self.hw.chip.stats
        return {"blocks": s.blocks, "gaps": s.gaps, "lost_frames": s.lost_frames + self._lost_to_outages,
                "crc_errors": c.crc_errors + c.extra.get("loop_crc_errors", 0), "chip_resets": self.restarts,
                "config_crc_changes": c.config_crc_changes}

    _lost_to_outages = 0

    def _recover(self, exc: MeterError) -> None:
        """Re-initialise the chip; frames until the new stream starts count as lost."""
        stream = self.hw.stream
        clock = self.hw.clock
        stream.stop()
        stopped_ns = clock.monotonic_ns()
        next_index = self.index_base + stream.next_index
        while True:
            self.restarts += 1
            self.last_problem = str(exc)
            if self.restarts > self.max_restarts:
                raise ChipError(f"acquisition: giving up after {self.max_restarts} re-initialisations; last: {exc}")
            try:
                self.start(chip_reset=True)
                break
            except (BusError, ChipError, MeterTimeoutError) as again:
                exc = again
        # the outage in frames, so the index keeps time across the restart
        lost = max(0, int(round((clock.monotonic_ns() - stopped_ns) / st.FRAME_NS)))
        self.index_base = next_index + lost
        self._outage_lost += lost
        self._lost_to_outages += lost
        self._egy_flags |= chipenergy.FLAG_CHIP_RESET

    def close(self) -> None:
        self.hw.close()


def isolated_cpus(path: str = "/sys/devices/system/cpu/isolated") -> set[int]:
    """The CPUs the kernel keeps free of other tasks (isolcpus=), from its list such as ``3`` or ``2-3,5``."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return set()
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def terminal_no_load_va(metering: Any) -> float:
    """The creep rule's no-load level per phase (``metrology.gapfill.no_load_va``, primary VA) at the meter's
    terminals, behind the PT and CT: what the chip's no-load thresholds are set from."""
    m = metrology_settings(metering)
    return no_load_va(m) / (m.pt_ratio * m.ct_ratio)


class AcquisitionService(Service):
    name = "acquisition"

    def setup(self) -> None:
        board = load_board(self.ctx.board_path)
        acq, metering = self.config["acquisition"], self.config["metrology"]
        # the chip assumes the wiring and frequency metrology measures (one setting; a change restarts both)
        line_hz = int(metering.nominal_frequency)
        settings = ChipSettings(board.channels, line_hz=line_hz, wiring=metering.system_type,
                                energy_interval_s=acq.energy_interval, no_load_va=terminal_no_load_va(metering))
        self.ring = Ring.create(self.ctx.shm_name(names.SAMPLES), block_size(BLOCK_FRAMES), acq.ring_slots)
        self.energy = Snapshot.create(self.ctx.shm_name(names.CHIP_ENERGY), ENERGY_LAYOUT)
        self.intervals = Ring.create(self.ctx.shm_name(names.CHIP_INTERVALS), chipenergy.RECORD_SIZE,
                                     chipenergy.RING_SLOTS)
        source = signal_source(self.config, line_hz) if board.simulated else None
        realtime = (self.config["simulation"].realtime and board.sim_realtime) or not board.simulated
        read_loop = acq.read_loop if realtime else "python"
        self.acq = Acquisition(board, settings, self.ring, self.energy, source=source, realtime=realtime,
                               max_restarts=acq.max_restarts, intervals=self.intervals, read_loop=read_loop,
                               lock_memory=acq.lock_memory)
        self._freeze_s = 0.0
        if not board.simulated:
            self._pin_to_isolated_cpu()
        self.acq.start()
        if realtime:
            self._realtime_priority(read_loop)
        self.endpoints = [f"shm {self.ring.name}", f"shm {self.energy.name}", f"shm {self.intervals.name}"]

    def _pin_to_isolated_cpu(self) -> None:
        """On a kernel started with isolcpus= (the CM4 image: core 3), run this process, and so the read loop
        thread it starts next, on the isolated core(s), where nothing else is scheduled."""
        import os

        cpus = isolated_cpus()
        if not cpus:
            return
        try:
            os.sched_setaffinity(0, cpus)
            self.log.info("acquisition runs on the isolated CPU(s) %s", ",".join(map(str, sorted(cpus))))
        except OSError as exc:
            self.log.warning("acquisition could not move to the isolated CPU(s) %s (%s)", sorted(cpus), exc)

    def _realtime_priority(self, read_loop: str) -> None:
        """No cyclic GC pauses; with the Python read loop also SCHED_FIFO for the whole process (the C loop sets
        its own thread's). Without CAP_SYS_NICE this only logs; gap detection still reports any miss."""
        import gc
        import os

        gc.collect()
        gc.freeze()
        if read_loop == "c":
            note = getattr(self.acq.hw.stream, "priority_note", "")
            self.log.info("IRQ0 served by the C read loop (SCHED_FIFO %d%s)", REALTIME_PRIORITY,
                          f"; refused: {note}" if note else "")
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        except (PermissionError, OSError, AttributeError) as exc:
            self.log.warning("acquisition runs without real-time priority (%s); page misses are more likely", exc)

    def run(self) -> None:
        # the Python reference loop must serve each interrupt itself within the chip's deadline: no pause
        drain_s = DRAIN_INTERVAL_S if self.acq.read_loop == "c" else 0.0
        while not self.stopping.is_set():
            if self._freeze_s:
                self._hold_interpreter(self._freeze_s)
                self._freeze_s = 0.0
            self.acq.pump()
            self.heartbeat(**self.acq.counters(), last_gap_frames=self.acq.last_gap_frames,
                           last_gap_unix_s=self.acq.last_gap_unix_s)
            if drain_s:
                self.stopping.wait(drain_s)

    @staticmethod
    def _hold_interpreter(seconds: float) -> None:
        """Keep the interpreter busy (the GIL held between bytecodes, nothing drained), as a long pause would."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def teardown(self) -> None:
        if hasattr(self, "acq"):
            self.acq.close()

    def dump_config(self) -> dict[str, Any]:
        acq = getattr(self, "acq", None)
        if acq is None:
            return {}
        return {"board": acq.board.name, "simulated": acq.board.simulated, "line_hz": acq.settings.line_hz,
                "read_loop": acq.read_loop, "config_crc": acq.hw.chip.config_crc, "last_problem": acq.last_problem,
                "last_gap_frames": acq.last_gap_frames, "last_gap_unix_s": acq.last_gap_unix_s, **acq.counters()}

    @command("freeze")
    def cmd_freeze(self, seconds: float = 0.5, user: str = "") -> str:
        """Test hook: the service's Python side stops draining for ``seconds`` (at most 5) with the GIL held."""
        seconds = float(seconds)
        if not 0 < seconds <= FREEZE_MAX_S:
            raise ValueError(f"freeze: seconds must be in (0, {FREEZE_MAX_S:g}]")
        self._freeze_s = seconds
        return f"the Python side will hold the interpreter for {seconds:g} s"

    @command("stall")
    def cmd_stall(self, seconds: float = 0.006, count: int = 1, user: str = "") -> str:
        """Fault injection: the read loop sleeps ``seconds`` before serving each of the next ``count`` interrupts
        (a host that wakes late); a stall beyond the half-buffer deadline loses samples, as it would on the board."""
        stream = self.acq.hw.stream
        if not hasattr(stream, "loop"):
            raise ValueError("stall needs the C read loop (acquisition.read_loop = \"c\")")
        stream.loop.stall(float(seconds), int(count))
        return f"{int(count)} interrupts will be served {float(seconds) * 1e3:g} ms late"

    @command("latency")
    def cmd_latency(self, reset: bool = False, user: str = "") -> dict[str, float]:
        """Wake-up latency of the C read loop from the IRQ0 edge (count, p50, p99, max in microseconds)."""
        stream = self.acq.hw.stream
        if not hasattr(stream, "latency"):
            raise ValueError("latency is measured by the C read loop only")
        return stream.latency(bool(reset))

    @command("registers")
    def cmd_registers(self, user: str = "") -> dict[str, str]:
        """Every non-volatile ADE9000 register, for diagnostics."""
        return {name: f"{value:#x}" for name, value in self.acq.hw.chip.register_dump().items()}


if __name__ == "__main__":
    sys.exit(main(AcquisitionService))
