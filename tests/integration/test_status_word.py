"""Status word bits from their real sources on a running meter (acquisition, metrology and io on the simulated
board), read from the published status_word: the RTC battery (the simulated board's battery_low file), the
terminal cover (a digital input driven on the simulated wire), and, across a restart, a register record written
by another firmware version (firmware change, with its load-profile event) and a damaged record slot (general
failure). Lost time sync and time-sync drift follow the time service's quality (tests/unit/test_revenue_status.py,
tests/integration/test_time_chrony.py); load-profile overflow needs a depth of records overwritten unread (unit)."""
from __future__ import annotations

import json

from firmware import __version__
from firmware.revenue.engine import REVENUE_SUBDIR, STATUS_BITS
from firmware.storage.records import RecordStore
from tests.support.io_meter import IoMeter

DI3 = 12                        # boards/sim.toml [gpio] digital_inputs: input 3
CONFIG = "cover = 3\n"          # IoMeter's configuration ends in its [revenue.inputs] section


def status_word(meter: IoMeter) -> int:
    word = meter.call("metrology.read", names="status_word")["values"]["status_word"]
    return 0 if word is None else int(word)


def wait_bit(meter: IoMeter, name: str) -> None:
    meter.wait(lambda: status_word(meter) & STATUS_BITS[name], 30)


def test_status_word_bits_follow_their_sources(tmp_path):
    meter = IoMeter(tmp_path, CONFIG, services="acquisition,metrology,io")
    meter.start()
    try:
        meter.wait(lambda: meter.call("metrology.read", names="status_word")["values"]["status_word"] is not None)
        word = status_word(meter)
        for name in ("battery_failure", "cover_removed", "general_failure", "firmware_change"):
            assert not word & STATUS_BITS[name], name
        (meter.data / "inputs").mkdir(parents=True, exist_ok=True)
        (meter.data / "inputs" / "battery_low").write_text("1\n")
        wait_bit(meter, "battery_failure")
        meter.wire.drive(DI3, False)                     # the cover switch closes its contact: input 3 on
        wait_bit(meter, "cover_removed")
    finally:
        meter.stop()
    # offline: the newest record rewritten as another version's, the other slot damaged
    store = RecordStore(meter.data / REVENUE_SUBDIR, "registers")
    record = store.load()
    assert record is not None
    store.save(json.dumps({**json.loads(record.payload), "firmware": "0.0.1"}).encode())
    older = min((meter.data / REVENUE_SUBDIR).glob("registers.*"), key=lambda p: p.stat().st_mtime_ns)
    data = bytearray(older.read_bytes())
    data[-1] ^= 0xFF
    older.write_bytes(bytes(data))
    meter.start()
    try:
        wait_bit(meter, "firmware_change")
        assert status_word(meter) & STATUS_BITS["general_failure"]
        events = [r for r in meter.call("metrology.load_profile") if r.get("event") == "firmware"]
        assert events and events[-1]["info"] == {"old": "0.0.1", "new": __version__}, events
    finally:
        meter.stop()
