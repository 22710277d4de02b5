"""Shared pieces of the Modbus integration tests: a real snapshot, the server on its own event loop thread,
free loopback ports, and an mbpoll runner."""
from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import threading
import uuid
from typing import Any, Awaitable, Callable

import pytest

from firmware.comms.modbus.feed import SnapshotFeed
from firmware.comms.modbus.handler import Access, Handler
from firmware.comms.modbus.ident import Identity
from firmware.comms.modbus.regmap import build_map
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout

IDENTITY = Identity("OpenMeter", "OM-CM4", "0.1.0", "https://example.invalid", "OpenMeter revenue meter",
                    "OM-CM4-ADE9000", "test-meter", "SIM-000042")

# A plausible published record: 230 V class, 50 Hz, a few kW, energies in Wh.
VALUES = {
    "v_an": 230.12, "v_bn": 229.87, "v_cn": 231.05, "v_ab": 398.6, "v_bc": 399.1, "v_ca": 400.2,
    "v_ll_avg": 399.3, "v_ln_avg": 230.35, "i_a": 12.5, "i_b": 11.75, "i_c": 13.0, "i_n": 0.62,
    "i_avg": 12.42, "p_a": 2750.0, "p_b": 2600.5, "p_c": 2900.25, "p_total": 8250.75, "q_a": 410.0,
    "q_b": 390.0, "q_c": 420.0, "q_total": 1220.0, "s_a": 2780.4, "s_b": 2629.6, "s_c": 2930.5,
    "s_total": 8340.5, "pf_total": 0.9893, "frequency": 50.012, "frequency_1cycle": 49.987,
    "wh_delivered": 123_456_789.4,
    "wh_received": 1_234.0, "wh_del_plus_rec": 123_458_023.4, "wh_del_minus_rec": 123_455_555.4,
    "varh_delivered": 9_876_543.0, "varh_received": 12.0, "varh_del_plus_rec": 9_876_555.0,
    "varh_del_minus_rec": 9_876_531.0, "vah_delivered": 125_000_000.0, "vah_received": 1_300.0,
    "vah_del_plus_rec": 125_001_300.0, "vah_del_minus_rec": 124_998_700.0, "revenue_locked": 0.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopThread:
    """An asyncio loop on a thread, so tests can call blocking clients (mbpoll, pymodbus sync) against it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Meter:
    """A real snapshot plus the Modbus handler reading it, and the commands that reached the 'owning service'."""

    def __init__(self, access: Access = Access.READ_WRITE,
                 run_command: Callable[[Any, dict[str, Any]], Awaitable[Any]] | None = None) -> None:
        self.snapshot = Snapshot.create(f"test-modbus-{uuid.uuid4().hex[:12]}", snapshot_layout())
        self.snapshot.publish(VALUES)
        self.ran: list[str] = []
        self.args: list[dict[str, Any]] = []

        async def record(cmd: Any, args: dict[str, Any]) -> None:
            self.ran.append(cmd.point)
            self.args.append(args)

        self.handler = Handler(build_map(),
                               SnapshotFeed(self.snapshot, IDENTITY.register_values()).poll, IDENTITY, access,
                               run_command or record)

    def close(self) -> None:
        self.snapshot.close()
        self.snapshot.unlink()


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (Debian package '{tool}'; .ci/run installs it)")


MBPOLL_VALUE = re.compile(r"^\[(\d+)\]:\s+(\S+)", re.M)


def mbpoll(*args: str, timeout: float = 10.0) -> dict[int, str]:
    """Run mbpoll once (-1) with PDU addressing (-0); {address: value text} of what it printed."""
    need("mbpoll")
    proc = subprocess.run(["mbpoll", "-1", "-0", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"mbpoll {' '.join(args)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return {int(a): v for a, v in MBPOLL_VALUE.findall(proc.stdout)}


def mbpoll_raw(*args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    need("mbpoll")
    return subprocess.run(["mbpoll", "-1", "-0", *args], capture_output=True, text=True, timeout=timeout)


class SocatPair:
    """Two linked pseudo-terminals made by socat: the meter opens ``meter``, the client opens ``client``."""

    def __init__(self, directory: str) -> None:
        import os
        import time

        need("socat")
        self.meter, self.client = f"{directory}/meter-tty", f"{directory}/client-tty"
        self.proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={self.meter}",
                                      f"pty,raw,echo=0,link={self.client}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (os.path.exists(self.meter) and os.path.exists(self.client)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"socat did not make its pty pair: {self.proc.stderr.read()!r}")
            time.sleep(0.01)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


class Bus:
    """An RS-485 line for pseudo-terminals: every byte one endpoint sends reaches every other endpoint,
    as on a shared two-wire line (no collisions are modelled: the master speaks, one server answers)."""

    def __init__(self, endpoints: int) -> None:
        import os

        self.masters, self.slaves, self.paths = [], [], []
        for _ in range(endpoints):
            # Each user's pyserial sets raw mode and the framing itself (a pty set raw first then
            # refuses a parity change with EINVAL).
            master, slave = os.openpty()
            self.masters.append(master)
            self.slaves.append(slave)       # held open so the line never hangs up between users
            self.paths.append(os.ttyname(slave))
        self._stop_r, self._stop_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import os
        import select

        while True:
            ready, _, _ = select.select([*self.masters, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                for other in self.masters:
                    if other != fd:
                        os.write(other, data)

    def close(self) -> None:
        import os

        os.write(self._stop_w, b"x")
        self.thread.join(5)
        for fd in [*self.masters, *self.slaves, self._stop_r, self._stop_w]:
            os.close(fd)
