"""The io points of the BACnet device on a running meter (acquisition, metrology, io and comms on the simulated board), read and
written with frames built from ASHRAE 135's encoding over a plain UDP socket: AI29 Pulse Count is the pulses io
counted on input 1, AV1 16498 clears them, AI81 counts the meter's power-ups, AI82 has a bit per driven output."""
from __future__ import annotations

import asyncio
import struct
import time

from firmware.storage.eventlog import EventLog
from tests.integration.bacnet_frames import (
    ANALOG_INPUT, ANALOG_VALUE, PRESENT_VALUE, SIMPLE_ACK, Peer, complex_ack_value, read_property, real,
    write_property,
)
from tests.integration.modbus_support import free_port
from tests.support.io_meter import IoMeter

DI1 = 5                         # boards/sim.toml [gpio] digital_inputs
MS = 1_000_000
PULSE_COUNT, POWER_UPS, OUTPUT_CONFIG, COMMAND = 29, 81, 82, 1
PULSE_COUNT_RESET = 16498.0


def ask(port: int, frame: bytes) -> bytes:
    async def once() -> bytes | None:
        peer = Peer(port)
        try:
            return await peer.ask(frame)
        finally:
            peer.close()
    answer = asyncio.run(once())
    assert answer is not None, "no answer"
    return answer


def read_ai(port: int, instance: int) -> float:
    value = complex_ack_value(ask(port, read_property(7, ANALOG_INPUT, instance, PRESENT_VALUE)))
    assert value[0] == 0x44, value.hex()                       # REAL
    return struct.unpack(">f", value[1:])[0]


def wait_ai(port: int, instance: int, want: float, timeout_s: float = 15.0) -> None:
    """Until AI ``instance`` reads ``want`` (the device refreshes its objects from the snapshot each second)."""
    deadline = time.monotonic() + timeout_s
    got = read_ai(port, instance)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = read_ai(port, instance)
    assert got == want, (instance, got, want)


def test_pulse_count_power_ups_and_outputs_over_bacnet(tmp_path):
    port = free_port()
    meter = IoMeter(tmp_path, f"""
[modbus]
tcp_enabled = false
[bacnet]
enabled = true
ip_port = {port}
bind_address = "127.0.0.1"
ip_prefix = 32
device_instance = 4321
[[io.input]]
number = 1
mode = "kyz"
[[io.output]]
number = 2
source = "alarm"
alarm_priority = 0
[[io.output]]
number = 4
source = "demand_interval"
""", services="acquisition,metrology,io,comms")
    try:
        meter.start()
        # 12 KYZ transitions on input 1, stamped in the past as a kernel's queued edge events
        t0 = time.monotonic_ns() - 12 * 30 * MS - 100 * MS
        meter.wire.drive_train((DI1, k % 2 == 1, t0 + k * 30 * MS) for k in range(12))
        meter.wait(lambda: meter.call("io.status")["inputs"][0]["count"] == 12, 15)
        wait_ai(port, PULSE_COUNT, 12.0)
        assert read_ai(port, POWER_UPS) == 1.0
        assert read_ai(port, OUTPUT_CONFIG) == 0b1010               # outputs 2 and 4 have a source
        answer = ask(port, write_property(8, ANALOG_VALUE, COMMAND, PRESENT_VALUE, real(PULSE_COUNT_RESET)))
        assert answer[0] >> 4 == SIMPLE_ACK, answer.hex()
        assert meter.call("io.status")["inputs"][0]["count"] == 0
        wait_ai(port, PULSE_COUNT, 0.0)
        rows = [r for r in EventLog(meter.data).read(min_priority=0) if r["cause"] == "pulse_counts_reset"]
        assert len(rows) == 1 and rows[0]["detail"]["old"]["1"] == 12, rows
        meter.stop()
        meter.start()
        wait_ai(port, POWER_UPS, 2.0)
    finally:
        meter.stop()
