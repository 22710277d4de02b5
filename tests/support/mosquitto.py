"""mosquitto on 127.0.0.1 at a free port for tests, with persistence in a private directory so that a
restart keeps sessions and queued QoS 1/2 messages, as a fleet's broker does."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def mosquitto_path() -> str:
    path = shutil.which("mosquitto") or next((p for p in MOSQUITTO_CANDIDATES if os.path.exists(p)), None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto missing: .ci/run installs it (Debian package 'mosquitto')")
        pytest.skip("needs mosquitto (apt-get install mosquitto; .ci/run installs it)")
    return path


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, directory: Path, port: int | None = None, extra: list[str] | None = None) -> None:
        self.exe = mosquitto_path()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_tcp_port()
        self.conf = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {self.dir}/", "autosave_interval 1", "max_queued_messages 0",
                 "max_inflight_messages 0", "log_dest stderr", "log_type error", "log_type warning",
                 *(extra or [])]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.log = open(self.dir / "mosquitto.log", "a")  # noqa: SIM115 - open while the broker runs, closed in stop()
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start: {(self.dir / 'mosquitto.log').read_text()}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.log.close()

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
