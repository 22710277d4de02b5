"""Crash consistency of the revenue registers in the running meter (supervisor, acquisition and metrology on
the simulated board): the whole meter killed with SIGKILL at random moments while energy flows, the metrology
service alone killed, SIGTERM, the power-fail input, and the revenue lock over the control socket.

The loss bound uses the registers' own time, never a wall-clock rate: every ``metrology.registers`` reply
carries the time of the last second registered (``time``) and its energy, and the newest record on disk
carries the time of the state it holds (``last_utc``). The engine writes a second whenever ``persist_interval``
has passed since the last write, so after a kill the record on disk is at most one persist interval older
than the last second seen alive, and its registers equal, bit for bit, what was read alive at the same count of
registered increments (the record and the reply are both JSON of the same float64 values). The energy lost is
then exactly the energy registered after it.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from firmware.control import ControlClient
from firmware.ipc import shm
from firmware.ipc.names import instance_glob, instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.storage.records import RecordStore
from hal.errors import IPCError, MeterError
from metrology.registers import QUANTITIES, TOTAL, UNCOMP
from tests.conftest import REPO, iterations
from tests.support.shm_sweep import sweep_instance

PERSIST_S = 2.0              # short, and longer than a second: some kills land between two writes
START_TIMEOUT_S = 60.0
POLL_S = 0.02                # registers are read this often while the meter runs (one second = ~50 reads)
TIME_EPS_S = 1e-6            # second boundaries are float UNIX times; their differences are whole seconds


class Meter:
    """The meter as `meter run --only acquisition,metrology` starts it, in its own process group."""

    def __init__(self, root: Path, persist_s: float = PERSIST_S) -> None:
        self.root = root
        self.data = root / "var"
        self.run_dir = root / "run"
        self.lock_file = self.data / "revenue_lock"
        self.inputs = self.data / "inputs"
        self.config = root / "meter.toml"
        self.persist_s = persist_s
        self.config.write_text(f"""
[meter]
data_dir = "{self.data}"
run_dir = "{self.run_dir}"
[log]
file = false
level = "warning"
[supervisor]
restart_backoff_min = 0.05
restart_backoff_max = 0.2
max_restarts = 1000
restart_window = 1
[simulation]
profile = "steady"
[upgrade]
revenue_lock_file = "{self.lock_file}"
[revenue]
persist_interval = {persist_s}
demand_reset_lockout = "1 h"
[revenue.inputs]
sim_dir = "{self.inputs}"
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = ControlClient(self.run_dir / "control.sock")
        self.instances: list[str] = []          # of every start seen running

    def start(self, wait: bool = True) -> dict | None:
        """Start the meter; with ``wait``, return the registers once this run has registered a second."""
        rec = RecordStore(self.data / "revenue", "registers").load()
        before = json.loads(rec.payload)["last_utc"] if rec is not None else None
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.root / "meter.log", "ab") as out:      # the meter's console, for a failure's reader
            self.proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config),
                                          "--board", str(REPO / "boards" / "sim.toml"), "--only",
                                          "acquisition,metrology"], cwd=REPO, env=env, start_new_session=True,
                                         stdout=out, stderr=subprocess.STDOUT)
        return self.wait_registers(after=before) if wait else None

    def call(self, cmd: str, **args):
        return self.client.call(cmd, **args)

    def wait_registers(self, after: float | None) -> dict:
        """Registers of a running engine that has registered at least one second (after ``after``)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                r = self.call("metrology.registers")
                if r["time"] is not None and (after is None or r["time"] > after):
                    self.instance()
                    return r
            except (MeterError, OSError, ValueError):
                pass
            time.sleep(POLL_S)
        raise AssertionError("the metrology service did not come back with its registers")

    def metrology_pid(self) -> int:
        return int(self.call("status")["services"]["metrology"]["pid"])

    def kill(self) -> None:
        """SIGKILL to the supervisor and every service at the same instant (a power cut), and wait until
        none of them runs any more (a write in flight in the kernel completes before its process dies)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10.0
        while _group_alive(self.proc.pid):
            assert time.monotonic() < deadline, "a meter process survived SIGKILL"
            time.sleep(0.005)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig == signal.SIGKILL:
            self.kill()
        else:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def instance(self) -> str:
        """The shared-memory instance of the running start (its token, drawn anew at each start)."""
        name = instance_name(self.run_dir)
        if name not in self.instances:
            self.instances.append(name)
        return name

    def cleanup(self) -> None:
        """A killed meter leaves its shared memory behind (a clean stop removes it): the last start's, which the
        next start would sweep, is swept here; then no start of this meter left any object in /dev/shm."""
        self.stop(signal.SIGKILL)
        self.instance()
        sweep_instance(self.run_dir)
        assert leftovers(self.instances) == [], "shared memory left in /dev/shm"


def leftovers(instances: list[str]) -> list[str]:
    """The shared-memory objects of these instances still in /dev/shm."""
    return sorted(p.name for i in instances for p in shm.SHM_DIR.glob(instance_glob(i)))


def snapshot_values(meter: Meter) -> dict | None:
    """The measurement snapshot the metrology service publishes (None while it does not exist)."""
    try:
        snap = Snapshot.attach(f"{instance_name(meter.run_dir)}.measurements")
    except (IPCError, OSError, ValueError):
        return None
    try:
        return snap.read()
    finally:
        snap.close()


def wait_snapshot(meter: Meter, predicate, timeout_s: float = START_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    values = None
    while time.monotonic() < deadline:
        values = snapshot_values(meter)
        if values is not None and predicate(values):
            return values
        time.sleep(POLL_S)
    raise AssertionError(f"the measurement snapshot never satisfied the condition; last: {values}")


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, process group) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, _ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
    return state, int(pgrp)


def _running(stat: tuple[str, int] | None) -> bool:
    return stat is not None and stat[0] not in ("Z", "X")     # a zombie can write nothing


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if _running(stat) and stat[1] == pgid:
                return True
    return False


# ---------------------------------------------------------------------------- registers on disk and alive

@dataclass
class OnDisk:
    energy: np.ndarray        # billing energy (uncompensated) totals, in QUANTITIES order
    time: float               # last_utc: the time of the last second this state holds
    increments: int           # energy increments registered up to this state
    sequence: int
    torn: int                 # slots rejected on load (a write the kill interrupted)


def on_disk(meter: Meter) -> OnDisk:
    """The newest valid record, checked for corruption: it loads, parses, and holds finite registers >= 0;
    the revenue database (audit, load profile, self-reads) passes SQLite's integrity check."""
    store = RecordStore(meter.data / "revenue", "registers")
    rec = store.load()
    assert rec is not None, f"no valid revenue record: {store.rejected}"
    state = json.loads(rec.payload)
    energy = np.array(state["billing"]["energy"], dtype=float)
    assert np.isfinite(energy).all() and (energy >= 0).all(), "a corrupt register on disk"
    db = sqlite3.connect(meter.data / "revenue" / "revenue.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    totals = energy[UNCOMP, :, TOTAL]
    return OnDisk(totals, float(state["last_utc"]), int(state["counters"]["increments"]), rec.sequence,
                  len(store.rejected))


def live(reg: dict) -> np.ndarray:
    """Billing energy totals from a ``registers`` reply, in QUANTITIES order."""
    return np.array([reg["energy"][q]["total"] for q in QUANTITIES])


@dataclass
class Seen:
    """Registers read alive during one run, by the count of increments registered (a second split by a
    sample gap is registered in parts with the same time, so the time alone does not name a state)."""
    energy: dict[int, np.ndarray] = field(default_factory=dict)
    time: dict[int, float] = field(default_factory=dict)

    def add(self, reg: dict) -> None:
        n = int(reg["counters"]["increments"])
        self.energy[n], self.time[n] = live(reg), float(reg["time"])


def check_after_kill(seen: Seen, disk: OnDisk, floor: OnDisk, persist_s: float, what: str) -> float:
    """The record after a kill against what was read alive; returns the registration time (s) lost."""
    assert (disk.sequence, disk.increments) >= (floor.sequence, floor.increments) and disk.time >= floor.time, \
        f"{what}: the record on disk went back"
    assert (disk.energy >= floor.energy).all(), f"{what}: a register on disk went backwards"
    last = max(seen.energy)
    if disk.increments >= last:                   # written after the last reading: nothing read is lost
        assert (disk.energy >= seen.energy[last]).all(), f"{what}: a newer record with less energy"
        return 0.0
    lost_s = seen.time[last] - disk.time
    assert lost_s <= persist_s + TIME_EPS_S, (
        f"{what}: the record on disk holds the second of {disk.time}, {lost_s:.0f} s before the last one read "
        f"alive ({seen.time[last]}); persist interval {persist_s:g} s")
    if disk.increments in seen.energy:
        # the record is the registers exactly as they were read at that point: the energy lost is exactly
        # what was registered after it
        assert np.array_equal(disk.energy, seen.energy[disk.increments]), f"{what}: record differs from registers"
        assert disk.time == seen.time[disk.increments]
    else:                                         # not read alive at that point: between two readings
        before = [n for n in seen.energy if n < disk.increments]
        after = min(n for n in seen.energy if n > disk.increments)
        if before:
            assert (disk.energy >= seen.energy[max(before)]).all(), f"{what}: record below an earlier reading"
        assert (disk.energy <= seen.energy[after]).all(), f"{what}: record above a later reading"
    return lost_s


def run_and_watch(meter: Meter, floor: OnDisk, window_s: float, rng: random.Random, what: str) -> Seen:
    """Registers after a (re)start, checked against the record the last kill left; read until a random
    moment within ``window_s`` of the first registered second."""
    seen = Seen()
    first = meter.wait_registers(after=floor.time)
    assert (live(first) >= floor.energy).all(), f"{what}: a register went backwards across the restart"
    seen.add(first)
    kill_at = time.monotonic() + rng.uniform(0.0, window_s)
    while time.monotonic() < kill_at:
        time.sleep(min(POLL_S, max(0.0, kill_at - time.monotonic())))
        with contextlib.suppress(MeterError, OSError, ValueError):  # a call cut short is no evidence either way
            seen.add(meter.call("metrology.registers"))
    return seen


# ---------------------------------------------------------------------------- tests

@pytest.fixture
def meter(tmp_path):
    m = Meter(tmp_path)
    m.start()
    yield m
    m.cleanup()


def test_whole_meter_killed_at_random_moments_loses_at_most_one_persist_interval(tmp_path):
    """The whole meter (supervisor and services, one process group) SIGKILLed at random moments."""
    rng = random.Random(int(os.environ.get("METER_SEED", "5")))
    meter = Meter(tmp_path)
    kills = iterations(ci=15, local=10, soak=500)     # ~7 s each on a 2-core VM: well inside the 300-s timeout
    lost, torn, durations = [], 0, []
    try:
        meter.start()
        floor = on_disk(meter)
        for k in range(kills):
            t0 = time.monotonic()
            killed = meter.instances[-1:] if k else []    # the start killed last time round
            if k:
                meter.start(wait=False)
            seen = run_and_watch(meter, floor, PERSIST_S, rng, f"kill {k}")
            # this start swept what the killed start before it left in /dev/shm (its token, in the run directory)
            assert meter.instances[-1] not in killed and leftovers(killed) == [], f"kill {k}: {leftovers(killed)}"
            meter.kill()
            assert leftovers([meter.instances[-1]]), "a start killed with SIGKILL removed its shared memory"
            disk = on_disk(meter)
            lost.append(check_after_kill(seen, disk, floor, PERSIST_S, f"kill {k}"))
            torn += disk.torn
            floor = disk
            durations.append(time.monotonic() - t0)
        energy_flowed = floor.energy[QUANTITIES.index("wh_del")] > 0
    finally:
        meter.cleanup()
    assert energy_flowed, "no energy flowed"
    print(f"\n{kills} whole-meter kills: {np.mean(durations):.2f} s per kill (start to kill, median "
          f"{np.median(durations):.2f} s, max {max(durations):.2f} s); registration lost per kill "
          f"{', '.join(f'{s:.0f}' for s in sorted(set(lost)))} s (max {max(lost):.0f} s, persist interval "
          f"{PERSIST_S:g} s); {torn} torn record slot(s) rejected on load")


def test_metrology_service_killed_at_random_moments_loses_at_most_one_persist_interval(meter):
    """Only the metrology service SIGKILLed; the supervisor restarts it."""
    rng = random.Random(int(os.environ.get("METER_SEED", "5")) + 1)
    floor = on_disk(meter)
    for k in range(iterations(ci=10, local=5, soak=200)):
        seen = run_and_watch(meter, floor, PERSIST_S, rng, f"kill {k}")
        pid = meter.metrology_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while _running(_stat(pid)):
            assert time.monotonic() < deadline, "metrology survived SIGKILL"
            time.sleep(0.005)
        disk = on_disk(meter)
        check_after_kill(seen, disk, floor, PERSIST_S, f"kill {k}")
        floor = disk


def test_sigterm_and_the_power_fail_input_lose_nothing(tmp_path):
    """With an hour's persist interval only the stop or the power-fail flush can have written the last
    seconds: after SIGTERM, and after the power-fail input then SIGKILL, the record holds every second
    seen alive."""
    meter = Meter(tmp_path, persist_s=3600.0)
    try:
        for how in ("sigterm", "power_fail"):
            first = meter.start()
            last = meter.wait_registers(after=first["time"] + 1)       # seconds the periodic save has not written
            assert last["persisted_time"] < last["time"]
            if how == "sigterm":
                meter.stop(signal.SIGTERM)
            else:
                meter.inputs.mkdir(parents=True, exist_ok=True)
                (meter.inputs / "power_fail").write_text("1")
                deadline = time.monotonic() + 5.0
                store = RecordStore(meter.data / "revenue", "registers")
                while json.loads(store.load().payload)["last_utc"] < last["time"]:   # the flush
                    assert time.monotonic() < deadline, "the power-fail input did not persist the registers"
                    time.sleep(0.005)
                meter.kill()                                            # the supply is gone
                (meter.inputs / "power_fail").write_text("0")
            disk = on_disk(meter)
            assert disk.time >= last["time"], how
            assert (disk.energy >= live(last)).all(), how
    finally:
        meter.cleanup()


def test_lock_and_lockout_refusals_are_logged(meter):
    from firmware.config.store import ConfigStore
    from firmware.lockstate import revenue_locked

    meter.lock_file.parent.mkdir(parents=True, exist_ok=True)
    meter.lock_file.write_text("locked\n")
    # the simulated switch is read by the registers and published for every other process
    wait_snapshot(meter, lambda v: v["revenue_locked"] == 1.0, timeout_s=5.0)
    assert revenue_locked(ConfigStore(meter.config).load())
    for cmd in ("metrology.energy_reset", "metrology.test_mode_enter", "metrology.demand_reset"):
        with pytest.raises(MeterError, match="revenue-locked"):
            meter.call(cmd)
    with pytest.raises(MeterError, match="revenue-locked"):
        meter.call("metrology.preset", register="wh_del", value=1.0)
    meter.lock_file.write_text("unlocked\n")
    wait_snapshot(meter, lambda v: v["revenue_locked"] == 0.0, timeout_s=5.0)
    meter.call("metrology.demand_reset")
    with pytest.raises(MeterError, match="lockout"):
        meter.call("metrology.billing_reset")
    audit = meter.call("metrology.revenue_audit", n=10)
    assert [(a["action"], a["accepted"]) for a in audit] == [
        ("energy_reset", 0), ("test_mode_enter", 0), ("demand_reset", 0), ("preset", 0), ("demand_reset", 1),
        ("billing_reset", 0)]
    assert "lockout" in audit[-1]["reason"]
