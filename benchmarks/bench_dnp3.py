"""DNP3: integrity polls of the full point list per second and their latency, against a bare TCP responder that
answers each poll with the same octets pre-encoded, in the same run; and the memory one session costs.

Each server runs in its own process: the meter's outstation (``Dnp3App`` on a real measurement snapshot,
republished ten times a second) and a bare asyncio server that answers every request with a fixed copy of the
outstation's own integrity-poll response (the floor any Python outstation on this loop stands on). ``SESSIONS``
masters (the default session limit) poll back to back for ``DURATION_S``, each poll reading class 1, 2, 3 and 0.
Reported: polls a second and the ratio to the bare responder's (target at least ``TARGET_RATIO``), p50/p99
latency, and the RSS the outstation's process grows by per open session after a poll (target under
``TARGET_SESSION_KIB``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

SESSIONS = 3
DURATION_S = float(os.environ.get("BENCH_DNP3_SECONDS", "5"))
PUBLISH_HZ = 10.0
TARGET_RATIO = 0.3
TARGET_SESSION_KIB = 512
OUTSTATION, MASTER = 1, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frame(user: bytes) -> bytes:
    from dnp3.datalink.builder import build_unconfirmed_user_data

    return build_unconfirmed_user_data(destination=OUTSTATION, source=MASTER, dir_from_master=True,
                                       user_data=user).to_bytes()


def _integrity(seq: int) -> bytes:
    """READ g60v2, g60v3, g60v4, g60v1 (qualifier 06), in one transport segment."""
    return _frame(bytes((0xC0 | (seq & 0x3F), 0xC0 | (seq & 0x0F), 0x01, 60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6)))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------- servers (child processes)

async def _serve_ours(port: int, snapshot_name: str) -> None:
    from firmware.comms.dnp3.app import Dnp3App
    from firmware.config import meter_schema
    from firmware.ipc.snapshot import Snapshot

    config = meter_schema().load({"dnp3": {"enabled": True, "tcp_port": port, "bind_address": "127.0.0.1",
                                           "address": OUTSTATION, "sessions": SESSIONS + 1,
                                           "sessions_per_address": SESSIONS + 1, "scan_interval": 0.1}})
    snapshot = Snapshot.attach(snapshot_name, timeout_s=10)
    app = Dnp3App(config, snapshot, Path(tempfile.gettempdir()) / "no-control.sock")
    await app.start()
    await asyncio.Event().wait()


async def _serve_bare(port: int, answer_file: str) -> None:
    answer = Path(answer_file).read_bytes()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            writer.write(answer)
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    await server.serve_forever()


def _start(kind: str, port: int, arg: str) -> subprocess.Popen:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process that writes it
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_dnp3", "--serve", kind, "--port", str(port),
                             "--arg", arg], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{kind} server exited: {log.read().decode()}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not listen on {port}")


# ---------------------------------------------------------------------------- masters

async def _poll(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seq: int) -> bytes:
    """One integrity poll; the response's octets (frames until the transport FIN), confirmed if asked."""
    writer.write(_integrity(seq))
    got = bytearray()
    pos = 0
    while True:
        got += await reader.read(65536)
        while pos + 10 <= len(got):
            user = got[pos + 2] - 5
            size = 10 + user + 2 * ((user + 15) // 16)
            if pos + size > len(got):
                break
            transport, ac = got[pos + 10], got[pos + 11]
            pos += size
            if transport & 0x40 and ac & 0x20:                # first segment of a fragment asking CON
                writer.write(_frame(bytes((0xC0 | ((seq + 32) & 0x3F), 0xC0 | (ac & 0x0F), 0x00))))
            if transport & 0x80 and pos == len(got):
                return bytes(got)


async def _master(port: int, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seq = 0
    while time.perf_counter() < stop_at:
        seq += 1
        t0 = time.perf_counter()
        await _poll(reader, writer, seq)
        latencies.append(time.perf_counter() - t0)
    writer.close()


async def _load(port: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_master(port, t0 + DURATION_S, latencies) for _ in range(SESSIONS)))
    return len(latencies) / (time.perf_counter() - t0), latencies


async def _session_cost(port: int, pid: int) -> float:
    """RSS growth of the server per session opened and polled once (KiB)."""
    before = _rss_kib(pid)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(SESSIONS)]
    for k, (reader, writer) in enumerate(conns):
        await _poll(reader, writer, k)
    await asyncio.sleep(0.3)
    after = _rss_kib(pid)
    for _, writer in conns:
        writer.close()
    return (after - before) / SESSIONS


def _measure(kind: str, arg: str, snapshot=None) -> tuple[float, float, float, float, bytes]:
    port = _free_port()
    proc = _start(kind, port, arg)

    async def run() -> tuple[float, list[float], float, bytes]:
        async def publish() -> None:
            while True:
                snapshot.publish({"v_an": 230.0, "i_a": 5.0, "wh_delivered": 1e6})
                await asyncio.sleep(1 / PUBLISH_HZ)

        task = asyncio.get_running_loop().create_task(publish()) if snapshot is not None else None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sample = await _poll(reader, writer, 0)
            writer.close()
            cost = await _session_cost(port, proc.pid)
            rate, latencies = await _load(port)
            return rate, latencies, cost, sample
        finally:
            if task is not None:
                task.cancel()

    try:
        rate, latencies, cost, sample = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(10)
    ms = np.array(latencies) * 1e3
    return rate, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), cost, sample


def main() -> dict[str, float]:
    from firmware.comms.dnp3.points import load
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snapshot = Snapshot.create(f"bench-dnp3-{uuid.uuid4().hex[:10]}", snapshot_layout())
    answer = Path(tempfile.mkstemp(prefix="bench-dnp3-")[1])
    try:
        snapshot.publish({"v_an": 230.0, "i_a": 5.0, "wh_delivered": 1e6})
        ours = _measure("ours", snapshot.name, snapshot)
        answer.write_bytes(ours[4])
        bare = _measure("bare", str(answer))
    finally:
        snapshot.close()
        snapshot.unlink()
        answer.unlink()
    print(f"{SESSIONS} masters, integrity polls (class 1, 2, 3, 0) of {len(load())} points "
          f"({len(ours[4])} octets a response), {DURATION_S:g} s each")
    print(f"{'server':<30}{'polls/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, row in (("bare responder (fixed octets)", bare), ("meter outstation", ours)):
        print(f"{label:<30}{row[0]:>10.0f}{row[1]:>10.2f}{row[2]:>10.2f}")
    ratio = ours[0] / bare[0]
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio meter / bare: {ratio:.2f} ({verdict} the target of {TARGET_RATIO:.2f})")
    verdict = "meets" if ours[3] < TARGET_SESSION_KIB else "MISSES"
    print(f"memory per session: {ours[3]:.0f} KiB RSS ({verdict} the target of {TARGET_SESSION_KIB} KiB)")
    return {"ratio": ratio, "ours_polls_s": ours[0], "bare_polls_s": bare[0], "session_kib": ours[3]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("ours", "bare"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--arg", default="")
    args = parser.parse_args()
    if args.serve == "ours":
        asyncio.run(_serve_ours(args.port, args.arg))
    elif args.serve == "bare":
        asyncio.run(_serve_bare(args.port, args.arg))
    else:
        main()
