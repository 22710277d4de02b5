"""GuardedRevenue: a fault of the revenue registers publishes 'not available', is logged once and retried."""
from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest

from firmware.config import meter_schema
from firmware.revenue.inputs import open_inputs
from firmware.revenue.runtime import RETRY_MAX_S, RETRY_MIN_S, GuardedRevenue, RevenueRuntime, revenue_commands
from hal.errors import MeterError
from metrology.publish import publish
from tests.conftest import REPO
from tests.unit.test_revenue_engine import T0, inc

# energy points of the point map that metrology.publish fills from the totals it is given
ENERGY_POINTS = ("wh_delivered", "wh_received", "varh_delivered", "vah_delivered")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, tmp_path) -> None:
        self.cfg = meter_schema().load({"upgrade": {"revenue_lock_file": str(tmp_path / "lock")},
                                        "revenue": {"persist_interval": 1.0,
                                                    "inputs": {"sim_dir": str(tmp_path / "inputs")}}})
        self.data = tmp_path / "var"
        self.clock = Clock()
        self.starts = 0
        self.t = T0
        self.guard: GuardedRevenue | None = None

    def start(self, inputs) -> RevenueRuntime:
        self.starts += 1
        return RevenueRuntime(self.cfg, self.data, inputs)

    def open(self) -> GuardedRevenue:
        self.guard = GuardedRevenue(lambda: open_inputs(self.cfg, REPO / "boards" / "sim.toml"), self.start,
                                    clock=self.clock)
        return self.guard

    def second(self, dt: float = 1.0) -> None:
        self.t += 1
        self.clock.t += dt
        self.guard.on_second(inc(), None, {}, self.t, self.clock.t)

    def published(self) -> dict:
        out = publish({}, self.guard.totals())
        out.update(self.guard.values())
        return out

    def block_storage(self) -> None:
        """The registers' directory replaced by a file: every read and write of a record fails."""
        rev = self.data / "revenue"
        if rev.exists():
            rev.rename(self.data / "revenue.kept")
        self.data.mkdir(parents=True, exist_ok=True)
        rev.write_text("not a directory\n")

    def unblock_storage(self) -> None:
        (self.data / "revenue").unlink()
        if (self.data / "revenue.kept").exists():
            (self.data / "revenue.kept").rename(self.data / "revenue")


def test_registers_that_cannot_start_publish_not_available_and_come_back_after_the_backoff(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.block_storage()
    (tmp_path / "lock").write_text("locked\n")
    with caplog.at_level(logging.ERROR, logger="revenue"):
        guard = rig.open()
    assert guard.runtime is None and "could not start" in guard.fault
    out = rig.published()
    assert out["revenue_fault"] == 1.0
    assert all(math.isnan(out[name]) for name in ENERGY_POINTS)        # never the pipeline's own totals
    assert out["revenue_locked"] == 1.0                                  # the lock is still read from its input
    with pytest.raises(MeterError, match="not running .*could not start"):
        revenue_commands(lambda: guard)["demand_reset"](user="u")
    assert [r.levelno for r in caplog.records] == [logging.ERROR]       # logged once
    rig.unblock_storage()
    rig.second(dt=RETRY_MIN_S / 2)
    assert guard.runtime is None                                         # still waiting out the backoff
    rig.second(dt=RETRY_MIN_S / 2)
    assert guard.runtime is not None and guard.fault is None
    out = rig.published()
    assert out["revenue_fault"] == 0.0
    # the second that restarted the registers is registered: 3 kW for 1 s
    assert out["wh_delivered"] == pytest.approx(3000.0 / 3600, rel=1e-12)


def test_a_persistent_fault_is_retried_with_doubling_backoff_and_logged_once(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.block_storage()
    with caplog.at_level(logging.WARNING, logger="revenue"):
        guard = rig.open()
        attempts = []
        for _ in range(400):                                             # 400 s of seconds
            before = rig.starts
            rig.second()
            if rig.starts != before:
                attempts.append(rig.clock.t - 100.0)
    gaps = np.diff([0.0] + attempts)
    expected = [min(RETRY_MIN_S * 2 ** k, RETRY_MAX_S) for k in range(len(gaps))]
    assert list(gaps) == pytest.approx(expected, abs=1.0)                # each retry within its second
    assert guard.faults == 1 and len(caplog.records) == 1
    rig.unblock_storage()
    for _ in range(int(RETRY_MAX_S) + 1):
        rig.second()
    assert guard.fault is None
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]   # fault, then recovery


def test_a_second_that_raises_drops_the_registers_to_not_available_and_restarts_them_from_the_record(tmp_path):
    rig = Rig(tmp_path)
    guard = rig.open()
    for _ in range(10):
        rig.second()
    before = rig.published()
    assert before["revenue_fault"] == 0.0 and before["wh_delivered"] == pytest.approx(10 * 3000.0 / 3600)
    persisted = guard.runtime.engine.cmd.registers()["energy"]["wh_del"]["total"]
    rig.block_storage()                                                  # the next save raises
    rig.second()
    assert guard.runtime is None and "failed registering a second" in guard.fault
    out = rig.published()
    assert out["revenue_fault"] == 1.0
    # every revenue point published while running is now NaN: nothing stale, nothing smaller
    revenue_names = set(before) - set(publish({}, guard.totals()))
    nan_names = {n for n in revenue_names if n not in ("revenue_fault", "revenue_locked")}
    assert all(np.isnan(out[n]).all() for n in nan_names), [n for n in nan_names if not np.isnan(out[n]).all()]
    assert all(math.isnan(out[name]) for name in ENERGY_POINTS)
    rig.unblock_storage()
    rig.second(dt=RETRY_MIN_S)
    assert guard.fault is None
    # restarted from the last record (the half-registered second is dropped) plus the second that restarted it
    assert rig.published()["wh_delivered"] == pytest.approx(persisted + 3000.0 / 3600, rel=1e-12)
    shutil.rmtree(rig.data)
