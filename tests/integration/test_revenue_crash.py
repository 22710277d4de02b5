"""Crash consistency of the revenue registers in the running meter (acquisition + metrology under the
supervisor, simulated board): SIGKILL at random moments while energy flows, SIGTERM, the power-fail input,
and the revenue lock over the control socket."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.control import ControlClient
from firmware.storage.records import RecordStore
from hal.errors import MeterError
from tests.conftest import REPO, iterations

PERSIST_S = 1.0
START_TIMEOUT_S = 60.0
# Register values are float64 sums; a restored register is bit-identical to the record it came from,
# so "not backwards" is checked exactly. The loss bound allows one persist interval of energy at the
# highest rate observed plus 1 % (the rate is measured over a few seconds of a varying simulated load).
LOSS_MARGIN = 1.01


class Meter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "var"
        self.run_dir = root / "run"
        self.lock_file = self.data / "revenue_lock"
        self.inputs = self.data / "inputs"
        self.config = root / "meter.toml"
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
persist_interval = {PERSIST_S}
demand_reset_lockout = "1 h"
[revenue.inputs]
sim_dir = "{self.inputs}"
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = ControlClient(self.run_dir / "control.sock")

    def start(self, wait: bool = True) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config),
                                      "--board", str(REPO / "boards" / "sim.toml"), "--only",
                                      "acquisition,metrology"], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            self.wait_registers(after=None)

    def call(self, cmd: str, **args):
        return self.client.call(cmd, **args)

    def wait_registers(self, after: float | None) -> dict:
        """Registers of a running engine that has registered at least one second (after ``after``)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                r = self.call("metrology.registers")
                if r["time"] is not None and (after is None or r["time"] > after):
                    return r
            except (MeterError, OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("the metrology service did not come back with its registers")

    def metrology_pid(self) -> int:
        return int(self.call("status")["services"]["metrology"]["pid"])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def persisted(meter: Meter) -> tuple[np.ndarray, float, int]:
    """(billing energy array, last registered time, sequence) of the newest valid record on disk."""
    store = RecordStore(meter.data / "revenue", "registers")
    rec = store.load()
    assert rec is not None, f"no valid revenue record: {store.rejected}"
    state = json.loads(rec.payload)
    energy = np.array(state["billing"]["energy"], dtype=float)
    assert np.isfinite(energy).all() and (energy >= 0).all()
    return energy, float(state["last_utc"]), rec.sequence


def live(reg: dict) -> np.ndarray:
    """The billing energy array from a ``registers`` reply (uncompensated totals of every quantity)."""
    return np.array([reg["energy"][q]["total"] for q in sorted(reg["energy"]) if not q.endswith("_comp")])


def persisted_totals(energy: np.ndarray, names: list[str]) -> np.ndarray:
    from metrology.registers import QUANTITIES, TOTAL
    return np.array([energy[0, QUANTITIES.index(q), TOTAL] for q in names])


@pytest.fixture
def meter(tmp_path):
    m = Meter(tmp_path)
    m.start()
    yield m
    m.stop(signal.SIGKILL)


def test_sigkill_at_random_moments_loses_at_most_one_persist_interval(meter):
    rng = random.Random(int(os.environ.get("METER_SEED", "5")))
    names = sorted(q for q in meter.call("metrology.registers")["energy"] if not q.endswith("_comp"))
    wh = names.index("wh_del")
    floor, _, _ = persisted(meter)
    floor = persisted_totals(floor, names)
    rate = 0.0
    restarts = iterations(ci=50, local=12, soak=500)
    for k in range(restarts):
        first = meter.wait_registers(after=None)
        # after each restart nothing went backwards from what was on disk when the previous one died
        assert (live(first) >= floor).all(), f"restart {k}: a register went backwards"
        t_first, e_first = time.monotonic(), live(first)[wh]
        time.sleep(rng.uniform(0.3, 2.5))
        last = meter.call("metrology.registers")
        if time.monotonic() - t_first > 1.0:
            rate = max(rate, (live(last)[wh] - e_first) / (time.monotonic() - t_first))
        os.kill(meter.metrology_pid(), signal.SIGKILL)
        energy, _, _ = persisted(meter)
        on_disk = persisted_totals(energy, names)
        assert (on_disk >= floor).all(), f"kill {k}: the record on disk went backwards"
        lost = live(last)[wh] - on_disk[wh]
        assert lost <= rate * PERSIST_S * LOSS_MARGIN + 1e-9, f"kill {k}: {lost} Wh lost at {rate} Wh/s"
        floor = on_disk
        meter.wait_registers(after=None)
    assert rate > 0, "no energy flowed"


def test_whole_meter_sigkill_sigterm_and_power_fail(meter):
    names = sorted(q for q in meter.call("metrology.registers")["energy"] if not q.endswith("_comp"))
    for _ in range(iterations(ci=3, local=2, soak=20)):
        time.sleep(random.uniform(0.5, 2.0))
        meter.stop(signal.SIGKILL)                      # supervisor and, by PDEATHSIG, every service
        before = persisted_totals(persisted(meter)[0], names)
        meter.start()
        assert (live(meter.wait_registers(after=None)) >= before).all()
    # SIGTERM: the registers are written at once; the last second registered is on disk
    time.sleep(1.5)
    last = meter.call("metrology.registers")
    meter.stop(signal.SIGTERM)
    energy, t_last, _ = persisted(meter)
    assert (persisted_totals(energy, names) >= live(last)).all()
    assert t_last >= last["time"]
    # power fail: the input goes active, the registers are written within the poll period, then power dies
    meter.start()
    time.sleep(1.5)
    meter.inputs.mkdir(parents=True, exist_ok=True)
    before_seq = persisted(meter)[2]
    last = meter.call("metrology.registers")
    (meter.inputs / "power_fail").write_text("1")
    time.sleep(0.3)
    meter.stop(signal.SIGKILL)
    energy, t_last, seq = persisted(meter)
    assert seq > before_seq
    assert (persisted_totals(energy, names) >= live(last)).all()
    (meter.inputs / "power_fail").write_text("0")


def test_lock_and_lockout_refusals_are_logged(meter):
    meter.lock_file.parent.mkdir(parents=True, exist_ok=True)
    meter.lock_file.write_text("locked\n")
    for cmd in ("metrology.energy_reset", "metrology.test_mode_enter", "metrology.demand_reset"):
        with pytest.raises(MeterError, match="revenue-locked"):
            meter.call(cmd)
    with pytest.raises(MeterError, match="revenue-locked"):
        meter.call("metrology.preset", register="wh_del", value=1.0)
    meter.lock_file.write_text("unlocked\n")
    meter.call("metrology.demand_reset")
    with pytest.raises(MeterError, match="lockout"):
        meter.call("metrology.billing_reset")
    audit = meter.call("metrology.revenue_audit", n=10)
    assert [(a["action"], a["accepted"]) for a in audit] == [
        ("energy_reset", 0), ("test_mode_enter", 0), ("demand_reset", 0), ("preset", 0), ("demand_reset", 1),
        ("billing_reset", 0)]
    assert "lockout" in audit[-1]["reason"]
