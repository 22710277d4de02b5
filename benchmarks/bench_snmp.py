"""SNMP: Gets per second (v2c and v3 authPriv), the time of a whole-MIB walk, and the agent's memory, against a
bare UDP responder measured in the same run.

Each server runs in its own process: the meter's agent (``SnmpApp`` on a real measurement snapshot) and a bare
asyncio UDP endpoint that answers every datagram with one fixed, pre-encoded Response (the floor any Python agent
on this loop stands on). ``WINDOW`` Get requests are kept in flight for ``DURATION_S``; reported: answers a
second, the ratio to the bare responder's (targets: v2c at least ``TARGET_V2C``, v3 at least ``TARGET_V3`` of
it; v3 pays HMAC-SHA-256 and AES on both sides), the wall time of net-snmp's ``snmpbulkwalk`` of the whole tree
(v3, from the first arc; target under ``TARGET_WALK_S``) and the RSS the agent adds to its process (target under
``TARGET_RSS_KIB``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DURATION_S = float(os.environ.get("BENCH_SNMP_SECONDS", "3"))
WINDOW = 8
TARGET_V2C, TARGET_V3 = 0.3, 0.1
TARGET_WALK_S = 2.0
TARGET_RSS_KIB = 8 * 1024
GET_NAMES = ("v_an", "i_a", "p_total", "frequency", "wh_delivered")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve_ours(port: int, snapshot_name: str, data_dir: str) -> None:
    import cryptography.hazmat.primitives.ciphers  # noqa: F401 - loaded in the comms service either way

    import firmware.comms.modbus.app  # noqa: F401 - the comms service holds Modbus already
    from firmware.config import meter_schema
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import load_points

    load_points()
    config = meter_schema().load({"snmp": {"enabled": True, "port": port, "bind_address": "127.0.0.1",
                                           "rate": 10000, "burst": 10000, "user": [{"name": "bench"}]},
                                  "meter": {"data_dir": data_dir}})
    snapshot = Snapshot.attach(snapshot_name, timeout_s=10)
    before = _rss_kib()
    from firmware.comms.snmp.app import SnmpApp

    app = SnmpApp.from_snapshot(config, data_dir, snapshot)
    await app.start()
    (Path(data_dir) / "rss.json").write_text(json.dumps({"added_kib": _rss_kib() - before}))
    await asyncio.Event().wait()


async def _serve_bare(port: int) -> None:
    from firmware.comms.snmp import ber
    from firmware.comms.snmp import pdu as P

    answer = P.encode_community(P.V2C, b"bench", P.Pdu(P.RESPONSE, 1, 0, 0, [
        (ber.oid("1.3.6.1.4.1.32473.1.1.1.%d.0" % i), ber.encode_int(23012)) for i in range(1, 6)]))

    class Bare(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(answer, addr)  # type: ignore[attr-defined]

    await asyncio.get_running_loop().create_datagram_endpoint(Bare, local_addr=("127.0.0.1", port))
    await asyncio.Event().wait()


def _requests(kind: str, data_dir: str, count: int) -> list[bytes]:
    """Pre-encoded Gets of GET_NAMES: v2c with the meter's community, or v3 authPriv as user bench."""
    from firmware.comms.snmp import ber, mib
    from firmware.comms.snmp import pdu as P
    from firmware.comms.snmp.usm import AUTH_PROTOCOLS, UserKeys

    objects = {o.point.name: o for o in mib.meter_objects(ber.oid("1.3.6.1.4.1.32473"))}
    binds = [(objects[n].oid + (0,), ber.NULL_VALUE) for n in GET_NAMES]
    secrets = json.loads((Path(data_dir) / "snmp" / "secrets.json").read_text())
    if kind != "v3":
        return [P.encode_community(P.V2C, secrets["community"].encode(), P.Pdu(P.GET, i, 0, 0, binds))
                for i in range(count)]
    engine = json.loads((Path(data_dir) / "snmp" / "engine.json").read_text())
    engine_id, boots = bytes.fromhex(engine["engine_id"]), int(engine["boots"])
    user = secrets["users"]["bench"]
    keys = UserKeys.make("bench", AUTH_PROTOCOLS["SHA-256"], user["auth"], user["priv"], engine_id)
    out = []
    for i in range(count):
        scoped, salt = keys.encrypt(P.encode_scoped(engine_id, b"", P.Pdu(P.GET, i, 0, 0, binds)), boots, 0)
        params = P.UsmParameters(engine_id, boots, 0, b"bench", bytes(24), salt)
        message, offset = P.encode_v3(i, 1472, 7, params, scoped, True)
        out.append(message[:offset] + keys.sign(message) + message[offset + 24:])
    return out


def _load(port: int, requests: list[bytes]) -> float:
    """Answers a second with WINDOW requests in flight, for DURATION_S."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    target = ("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 20
        while True:                                        # the server answers before the clock starts
            s.sendto(requests[0], target)
            try:
                s.recv(4096)
                break
            except socket.timeout:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not answer") from None
        answered, k = 0, 0
        for _ in range(WINDOW):
            s.sendto(requests[k % len(requests)], target)
            k += 1
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < DURATION_S:
            try:
                s.recv(4096)
            except socket.timeout:                         # a lost datagram: refill the window
                for _ in range(WINDOW):
                    s.sendto(requests[k % len(requests)], target)
                    k += 1
                continue
            answered += 1
            s.sendto(requests[k % len(requests)], target)
            k += 1
        return answered / (time.perf_counter() - t0)
    finally:
        s.close()


def _walk(port: int, data_dir: str) -> tuple[float, int]:
    secrets = json.loads((Path(data_dir) / "snmp" / "secrets.json").read_text())["users"]["bench"]
    t0 = time.perf_counter()
    proc = subprocess.run(["snmpbulkwalk", "-v3", "-l", "authPriv", "-u", "bench", "-a", "SHA-256", "-A",
                           secrets["auth"], "-x", "AES", "-X", secrets["priv"], "-On", "-Cr50",
                           f"udp:127.0.0.1:{port}", ".1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": data_dir, "SNMPCONFPATH": data_dir})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"snmpbulkwalk failed: {proc.stderr}")
    return elapsed, len(proc.stdout.splitlines())


def main() -> dict[str, float]:
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snapshot = Snapshot.create(f"bench-snmp-{uuid.uuid4().hex[:10]}", snapshot_layout())
    values = {p: 100.0 + random.random() for p, _ in snapshot_layout()}
    snapshot.publish(values)
    ports = {"ours": _free_udp_port(), "bare": _free_udp_port()}
    servers = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            for kind, port in ports.items():
                servers.append(subprocess.Popen([sys.executable, "-m", "benchmarks.bench_snmp", "--serve", kind,
                                                 "--port", str(port), "--snapshot", snapshot.name, "--data-dir",
                                                 data_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 30
            while not (Path(data_dir) / "rss.json").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the agent did not start")
                time.sleep(0.1)
            bare = _load(ports["bare"], _requests("v2c", data_dir, 64))
            v2c = _load(ports["ours"], _requests("v2c", data_dir, 64))
            v3 = _load(ports["ours"], _requests("v3", data_dir, 256))
            walk_s, walked = _walk(ports["ours"], data_dir) if shutil.which("snmpbulkwalk") else (float("nan"), 0)
            added = json.loads((Path(data_dir) / "rss.json").read_text())["added_kib"]
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(10)
            snapshot.close()
            snapshot.unlink()
    print(f"Gets of {len(GET_NAMES)} objects, {WINDOW} in flight, {DURATION_S:g} s each")
    print(f"{'server':<36}{'gets/s':>10}{'ratio':>8}{'target':>8}")
    print(f"{'bare UDP responder (fixed answer)':<36}{bare:>10.0f}")
    for label, rate, target in (("agent, v2c", v2c, TARGET_V2C), ("agent, v3 authPriv SHA-256/AES", v3, TARGET_V3)):
        verdict = "" if rate / bare >= target else "  MISSES"
        print(f"{label:<36}{rate:>10.0f}{rate / bare:>8.2f}{target:>8.2f}{verdict}")
    print(f"whole-tree snmpbulkwalk (v3, 50 a request): {walked} instances in {walk_s:.2f} s "
          f"({'meets' if walk_s < TARGET_WALK_S else 'MISSES'} the target of {TARGET_WALK_S:g} s)")
    print(f"RSS the agent adds to its process: {added / 1024:.1f} MiB "
          f"({'meets' if added < TARGET_RSS_KIB else 'MISSES'} the target of {TARGET_RSS_KIB / 1024:g} MiB)")
    return {"bare_gets_per_s": bare, "v2c_gets_per_s": v2c, "v3_gets_per_s": v3, "v2c_ratio": v2c / bare,
            "v3_ratio": v3 / bare, "walk_s": walk_s, "added_rss_kib": added}


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
