"""Shared pieces of the DNP3 tests: the comms service in its own process with the outstation on a loopback port,
a control socket standing in for the owning services (recording what ran), and a master of another
implementation (dnp3py) to poll it."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import tomli_w

from firmware.control import ControlServer
from firmware.ipc.names import instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from hal.errors import MeterError
from tests.integration.modbus_support import VALUES, free_port

ROOT = Path(__file__).resolve().parents[2]
OUTSTATION = 4
MASTER = 3
START_TIMEOUT_S = 90.0           # the comms service's start, on a machine shared with other jobs
DNP3_VALUES = {**VALUES, "time_synced": 0.0, "test_mode": 0.0, "alarm_active": 0.0, "power_up_count": 7.0,
               "wh_delivered_frozen": 120_000_000.0, "wh_received_frozen": 1_000.0, "freeze_time": 1.7e9,
               "status_word": float(1 << 13), "di_state": [1.0, 0.0] * 8}
# The control commands a test meter's owning services answer (metrology, io, time).
SERVED = ("metrology.demand_reset", "metrology.billing_reset", "metrology.energy_reset", "metrology.demand_sync",
          "metrology.freeze", "io.ack", "io.reset_counts", "time.set")


class Dnp3Meter:
    """The comms service with DNP3 on, fed by a real snapshot; ``ran`` lists (control, args) it sent."""

    def __init__(self, tmp_path: Path, dnp3: dict[str, Any] | None = None, wait_tcp: bool = True) -> None:
        self.run_dir = tmp_path / "run"
        self.run_dir.mkdir()
        self.port = free_port()
        section = {"enabled": True, "tcp_port": self.port, "bind_address": "127.0.0.1", "address": OUTSTATION,
                   "access": "read-write", "scan_interval": 0.1, **(dnp3 or {})}
        config = tmp_path / "meter.toml"
        config.write_text(tomli_w.dumps({
            "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(self.run_dir), "serial_number": "SIM-1"},
            "log": {"file": False},
            "modbus": {"tcp_port": free_port(), "bind_address": "127.0.0.1"},
            "dnp3": section,
        }))
        self.snapshot = Snapshot.create(f"{instance_name(self.run_dir)}.measurements", snapshot_layout())
        self.snapshot.publish(DNP3_VALUES)
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.refuse: dict[str, str] = {}          # control -> the error its owning service answers with
        self.control = ControlServer(self.run_dir / "control.sock", {name: self._handler(name) for name in SERVED})
        self.control.start()
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.services.comms", "--config", str(config),
                                      "--board", str(ROOT / "boards" / "sim.toml"), "--run-dir", str(self.run_dir)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self._listening() if wait_tcp else (self.run_dir / "comms.sock").exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"comms service did not start: {self.output()}")
            time.sleep(0.05)

    def _handler(self, name: str) -> Any:
        def handler(user: str = "", **args: Any) -> str:
            if name in self.refuse:
                raise MeterError(self.refuse[name])
            self.ran.append((name, args))
            return "done"
        return handler

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def publish(self, **values: Any) -> None:
        self.snapshot.publish(values)

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stdout is not None
        return self.proc.stdout.read().decode(errors="replace")

    def pss_kib(self) -> int:
        total = 0
        with open(f"/proc/{self.proc.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        return total

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.control.stop()
        self.snapshot.close()
        self.snapshot.unlink()


@asynccontextmanager
async def master(port: int, address: int = MASTER, timeout: float = 5.0) -> AsyncIterator[Any]:
    """A dnp3py master connected to the outstation; yields (runner, handler)."""
    from dnp3.master import DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner

    handler = DefaultSOEHandler()
    config = MasterConfig(address=address, outstation_address=OUTSTATION, response_timeout=timeout)
    runner = MasterTcpRunner(master=Master(handler=handler, config=config), host="127.0.0.1", port=port)
    await runner.open()
    try:
        yield runner, handler
    finally:
        await runner.close()


def forget(soe: Any) -> None:
    """Clear what the master's handler holds (its properties hand out copies)."""
    for name in ("_binary_inputs", "_binary_outputs", "_analog_inputs", "_counters", "_frozen_counters"):
        getattr(soe, name).clear()


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def env_has_tshark() -> bool:
    return any(os.access(os.path.join(d, "tshark"), os.X_OK) for d in os.environ.get("PATH", "").split(":"))
