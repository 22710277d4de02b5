"""A meter started by ``meter run --only ...`` on the simulated board, for the io service's tests."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from firmware.control import ControlClient
from firmware.ipc import shm
from firmware.ipc.names import instance_name
from hal.errors import MeterError
from hal.sim.wire import RUN_DIR_NAME as SIM_WIRE_DIR
from hal.sim.wire import Wire
from tests.conftest import REPO

START_TIMEOUT_S = 60.0


class IoMeter:
    def __init__(self, root: Path, extra_config: str = "", services: str = "io") -> None:
        self.root = root
        self.data = root / "var"
        self.run_dir = root / "run"
        self.config = root / "meter.toml"
        self.services = services
        self.config.write_text(f"""
[meter]
data_dir = "{self.data}"
run_dir = "{self.run_dir}"
[log]
file = false
level = "warning"
[supervisor]
heartbeat_timeout = 60
restart_backoff_min = 0.05
restart_backoff_max = 0.2
[upgrade]
revenue_lock_file = "{self.data / 'revenue_lock'}"
[revenue.inputs]
sim_dir = "{self.data / 'inputs'}"
{extra_config}
""")
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = ControlClient(self.run_dir / "control.sock", timeout_s=10.0, user="tester")
        self.wire = Wire(self.run_dir / SIM_WIRE_DIR)

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.root / "meter.log", "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config),
                                          "--board", str(REPO / "boards" / "sim.toml"), "--only", self.services],
                                         cwd=REPO, env=env, start_new_session=True, stdout=out,
                                         stderr=subprocess.STDOUT)
        first = self.services.split(",")[-1]
        self.wait(lambda: self.call(f"{first}.ping") == "pong")

    def call(self, cmd: str, **args: Any) -> Any:
        return self.client.call(cmd, **args)

    def wait(self, cond: Callable[[], Any], timeout_s: float = START_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = cond()
                if value:
                    return value
            except (MeterError, OSError) as exc:
                last = exc
            time.sleep(0.05)
        log = (self.root / "meter.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"timed out ({last}); meter log:\n{log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        instance = instance_name(self.run_dir)
        for path in shm.SHM_DIR.glob(f"{instance}.*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
