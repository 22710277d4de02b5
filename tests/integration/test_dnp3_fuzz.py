"""Hostile DNP3 traffic against the outstation in its comms service: 10,000 damaged frames (bad header and data
CRCs, wrong lengths, transport segments out of order, unknown objects and functions, noise) from two attacking
addresses, and a master that floods valid requests without reading the answers, while an honest master (dnp3py,
another address) keeps polling. The service survives, its memory does not grow, the honest master is served
throughout, and the limits on sessions, addresses and master link addresses hold."""
from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time

import pytest

from firmware.control import ControlClient
from tests.integration.dnp3_support import MASTER, OUTSTATION, Dnp3Meter, master, run

pytest.importorskip("dnp3")

from dnp3.datalink.builder import build_request_link_status, build_unconfirmed_user_data  # noqa: E402

FRAMES = 10_000
BATCH = 10
# Octets that complete whatever damaged frame a batch left open (a frame is at most 292), so that the request after
# them is read on its own
PADDING = bytes(300)
# A request of link status (function 9) and the start of its answer (LINK_STATUS, 11, to the master)
WARM_UP = 2_000
POLL_DEADLINE_S = 5.0
MEMORY_GROWTH_KIB = 2048


def frame(user: bytes, dest: int = OUTSTATION, src: int = MASTER) -> bytes:
    return build_unconfirmed_user_data(destination=dest, source=src, dir_from_master=True, user_data=user).to_bytes()


LINK_STATUS_REQUEST = build_request_link_status(destination=OUTSTATION, source=MASTER,
                                                dir_from_master=True).to_bytes()
LINK_STATUS_ANSWER = b"\x05\x64\x05\x0b" + MASTER.to_bytes(2, "little") + OUTSTATION.to_bytes(2, "little")


def hostile(rng: random.Random) -> bytes:
    """One damaged frame or stream: each kind the brief of a fuzzer names."""
    kind = rng.randrange(8)
    app = bytes((0xC0 | rng.randrange(16), rng.choice((1, 2, 3, 5, 7, 13, 20, 23, 24, 99, 129)))) + \
        rng.randbytes(rng.randrange(0, 40))
    good = frame(bytes((0xC0 | rng.randrange(64),)) + app)
    if kind == 0:                                   # header CRC
        k = rng.randrange(2, 10)
        return good[:k] + bytes((good[k] ^ (1 << rng.randrange(8)),)) + good[k + 1:]
    if kind == 1 and len(good) > 12:                # data CRC
        k = rng.randrange(10, len(good))
        return good[:k] + bytes((good[k] ^ 0x40,)) + good[k + 1:]
    if kind == 2:                                   # wrong length: LEN below 5, or past the octets sent
        body = bytes((0x05, 0x64, rng.choice((0, 1, 4, 255)), 0xC4)) + OUTSTATION.to_bytes(2, "little") + \
            MASTER.to_bytes(2, "little")
        return body + rng.randbytes(2) + rng.randbytes(rng.randrange(0, 30))
    if kind == 3:                                   # transport segments out of order, FIR missing
        return frame(bytes((rng.randrange(64),)) + app) + frame(bytes((0x80 | rng.randrange(64),)) + app)
    if kind == 4:                                   # valid frames, unknown objects and qualifiers
        objects = bytes((rng.randrange(256), rng.randrange(256), rng.choice((0x06, 0x00, 0x17, 0x5B, 0x28))))
        return frame(bytes((0xC0,)) + bytes((0xC0 | rng.randrange(16), 1)) + objects + rng.randbytes(4))
    if kind == 5:                                   # line noise
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 6:                                   # truncated
        return good[:rng.randrange(1, len(good))]
    return frame(app, dest=rng.choice((OUTSTATION + 1, 0xFFFF)), src=rng.randrange(65520))


async def attacker(address: str, port: int, frames: list[bytes], sent: list[int]) -> None:
    """Send ``frames`` from ``address`` in batches, each followed by a request of link status whose answer shows
    the batch was read; reconnect when the outstation closes the connection (what it answered meanwhile is
    dropped)."""
    k = 0
    while k < len(frames):
        sock = socket.socket()
        sock.bind((address, 0))
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            await asyncio.sleep(0.05)
            continue
        try:
            while k < len(frames):
                batch = frames[k:k + BATCH]
                writer.write(b"".join(batch) + PADDING + LINK_STATUS_REQUEST)
                await writer.drain()
                seen = b""
                while LINK_STATUS_ANSWER not in seen:
                    chunk = await asyncio.wait_for(reader.read(4096), 5.0)
                    if not chunk:
                        raise ConnectionResetError("closed by the outstation")
                    seen = seen[-8:] + chunk
                k += len(batch)
                sent[0] += len(batch)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            # the outstation closed the connection on this batch (too many damaged frames in a row): it was read
            # up to there; the next batch goes on a new connection
            k += len(batch)
            sent[0] += len(batch)
        finally:
            writer.close()


async def greedy(port: int, stop: asyncio.Event) -> int:
    """A master on 127.0.0.4 that sends integrity polls as fast as it can and never reads an answer."""
    sock = socket.socket()
    sock.bind(("127.0.0.4", 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock)
    request = frame(bytes((0xC0, 0xC0, 0x01, 0x3C, 0x02, 0x06, 0x3C, 0x03, 0x06, 0x3C, 0x04, 0x06, 0x3C, 0x01, 0x06)),
                    src=MASTER + 1)
    n = 0
    try:
        while not stop.is_set():
            writer.write(request * 20)
            n += 20
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(writer.drain(), 0.05)
            await asyncio.sleep(0)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return n


def test_fuzz_flood_and_starvation(tmp_path):
    meter = Dnp3Meter(tmp_path, {"sessions": 4, "sessions_per_address": 1})
    try:
        rng = random.Random(20261207)
        frames = [hostile(rng) for _ in range(FRAMES)]
        sent = [0]

        async def go():
            async with master(meter.port, timeout=POLL_DEADLINE_S) as (runner, soe):
                await runner.integrity_poll()
                # warm up: the first damaged frames, then the memory the service settles at
                await asyncio.gather(attacker("127.0.0.2", meter.port, frames[:WARM_UP // 2], sent),
                                     attacker("127.0.0.3", meter.port, frames[WARM_UP // 2:WARM_UP], sent))
                before = meter.pss_kib()
                stop = asyncio.Event()
                flood = asyncio.gather(attacker("127.0.0.2", meter.port, frames[WARM_UP::2], sent),
                                       attacker("127.0.0.3", meter.port, frames[WARM_UP + 1::2], sent))
                hog = asyncio.create_task(greedy(meter.port, stop))
                latencies = []
                while not flood.done() or len(latencies) < 5:
                    t0 = time.monotonic()
                    await runner.integrity_poll()       # raises if not answered within the deadline
                    latencies.append(time.monotonic() - t0)
                    await asyncio.sleep(0.02)
                await flood
                stop.set()
                hogged = await hog
                after = meter.pss_kib()
                value = soe.analog_inputs[0].value
                return before, after, latencies, hogged, value
        before, after, latencies, hogged, value = run(go(), timeout=240)
        stats = ControlClient(meter.run_dir / "comms.sock").call("stats")["dnp3"]["tcp"]
    finally:
        alive = meter.proc.poll() is None
        meter.close()
    assert alive, meter.output()
    assert sent[0] == FRAMES
    assert hogged > 100
    assert len(latencies) >= 5 and max(latencies) < POLL_DEADLINE_S
    assert value == pytest.approx(230.12, rel=1e-6)
    assert after - before < MEMORY_GROWTH_KIB, f"PSS grew from {before} to {after} KiB"
    # the damage was seen as such: frames dropped, connections of the attackers closed and replaced
    assert stats["bad_frames"] > FRAMES // 2, stats
    assert stats["other_address"] > 0, stats


def test_session_limits_and_master_filtering(tmp_path):
    meter = Dnp3Meter(tmp_path, {"sessions": 2, "sessions_per_address": 1, "masters": [MASTER]})
    try:
        async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            sock = socket.socket()
            sock.bind((address, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", meter.port))
            return await asyncio.open_connection(sock=sock)

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, src: int) -> bytes:
            try:
                writer.write(frame(bytes((0xC0, 0xC0, 0x01, 0x3C, 0x01, 0x06)), src=src))
                await writer.drain()
                return await asyncio.wait_for(reader.read(4096), 1.0)
            except asyncio.TimeoutError:
                return b"(silent)"
            except ConnectionError:
                return b""

        async def go():
            r1, w1 = await connect("127.0.0.2")
            first = await answer(r1, w1, MASTER)
            refused_master = await answer(r1, w1, MASTER + 7)
            r2, w2 = await connect("127.0.0.3")
            second = await answer(r2, w2, MASTER)
            r3, w3 = await connect("127.0.0.5")                 # a third address: no session left
            third = await answer(r3, w3, MASTER)
            r4, w4 = await connect("127.0.0.2")                 # the first address again: replaces its own
            try:
                replaced = await asyncio.wait_for(r1.read(4096), 2.0)
            except ConnectionError:
                replaced = b""
            fourth = await answer(r4, w4, MASTER)
            for w in (w1, w2, w3, w4):
                w.close()
            return first, refused_master, second, third, replaced, fourth
        first, refused_master, second, third, replaced, fourth = run(go())
    finally:
        meter.close()
    assert first[:2] == b"\x05\x64" and second[:2] == b"\x05\x64" and fourth[:2] == b"\x05\x64"
    assert refused_master == b"(silent)"
    assert third == b""                                        # closed at once
    assert replaced == b""                                     # the old session of 127.0.0.2 was closed


def test_noise_and_stalled_frames_close_the_connection(tmp_path):
    meter = Dnp3Meter(tmp_path, {"frame_timeout": 0.5, "sessions": 4})
    try:
        async def closed_after(data: bytes, wait: float) -> float | None:
            reader, writer = await asyncio.open_connection("127.0.0.1", meter.port)
            t0 = time.monotonic()
            try:
                writer.write(data)
                await writer.drain()
                while await asyncio.wait_for(reader.read(4096), wait):
                    pass
                return time.monotonic() - t0
            except asyncio.TimeoutError:
                return None
            except ConnectionError:
                return time.monotonic() - t0
            finally:
                writer.close()

        async def go():
            noise = random.Random(7).randbytes(256 * 1024).replace(b"\x05\x64", b"\x00\x00")
            stalled = frame(bytes(200))[:60]                   # a frame's first octets, the rest never sent
            return await closed_after(noise, 5.0), await closed_after(stalled, 5.0)
        noise_closed, stall_closed = run(go())
        stats = ControlClient(meter.run_dir / "comms.sock").call("stats")["dnp3"]["tcp"]
    finally:
        meter.close()
    assert noise_closed is not None and stats["closed_bad_frames"] >= 1, stats
    assert stall_closed is not None and 0.4 < stall_closed < 2.0 and stats["frame_timeouts"] >= 1, stats


def test_only_allowed_hosts_are_served(tmp_path):
    meter = Dnp3Meter(tmp_path, {"allowed_hosts": ["127.0.0.2"]}, wait_tcp=False)
    try:
        async def ask(address: str) -> bytes:
            sock = socket.socket()
            sock.bind((address, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", meter.port))
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                writer.write(LINK_STATUS_REQUEST)
                await writer.drain()
                return await asyncio.wait_for(reader.read(4096), 5.0)
            except ConnectionError:
                return b""
            finally:
                writer.close()

        async def go():
            deadline = time.monotonic() + 60
            while True:                          # the service is up once the allowed host is answered
                try:
                    allowed = await ask("127.0.0.2")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            return allowed, await ask("127.0.0.3")
        allowed, other = run(go())
    finally:
        meter.close()
    assert allowed.startswith(LINK_STATUS_ANSWER)
    assert other == b""
