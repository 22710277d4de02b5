"""A running meter serving DLMS (TCP wrapper and HDLC on a socat pty pair), and the clients of another
library (dlms-cosem) that read it as a head-end does."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import structlog
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.client import DlmsClient
from dlms_cosem.io import BlockingTcpIO, HdlcTransport, SerialIO, TcpTransport
from dlms_cosem.security import (
    HighLevelSecurityGmacAuthentication,
    LowLevelSecurityAuthentication,
    NoSecurityAuthentication,
)

from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
from firmware.ipc.snapshot import Snapshot

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
PHYSICAL_ADDRESS = 17
CLIENT_TITLE = b"HEADEND1"
IMAGE_SIGNATURE = bytes(range(64))

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attribute(interface: enumerations.CosemInterface, obis: str, attr: int) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(interface=interface, instance=cosem.Obis.from_string(obis), attribute=attr)


def value(client: DlmsClient, interface: enumerations.CosemInterface, obis: str, attr: int = 2) -> Any:
    return utils.parse_as_dlms_data(client.get(attribute(interface, obis, attr)))


class DlmsMeter:
    """`meter run` (acquisition, metrology, comms, time) with DLMS on a free loopback port and on a pty."""

    def __init__(self, base: Path) -> None:
        if shutil.which("socat") is None:
            raise RuntimeError("socat is needed (the CI installs it)")
        self.base, self.run_dir, self.data_dir = base, base / "run", base / "var"
        self.port, self.modbus = free_port(), free_port()
        self.meter_tty, self.client_tty = base / "meter-tty", base / "client-tty"
        self.socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={self.meter_tty}",
                                       f"pty,raw,echo=0,link={self.client_tty}"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not (self.meter_tty.exists() and self.client_tty.exists()):
            assert time.monotonic() < deadline, "socat made no ptys"
            time.sleep(0.05)
        # an installed image's slot, as the upgrade service leaves it: its signature is the firmware signature
        slot = base / "upgrade" / "slots" / "a"
        (slot / "signatures").mkdir(parents=True)
        (slot / "signatures" / "0123456789abcdef.sig").write_bytes(IMAGE_SIGNATURE)
        os.symlink(slot, base / "upgrade" / "current")
        self.config = base / "meter.toml"
        self.config.write_text(
            f'[meter]\nname = "dlms-test"\nserial_number = "SN-DLMS-7"\ndata_dir = "{self.data_dir}"\n'
            f'run_dir = "{self.run_dir}"\n'
            f'[modbus]\ntcp_port = {self.modbus}\nbind_address = "127.0.0.1"\n'
            '[web]\nmode = "disabled"\n[revenue]\ndemand_reset_lockout = 0\n'
            f'[upgrade]\nroot = "{base / "upgrade"}"\nstate_dir = "{base / "upgrade" / "state"}"\n'
            f'[dlms]\nenabled = true\ntcp_port = {self.port}\nbind_address = "127.0.0.1"\nlls = true\n'
            'max_connections = 8\nmax_connections_per_address = 2\n'
            f'[dlms.hdlc]\nenabled = true\nport = "{self.meter_tty}"\nrs485 = false\nbaud = 115200\n'
            f'physical_address = {PHYSICAL_ADDRESS}\n')
        self.log = open(base / "meter.out", "w+")  # noqa: SIM115 - the meter writes it while the tests read it
        self.env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config), "--board",
             str(REPO / "boards" / "sim.toml"), "--only", "acquisition,metrology,comms,time"],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()[-4000:]
            try:
                snap = Snapshot.attach(shm_name(instance_name(self.run_dir), MEASUREMENTS))
                try:
                    published = snap.read_array()[2]
                finally:
                    snap.close()
                if published >= 3 and "dlms-tcp:" in self.output():
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                        return
            except Exception:  # noqa: BLE001 - polled until the meter answers
                pass
            time.sleep(0.5)
        raise AssertionError(f"meter not ready within {STARTUP_TIMEOUT_S} s:\n{self.output()[-4000:]}")

    def keys(self) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "firmware.cli", "dlms", "keys", "--json", "--config",
                               str(self.config)], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def meter(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "firmware.cli", *args, "--config", str(self.config)],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60)

    def comms_pid(self) -> int:
        """The comms service's process: the meter's child named meter-comms."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == self.proc.pid and name == "meter-comms":
                pids.append(int(entry.name))
        assert len(pids) == 1, (pids, self.output()[-2000:])
        return pids[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.socat.terminate()
        self.socat.wait(10)
        self.log.close()

    # ------------------------------------------------------------------ clients (dlms-cosem)

    def tcp(self, client_sap: int, port: int | None = None) -> TcpTransport:
        return TcpTransport(client_logical_address=client_sap, server_logical_address=1,
                            io=BlockingTcpIO(host="127.0.0.1", port=port or self.port, timeout=10), timeout=10)

    def hdlc(self, client_sap: int) -> HdlcTransport:
        return HdlcTransport(client_logical_address=client_sap, server_logical_address=1,
                             server_physical_address=PHYSICAL_ADDRESS, extended_addressing=True,
                             io=SerialIO(port_name=str(self.client_tty), baud_rate=115200, timeout=10), timeout=10)

    def public(self, transport: Any = None) -> DlmsClient:
        return DlmsClient(transport=transport or self.tcp(16), authentication=NoSecurityAuthentication(),
                          timeout=10)

    def lls(self, password: bytes, transport: Any = None) -> DlmsClient:
        return DlmsClient(transport=transport or self.tcp(1),
                          authentication=LowLevelSecurityAuthentication(secret=password), timeout=10)

    def hls(self, ek: bytes, ak: bytes, transport: Any = None, invocation_counter: int = 0) -> DlmsClient:
        return DlmsClient(transport=transport or self.tcp(1),
                          authentication=HighLevelSecurityGmacAuthentication(challenge_length=32),
                          encryption_key=ek, authentication_key=ak, client_system_title=CLIENT_TITLE,
                          security_suite=0, client_initial_invocation_counter=invocation_counter, timeout=10)

    def management(self) -> DlmsClient:
        keys = self.keys()
        return self.hls(bytes.fromhex(keys["ek"]), bytes.fromhex(keys["ak"]))
