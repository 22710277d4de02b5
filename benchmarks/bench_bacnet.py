"""BACnet/IP: ReadPropertyMultiple of the 83 analog inputs' Present_Value, this meter's device against a bare
bacpypes3 device with 83 static analog inputs, same run.

The device does not segment (Max_APDU 480, as the S4100), so one poll of all 83 inputs is RPM requests of
``PER_REQUEST`` inputs each. ``POLLERS`` clients in this process poll back to back for a fixed time; each server
runs in its own process, the meter's reading a real measurement snapshot republished once a second. Reported:
complete 83-input polls per second, the best of ``ROUNDS`` rounds that alternate between the two devices (both
servers run throughout, so a machine whose load drifts, as a shared CI host does, loads both alike). Target: at
least 80 % of the bare device's rate.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

from benchmarks.bench_modbus import _free_port

AI_COUNT = 83
PER_REQUEST = 21              # 21 REAL results fit a 480-octet ReadPropertyMultiple-ACK; 4 requests a poll
POLLERS = 4
DURATION_S = float(os.environ.get("BENCH_BACNET_SECONDS", "3"))
ROUNDS = 3
TARGET_RATIO = 0.8
DEVICE_INSTANCE = 4242


async def _serve_ours(port: int, snapshot_name: str, data_dir: str) -> None:
    from pathlib import Path

    from firmware.comms.bacnet.app import BacnetApp
    from firmware.config import meter_schema
    from firmware.ipc.snapshot import Snapshot

    config = meter_schema().load({"bacnet": {"enabled": True, "ip_port": port, "bind_address": "127.0.0.1",
                                             "ip_prefix": 32, "device_instance": DEVICE_INSTANCE},
                                  "meter": {"data_dir": data_dir, "run_dir": data_dir}})
    snapshot = Snapshot.attach(snapshot_name, timeout_s=10)
    app = BacnetApp(config, Path(data_dir) / "meter.toml", snapshot, Path(data_dir) / "control.sock",
                    Path(data_dir))
    await app.start()
    await asyncio.Event().wait()


async def _serve_bare(port: int) -> None:
    from bacpypes3.app import Application
    from bacpypes3.ipv4.link import NormalLinkLayer
    from bacpypes3.local.analog import AnalogInputObject
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.pdu import IPv4Address

    dev = DeviceObject(objectIdentifier=("device", DEVICE_INSTANCE), objectName="bare", vendorIdentifier=999,
                       maxApduLengthAccepted=480, segmentationSupported="no-segmentation")
    objs = [dev] + [AnalogInputObject(objectIdentifier=("analog-input", i), objectName=f"AI{i}",
                                      presentValue=float(i), statusFlags=[0, 0, 0, 0], eventState="normal",
                                      outOfService=False, units="volts", covIncrement=0.0)
                    for i in range(1, AI_COUNT + 1)]
    app = Application.from_object_list(objs)
    address = IPv4Address(f"127.0.0.1/32:{port}")
    link = NormalLinkLayer(address)
    app.link_layers[dev.objectIdentifier] = link
    app.nsap.bind(link, address=address)
    await asyncio.Event().wait()


def _start(kind: str, port: int, snapshot_name: str, data_dir: str):
    import subprocess
    import tempfile

    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process that writes it
    return subprocess.Popen([sys.executable, "-m", "benchmarks.bench_bacnet", "--serve", kind, "--port", str(port),
                             "--snapshot", snapshot_name, "--data-dir", data_dir],
                            stdout=subprocess.DEVNULL, stderr=log), log


async def _load(client, port: int) -> float:
    from bacpypes3.pdu import Address
    from bacpypes3.primitivedata import ObjectIdentifier

    target = Address(f"127.0.0.1:{port}")
    chunks = [list(range(first, min(first + PER_REQUEST, AI_COUNT + 1)))
              for first in range(1, AI_COUNT + 1, PER_REQUEST)]

    async def poll() -> None:
        for chunk in chunks:
            request: list = []
            for i in chunk:
                request += [ObjectIdentifier(f"analog-input,{i}"), ["present-value"]]
            result = await client.read_property_multiple(target, request)
            if len(result) != len(chunk):
                raise RuntimeError(f"RPM answered {len(result)} of {len(chunk)} values")

    deadline = time.monotonic() + 20
    while True:                                   # wait for the server to answer
        try:
            await asyncio.wait_for(poll(), 2)
            break
        except (asyncio.TimeoutError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer") from None
    polls = 0

    async def poller(stop_at: float) -> None:
        nonlocal polls
        while time.perf_counter() < stop_at:
            await poll()
            polls += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(poller(t0 + DURATION_S) for _ in range(POLLERS)))
    return polls / (time.perf_counter() - t0)


def _measure(snapshot) -> tuple[float, float]:
    """(bare, ours): the best rate of each over alternating rounds."""
    import tempfile

    from tests.integration.bacnet_support import client_app

    ports = {"bare": _free_port(), "ours": _free_port()}
    with tempfile.TemporaryDirectory() as data_dir:
        servers = {kind: _start(kind, port, snapshot.name, data_dir) for kind, port in ports.items()}

        async def run() -> dict[str, float]:
            async def publish() -> None:
                k = 0
                while True:
                    k += 1
                    snapshot.publish({"v_an": 230.0 + 0.01 * k, "i_a": 5.0, "wh_delivered": 1e6 + k})
                    await asyncio.sleep(1.0)

            task = asyncio.get_running_loop().create_task(publish())
            client, _ = await client_app()
            best = {"bare": 0.0, "ours": 0.0}
            try:
                for _ in range(ROUNDS):
                    for kind in ("bare", "ours"):
                        best[kind] = max(best[kind], await _load(client, ports[kind]))
                return best
            finally:
                task.cancel()
                client.close()

        try:
            best = asyncio.run(run())
        except Exception:
            for proc, log in servers.values():
                log.seek(0)
                print(log.read().decode()[-2000:], file=sys.stderr)
            raise
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    return best["bare"], best["ours"]


def main() -> dict[str, float]:
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snapshot = Snapshot.create(f"bench-bacnet-{uuid.uuid4().hex[:10]}", snapshot_layout())
    try:
        snapshot.publish({"v_an": 230.0, "i_a": 5.0})
        bare, ours = _measure(snapshot)
    finally:
        snapshot.close()
        snapshot.unlink()
    print(f"{POLLERS} pollers, RPM of AI1..AI{AI_COUNT} Present_Value in requests of {PER_REQUEST}, "
          f"best of {ROUNDS} alternating rounds of {DURATION_S:g} s")
    print(f"{'device':<30}{'polls/s':>10}{'AI values/s':>14}")
    for label, rate in (("bare bacpypes3 (static)", bare), ("meter (snapshot, 1 Hz)", ours)):
        print(f"{label:<30}{rate:>10.1f}{rate * AI_COUNT:>14.0f}")
    ratio = ours / bare
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio meter / bare: {ratio:.2f} ({verdict} the target of {TARGET_RATIO:.2f})")
    return {"ratio": ratio, "ours_polls_per_s": ours, "bare_polls_per_s": bare}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("ours", "bare"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--snapshot", default="")
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()
    if args.serve == "ours":
        asyncio.run(_serve_ours(args.port, args.snapshot, args.data_dir))
    elif args.serve == "bare":
        asyncio.run(_serve_bare(args.port))
    else:
        main()
