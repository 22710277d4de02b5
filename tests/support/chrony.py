"""chronyd on loopback for tests: an NTP server whose served time the test can step, and the meter's chronyd.

Both run with ``-x`` (the system clock is never touched) and ``-d`` (foreground), each with its command
socket, pid file and files in a private directory, UDP only on 127.0.0.1 at a free port. As root they keep
root (``-u root``); otherwise ``-U`` lets an unprivileged user start them (no privileged port is bound:
``cmdport 0`` and an unprivileged NTP port). The server's clock is shifted by libfaketime (Debian package
``faketime``) reading an offset file on every call, so ``step()`` changes the served time at once.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/faketime/libfaketimeMT.so.1")
CHRONYD_CANDIDATES = ("/usr/sbin/chronyd", "/sbin/chronyd")


def _chronyd() -> str | None:
    return shutil.which("chronyd") or next((p for p in CHRONYD_CANDIDATES if os.path.exists(p)), None)


def require_chrony() -> tuple[str, str]:
    chronyd, chronyc = _chronyd(), shutil.which("chronyc")
    faketime = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if not chronyd or not chronyc or not faketime:
        if os.environ.get("CI"):
            pytest.fail("chronyd, chronyc or libfaketime missing: .ci/run installs chrony and faketime")
        pytest.skip("needs chrony and faketime (apt-get install chrony faketime; .ci/run installs them)")
    return chronyd, faketime


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_args() -> list[str]:
    return ["-u", "root"] if os.geteuid() == 0 else ["-U", "-u", getpass.getuser()]


class Chronyd:
    """One chronyd in ``directory``; ``socket`` is its command socket for chronyc -h."""

    def __init__(self, directory: Path, lines: list[str], env: dict[str, str] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.socket = str(self.dir / "chronyd.sock")
        conf = [f"pidfile {self.dir / 'chronyd.pid'}", f"bindcmdaddress {self.socket}", "cmdport 0",
                f"driftfile {self.dir / 'drift'}", *lines]
        (self.dir / "chrony.conf").write_text("\n".join(conf) + "\n")
        chronyd, _ = require_chrony()
        self.log = open(self.dir / "chronyd.log", "w")  # noqa: SIM115 - open while chronyd runs, closed in stop()
        self.proc = subprocess.Popen([chronyd, "-x", "-d", *_user_args(), "-f", str(self.dir / "chrony.conf")],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"chronyd did not start: {(self.dir / 'chronyd.log').read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class SteppableServer:
    """A stratum-1 chronyd serving NTP on 127.0.0.1:port with a clock offset the test sets."""

    def __init__(self, directory: Path) -> None:
        _, faketime = require_chrony()
        self.port = free_udp_port()
        self.offset_file = directory / "offset"
        self.offset_file.parent.mkdir(parents=True, exist_ok=True)
        self.offset_file.write_text("+0\n")
        env = {"LD_PRELOAD": faketime, "FAKETIME_TIMESTAMP_FILE": str(self.offset_file), "FAKETIME_NO_CACHE": "1"}
        self.daemon = Chronyd(directory, [f"port {self.port}", "bindaddress 127.0.0.1", "allow 127.0.0.1",
                                          "local stratum 1"], env)

    def step(self, seconds: float) -> None:
        """Serve time shifted by ``seconds`` from the real clock (a step of the served time)."""
        self.offset_file.write_text(f"{seconds:+g}\n")

    def stop(self) -> None:
        self.daemon.stop()


class MeterChronyd(Chronyd):
    """The meter's chronyd: sources from ``sourcedir`` (the file the time service writes), fast polling."""

    def __init__(self, directory: Path, makestep: float = 1.0) -> None:
        self.sources_dir = directory / "sources.d"
        self.sources_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(directory, ["port 0", f"sourcedir {self.sources_dir}", f"makestep {makestep:g} -1"])
