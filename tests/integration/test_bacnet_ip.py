"""The BACnet device over BACnet/IP on loopback, read and written by a bacpypes3 client: every object, every
writable property, the refusals, the commands, trend logs by ReadRange, time sync, DCC, RD, Who-Is/Who-Has
and COV."""
from __future__ import annotations

import asyncio
import math
import time
import tomllib

import pytest
from bacpypes3.apdu import (
    DeviceCommunicationControlRequest,
    ErrorRejectAbortNack,
    ReinitializeDeviceRequest,
    TimeSynchronizationRequest,
    UTCTimeSynchronizationRequest,
)
from bacpypes3.basetypes import DateTime, DeviceObjectPropertyReference
from bacpypes3.primitivedata import Date, ObjectIdentifier, Time

from firmware.comms.bacnet.model import load_model
from firmware.comms.bacnet.trendlog import records_per_apdu
from firmware.points import points_by_name
from firmware.storage.eventlog import EventLog
from tests.integration.bacnet_support import BACNET_VALUES, DEVICE_INSTANCE, bacnet_rig

# BACnet REAL is IEEE-754 single precision: relative error up to 2**-24; 1e-6 leaves room for the scale.
REAL_REL = 1e-6
DEVICE = f"device,{DEVICE_INSTANCE}"


def log_ref(oid: str, device: int = DEVICE_INSTANCE) -> DeviceObjectPropertyReference:
    return DeviceObjectPropertyReference(objectIdentifier=ObjectIdentifier(oid), propertyIdentifier="present-value",
                                         deviceIdentifier=ObjectIdentifier(f"device,{device}"))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def rp(rig, oid: str, prop: str = "present-value", index=None):
    return await rig.client.read_property(rig.target, ObjectIdentifier(oid), prop, index)


async def wp(rig, oid: str, value, prop: str = "present-value"):
    return await rig.client.write_property(rig.target, ObjectIdentifier(oid), prop, value)


async def refused(rig, oid: str, value, code: str, prop: str = "present-value") -> None:
    with pytest.raises(ErrorRejectAbortNack) as err:
        await wp(rig, oid, value, prop)
    assert code in str(err.value), (oid, value, str(err.value))


def test_every_object_reads_as_the_s4100_model(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            model, points = load_model(), points_by_name()
            objects = await rp(rig, DEVICE, "object-list")
            assert len(objects) == 1 + 83 + 11 + 15 + 3
            assert str(await rp(rig, DEVICE, "segmentation-supported")) == "no-segmentation"
            assert await rp(rig, DEVICE, "max-apdu-length-accepted") == 480
            services = set(str(await rp(rig, DEVICE, "protocol-services-supported")).split(";"))
            assert services == {"read-property", "read-property-multiple", "write-property", "subscribe-cov",
                                "device-communication-control", "reinitialize-device", "read-range", "who-is",
                                "i-am", "who-has", "i-have", "time-synchronization", "utc-time-synchronization"}
            types = set(str(await rp(rig, DEVICE, "protocol-object-types-supported")).split(";"))
            assert types == {"device", "analog-input", "analog-value", "binary-input", "trend-log"}
            for ai in model.analog_inputs:
                oid = f"analog-input,{ai.instance}"
                got = await rig.client.read_property_multiple(
                    rig.target, [ObjectIdentifier(oid), ["present-value", "reliability", "units", "object-name",
                                                         "status-flags", "description"]])
                value, reliability, units, name = (got[i][3] for i in range(4))
                assert name == ai.name and str(units) == ai.units
                if ai.point:
                    published = BACNET_VALUES[ai.point]
                    expected = (published[ai.element] if ai.element >= 0 else published) * ai.scale
                    assert value == pytest.approx(expected, rel=REAL_REL), oid
                    assert str(reliability) == "no-fault-detected", oid
                    assert points[ai.point]
                elif ai.unavailable:
                    assert math.isnan(value) and str(reliability) == "no-sensor", oid
                elif ai.reserved:
                    assert math.isnan(value) and str(reliability) == "no-fault-detected", oid
            # AI76: the S4100's formula, sqrt(3) * (sqrt(3) * 230 V L-N) * 100 A CT primary / 1000
            assert await rp(rig, "analog-input,76") == pytest.approx(3 * 230.0 * 100.0 / 1000, rel=REAL_REL)
            assert await rp(rig, "analog-input,29") == 1234.0          # pulse input 1's count (io's di_count)
            assert await rp(rig, "analog-input,81") == 9.0             # power-ups
            assert await rp(rig, "analog-input,82") == 0.0             # no [[io.output]] drives an output
            for bi in model.binary_inputs:
                assert str(await rp(rig, f"binary-input,{bi.instance}")) in ("active", "inactive")
            expected_av = {1: 0.0, 2: 40.0, 3: 100.0, 4: 1.0, 5: 1.0, 6: 230.0 * math.sqrt(3), 7: 1.0, 8: 10.0,
                           9: 25.0, 10: 3.0, 11: 30000.0}
            for instance, value in expected_av.items():
                assert await rp(rig, f"analog-value,{instance}") == pytest.approx(value, rel=REAL_REL)
            for tl in range(1, 4):
                assert await rp(rig, f"trend-log,{tl}", "buffer-size") == 5760
                assert await rp(rig, f"trend-log,{tl}", "log-interval") == 30000
    run(body())


def test_qnan_and_reliability_rules(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            # frequency outside 45-65 Hz reads QNAN and raises BI7 (seed 003, AI18 and BI7)
            rig.publish(frequency=70.0)
            assert math.isnan(await rp(rig, "analog-input,18"))
            assert str(await rp(rig, "binary-input,7")) == "active"
            # phase A voltage over 1.2 x nominal (230 V L-N): BI1 active, phase A values unreliable
            rig.publish(frequency=50.0, v_an=300.0)
            assert str(await rp(rig, "binary-input,1")) == "active"
            assert str(await rp(rig, "analog-input,70", "reliability")) == "unreliable-other"
            assert str(await rp(rig, "analog-input,71", "reliability")) == "no-fault-detected"
            assert str(await rp(rig, "analog-input,2", "reliability")) == "no-fault-detected"   # accumulator
            # AI83 carries BI1 in its least significant bit
            assert int(await rp(rig, "analog-input,83")) & 1 == 1
            # no current: no low-PF alert; loaded phase B at PF 0.3: BI13
            rig.publish(v_an=230.0, pf_b=0.3)
            assert str(await rp(rig, "binary-input,13")) == "active"
            assert str(await rp(rig, "binary-input,12")) == "inactive"
            # phase C collapses below 10 % of nominal: phase loss C
            rig.publish(pf_b=0.99, v_cn=10.0)
            assert str(await rp(rig, "binary-input,11")) == "active"
            # the clock not synchronised: BI15 (RTC reset)
            rig.publish(v_cn=231.0, time_synced=0.0)
            assert str(await rp(rig, "binary-input,15")) == "active"
            # single phase (type 10): phase B and C values read QNAN
            await wp(rig, "analog-value,2", 10.0)
            assert math.isnan(await rp(rig, "analog-input,74"))
            assert not math.isnan(await rp(rig, "analog-input,73"))
    run(body())


def test_writes_change_the_configuration_and_out_of_range_is_refused(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            accepted = {2: 31.0, 3: 200.0, 4: 5.0, 5: 2.0, 6: 480.0, 7: 0.0, 8: 15.0, 9: 30.0, 10: 1.0,
                        11: 90000.0}
            for instance, value in accepted.items():
                await wp(rig, f"analog-value,{instance}", value)
                assert await rp(rig, f"analog-value,{instance}") == pytest.approx(value, rel=REAL_REL), instance
            saved = tomllib.loads(rig.config_path.read_text())
            assert saved["meta"]["changed_by"] == "bacnet"
            assert saved["metrology"]["ct_primary"] == 200.0 and saved["metrology"]["system_type"] == "DELTA"
            # 1 subinterval of 900 s: a 15-min block interval (15 is the default, so the file omits it)
            assert saved["revenue"].get("demand_interval", 15) == 15 and saved["revenue"]["demand_subintervals"] == 1
            assert saved["revenue"]["demand_method"] == "block"
            assert saved["bacnet"]["phase_loss_voltage"] == 15
            assert ("restart", "bacnet", {"service": "metrology"}) in rig.calls
            assert ("restart", "bacnet", {"service": "acquisition"}) in rig.calls    # the chip follows AV2
            # AV11 is the Log_Interval of every trend log, both ways
            assert await rp(rig, "trend-log,2", "log-interval") == 90000
            await wp(rig, "trend-log,3", 60000, "log-interval")
            assert await rp(rig, "analog-value,11") == 60000.0
            refusals = {2: 20.0, 3: 4.0, 4: 3.0, 5: 400.0, 6: 2000.0, 7: 2.0, 8: 0.0, 9: 100.0, 10: 7.0,
                        11: 1050.0, 1: 12345.0}
            for instance, value in refusals.items():
                await refused(rig, f"analog-value,{instance}", value, "value-out-of-range")
            # 7 x 10 min is not a demand interval this meter has
            await refused(rig, "analog-value,11", 60000.0 * 7 / 6, "value-out-of-range")
            # read-only objects and properties
            await refused(rig, "analog-input,1", 5.0, "write-access-denied")
            await refused(rig, "binary-input,1", "active", "write-access-denied")
            await refused(rig, "analog-value,3", "x", "write-access-denied", "description")
            # device: location, name, max master; ranges of the S4100 PICS
            await wp(rig, DEVICE, "Plant room 2", "location")
            assert await rp(rig, DEVICE, "location") == "Plant room 2"
            await refused(rig, DEVICE, "x" * 65, "value-out-of-range", "location")
            await wp(rig, DEVICE, "Main switchboard meter", "object-name")
            assert await rp(rig, DEVICE, "object-name") == "Main switchboard meter"
            await refused(rig, DEVICE, "x" * 65, "value-out-of-range", "object-name")
            await wp(rig, DEVICE, 64, "max-master")
            assert await rp(rig, DEVICE, "max-master") == 64
            await refused(rig, DEVICE, 0, "value-out-of-range", "max-master")
            await refused(rig, DEVICE, "x", "write-access-denied", "vendor-name")
            # trend-log properties
            await wp(rig, "trend-log,1", False, "enable")
            assert await rp(rig, "trend-log,1", "enable") is False or str(await rp(rig, "trend-log,1", "enable")) \
                in ("0", "False")
            await wp(rig, "trend-log,1", True, "stop-when-full")
            # Start_Time and Stop_Time bound what is logged
            start = DateTime(date=Date((126, 6, 1, 1)), time=Time((12, 0, 0, 0)))
            stop = DateTime(date=Date((126, 6, 1, 1)), time=Time((13, 0, 0, 0)))
            await wp(rig, "trend-log,3", start, "start-time")
            await wp(rig, "trend-log,3", stop, "stop-time")
            assert (await rp(rig, "trend-log,3", "start-time")).time == start.time
            window = rig.app.device.trends.window[3]
            assert window[1] - window[0] == pytest.approx(3600.0)
            await refused(rig, "trend-log,1", 5, "value-out-of-range", "record-count")
            # Log_DeviceObjectProperty: the Present_Value of AI1..AI75 of this device only (S4100 PICS)
            await wp(rig, "trend-log,2", log_ref("analog-input,5"), "log-device-object-property")
            got = await rp(rig, "trend-log,2", "log-device-object-property")
            assert tuple(got.objectIdentifier) == (ObjectIdentifier("analog-input,5")[0], 5)
            await refused(rig, "trend-log,2", log_ref("analog-input,80"), "value-out-of-range",
                          "log-device-object-property")
            await refused(rig, "trend-log,2", log_ref("analog-value,3"), "value-out-of-range",
                          "log-device-object-property")
            await refused(rig, "trend-log,2", log_ref("analog-input,5", device=99), "value-out-of-range",
                          "log-device-object-property")
            saved = tomllib.loads(rig.config_path.read_text())
            assert saved["bacnet"]["trend_log_enabled"] == [False, True, True]
            assert saved["bacnet"]["trend_log_inputs"] == [2, 5, 19]
            # every change is in the meter's event log with its user
            changes = [e for e in EventLog(tmp_path / "data").read() if e["cause"] == "config_change"]
            assert len(changes) >= len(accepted) and all(e["user"] == "bacnet" for e in changes)
            assert changes[0]["effect"] == "AV2 System_Type = 31" and changes[0]["detail"]["version"] == 1
            assert saved["bacnet"]["location"] == "Plant room 2" and saved["bacnet"]["max_master"] == 64
    run(body())


def test_av1_runs_the_meter_commands_and_the_revenue_lock_refuses(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path, revenue_commands=True) as rig:
            await wp(rig, "analog-value,1", 30078.0)
            await wp(rig, "analog-value,1", 21212.0)
            await wp(rig, "analog-value,1", 21211.0)
            await wp(rig, "analog-value,1", 16498.0)
            assert [c[0] for c in rig.calls] == ["metrology.energy_reset", "metrology.demand_reset",
                                                 "metrology.demand_sync", "io.reset_counts"]
            assert all(c[1] == "bacnet" for c in rig.calls)
            assert await rp(rig, "analog-value,1") == 0.0          # always reads 0 (seed 003)
            await refused(rig, "analog-value,1", 16497.0, "value-out-of-range")
            # locked as published in the snapshot: refused here, never sent
            rig.publish(revenue_locked=1.0)
            await refused(rig, "analog-value,1", 30078.0, "write-access-denied")
            await refused(rig, "analog-value,3", 50.0, "write-access-denied")
            await wp(rig, "analog-value,1", 21211.0)               # demand sync is not a revenue change
            await wp(rig, "analog-value,8", 20.0)                  # an alert threshold is not sealed
            assert len(rig.calls) == 5
            # the owning service refuses on its own (the lock switched after the last snapshot)
            rig.publish(revenue_locked=0.0)
            rig.locked["on"] = True
            await refused(rig, "analog-value,1", 21212.0, "write-access-denied")
            causes = [e["cause"] for e in EventLog(tmp_path / "data").read()]
            # refused by the lock here (30078), by the owning service (21212); the sealed AV3 write by the lock
            assert causes.count("command") == 5 and causes.count("command_refused") == 2
            assert causes.count("configure_refused") == 1
    run(body())


def test_trend_logs_record_and_read_range(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            await wp(rig, "analog-value,11", 0.0)                  # sync to comms: AV1 21211 logs a record
            for i in range(3):
                rig.publish(p_total=1000.0 * (i + 1))
                await wp(rig, "analog-value,1", 21211.0)
            assert await rp(rig, "trend-log,2", "record-count") == 3
            records = await rig.client.read_range(rig.target, ObjectIdentifier("trend-log,2"), "log-buffer",
                                                  range_params=("p", 1, None, None, 10))
            assert [r.logDatum.realValue for r in records] == pytest.approx([1.0, 2.0, 3.0], rel=REAL_REL)
            # a long buffer comes back in APDU-sized pieces: 480-octet APDU, no segmentation
            store = rig.app.device.trends[1]
            now = time.time()
            for i in range(200):
                store.append(now + i, float(i))
            records = await rig.client.read_range(rig.target, ObjectIdentifier("trend-log,1"), "log-buffer",
                                                  range_params=("p", 1, None, None, 200))
            assert len(records) == records_per_apdu(480)
            records = await rig.client.read_range(rig.target, ObjectIdentifier("trend-log,1"), "log-buffer",
                                                  range_params=("s", store.total(), None, None, -2))
            assert [r.logDatum.realValue for r in records] == [198.0, 199.0]
            with pytest.raises(ErrorRejectAbortNack):
                await rp(rig, "trend-log,1", "log-buffer")          # only by ReadRange
            await wp(rig, "trend-log,1", 0, "record-count")
            assert await rp(rig, "trend-log,1", "record-count") == 0
    run(body())


def test_time_sync_dcc_reinitialize_discovery_and_cov(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path, password="secret") as rig:
            utc = time.time()
            t = time.gmtime(utc)
            stamp = DateTime(date=Date((t.tm_year - 1900, t.tm_mon, t.tm_mday, t.tm_wday + 1)),
                             time=Time((t.tm_hour, t.tm_min, t.tm_sec, 0)))
            request = UTCTimeSynchronizationRequest(time=stamp, destination=rig.target)
            await rig.client.request(request)
            lt = time.localtime(utc)
            local = DateTime(date=Date((lt.tm_year - 1900, lt.tm_mon, lt.tm_mday, lt.tm_wday + 1)),
                             time=Time((lt.tm_hour, lt.tm_min, lt.tm_sec, 0)))
            await rig.client.request(TimeSynchronizationRequest(time=local, destination=rig.target))
            for _ in range(200):                  # up to 10 s on a loaded machine; 0.1 s when idle
                if len([c for c in rig.calls if c[0] == "time.set"]) == 2:
                    break
                await asyncio.sleep(0.05)
            sets = [c for c in rig.calls if c[0] == "time.set"]
            assert len(sets) == 2
            for _, user, args in sets:
                # the request carries whole seconds: within 1 s of the time it was made from
                assert args["source"] == "protocol" and user == "bacnet"
                assert args["utc"] == pytest.approx(int(utc), abs=1.0)
            # Who-Is and Who-Has, directed at the device
            i_ams = await rig.client.who_is(DEVICE_INSTANCE, DEVICE_INSTANCE, rig.target, timeout=2)
            assert [i.iAmDeviceIdentifier[1] for i in i_ams] == [DEVICE_INSTANCE]
            i_haves = await rig.client.who_has(None, None, None, "KW_Total", rig.target, timeout=2)
            assert [tuple(i.objectIdentifier) for i in i_haves][0][1] == 11
            # COV: a new published value is notified
            async with rig.client.change_of_value(rig.target, ObjectIdentifier("analog-input,16"), 7, False,
                                                  60) as scm:
                rig.publish(v_ln_avg=231.5)
                for _ in range(10):
                    prop, value = await asyncio.wait_for(scm.get_value(), 5)
                    if str(prop) == "present-value" and value == pytest.approx(231.5, rel=REAL_REL):
                        break
                else:
                    raise AssertionError("no COV notification of the new value")
            # DCC needs the password; disabled, the device stops answering; enabled again, it answers
            bad = DeviceCommunicationControlRequest(enableDisable="disable", password="wrong",
                                                    destination=rig.target)
            with pytest.raises(ErrorRejectAbortNack, match="password-failure"):
                await rig.client.request(bad)
            await asyncio.sleep(1.1)              # no password is checked within 1 s of a wrong one
            await rig.client.request(DeviceCommunicationControlRequest(enableDisable="disable", password="secret",
                                                                       destination=rig.target))
            with pytest.raises((ErrorRejectAbortNack, asyncio.TimeoutError)):
                await asyncio.wait_for(rp(rig, DEVICE, "object-name"), 2)
            await rig.client.request(DeviceCommunicationControlRequest(enableDisable="enable", password="secret",
                                                                       destination=rig.target))
            assert "SIM-424242" in await rp(rig, DEVICE, "object-name")
            reply = await rig.client.request(ReinitializeDeviceRequest(reinitializedStateOfDevice="warmstart",
                                                                       password="secret", destination=rig.target))
            assert "SimpleAck" in type(reply).__name__
            await asyncio.sleep(0.4)
            # the BACnet device starts again inside comms: no restart of the service that also serves Modbus
            assert not [c for c in rig.calls if c[0] == "restart"]
            assert any(e["cause"] == "reinitialize" for e in EventLog(tmp_path / "data").read())
    run(body())


def test_cov_subscriptions_are_bounded(tmp_path, monkeypatch):
    from bacpypes3.apdu import SubscribeCOVRequest

    from firmware.comms.bacnet import app as bacnet_app

    monkeypatch.setattr(bacnet_app, "MAX_COV_SUBSCRIPTIONS", 3)

    async def body():
        async with bacnet_rig(tmp_path) as rig:
            def subscribe(proc_id: int, instance: int) -> SubscribeCOVRequest:
                return SubscribeCOVRequest(subscriberProcessIdentifier=proc_id,
                                           monitoredObjectIdentifier=ObjectIdentifier(f"analog-input,{instance}"),
                                           issueConfirmedNotifications=False, lifetime=0, destination=rig.target)
            for proc_id in range(3):
                await rig.client.request(subscribe(proc_id, 11 + proc_id))
            with pytest.raises(ErrorRejectAbortNack, match="no-space-to-add-list-element"):
                await rig.client.request(subscribe(99, 20))
            await rig.client.request(subscribe(0, 11))        # renewing one is always accepted
    run(body())


def test_read_only_access_refuses_every_change(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path, access="read-only") as rig:
            assert await rp(rig, "analog-input,16") == pytest.approx(BACNET_VALUES["v_ln_avg"], rel=REAL_REL)
            await refused(rig, "analog-value,1", 30078.0, "write-access-denied")
            await refused(rig, "analog-value,8", 20.0, "write-access-denied")
            await refused(rig, DEVICE, "Roof", "write-access-denied", "location")
            with pytest.raises(ErrorRejectAbortNack, match="service-request-denied"):
                await rig.client.request(ReinitializeDeviceRequest(reinitializedStateOfDevice="warmstart",
                                                                   destination=rig.target))
            utc = DateTime(date=Date((126, 12, 2, 3)), time=Time((12, 0, 0, 0)))
            await rig.client.request(UTCTimeSynchronizationRequest(time=utc, destination=rig.target))
            await asyncio.sleep(0.3)
            assert rig.calls == []
            assert "location" not in tomllib.loads(rig.config_path.read_text()).get("bacnet", {})
    run(body())


def test_object_identifier_write_and_read_range_by_time(tmp_path):
    async def body():
        async with bacnet_rig(tmp_path) as rig:
            store = rig.app.device.trends[3]
            base = time.mktime((2026, 6, 1, 12, 0, 0, 0, 0, -1))
            for i in range(10):
                store.append(base + 60 * i, float(i))
            # records after 12:04:30 local time: 12:05 .. 12:09
            records = await rig.client.read_range(rig.target, ObjectIdentifier("trend-log,3"), "log-buffer",
                                                  range_params=("t", 0, "2026-06-01", "12:04:30", 3))
            assert [r.logDatum.realValue for r in records] == [5.0, 6.0, 7.0]
            await wp(rig, DEVICE, ObjectIdentifier("device,1234567"), "object-identifier")
            assert await rp(rig, "device,1234567", "object-name")
            with pytest.raises(ErrorRejectAbortNack, match="value-out-of-range"):
                await wp(rig, "device,1234567", ObjectIdentifier("device,4194000"), "object-identifier")
            assert tomllib.loads(rig.config_path.read_text())["bacnet"]["device_instance"] == 1234567
    run(body())
