"""The device without a network: trend logs (clock-aligned records at the log interval AV11, the window,
stop-when-full, the ReadRange selection) and the staleness of the snapshot's values."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from firmware.comms.bacnet.app import ip_link_address
from firmware.comms.bacnet.device import BacnetDevice
from firmware.comms.bacnet.trendlog import TrendStore, records_per_apdu
from firmware.config import meter_schema


def device(tmp_path, **bacnet) -> BacnetDevice:
    """A device with its objects, built on an asyncio loop as the comms service builds it (bacpypes3's local
    objects finish their set-up in a task on the running loop)."""
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path), "run_dir": str(tmp_path)},
                                  "revenue": {"demand_interval": 15, "demand_subintervals": 3},   # 300-s logs
                                  "bacnet": bacnet})
    dev = BacnetDevice(config, tmp_path / "meter.toml", tmp_path / "control.sock", tmp_path)

    async def build() -> None:
        dev.build_objects()
        await asyncio.sleep(0)

    asyncio.run(build())
    return dev


def test_records_fall_on_multiples_of_the_log_interval(tmp_path):
    dev = device(tmp_path)
    dev.update({"wh_delivered": 2_000_000.0, "p_total": 1500.0, "p_demand_delivered": 1400.0},
               time.time_ns())
    t0 = 1_800_000_000.0                          # a multiple of 300 s
    for t in (t0 + 10, t0 + 200, t0 + 299.9):
        dev.tick(t)
    assert all(s.count() == 0 for s in dev.trends.values())
    dev.tick(t0 + 300.2)
    dev.tick(t0 + 301)
    dev.tick(t0 + 600.5)
    rows, more = dev.trends[1].all(10)
    assert [r.ts for r in rows] == [t0 + 300, t0 + 600] and not more
    assert rows[0].value == pytest.approx(2000.0)                 # AI2 in kWh
    assert dev.trends[2].all(10)[0][0].value == pytest.approx(1.5)   # AI11 in kW
    dev.close()


def test_a_disabled_log_or_one_outside_its_window_records_nothing(tmp_path):
    dev = device(tmp_path, trend_log_enabled=[False, True, True])
    dev.trends.window[3] = (None, 1_800_000_000.0)
    dev.tick(1_800_000_000.0)
    dev.tick(1_800_000_300.0)
    assert dev.trends[1].count() == 0 and dev.trends[2].count() == 1 and dev.trends[3].count() == 0
    dev.close()


def test_stop_when_full_and_circular(tmp_path):
    circular = TrendStore(tmp_path, 1, 5, stop_when_full=False)
    stop = TrendStore(tmp_path, 2, 5, stop_when_full=True)
    for i in range(8):
        circular.append(1000.0 + i, float(i))
        stop.append(1000.0 + i, float(i))
    assert [r.value for r in circular.all(10)[0]] == [3.0, 4.0, 5.0, 6.0, 7.0] and circular.total() == 8
    assert [r.value for r in stop.all(10)[0]] == [0.0, 1.0, 2.0, 3.0, 4.0] and stop.total() == 5
    # by position counts from the oldest kept record; by sequence number from the first ever
    assert [r.value for r in circular.by_position(2, 2, 10)[0]] == [4.0, 5.0]
    assert [r.value for r in circular.by_sequence(8, -3, 10)[0]] == [5.0, 6.0, 7.0]
    records, more = circular.by_sequence(4, 5, 2)
    assert [r.sequence for r in records] == [4, 5] and more
    assert [r.value for r in circular.by_time(1004.5, 10, 10)[0]] == [5.0, 6.0, 7.0]
    circular.close()
    stop.close()


def test_records_per_apdu_fit_the_apdu():
    # 480-octet APDU: 24 octets of ACK, 23 per record
    assert records_per_apdu(480) == 19 and records_per_apdu(50) == 1


def read(obj, prop: str):
    """A property as ReadProperty and ReadPropertyMultiple read it (through the object's read hook)."""
    return asyncio.run(obj.read_property(prop))


def test_values_turn_stale_when_the_snapshot_stops(tmp_path):
    dev = device(tmp_path)
    published = time.time_ns()
    dev.update({"v_ln_avg": 230.0}, published)
    assert not dev.stale(published + int(4.9e9))
    assert dev.stale(published + int(5.1e9))            # STALE_AFTER_S = 5: metrology publishes every second
    ai16 = dev.sets[0].analog_inputs[16]
    dev.updated_ns = published - int(10e9)
    dev.update(None, dev.updated_ns)
    assert str(read(ai16, "reliability")) == "communication-failure" and list(read(ai16, "statusFlags"))[1] == 1
    dev.update({"v_ln_avg": 231.0}, time.time_ns())
    assert str(read(ai16, "reliability")) == "no-fault-detected"
    assert float(read(ai16, "presentValue")) == pytest.approx(231.0)
    dev.close()


def test_new_snapshots_store_nothing_in_an_object_until_it_is_read_and_ask_sqlite_nothing(tmp_path):
    """An object nobody reads or subscribed to is not refreshed by new snapshots; a read works its value out
    from the latest one. Record_Count and Total_Record_Count come from the stores' own counts: refreshes ask
    SQLite nothing (its trace callback sees no statement) until a log records."""
    dev = device(tmp_path)
    statements: list[str] = []
    for store in dev.trends.values():
        store.log._db.set_trace_callback(statements.append)
    ai16, bi7 = dev.sets[0].analog_inputs[16], dev.sets[0].binary_inputs[7]
    for k in range(5):
        dev.update({"v_ln_avg": 230.0 + k, "frequency": 50.0}, time.time_ns(), force=False)
    # what the objects hold (read past the hook): as built
    assert float(ai16.presentValue) == 0.0 and str(bi7.presentValue) == "inactive" and statements == []
    assert float(read(ai16, "presentValue")) == pytest.approx(234.0)
    ai16.store("presentValue", -1.0)
    assert float(read(ai16, "presentValue")) == -1.0     # the same snapshot: nothing worked out again
    dev.update({"v_ln_avg": 240.0, "frequency": 70.0}, time.time_ns(), force=False)
    assert float(ai16.presentValue) == -1.0 and str(bi7.presentValue) == "inactive"
    assert float(read(ai16, "presentValue")) == pytest.approx(240.0)
    assert str(read(bi7, "presentValue")) == "active"    # BI7: frequency error (45-65 Hz)
    t0 = 1_800_000_000.0                               # a multiple of the 300-s log interval
    dev.tick(t0 + 10)
    dev.tick(t0 + 300.2)
    tl1 = dev.sets[0].trend_logs[1]
    assert int(read(tl1, "recordCount")) == 1 and int(read(tl1, "totalRecordCount")) == 1
    statements.clear()
    dev.update({"v_ln_avg": 241.0}, time.time_ns(), force=False)
    assert int(read(tl1, "recordCount")) == 1 and statements == []
    dev.close()


def test_the_refresh_task_sleeps_until_the_next_trend_record_without_subscriptions(tmp_path):
    dev = device(tmp_path)                              # 300-s log interval
    t0 = 1_800_000_000.0
    assert dev.next_wake_s(t0 + 10) == 1.0              # the first tick sets the next record's slot
    dev.tick(t0 + 10)
    assert dev.next_wake_s(t0 + 10) == 60.0             # IDLE_WAKE_S
    assert dev.next_wake_s(t0 + 290) == pytest.approx(10.0)
    dev.close()


def test_bacnet_ip_bound_to_every_interface_opens_no_broadcast_socket_the_kernel_refuses():
    # bacpypes3 opens a second socket on the link's broadcast address when it differs from the bound one,
    # and sends nothing until it is bound: "0.0.0.255" (0.0.0.0/24) never is
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        s.bind(("0.0.0.255", 0))
    wildcard = ip_link_address("0.0.0.0", 24, 47808)
    assert wildcard.addrTuple == wildcard.addrBroadcastTuple == ("0.0.0.0", 47808)
    one = ip_link_address("192.0.2.5", 24, 47808)
    assert one.addrTuple == ("192.0.2.5", 47808) and one.addrBroadcastTuple == ("192.0.2.255", 47808)
