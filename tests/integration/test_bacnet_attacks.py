"""The BACnet attacks of issue 30 against a whole running meter (`meter run` with acquisition, metrology and comms:
Modbus TCP and BACnet/IP on loopback), made with BACnet/IP frames encoded byte by byte (tests/integration/
bacnet_frames.py, from ASHRAE 135 Clause 20/21 and Annex J) and sent over plain UDP sockets from several 127.0.0.x addresses: nothing of the meter's code
nor of the BACnet library it is built on takes part on the attacker's side. Energy is read back with mbpoll.

- WriteProperty AV1 := 30078 (energy reset) and 21212 (peak demand reset) with the default [bacnet] settings:
  refused, the registers go on counting;
- ReinitializeDevice with no password configured: refused, Modbus TCP keeps answering throughout;
- DeviceCommunicationControl password guessing from three addresses: held, locked out, and unable to push the
  earlier security events out of the event log;
- a stream of Device Location writes: held (DEVICE_BUSY) after a burst;
- ReadPropertyMultiple of all the device's properties from one address: answers held, other addresses answered;
- SubscribeCOV from one address: it gets its share of the subscriptions, another address still gets one.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import pytest

from firmware.storage.eventlog import Event, EventLog
from tests.integration import bacnet_frames as frames
from tests.integration.modbus_support import mbpoll_raw
from tests.support.web_meter import WebMeter, free_port, running

PASSWORD = "right-one"           # [bacnet] password of the guessing test's meter
EVENTS_DEPTH = 100                # [events] depth: the smallest the schema allows
EARLIER_EVENTS = 60               # security events recorded before the guessing starts
GUESSES = 900                     # wrong passwords sent, all addresses together, at most
GUESS_SECONDS = 6.0               # for this long: at one check a second, enough checks to reach the lockout
GUESS_EVERY_S = 0.02              # each address sends one guess this often (150 a second in all)
ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")

DEVICE_INSTANCE = 4711


def write_av1(invoke_id: int, value: float) -> bytes:
    return frames.write_property(invoke_id, frames.ANALOG_VALUE, 1, frames.PRESENT_VALUE, frames.real(value))


def write_location(invoke_id: int, text: str) -> bytes:
    return frames.write_property(invoke_id, frames.DEVICE, DEVICE_INSTANCE, frames.LOCATION,
                                 frames.application_string(text))


def read_all_of_device(invoke_id: int) -> bytes:
    return frames.read_property_multiple_all(invoke_id, frames.DEVICE, DEVICE_INSTANCE)


def udp(source: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(5.0)
    return s


def ask(meter: BacnetMeter, source: str, frame: bytes) -> str:
    with udp(source) as s:
        s.sendto(frame, ("127.0.0.1", meter.bacnet))
        while True:
            invoke_id, result = frames.outcome(s.recv(2048))
            if invoke_id == frame[8]:
                return result


def replies(s: socket.socket, outcomes: dict[str, int], wait_s: float = 0.0) -> int:
    """Count the replies waiting on ``s`` (for up to ``wait_s`` more) into ``outcomes``; their bytes. Unconfirmed
    requests (COV notifications) are no replies."""
    received, deadline = 0, time.monotonic() + wait_s
    s.setblocking(False)
    while True:
        try:
            frame = s.recv(4096)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return received
            time.sleep(0.02)
            continue
        result = frames.outcome(frame)[1]
        if result == "unconfirmed":                          # a COV notification, not a reply
            continue
        received += len(frame)
        outcomes[result] = outcomes.get(result, 0) + 1


class BacnetMeter(WebMeter):
    """`meter run` with acquisition, metrology and comms: Modbus TCP and BACnet/IP with the defaults of
    [bacnet] (access read-write, no revenue commands) but for its ports and the given ``bacnet`` lines."""

    def __init__(self, base: Path, bacnet: str = "", extra: str = "") -> None:
        self.modbus, self.bacnet = free_port(), free_port()
        super().__init__(
            base, services="acquisition,metrology,comms,web", ready_text="bacnet-ip",
            extra=f'[modbus]\ntcp_port = {self.modbus}\nbind_address = "127.0.0.1"\n'
                  f'[bacnet]\nenabled = true\nip_port = {self.bacnet}\nbind_address = "127.0.0.1"\nip_prefix = 32\n'
                  f'device_instance = {DEVICE_INSTANCE}\n{bacnet}{extra}')

    def read(self, point: str) -> float:
        out = self.meter("read", "--json", point)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)["values"][point]

    def wh_delivered(self) -> int | None:
        """Active energy delivered (Wh, s64 at 3203-3206 of the ION map) read with mbpoll, or None."""
        out = mbpoll_raw("-m", "tcp", "-p", str(self.modbus), "-o", "2", "-t", "4:hex", "-r", "3203", "-c", "4",
                         "127.0.0.1")
        words = [int(line.split(":", 1)[1], 16) for line in out.stdout.splitlines()
                 if line.startswith("[32") and ":" in line]
        if out.returncode != 0 or len(words) != 4:
            return None
        return struct.unpack(">q", struct.pack(">4H", *words))[0]


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(BacnetMeter(tmp_path_factory.mktemp("bacnet-attacks"))) as m:
        yield m


def test_revenue_commands_over_bacnet_are_refused_by_default(meter):
    deadline = time.monotonic() + 60
    while not (meter.wh_delivered() or 0) > 0:                # the first watt-hour
        assert time.monotonic() < deadline, "no energy registered"
        time.sleep(0.5)
    time.sleep(5.0)                                           # more than a reset would count again in 2 s
    resets = meter.read("energy_reset_count")
    before = meter.wh_delivered()
    assert before is not None and before > 0
    for invoke_id, code in enumerate((30078.0, 21212.0), start=1):
        assert ask(meter, "127.0.0.2", write_av1(invoke_id, code)) == "property/write-access-denied"
    time.sleep(2.0)                                           # what a reset would have shown by now
    after = meter.wh_delivered()
    assert after is not None and after >= before, (before, after)
    assert meter.read("energy_reset_count") == resets
    causes = [e["cause"] for e in EventLog(meter.data_dir).read() if e["source"] == "bacnet"]
    assert causes.count("command_refused") >= 1 and "energy_reset" not in " ".join(causes)


def test_reinitialize_without_a_configured_password_is_refused_and_modbus_serves(meter):
    answered = 0
    for i in range(10):
        if i % 3 == 0:
            for n, password in enumerate((None, "", "guess")):
                assert ask(meter, "127.0.0.3", frames.reinitialize_device(10 + 3 * i + n, password)) == \
                    "services/service-request-denied"          # nobody may restart it while no password is set
        answered += meter.wh_delivered() is not None
    assert answered == 10


def test_a_stream_of_location_writes_is_held(meter):
    outcomes: dict[str, int] = {}
    with udp("127.0.0.4") as s:
        for i in range(100):                                  # 1,760 in 20 s were each saved before
            s.sendto(write_location(i, f"room {i}"), ("127.0.0.1", meter.bacnet))
            replies(s, outcomes, 0.5 if i % 10 == 9 else 0.0)
        replies(s, outcomes, 3.0)
    print(f"\n100 Location writes from one address: {outcomes}")
    # 20 at once, then one every 10 s; every other write busy (one may be a write the meter took late)
    assert set(outcomes) <= {"ack", "device/device-busy"} and 15 <= outcomes.get("ack", 0) <= 25, outcomes
    assert outcomes.get("device/device-busy", 0) >= 70, outcomes


def test_read_property_multiple_cannot_amplify_without_bound(meter):
    from firmware.comms.bacnet.app import AMPLIFIED_BURST, AMPLIFIED_PER_S

    outcomes: dict[str, int] = {}
    request = read_all_of_device(1)
    with udp("127.0.0.5") as s:
        started, received = time.monotonic(), 0
        for _ in range(200):
            s.sendto(request, ("127.0.0.1", meter.bacnet))
            received += replies(s, outcomes)
            time.sleep(0.005)
        received += replies(s, outcomes, 2.0)
        elapsed = time.monotonic() - started
    answered = outcomes.get("ack", 0)
    print(f"\n200 ReadPropertyMultiple 'all' of the device ({len(request)} bytes each) from one address in "
          f"{elapsed:.1f} s: {answered} answered, {received} bytes back ({received / (200 * len(request)):.1f}x)")
    assert 0 < answered <= AMPLIFIED_BURST + AMPLIFIED_PER_S * elapsed + 5, outcomes
    assert ask(meter, "127.0.0.6", read_all_of_device(2)) == "ack"        # another address is answered


def test_one_address_cannot_take_every_cov_subscription(meter):
    from firmware.comms.bacnet.app import MAX_COV_PER_CLIENT

    outcomes: dict[str, int] = {}
    with udp("127.0.0.7") as s:
        for process in range(40):
            s.sendto(frames.subscribe_cov(process, process, frames.ANALOG_INPUT, 1 + process % 30), ("127.0.0.1", meter.bacnet))
            replies(s, outcomes, 0.05)
        replies(s, outcomes, 2.0)
    assert outcomes == {"ack": MAX_COV_PER_CLIENT, "resources/no-space-to-add-list-element": 40 - MAX_COV_PER_CLIENT}
    assert ask(meter, "127.0.0.8", frames.subscribe_cov(1, 1, frames.ANALOG_INPUT, 16)) == "ack"


@pytest.fixture
def guarded(tmp_path):
    with running(BacnetMeter(tmp_path, bacnet=f'password = "{PASSWORD}"\n',
                             extra=f"[events]\ndepth = {EVENTS_DEPTH}\n[security]\nlockout_attempts = 4\n")) as m:
        yield m


def test_password_guessing_is_locked_out_and_cannot_flush_the_event_log(guarded):
    log = EventLog(guarded.data_dir, depth=EVENTS_DEPTH)
    for i in range(EARLIER_EVENTS):
        log.record(Event(128, "security", "user_change", f"user u{i} added", "alice"))
    sockets = [udp(source) for source in ATTACKERS]
    outcomes: dict[str, int] = {}
    sent, started = 0, time.monotonic()
    try:
        while sent < GUESSES and time.monotonic() - started < GUESS_SECONDS:
            for s in sockets:
                s.sendto(frames.communication_control(sent % 256, False, f"guess{sent}"), ("127.0.0.1", guarded.bacnet))
                sent += 1
            time.sleep(GUESS_EVERY_S)
            for s in sockets:
                replies(s, outcomes)
        for s in sockets:
            replies(s, outcomes, 1.0)
    finally:
        for s in sockets:
            s.close()
    elapsed = time.monotonic() - started
    print(f"\n{sent} wrong DCC passwords from {len(ATTACKERS)} addresses in {elapsed:.1f} s: {outcomes}")
    assert set(outcomes) == {"security/password-failure"}, outcomes        # none carried out
    time.sleep(1.1)
    # locked out: the right password is refused now too, from any address
    assert ask(guarded, "127.0.0.5", frames.communication_control(1, False, PASSWORD)) == "security/password-failure"
    events = log.read()
    assert len([e for e in events if e["cause"] == "user_change"]) == EARLIER_EVENTS
    guesses = [e for e in events if e["cause"] == "password_invalid"]
    assert 0 < len(guesses) <= 5 and sum(e["detail"].get("count", 1) for e in guesses) >= sum(outcomes.values())
    assert [e["cause"] for e in events].count("password_lockout") == 1
    assert [e["cause"] for e in log.read_kept()].count("user_change") == EARLIER_EVENTS
