"""Modbus TCP: this meter's server against a bare pymodbus server with a static datastore, same run.

Eight concurrent clients each read the 112-register block 2999..3110 (FC 3) back to back for a fixed time.
Each server runs in its own process; the clients share one asyncio loop in this process and speak raw MBAP, so
the client side costs the same for both. The meter's server reads a real measurement snapshot that is
republished ten times a second (each publish re-encodes the register image). Target: at least 80 % of the bare
server's request rate.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

CLIENTS = 8
START, COUNT = 2999, 112
DURATION_S = float(os.environ.get("BENCH_MODBUS_SECONDS", "5"))
PUBLISH_HZ = 10.0
TARGET_RATIO = 0.8
REQUEST = struct.pack(">BHH", 3, START, COUNT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- servers (child processes)

async def _serve_ours(port: int, snapshot_name: str) -> None:
    from firmware.comms.modbus.app import PRODUCT_NAME
    from firmware.comms.modbus.feed import SnapshotFeed
    from firmware.comms.modbus.handler import Access, Handler
    from firmware.comms.modbus.ident import Identity
    from firmware.comms.modbus.regmap import build_map
    from firmware.comms.modbus.tcp import ModbusTcpServer
    from firmware.ipc.snapshot import Snapshot

    identity = Identity("OpenMeter", "OM", "bench", "", PRODUCT_NAME, "OM", "bench", "BENCH")
    snapshot = Snapshot.attach(snapshot_name, timeout_s=10)
    handler = Handler(build_map(), SnapshotFeed(snapshot, identity.register_values()).poll, identity,
                      Access.READ_ONLY)
    server = ModbusTcpServer(handler, "127.0.0.1", port, max_connections=CLIENTS + 1)  # + the readiness probe
    await server.start()
    await asyncio.Event().wait()


async def _serve_bare(port: int) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    device = SimDevice(id=0, simdata=[SimData(START, count=COUNT, values=0x4366, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    await server.serve_forever()


def _start(kind: str, port: int, snapshot_name: str = "") -> subprocess.Popen:
    # stderr to a file, never an unread pipe: a server that logs must not stall on a full pipe.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process that writes it
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_modbus", "--serve", kind, "--port", str(port),
                             "--snapshot", snapshot_name], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{kind} server exited: {log.read().decode()}")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not listen on {port}")


# ---------------------------------------------------------------------------- clients

async def _client(port: int, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    tid = 0
    expected = 9 + 2 * COUNT
    while time.perf_counter() < stop_at:
        tid = (tid + 1) & 0xFFFF
        t0 = time.perf_counter()
        writer.write(struct.pack(">HHHB", tid, 0, 6, 1) + REQUEST)
        reply = await reader.readexactly(expected)
        latencies.append(time.perf_counter() - t0)
        if reply[7:9] != bytes((3, 2 * COUNT)) or struct.unpack(">H", reply[:2])[0] != tid:
            raise RuntimeError(f"bad answer {reply[:12].hex()}")
    writer.close()


async def _load(port: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    t0 = time.perf_counter()
    stop_at = t0 + DURATION_S
    await asyncio.gather(*(_client(port, stop_at, latencies) for _ in range(CLIENTS)))
    return len(latencies) / (time.perf_counter() - t0), latencies


def _measure(kind: str, snapshot=None) -> tuple[float, float, float]:
    port = _free_port()
    proc = _start(kind, port, snapshot.name if snapshot is not None else "")

    async def run() -> tuple[float, list[float]]:
        async def publish() -> None:
            k = 0
            while True:
                k += 1
                snapshot.publish({"v_an": 230.0 + 0.01 * k, "i_a": 5.0, "wh_delivered": 1e6 + k})
                await asyncio.sleep(1 / PUBLISH_HZ)

        task = asyncio.get_running_loop().create_task(publish()) if snapshot is not None else None
        try:
            return await _load(port)
        finally:
            if task is not None:
                task.cancel()

    try:
        rate, latencies = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(10)
    ms = np.array(latencies) * 1e3
    return rate, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> dict[str, float]:
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snapshot = Snapshot.create(f"bench-modbus-{uuid.uuid4().hex[:10]}", snapshot_layout())
    try:
        snapshot.publish({"v_an": 230.0, "i_a": 5.0})
        bare = _measure("bare")
        ours = _measure("ours", snapshot)
    finally:
        snapshot.close()
        snapshot.unlink()
    print(f"{CLIENTS} clients, FC 3 {START}..{START + COUNT - 1} ({COUNT} registers), {DURATION_S:g} s each")
    print(f"{'server':<28}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for label, (rate, p50, p99) in (("bare pymodbus (static)", bare), ("meter (snapshot, 10 Hz)", ours)):
        print(f"{label:<28}{rate:>12.0f}{p50:>10.2f}{p99:>10.2f}")
    ratio = ours[0] / bare[0]
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio meter / bare: {ratio:.2f} ({verdict} the target of {TARGET_RATIO:.2f})")
    return {"ratio": ratio, "ours_rps": ours[0], "bare_rps": bare[0]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("ours", "bare"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--snapshot", default="")
    args = parser.parse_args()
    if args.serve == "ours":
        asyncio.run(_serve_ours(args.port, args.snapshot))
    elif args.serve == "bare":
        asyncio.run(_serve_bare(args.port))
    else:
        main()
