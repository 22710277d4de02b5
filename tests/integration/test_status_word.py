"""Status word bits from their real sources on a running meter (acquisition, metrology and io on the simulated
board), read from the published status_word: the RTC battery (the simulated board's battery_low file), the
terminal cover (a digital input driven on the simulated wire), and, across a restart, a register record written
by another firmware version (firmware change, with its load-profile event) and a damaged record slot (general
failure); lost time sync and time-sync drift from the time service's quality with chronyd. Load-profile overflow
needs at least 100 records overwritten unread, 100 minutes (tests/unit/test_revenue_status.py)."""
from __future__ import annotations

import contextlib
import json
import time

from firmware import __version__
from firmware.revenue.engine import REVENUE_SUBDIR, STATUS_BITS
from firmware.storage.records import RecordStore
from tests.support.chrony import MeterChronyd, SteppableServer, require_chrony
from tests.support.io_meter import IoMeter

DI3 = 12                        # boards/sim.toml [gpio] digital_inputs: input 3
CONFIG = "cover = 3\n"          # IoMeter's configuration ends in its [revenue.inputs] section


def status_word(meter: IoMeter) -> int:
    word = meter.call("metrology.read", names="status_word")["values"]["status_word"]
    return 0 if word is None else int(word)


def wait_bit(meter: IoMeter, name: str) -> None:
    meter.wait(lambda: status_word(meter) & STATUS_BITS[name], 30)


def synced_for(meter: IoMeter, seconds: float) -> None:
    """Until the time service has said synchronised at every look for ``seconds``."""
    deadline, since = time.monotonic() + 60.0, time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the clock did not stay synchronised"
        if not meter.call("time.status")["time_synced"]:
            since = time.monotonic()
        time.sleep(0.1)


def test_status_word_bits_follow_their_sources(tmp_path):
    meter = IoMeter(tmp_path, CONFIG, services="acquisition,metrology,io")
    try:
        meter.start()
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
    try:
        meter.start()
        wait_bit(meter, "firmware_change")
        assert status_word(meter) & STATUS_BITS["general_failure"]
        # the event is a load-profile record of its own, stored by the revenue engine after the bit is published
        events = meter.wait(lambda: [r for r in meter.call("metrology.load_profile") if r.get("event") == "firmware"])
        assert events[-1]["info"] == {"old": "0.0.1", "new": __version__}, events
    finally:
        meter.stop()


def test_time_sync_bits_follow_the_time_service(tmp_path):
    """chronyd serves the meter's clock (a stratum-1 server on loopback whose time the test steps, and the
    meter's own chronyd, as in tests/integration/test_time_chrony.py): synchronised, neither bit; the served time
    5 s off, chrony follows it but the offset crosses [time] max_offset: time-sync drift (max_error wide enough
    that the first updates' root distance is no drift); the meter's chronyd gone, the time service cannot ask
    it: lost time sync."""
    require_chrony()
    with contextlib.ExitStack() as stack:
        server = SteppableServer(tmp_path / "server")
        stack.callback(server.stop)
        chronyd = MeterChronyd(tmp_path / "chrony")
        stack.callback(chronyd.stop)
        meter = IoMeter(tmp_path, f"""
[time]
ntp_servers = ["127.0.0.1:{server.port}"]
minpoll = -4
maxpoll = -4
poll = 0.2
chrony_socket = "{chronyd.socket}"
chrony_sources_file = "{chronyd.sources_dir / 'openmeter.sources'}"
max_offset = 0.05
max_error = 5.0
step_threshold = 1.0
""", services="acquisition,metrology,time")
        stack.callback(meter.stop)
        meter.start()
        meter.wait(lambda: meter.call("metrology.read", names="status_word")["values"]["status_word"] is not None)
        meter.wait(lambda: meter.call("time.status")["time_synced"], 60)
        synced_for(meter, 3.0)       # several of the revenue engine's once-a-second looks see the clock synchronised
        word = status_word(meter)
        assert not word & STATUS_BITS["lost_time_sync"], word
        # the bits are latched for the load-profile interval: a drift the start went through (the first offset
        # above max_offset, before chrony stepped the clock) may still be in the word
        if not any(e.get("event") == "degraded" for e in meter.call("time.events")):
            assert not word & STATUS_BITS["time_sync_drift"], word
        server.step(5.0)
        wait_bit(meter, "time_sync_drift")
        chronyd.stop()
        wait_bit(meter, "lost_time_sync")
