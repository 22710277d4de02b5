"""Unsolicited responses and event buffers: the null unsolicited response after a restart, events reported
unsolicited for the classes a master enables and confirmed by it (dnp3py), an unconfirmed unsolicited response
repeated ``unsolicited_retries`` times and then held back for ``unsolicited_retry_delay`` (a raw socket that never
confirms), and a full event buffer reported with IIN2.3 until a confirmed read makes room."""
from __future__ import annotations

import asyncio
import time

import pytest

from firmware.comms.dnp3.points import load
from tests.integration.dnp3_support import DNP3_VALUES, MASTER, Dnp3Meter, forget, master, run

pytest.importorskip("dnp3")

from dnp3.core.flags import IIN  # noqa: E402

V_AN = next(d.index for d in load() if d.name == "v_an")
UNSOLICITED = 130
RETRIES = 2
CONFIRM_TIMEOUT_S = 0.5
RETRY_DELAY_S = 3.0


def unsolicited_seqs(stream: bytes) -> list[tuple[float, int]]:
    """(arrival order, application sequence) of each unsolicited response in ``stream`` (IEEE 1815-2012 frame:
    10 header octets, then the transport octet, the application control and function octets)."""
    out = []
    pos = stream.find(b"\x05\x64")
    while pos >= 0 and pos + 13 <= len(stream):
        length = stream[pos + 2]
        user = length - 5
        size = 10 + user + 2 * ((user + 15) // 16)
        if stream[pos + 12] == UNSOLICITED:
            out.append((pos, stream[pos + 11] & 0x0F))
        pos = stream.find(b"\x05\x64", pos + size)
    return out


@pytest.fixture
def meter(tmp_path):
    m = Dnp3Meter(tmp_path, {"unsolicited": True, "masters": [MASTER], "confirm_timeout": CONFIRM_TIMEOUT_S,
                             "unsolicited_retries": RETRIES, "unsolicited_retry_delay": RETRY_DELAY_S,
                             "event_buffer": 10})
    yield m
    m.close()


def test_unsolicited_events_confirmed_by_the_master(meter):
    async def go():
        async with master(meter.port) as (runner, soe):
            null = await runner.listen_unsolicited(timeout=5)
            await runner.enable_unsolicited(class_1=False, class_2=True, class_3=False)
            forget(soe)
            meter.publish(v_an=DNP3_VALUES["v_an"] + 5.0)
            first = await runner.listen_unsolicited(timeout=5)
            value = soe.analog_inputs.get(V_AN)
            forget(soe)
            meter.publish(v_an=DNP3_VALUES["v_an"] + 10.0)
            second = await runner.listen_unsolicited(timeout=5)
            after = soe.analog_inputs.get(V_AN)
            # confirmed: nothing left in class 2
            polled = await runner.class_poll(class_1=False, class_2=True, class_3=False)
            return null, first, value, second, after, polled
    null, first, value, second, after, polled = run(go())
    assert null is not None and null.iin & IIN.DEVICE_RESTART
    assert first is not None and value is not None and value.value == pytest.approx(DNP3_VALUES["v_an"] + 5.0)
    assert value.timestamp is not None
    assert second is not None and after.value == pytest.approx(DNP3_VALUES["v_an"] + 10.0)
    assert second.sequence == (first.sequence + 1) & 0x0F
    assert not polled[-1].iin & IIN.CLASS_2_EVENTS


def test_unconfirmed_unsolicited_responses_are_retried_then_held_back(meter):
    async def go():
        # a master that connects and never confirms anything (the outstation sends to the first of [dnp3] masters)
        reader, writer = await asyncio.open_connection("127.0.0.1", meter.port)
        stream = b""
        t0 = time.monotonic()
        marks = []
        while time.monotonic() - t0 < CONFIRM_TIMEOUT_S * (RETRIES + 1) + RETRY_DELAY_S + 10:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.1)
            except asyncio.TimeoutError:
                continue
            if not chunk:
                break
            marks.append((len(stream), time.monotonic() - t0))
            stream += chunk
            if len(unsolicited_seqs(stream)) >= RETRIES + 2:
                break
        writer.close()
        return stream, marks
    stream, marks = run(go())
    seqs = unsolicited_seqs(stream)

    def when(pos: int) -> float:
        return max(t for at, t in marks if at <= pos)
    times = [when(pos) for pos, _ in seqs]
    assert len(seqs) >= RETRIES + 2, (seqs, times)
    # the null unsolicited response, repeated RETRIES times confirm_timeout apart, all with one sequence
    first_round = seqs[:RETRIES + 1]
    assert len({s for _, s in first_round}) == 1, seqs
    assert all(b - a >= CONFIRM_TIMEOUT_S * 0.8 for a, b in zip(times, times[1:RETRIES + 1])), times
    # then nothing for the retry delay, then again
    assert times[RETRIES + 1] - times[RETRIES] >= RETRY_DELAY_S * 0.9, times


def test_event_buffer_overflow_is_reported(meter):
    async def go():
        async with master(meter.port) as (runner, soe):
            await runner.listen_unsolicited(timeout=5)
            for k in range(13):                       # 13 class 2 events of v_an; the buffer keeps 10
                meter.publish(v_an=DNP3_VALUES["v_an"] + 2.0 * (k + 1))
                await asyncio.sleep(0.2)
            forget(soe)
            full = await runner.class_poll(class_1=False, class_2=True, class_3=False)
            after = await runner.class_poll(class_1=False, class_2=True, class_3=False)
            return full, after, soe.analog_inputs.get(V_AN)
    full, after, last = run(go())
    assert full[0].iin & IIN.EVENT_BUFFER_OVERFLOW
    assert not after[-1].iin & IIN.EVENT_BUFFER_OVERFLOW
    assert last.value == pytest.approx(DNP3_VALUES["v_an"] + 26.0)
