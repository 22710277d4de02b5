"""The supervisor sleeps until its next deadline, and what must be acted on at once ends the sleep: a restart or
shutdown asked on the control socket (from its threads), a signal. No test times it: a sleep of 600 s that
such an event did not end would hang the test."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from firmware.config.store import ConfigStore
from firmware.services.registry import ServiceSpec
from firmware.supervisor import HANG_MARGIN_S, IDLE_CHECK_S, Supervisor

LONG_S = 600.0


@pytest.fixture
def supervisor(tmp_path):
    config_path = tmp_path / "meter.toml"
    config_path.write_text(f'[meter]\ndata_dir = "{tmp_path / "var"}"\nrun_dir = "{tmp_path / "run"}"\n'
                           '[supervisor]\nheartbeat_timeout = 5.0\n')
    specs = [ServiceSpec(name, "tests.support.ticker_service", "test ticker") for name in ("a", "b")]
    return Supervisor(ConfigStore(config_path).load(), config_path, Path("boards/sim.toml"), specs)


@pytest.mark.parametrize("ask", ["restart", "shutdown"])
def test_a_command_from_a_control_thread_ends_the_sleep(supervisor, ask):
    call = (lambda: supervisor.cmd_restart("a")) if ask == "restart" else supervisor.cmd_shutdown
    threading.Timer(0.05, call).start()
    assert supervisor._poll(LONG_S) is True


def test_a_signal_ends_the_sleep(supervisor):
    supervisor._on_signal(signal.SIGTERM, None)
    assert supervisor._poll(LONG_S) is True and supervisor._stop


def test_the_next_deadline_is_the_earliest_heartbeat_timeout_or_restart(supervisor):
    a, b = supervisor.children["a"], supervisor.children["b"]
    a.state, a.last_heartbeat = "running", 100.0
    b.state, b.restart_at = "backoff", 101.5
    assert supervisor._next_due(101.0) == pytest.approx(101.5)
    b.state = "failed"
    assert supervisor._next_due(101.0) == pytest.approx(101.0 + IDLE_CHECK_S)
    a.last_heartbeat = 96.5                   # its 5-s heartbeat timeout comes before the idle look
    assert supervisor._next_due(101.0) == pytest.approx(101.5 + HANG_MARGIN_S)
