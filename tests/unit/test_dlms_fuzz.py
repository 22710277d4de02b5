"""10,000 malformed APDUs into a DLMS session and 10,000 malformed HDLC frames into the link: every one is
answered or dropped, none raises, and the memory the server holds does not grow with them. Each input is a
valid APDU or frame with bytes changed, cut or added (so it reaches deep into the decoders), or random bytes."""
from __future__ import annotations

import gc
import logging
import random
import tracemalloc
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from firmware.comms.dlms import acse, hdlc, security
from firmware.comms.dlms.keys import InvocationCounter, Keys
from firmware.comms.dlms.model import build_model
from firmware.comms.dlms.objects import EVENT_LOG_LN, LOAD_PROFILE_LN
from firmware.comms.dlms.profiles import event_log, load_profile
from firmware.comms.dlms.session import Server, Session
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout

N = 10_000
KEYS = Keys(b"password", bytes(range(16)), bytes(range(16, 32)), b"OMT\x00\x00\x00\x00\x01")
CLIENT_TITLE = b"CLIENT01"


class Ctx:
    """The context of a meter whose stores hold a few records (no control socket: sets are refused)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def values(self) -> dict[str, Any]:
        return {**self.snapshot.read(), "serial_number": "SN-1"}

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def set_time(self, when: datetime) -> None:
        raise OSError("no time service here")

    def profile(self, since: float | None, until: float | None, limit: int) -> list[dict[str, Any]]:
        return [{"end_ts": 1.7e9 + 900 * i, "status": i, "data": [1.5 * i, 2.0]} for i in range(min(limit, 40))]

    def events(self, since: float | None, until: float | None, limit: int) -> list[dict[str, Any]]:
        return [{"ts": 1.7e9 + i, "source": "test", "cause": "c", "effect": "e"} for i in range(min(limit, 5))]

    def run(self, command: str) -> None:
        raise OSError("no owning service here")


@pytest.fixture
def server(tmp_path):
    snapshot = Snapshot.create(f"test-dlms-{uuid.uuid4().hex[:12]}", snapshot_layout())
    snapshot.publish({"v_an": 230.0, "wh_delivered": 1234.0})
    model = build_model(("wh_del", "varh_del"))
    by_ln = {o.ln: o for o in model.objects}
    ctx = Ctx(snapshot)
    profiles = {LOAD_PROFILE_LN: load_profile(by_ln[LOAD_PROFILE_LN], model.lp_channels, ctx.profile, 900, 1000),
                EVENT_LOG_LN: event_log(by_ln[EVENT_LOG_LN], ctx.events, 1000)}
    yield Server(model.by_key(), profiles, ctx, KEYS, InvocationCounter(tmp_path), True, lambda: 900)
    snapshot.close()
    snapshot.unlink()


def _aarq_public() -> bytes:
    initiate = bytes.fromhex("01000000065f1f040060fe9fffff")
    return (b"\x60" + bytes([len(initiate) + 15]) + b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01"
            + b"\xbe" + bytes([len(initiate) + 2]) + b"\x04" + bytes([len(initiate)]) + initiate)


def _aarq_hls() -> bytes:
    initiate = bytes.fromhex("01000000065f1f040060fe9fffff")
    sealed = security.seal(0x30, CLIENT_TITLE, 1, KEYS.ek, KEYS.ak, initiate)
    glo = b"\x21" + bytes([5 + len(sealed)]) + b"\x30" + (1).to_bytes(4, "big") + sealed
    body = (b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x03" + b"\xa6\x0a\x04\x08" + CLIENT_TITLE
            + b"\x8a\x02\x07\x80" + b"\x8b\x07\x60\x85\x74\x05\x08\x02\x05" + b"\xac\x0a\x80\x08" + b"12345678"
            + b"\xbe" + bytes([len(glo) + 2]) + b"\x04" + bytes([len(glo)]) + glo)
    return b"\x60" + bytes([len(body)]) + body


SEEDS = [
    bytes.fromhex("c001c100080000010000ff0200"),                      # get clock time
    bytes.fromhex("c001c100070100630100ff0201010204020412000809060000010000ff0f02120000"
                  "090c07e6010101000000000000000009 0c07e6010201000000000000000001 00".replace(" ", "")),
    bytes.fromhex("c001c100070100630100ff020102020406000000010600000002120001120000"),   # by entry
    bytes.fromhex("c003c1020003010000ff0200000f00002800ff0200"),      # with list
    bytes.fromhex("c101c100080000010000ff0200090c07ea0c07010000000000000000"),
    bytes.fromhex("c301c100090000000a0001ff01011201"),
    bytes.fromhex("c002c100000001"),
    bytes.fromhex("62038001 00".replace(" ", "")),
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6 and b:
            del b[rng.randrange(len(b)):]
        elif op < 0.8:
            b[rng.randrange(len(b) + 1):0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(b)


def _drive(session: Session, rng: random.Random) -> None:
    seeds = SEEDS + [_aarq_public(), _aarq_hls()]
    for i in range(N):
        if i % 50 == 0:                       # an association now and then, so the services are reached
            session.handle(_aarq_public() if i % 100 else _aarq_hls())
        reply = session.handle(_mutate(rng, rng.choice(seeds)))
        assert isinstance(reply, bytes)


def test_malformed_apdus_neither_crash_nor_grow(server, caplog):
    caplog.set_level(logging.ERROR, logger="comms.dlms")
    rng = random.Random(62056)
    session = Session(server, 16)
    _drive(session, random.Random(1))                  # warm caches and the allocator
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _drive(session, rng)
        management = Session(server, 1)
        _drive(management, rng)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"{grown} bytes kept after {2 * N} malformed APDUs"
    # none reached the session's last-resort handler: each was answered by the check meant for it
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records[:3]
    # and the session still serves a well-formed request
    assert session.handle(_aarq_public())[0] == acse.AARE
    assert session.handle(SEEDS[0])[:4] == bytes.fromhex("c401c100")


def _frames(rng: random.Random) -> list[bytes]:
    addr = hdlc.server_address(1, 17)
    client = bytes([(16 << 1) | 1])
    snrm = hdlc.build_frame(addr, client, 0x93)
    info = hdlc.LLC_REQUEST + SEEDS[0]
    i_frame = hdlc.build_frame(addr, client, 0x10, info)
    aarq = hdlc.build_frame(addr, client, 0x10, hdlc.LLC_REQUEST + _aarq_public())
    return [snrm, i_frame, aarq, hdlc.build_frame(addr, client, 0x53), hdlc.build_frame(addr, client, 0x31)]


def test_malformed_hdlc_frames_neither_crash_nor_grow(server):
    rng = random.Random(4646)
    now = [0.0]
    link = hdlc.HdlcLink(lambda c, s, p: Session(server, c, s, p), 17, 120.0, 1.0, clock=lambda: now[0])
    seeds = _frames(rng)

    def drive(n: int) -> None:
        for i in range(n):
            now[0] += 0.01
            if i % 40 == 0:
                link.feed(seeds[0])
                link.feed(seeds[2])
            frame = _mutate(rng, rng.choice(seeds))
            if rng.random() < 0.5 and len(frame) > 4:            # a valid FCS over changed contents
                body = frame[1:-3]
                frame = b"\x7e" + body + hdlc._crc_bytes(body) + b"\x7e"
            out = link.feed(frame)
            assert all(f[0] == hdlc.FLAG and f[-1] == hdlc.FLAG for f in out)

    drive(1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        drive(N)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"{grown} bytes kept after {N} malformed frames"
    assert len(link.buffer) <= hdlc.MAX_FRAME + 2
    # the line still works: connect, associate, read the clock
    assert link.feed(seeds[0]) and link.feed(seeds[2])
    assert link.counters["bad_frames"] > 0


def test_partial_frame_is_discarded_after_the_inter_frame_timeout(server):
    now = [0.0]
    link = hdlc.HdlcLink(lambda c, s, p: Session(server, c, s, p), 17, 120.0, 1.0, clock=lambda: now[0])
    snrm = _frames(random.Random(1))[0]
    assert link.feed(snrm[:5]) == []
    now[0] += 2.0
    assert link.feed(snrm[5:]) == []                 # the rest alone is not a frame
    assert link.feed(snrm) != []                     # a whole one is answered (UA)
    now[0] += 121.0
    # inactivity: the link is disconnected, and a polled I frame is answered DM (disconnected mode)
    (dm,) = link.feed(_frames(random.Random(1))[1])
    assert dm[-4] == hdlc.DM | hdlc.POLL
