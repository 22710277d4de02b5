"""DLMS/COSEM: GETs per second over the TCP wrapper, plain (management client, LLS) and ciphered (HLS-GMAC,
AES-GCM both ways), against a bare TCP responder measured in the same run, and the memory the server adds.

Each server runs in its own process: the meter's (``DlmsApp`` on a real measurement snapshot) and a bare asyncio
TCP server that answers every wrapper frame with one fixed, pre-encoded GET response (the floor any Python
server on this loop stands on). One client sends a GET of a register's value and waits for the answer, for
``DURATION_S``; reported: answers a second, their ratio to the bare responder's (targets: plain at least
``TARGET_PLAIN``, ciphered at least ``TARGET_CIPHERED`` of it), and the RSS the server adds to its process
(target under ``TARGET_RSS_KIB``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

DURATION_S = float(os.environ.get("BENCH_DLMS_SECONDS", "3"))
TARGET_PLAIN, TARGET_CIPHERED = 0.2, 0.1
TARGET_RSS_KIB = 8 * 1024
GET_ENERGY = bytes.fromhex("c001c100030100010800ff0200")       # Register 1.0.1.8.0.255, value
CLIENT_TITLE = b"BENCH001"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frame(apdu: bytes, source: int = 1) -> bytes:
    return b"\x00\x01" + source.to_bytes(2, "big") + b"\x00\x01" + len(apdu).to_bytes(2, "big") + apdu


async def _serve_ours(port: int, snapshot_name: str, data_dir: str) -> None:
    import firmware.comms.modbus.app  # noqa: F401 - the comms service holds Modbus already
    from firmware.config import meter_schema
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import load_points

    load_points()
    config = meter_schema().load({"dlms": {"enabled": True, "tcp_port": port, "bind_address": "127.0.0.1",
                                           "lls": True}, "meter": {"data_dir": data_dir}})
    snapshot = Snapshot.attach(snapshot_name, timeout_s=10)
    before = _rss_kib()
    from firmware.comms.dlms.app import DlmsApp

    app = DlmsApp(config, snapshot, Path(data_dir) / "control.sock", Path(data_dir))
    await app.start()
    (Path(data_dir) / "rss.json").write_text(json.dumps({"added_kib": _rss_kib() - before}))
    await asyncio.Event().wait()


async def _serve_bare(port: int) -> None:
    answer = _frame(bytes.fromhex("c401c100140000000000bc614e"))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(8)
                await reader.readexactly(int.from_bytes(header[6:8], "big"))
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _read(s: socket.socket) -> bytes:
    got = b""
    while len(got) < 8 or len(got) < 8 + int.from_bytes(got[6:8], "big"):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        got += chunk
    return got[8:]


def _associate(s: socket.socket, kind: str, keys: dict[str, str]) -> dict[str, object]:
    """An association of the management client; for HLS the state the ciphered GETs need."""
    from firmware.comms.dlms import security

    initiate = bytes.fromhex("01000000065f1f040060fe9fffff")
    if kind == "lls":
        password = keys["lls_password"].encode()
        body = (b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01" + b"\x8a\x02\x07\x80"
                + b"\x8b\x07\x60\x85\x74\x05\x08\x02\x01" + b"\xac" + bytes([len(password) + 2]) + b"\x80"
                + bytes([len(password)]) + password + b"\xbe" + bytes([len(initiate) + 2]) + b"\x04"
                + bytes([len(initiate)]) + initiate)
        s.sendall(_frame(b"\x60" + bytes([len(body)]) + body))
        _read(s)
        return {}
    ek, ak = bytes.fromhex(keys["ek"]), bytes.fromhex(keys["ak"])
    sealed = security.seal(0x30, CLIENT_TITLE, 1, ek, ak, initiate)
    glo = b"\x21" + bytes([5 + len(sealed)]) + b"\x30" + (1).to_bytes(4, "big") + sealed
    body = (b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x03" + b"\xa6\x0a\x04\x08" + CLIENT_TITLE
            + b"\x8a\x02\x07\x80" + b"\x8b\x07\x60\x85\x74\x05\x08\x02\x05" + b"\xac\x0a\x80\x08" + b"12345678"
            + b"\xbe" + bytes([len(glo) + 2]) + b"\x04" + bytes([len(glo)]) + glo)
    s.sendall(_frame(b"\x60" + bytes([len(body)]) + body))
    aare = _read(s)
    stoc = aare[aare.index(b"\xaa\x22\x80\x20") + 4:][:32]
    reply = security.hls_reply(CLIENT_TITLE, 2, ek, ak, stoc)
    action = bytes.fromhex("c301c1000f0000280000ff0101") + b"\x09" + bytes([len(reply)]) + reply
    s.sendall(_frame(security.general_glo(CLIENT_TITLE, 3, ek, ak, action)))
    _read(s)
    return {"ek": ek, "ak": ak, "ic": 4}


def _load(port: int, kind: str, keys: dict[str, str]) -> float:
    from firmware.comms.dlms import security

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = _associate(s, kind, keys) if kind != "bare" else {}
        answered = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < DURATION_S:
            if state:
                ic = int(state["ic"])                                   # type: ignore[call-overload]
                state["ic"] = ic + 1
                request = security.general_glo(CLIENT_TITLE, ic, state["ek"], state["ak"], GET_ENERGY)  # type: ignore[arg-type]
            else:
                request = GET_ENERGY
            s.sendall(_frame(request))
            _read(s)
            answered += 1
        return answered / (time.perf_counter() - t0)


def main() -> dict[str, float]:
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snapshot = Snapshot.create(f"bench-dlms-{uuid.uuid4().hex[:10]}", snapshot_layout())
    snapshot.publish({p: 100.0 + random.random() for p, _ in snapshot_layout()})
    ports = {"ours": _free_port(), "bare": _free_port()}
    servers = []
    with tempfile.TemporaryDirectory() as data_dir:
        try:
            for kind, port in ports.items():
                servers.append(subprocess.Popen([sys.executable, "-m", "benchmarks.bench_dlms", "--serve", kind,
                                                 "--port", str(port), "--snapshot", snapshot.name, "--data-dir",
                                                 data_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 30
            while not (Path(data_dir) / "rss.json").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the DLMS server did not start")
                time.sleep(0.1)
            keys = json.loads((Path(data_dir) / "dlms" / "keys.json").read_text())
            bare = _load(ports["bare"], "bare", keys)
            plain = _load(ports["ours"], "lls", keys)
            ciphered = _load(ports["ours"], "hls", keys)
            added = json.loads((Path(data_dir) / "rss.json").read_text())["added_kib"]
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait(10)
            snapshot.close()
            snapshot.unlink()
    print(f"GET of a register's value, one at a time, {DURATION_S:g} s each")
    print(f"{'server':<40}{'gets/s':>10}{'ratio':>8}{'target':>8}")
    print(f"{'bare TCP responder (fixed answer)':<40}{bare:>10.0f}")
    for label, rate, target in (("DLMS, management client (LLS)", plain, TARGET_PLAIN),
                                ("DLMS, HLS-GMAC, AES-GCM ciphered", ciphered, TARGET_CIPHERED)):
        verdict = "" if rate / bare >= target else "  MISSES"
        print(f"{label:<40}{rate:>10.0f}{rate / bare:>8.2f}{target:>8.2f}{verdict}")
    print(f"RSS the DLMS server adds to its process: {added / 1024:.1f} MiB "
          f"({'meets' if added < TARGET_RSS_KIB else 'MISSES'} the target of {TARGET_RSS_KIB / 1024:g} MiB)")
    return {"bare_gets_per_s": bare, "plain_gets_per_s": plain, "ciphered_gets_per_s": ciphered,
            "plain_ratio": plain / bare, "ciphered_ratio": ciphered / bare, "added_rss_kib": added}


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
