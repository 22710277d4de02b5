"""A service the supervisor cannot start again (its interpreter is gone, or the kernel refuses a fork) goes to
backoff like a crash: the failed start closes each end of the new heartbeat pipe once and leaves the supervisor
running."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.config.store import ConfigStore
from firmware.services.registry import ServiceSpec
from firmware.supervisor import Supervisor


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _no_fork() -> int:
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))


@pytest.mark.parametrize("start, expected", [("exec", "could not start: [Errno 2] No such file or directory"),
                                             ("fork", "could not start: [Errno 11] Resource temporarily unavailable")])
def test_a_failed_start_after_an_earlier_process_goes_to_backoff(tmp_path, monkeypatch, start, expected):
    config_path = tmp_path / "meter.toml"
    config_path.write_text(f'[meter]\ndata_dir = "{tmp_path / "var"}"\nrun_dir = "{tmp_path / "run"}"\n'
                           f'[supervisor]\nstart = "{start}"\n')
    spec = ServiceSpec("ticker", "tests.support.ticker_service", "test ticker")
    supervisor = Supervisor(ConfigStore(config_path).load(), config_path, Path("boards/sim.toml"), [spec])
    child = supervisor.children["ticker"]
    child.proc = subprocess.Popen([sys.executable, "-c", "pass"])  # the process that ran before
    child.proc.wait()
    before = _open_fds()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    monkeypatch.setattr(os, "fork", _no_fork)
    supervisor._spawn(child)
    assert child.state == "backoff"
    assert child.last_exit.startswith(expected)
    assert child.pipe_r is None and _open_fds() == before
