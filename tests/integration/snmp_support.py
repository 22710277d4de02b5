"""The SNMP tests' rig: the comms service as the supervisor runs it (Modbus TCP and the SNMP agent on
loopback) over a snapshot the test publishes, and Debian's net-snmp tools as the managers and the trap
receiver (``snmpget``, ``snmpwalk``, ``snmpbulkwalk``, ``snmptrapd``: packages snmp, snmptrapd)."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from firmware.comms.snmp import mib
from firmware.comms.snmp.ber import oid
from firmware.config.sections.snmp import DEFAULT_ENTERPRISE_OID
from firmware.ipc.names import instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from tests.integration.modbus_support import VALUES, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
ENTERPRISE = oid(DEFAULT_ENTERPRISE_OID)
OBJECTS = mib.objects_root(ENTERPRISE)
TOOL_TIMEOUT_S = 30.0
START_TIMEOUT_S = 90.0           # the comms service on a busy 2-core host
SNMP_VALUE = re.compile(r"^(\.[0-9.]+) = (?:([A-Za-z0-9 -]+): )?(.*)$", re.M)


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (Debian package '{package}'; .ci/run installs it)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_env(tmp: Path) -> dict[str, str]:
    """net-snmp's tools with no configuration or MIBs of the host, their persistent files under ``tmp``."""
    (tmp / "persist" / "cert_indexes").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "SNMPCONFPATH": str(tmp), "SNMP_PERSISTENT_DIR": str(tmp / "persist"), "MIBS": "",
            "MIBDIRS": str(tmp)}


class SnmpMeter:
    def __init__(self, tmp_path: Path, snmp: dict[str, Any] | None = None) -> None:
        self.tmp = tmp_path
        self.run_dir = tmp_path / "run"
        self.run_dir.mkdir()
        self.data_dir = tmp_path / "data"
        self.port, self.modbus_port = free_udp_port(), free_port()
        self.config = tmp_path / "meter.toml"
        section = {"enabled": True, "port": self.port, "bind_address": "127.0.0.1",
                   "user": [{"name": "monitor", "auth": "SHA-256"}, {"name": "auditor", "auth": "SHA-512"}],
                   **(snmp or {})}
        self.config.write_text(tomli_w.dumps({
            "meter": {"data_dir": str(self.data_dir), "run_dir": str(self.run_dir), "serial_number": "SIM-161"},
            "log": {"file": False},
            "modbus": {"tcp_port": self.modbus_port, "bind_address": "127.0.0.1"},
            "upgrade": {"revenue_lock_file": str(tmp_path / "revenue_lock")},
            "snmp": section,
        }))
        self.snapshot = Snapshot.create(f"{instance_name(self.run_dir)}.measurements", snapshot_layout())
        self.snapshot.publish(VALUES)
        self.env = tool_env(tmp_path)
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.services.comms", "--config", str(self.config),
                                      "--board", str(ROOT / "boards" / "sim.toml"), "--run-dir", str(self.run_dir)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.run_dir / "comms.sock").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out = self.proc.stdout.read().decode()  # type: ignore[union-attr]
                raise AssertionError(f"comms service did not start: {out}")
            time.sleep(0.05)
        stored = json.loads((self.data_dir / "snmp" / "secrets.json").read_text())
        self.community = stored["community"]
        self.secrets = stored["users"]
        self.engine = json.loads((self.data_dir / "snmp" / "engine.json").read_text())

    @property
    def target(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    def v2c(self, community: str | None = None) -> list[str]:
        return ["-v2c", "-c", self.community if community is None else community]

    def v3(self, user: str = "monitor", auth: str | None = None, priv: str | None = None,
           protocol: str = "SHA-256") -> list[str]:
        return ["-v3", "-l", "authPriv", "-u", user, "-a", protocol,
                "-A", auth or self.secrets.get(user, {}).get("auth", "no-such-secret"),
                "-x", "AES", "-X", priv or self.secrets.get(user, {}).get("priv", "no-such-secret")]

    def tool(self, name: str, security: list[str], *args: str, retries: int = 1,
             timeout: float = 5.0) -> subprocess.CompletedProcess:
        need(name, "snmp")
        return subprocess.run([name, *security, "-On", "-t", str(timeout), "-r", str(retries), self.target, *args],
                              capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=self.env)

    def values(self, name: str, security: list[str], *args: str, timeout: float = 5.0) -> dict[str, tuple[str, str]]:
        """{OID: (type, value)} that ``name`` printed; a failing tool is an assertion naming its output."""
        proc = self.tool(name, security, *args, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"{name} {' '.join(args)}: {proc.returncode} {proc.stdout}{proc.stderr}")
        return {o: (t or "", v) for o, t, v in SNMP_VALUE.findall(proc.stdout)}

    def counter(self, name: str) -> int:
        instance = "." + ".".join(map(str, mib.COUNTERS[name]))
        return int(self.values("snmpget", self.v3(), instance)[instance][1])

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def close(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.snapshot.close()
        self.snapshot.unlink()
        return out.decode(errors="replace")


def instance(point: str) -> str:
    """The dotted OID of a catalogue point's instance."""
    o = next(o for o in mib.meter_objects(ENTERPRISE) if o.point.name == point)
    return "." + ".".join(map(str, o.oid + (0,)))


class TrapReceiver:
    """snmptrapd on a loopback port, logging each notification it accepts as one line of its varbinds."""

    def __init__(self, tmp: Path, port: int, lines: list[str]) -> None:
        need("snmptrapd", "snmptrapd")
        self.tmp = tmp
        self.log = tmp / f"trapd-{port}.log"
        conf = tmp / f"trapd-{port}.conf"
        conf.write_text("\n".join(lines + ["disableAuthorization no", ""]))
        env = tool_env(tmp)
        self.proc = subprocess.Popen(
            ["snmptrapd", "-f", "-C", "-c", str(conf), "-On", "-Lf", str(self.log), "-F",
             "NOTIFICATION %v\n", "-p", str(tmp / f"trapd-{port}.pid"), f"udp:127.0.0.1:{port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while "NET-SNMP version" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"snmptrapd did not start: {self.text()}")
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def notifications(self) -> list[str]:
        return [line for line in self.text().splitlines() if line.startswith("NOTIFICATION ")]

    def wait(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.notifications()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.notifications()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
