"""Services forked from the preloaded supervisor (``[supervisor] start = "fork"``, the default) share its pages,
and keep nothing of the supervisor but their heartbeat pipe; started as new interpreters (``exec``) they share
none. Restart, hang and stop semantics in fork mode are those of tests/integration/test_supervisor.py, which
runs with the default."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.control import ControlClient

READY_TIMEOUT_S = 30.0
# What the supervisor imported before it forked (numpy, the configuration schema, the IPC, the service code)
# is some 20 MB of its heap even for the test service alone; a fresh interpreter shares no anonymous page.
FORK_SHARED_MIN_KB = 10 * 1024
EXEC_SHARED_MAX_KB = 1024


def _rollup(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {line.split()[0].rstrip(":"): int(line.split()[1]) for line in lines}


def _links(pid: int) -> dict[int, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return out


@pytest.fixture
def run_meter(tmp_path, subprocess_env):
    procs: list[subprocess.Popen] = []

    def start(mode: str) -> tuple[subprocess.Popen, int]:
        config = tmp_path / f"{mode}.toml"
        run_dir = tmp_path / f"run-{mode}"
        config.write_text(f'[meter]\ndata_dir = "{tmp_path / mode}"\nrun_dir = "{run_dir}"\n'
                          f'[supervisor]\nstart = "{mode}"\n')
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.run_supervisor", str(config), str(run_dir),
                                 "ticker"], env=subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(proc)
        client = ControlClient(run_dir / "control.sock", timeout_s=5)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ticker = client.call("status")["services"]["ticker"]
                if ticker["state"] == "running":
                    return proc, ticker["pid"]
            except Exception:  # noqa: BLE001 - polled until the supervisor answers
                pass
            time.sleep(0.05)
        raise AssertionError(f"ticker not running within {READY_TIMEOUT_S} s ({mode})")

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_a_forked_service_shares_the_supervisors_pages_and_an_execd_one_does_not(run_meter):
    _, forked = run_meter("fork")
    _, execd = run_meter("exec")
    shared_fork, shared_exec = _rollup(forked)["Shared_Dirty"], _rollup(execd)["Shared_Dirty"]
    assert shared_fork >= FORK_SHARED_MIN_KB, f"forked service shares only {shared_fork} kB with the supervisor"
    assert shared_exec <= EXEC_SHARED_MAX_KB, f"exec'd service shares {shared_exec} kB: it should share none"


def test_a_forked_service_keeps_only_its_heartbeat_pipe_of_the_supervisors_descriptors(run_meter):
    supervisor, child = run_meter("fork")
    assert Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(supervisor.pid)
    assert Path(f"/proc/{child}/comm").read_text().strip() == "meter-ticker"
    theirs, mine = _links(supervisor.pid), _links(child)
    assert mine[0] == os.devnull
    shared = {target for target in mine.values() if target.startswith(("socket:", "pipe:"))} & set(theirs.values())
    assert len(shared) == 1 and next(iter(shared)).startswith("pipe:"), \
        f"the child holds the supervisor's {sorted(shared)}; only its heartbeat pipe is expected"
