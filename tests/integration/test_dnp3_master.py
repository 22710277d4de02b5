"""The DNP3 outstation as a master of another implementation (dnp3py) sees it: integrity and event polls, freeze
and freeze-and-clear, controls (CROB) through the authorization point, time synchronisation, and the internal
indications around them. The comms service runs in its own process with a real snapshot and control socket."""
from __future__ import annotations

import time
from typing import Any

import pytest

from firmware.comms.dnp3.points import load
from tests.integration.dnp3_support import DNP3_VALUES, Dnp3Meter, forget, master, run

pytest.importorskip("dnp3")

from dnp3.application.builder import build_all_objects_request, build_write_request  # noqa: E402
from dnp3.application.fragment import ObjectBlock  # noqa: E402
from dnp3.application.qualifiers import ObjectHeader, PrefixCode, RangeCode  # noqa: E402
from dnp3.core.enums import FunctionCode  # noqa: E402
from dnp3.core.flags import IIN  # noqa: E402


def index_of(name: str, group: int) -> int:
    return next(d.index for d in load() if d.name == name and d.group == group and d.element in (None, 0)
                and d.bit in (None, 0))


@pytest.fixture
def meter(tmp_path):
    m = Dnp3Meter(tmp_path)
    yield m
    m.close()


def capture(runner: Any) -> list[bytes]:
    """Every response fragment the master parses, as octets (dnp3py does not report control statuses)."""
    seen: list[bytes] = []
    original = runner.master.process_response

    def keep(data: bytes) -> Any:
        seen.append(bytes(data))
        return original(data)

    runner.master.process_response = keep
    return seen


def crob_statuses(fragment: bytes) -> list[int]:
    """Statuses of the g12v1 objects of a response (IEEE 1815-2012 A.8.1: the last octet of each object)."""
    body = fragment[4:]
    out = []
    pos = 0
    while pos < len(body):
        group, variation, qualifier = body[pos:pos + 3]
        assert (group, variation) == (12, 1)
        width = 1 if qualifier == 0x17 else 2
        count = int.from_bytes(body[pos + 3:pos + 3 + width], "little")
        pos += 3 + width
        for _ in range(count):
            out.append(body[pos + width + 10])
            pos += width + 11
    return out


def test_integrity_poll_reads_the_snapshot(meter):
    async def go():
        async with master(meter.port) as (runner, soe):
            infos = await runner.integrity_poll()
            return soe, infos
    soe, infos = run(go())
    assert soe.analog_inputs[index_of("v_an", 30)].value == pytest.approx(DNP3_VALUES["v_an"], rel=1e-6)
    assert soe.analog_inputs[index_of("p_total", 30)].value == pytest.approx(DNP3_VALUES["p_total"], rel=1e-6)
    assert soe.counters[index_of("wh_delivered", 20)].value == int(DNP3_VALUES["wh_delivered"])
    assert soe.frozen_counters[index_of("wh_delivered_frozen", 21)].value == int(DNP3_VALUES["wh_delivered_frozen"])
    assert soe.binary_inputs[index_of("revenue_locked", 1)].value is False
    di = index_of("di_state", 1)
    assert [soe.binary_inputs[di + k].value for k in range(4)] == [True, False, True, False]
    # status word bit 13 (revenue locked in the status word) at the status word's index + 13
    assert soe.binary_inputs[index_of("status_word", 1) + 13].value is True
    assert soe.binary_inputs[index_of("status_word", 1) + 12].value is False
    iin = infos[0].iin
    assert iin & IIN.DEVICE_RESTART and iin & IIN.NEED_TIME
    every = {(d.group, d.index) for d in load()}
    got = ({(30, i) for i in soe.analog_inputs} | {(20, i) for i in soe.counters} |
           {(21, i) for i in soe.frozen_counters} | {(1, i) for i in soe.binary_inputs} |
           {(10, i) for i in soe.binary_outputs})
    assert got == every


def test_events_with_deadbands_by_class(meter):
    async def go():
        async with master(meter.port) as (runner, soe):
            await runner.integrity_poll()
            await runner.class_poll()                     # whatever the start produced
            forget(soe)
            meter.publish(v_an=DNP3_VALUES["v_an"] + 0.1)  # inside the 0.5 V deadband: no event
            time.sleep(0.4)
            await runner.class_poll()
            quiet = dict(soe.analog_inputs)
            meter.publish(v_an=DNP3_VALUES["v_an"] + 2.0, revenue_locked=1.0)
            time.sleep(0.4)
            infos = await runner.class_poll(class_1=False, class_2=True, class_3=False)
            analog = dict(soe.analog_inputs)
            class1_pending = infos[-1].iin & IIN.CLASS_1_EVENTS
            forget(soe)
            await runner.class_poll(class_1=True, class_2=False, class_3=False)
            return quiet, analog, class1_pending, dict(soe.binary_inputs)
    quiet, analog, class1_pending, binaries = run(go())
    assert quiet == {}
    v = analog[index_of("v_an", 30)]
    assert v.value == pytest.approx(DNP3_VALUES["v_an"] + 2.0, rel=1e-6) and v.timestamp is not None
    assert class1_pending, "a class 1 event (revenue lock) waits while class 2 is read"
    assert binaries[index_of("revenue_locked", 1)].value is True


def test_freeze_runs_the_revenue_freeze_and_reports_frozen_counter_events(meter):
    async def go():
        async with master(meter.port) as (runner, soe):
            await runner.integrity_poll()
            infos = await runner.request(build_all_objects_request(FunctionCode.IMMEDIATE_FREEZE, 20, 0,
                                                                   seq=runner.master.next_request_sequence()))
            # the metrology publishes the frozen registers and the freeze time
            meter.publish(wh_delivered_frozen=123_456_000.0, freeze_time=1.8e9)
            time.sleep(0.4)
            forget(soe)
            await runner.class_poll()
            return infos, dict(soe.frozen_counters)
    infos, frozen = run(go())
    assert not infos[0].iin & (IIN.PARAMETER_ERROR | IIN.NO_FUNC_CODE_SUPPORT | IIN.OBJECT_UNKNOWN)
    assert ("metrology.freeze", {}) in meter.ran
    event = frozen[index_of("wh_delivered_frozen", 21)]
    assert event.value == 123_456_000
    assert event.timestamp is not None and abs(event.timestamp.timestamp() - 1.8e9) < 1


def test_freeze_and_clear_is_refused_while_revenue_locked(meter):
    meter.publish(revenue_locked=1.0)
    time.sleep(0.3)

    async def go():
        async with master(meter.port) as (runner, _):
            return await runner.request(build_all_objects_request(FunctionCode.FREEZE_CLEAR, 20, 0,
                                                                  seq=runner.master.next_request_sequence()))
    infos = run(go())
    assert infos[0].iin & IIN.PARAMETER_ERROR
    assert not [r for r in meter.ran if r[0] in ("metrology.freeze", "metrology.energy_reset")]


def test_crob_runs_catalogue_commands_through_the_authorization_point(meter):
    from dnp3.master.commands import CommandBuilder

    async def go():
        async with master(meter.port) as (runner, _):
            seen = capture(runner)
            m = runner.master
            await runner.request(m.build_direct_operate(CommandBuilder().pulse_on(0).build_direct_operate()))
            direct = crob_statuses(seen[-1])
            await runner.request(m.build_select(CommandBuilder().latch_on(2).build_select()))
            await runner.request(m.build_operate(CommandBuilder().latch_on(2).build_operate()))
            operate = crob_statuses(seen[-1])
            await runner.request(m.build_direct_operate(CommandBuilder().pulse_on(200).build_direct_operate()))
            unknown = crob_statuses(seen[-1])
            await runner.request(m.build_direct_operate(CommandBuilder().latch_off(0).build_direct_operate()))
            trip = crob_statuses(seen[-1])
            meter.publish(revenue_locked=1.0)
            time.sleep(0.3)
            await runner.request(m.build_direct_operate(CommandBuilder().pulse_on(3).build_direct_operate()))
            locked = crob_statuses(seen[-1])
            return direct, operate, unknown, trip, locked
    direct, operate, unknown, trip, locked = run(go())
    assert direct == [0] and operate == [0]
    assert [name for name, _ in meter.ran] == ["metrology.demand_reset", "metrology.demand_sync"]
    assert unknown == [4] and trip == [4]          # NOT_SUPPORTED
    assert locked == [9]                            # NOT_AUTHORIZED: energy reset while revenue-locked


def test_crob_refused_when_access_is_read_only(tmp_path):
    from dnp3.master.commands import CommandBuilder

    m = Dnp3Meter(tmp_path, {"access": "read-only"})
    try:
        async def go():
            async with master(m.port) as (runner, _):
                seen = capture(runner)
                await runner.request(runner.master.build_direct_operate(
                    CommandBuilder().pulse_on(0).build_direct_operate()))
                return crob_statuses(seen[-1])
        assert run(go()) == [9]
        assert m.ran == []
    finally:
        m.close()


def test_time_sync_and_need_time(meter):
    async def go():
        async with master(meter.port) as (runner, _):
            first = await runner.integrity_poll()
            delay = await runner.request(runner.master.build_delay_measure())
            now_ms = int(time.time() * 1000)
            header = ObjectHeader.build(group=50, variation=1, prefix=PrefixCode.NONE,
                                        range_code=RangeCode.UINT8_COUNT)
            write = build_write_request((ObjectBlock(header=header, data=bytes((1,)) + now_ms.to_bytes(6, "little")),),
                                        seq=runner.master.next_request_sequence())
            written = await runner.request(write)
            after = await runner.integrity_poll()
            return first, delay, written, after, now_ms
    first, delay, written, after, now_ms = run(go())
    assert first[0].iin & IIN.NEED_TIME
    assert not delay[0].iin & IIN.NO_FUNC_CODE_SUPPORT
    assert not written[0].iin & IIN.PARAMETER_ERROR
    assert not after[0].iin & IIN.NEED_TIME
    (name, args), = [r for r in meter.ran if r[0] == "time.set"]
    assert args["source"] == "protocol" and args["utc"] == pytest.approx(now_ms / 1000, abs=0.01)


def test_clearing_the_restart_indication(meter):
    async def go():
        async with master(meter.port) as (runner, _):
            first = await runner.integrity_poll()
            header = ObjectHeader.build(group=80, variation=1, prefix=PrefixCode.NONE,
                                        range_code=RangeCode.UINT8_START_STOP)
            await runner.request(build_write_request((ObjectBlock(header=header, data=bytes((7, 7, 0))),),
                                                     seq=runner.master.next_request_sequence()))
            return first, await runner.integrity_poll()
    first, after = run(go())
    assert first[0].iin & IIN.DEVICE_RESTART and not after[0].iin & IIN.DEVICE_RESTART


def test_time_set_refused_by_the_time_service_keeps_need_time(meter):
    meter.refuse["time.set"] = "time.set refused: ntp synchronised, priority ntp over protocol"

    async def go():
        async with master(meter.port) as (runner, _):
            header = ObjectHeader.build(group=50, variation=1, prefix=PrefixCode.NONE,
                                        range_code=RangeCode.UINT8_COUNT)
            now = int(time.time() * 1000).to_bytes(6, "little")
            written = await runner.request(build_write_request((ObjectBlock(header=header, data=b"\x01" + now),),
                                                               seq=runner.master.next_request_sequence()))
            return written, await runner.integrity_poll()
    written, after = run(go())
    assert written[0].iin & IIN.PARAMETER_ERROR
    assert after[0].iin & IIN.NEED_TIME
    # a clock synchronised by a better source needs no time from DNP3
    meter.publish(time_synced=1.0)
    time.sleep(0.4)

    async def poll():
        async with master(meter.port) as (runner, _):
            return await runner.integrity_poll()
    assert not run(poll())[0].iin & IIN.NEED_TIME
