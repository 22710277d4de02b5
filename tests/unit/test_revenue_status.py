"""Status word bits from their sources: RTC battery, terminal cover, time quality, load-profile overflow, a
damaged register record or a registers fault, another firmware version. Each bit is read in the load-profile
interval it was set in (an event bit lasts at least one interval)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from firmware import __version__
from firmware.config import meter_schema
from firmware.revenue.engine import STATUS_BITS
from firmware.revenue.inputs import DigitalInputs, InputState, SimInputs, rtc_battery_low
from firmware.storage.records import RecordStore
from firmware.timesync.quality import DEGRADED, SYNCHRONISED, UNSYNCHRONISED
from tests.unit.test_revenue_engine import T0, Rig, inc


def _second(rig: Rig, **state) -> int:
    """One second with the inputs ``state``; the status word the load profile took for it."""
    rig.t += 1
    rig.mono += 1
    rig.engine.on_second(inc(), None, {}, rig.t, rig.mono, InputState(**state))
    return rig.engine.lp.word


def _bit(word: int, name: str) -> bool:
    return bool(word & STATUS_BITS[name])


def test_battery_and_cover_set_their_bits(tmp_path):
    rig = Rig(tmp_path)
    word = _second(rig)
    assert not _bit(word, "battery_failure") and not _bit(word, "cover_removed")
    assert _bit(_second(rig, battery_low=True), "battery_failure")
    assert _bit(_second(rig, cover=True), "cover_removed")


def test_the_simulated_board_reads_the_battery_from_its_file_and_a_missing_rtc_is_no_alarm(tmp_path):
    inputs = SimInputs(tmp_path / "lock", tmp_path, DigitalInputs(None, {}))
    assert not inputs.read().battery_low
    (tmp_path / "battery_low").write_text("1\n")
    assert inputs.read().battery_low
    assert rtc_battery_low(str(tmp_path / "no-rtc")) is False


def test_time_quality_sets_drift_and_lost_sync(tmp_path):
    rig = Rig(tmp_path)
    # unsynchronised from the start (never had sync): not "lost"
    assert not _bit(_second(rig, time_quality=float(UNSYNCHRONISED)), "lost_time_sync")
    assert not _bit(_second(rig, time_quality=math.nan), "lost_time_sync")
    word = _second(rig, time_quality=float(SYNCHRONISED))
    assert not _bit(word, "lost_time_sync") and not _bit(word, "time_sync_drift")
    assert _bit(_second(rig, time_quality=float(DEGRADED)), "time_sync_drift")
    assert _bit(_second(rig, time_quality=float(UNSYNCHRONISED)), "lost_time_sync")


def test_load_profile_overflow_when_an_unread_record_is_overwritten(tmp_path):
    cfg = meter_schema().load({"revenue": {"demand_reset_lockout": 0, "persist_interval": "1 h",
                                           "load_profile": {"interval": 1, "depth": 100}}})
    rig = Rig(tmp_path, cfg)
    rig.run(100 * 60)
    assert not _bit(rig.engine.status_word() | rig.engine.lp.word, "lp_overflow")
    assert rig.engine.cmd.load_profile(mode="since_last_read")           # read: nothing unread is lost now
    rig.run(60 * 60)
    assert not _bit(rig.engine.lp.word, "lp_overflow")
    rig.run(60 * 60)                                                       # 120 unread intervals: 20 lost
    assert _bit(rig.engine.lp.word, "lp_overflow")


def _rewrite_record(directory: Path, **changes) -> None:
    store = RecordStore(directory, "registers")
    record = store.load()
    assert record is not None
    state = json.loads(record.payload)
    state.update(changes)
    store.save(json.dumps(state).encode())


def test_another_firmware_version_sets_firmware_change_with_a_load_profile_event(tmp_path):
    rig = Rig(tmp_path)
    rig.run(5)
    rig.engine.save()
    rig.engine.close()
    _rewrite_record(rig.engine.dir, firmware="0.0.1")
    rig.engine = rig.open()
    assert _bit(_second(rig), "firmware_change")
    (event,) = [r for r in rig.engine.cmd.load_profile() if r["event"] == "firmware"]
    assert event["info"] == {"old": "0.0.1", "new": __version__}
    rig.reopen()                                   # written by this version now: no change to report
    assert not _bit(rig.engine.status_bits, "firmware_change")


def test_a_damaged_record_slot_or_a_registers_fault_is_a_general_failure(tmp_path):
    rig = Rig(tmp_path)
    rig.run(3)
    rig.engine.save()
    rig.engine.save()                              # both slots written
    rig.engine.close()
    assert not _bit(rig.open().status_bits, "general_failure")
    slot = sorted(Path(rig.engine.dir).glob("registers.*"))[0]
    data = bytearray(slot.read_bytes())
    data[-1] ^= 0xFF
    slot.write_bytes(bytes(data))
    rig.engine = rig.open()
    assert _bit(_second(rig), "general_failure")


def test_registers_restarted_after_a_fault_report_a_general_failure(tmp_path):
    from firmware.revenue.runtime import GuardedRevenue, RevenueRuntime

    config = meter_schema().load({"meter": {"data_dir": str(tmp_path)},
                                  "revenue": {"persist_interval": "1 h"},
                                  "revenue.inputs": {"sim_dir": str(tmp_path / "inputs")},
                                  "upgrade": {"revenue_lock_file": str(tmp_path / "lock")}})
    attempts = []

    def start(inputs):
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("registers directory not mounted yet")
        return RevenueRuntime(config, tmp_path, inputs, 1.0, 1.0)

    now = [0.0]
    guarded = GuardedRevenue(lambda: SimInputs(tmp_path / "lock", tmp_path / "inputs", DigitalInputs(None, {})),
                             start, clock=lambda: now[0])
    assert guarded.runtime is None and guarded.fault
    now[0] = 10.0                                  # past the retry time: the next second starts them again
    guarded.on_second(inc(), None, {}, T0 + 10.0, 10.0)
    try:
        assert guarded.runtime is not None and len(attempts) == 2
        assert _bit(guarded.runtime.engine.lp.word, "general_failure")
    finally:
        guarded.close()
