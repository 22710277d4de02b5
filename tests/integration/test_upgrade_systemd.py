"""The systemd units: valid for systemd, and their command lines really run the guard and the fallback.

The commands are taken from the unit files and run with the device paths mapped into a temporary
directory (/opt/openmeter -> slot root, /var/lib/openmeter -> data directory) and the slot's venv
interpreter replaced by this test's interpreter (the test slots carry no bundled dependencies).
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.upgrade.log import UpgradeLog
from tests.integration.test_upgrade_e2e import status_of, wait_for
from tests.integration.upgrade_env import REPO, copy_repo, make_env

UNITS = REPO / "firmware" / "systemd"


def exec_line(unit: str, key: str = "ExecStart") -> str:
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{unit} has no {key}")


def localise(command: str, env, config: Path, board: Path | None = None) -> list[str]:
    command = (command.replace("/var/lib/openmeter/meter.toml", str(config))
               .replace("/opt/openmeter", str(env.settings.root))
               .replace('"$slot/venv/bin/python"', sys.executable))
    if board is not None:
        command = command.replace("boards/cm4-ade9000.toml", str(board))
    assert command.startswith("/bin/sh -c '") and command.endswith("'")
    return ["/bin/sh", "-c", command[len("/bin/sh -c '"):-1]]


def write_config(env, tmp_path: Path) -> Path:
    s = env.settings
    config = tmp_path / "meter.toml"
    config.write_text(
        f'[meter]\nrun_dir = "{tmp_path / "run"}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[upgrade]\nroot = "{s.root}"\nstate_dir = "{s.state_dir}"\ntrust_store = "{s.trust_store}"\n'
        f'revenue_lock_file = "{s.revenue_lock_file}"\nhealth_poll = 0.2\n')
    return config


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze(tmp_path):
    for unit in ("meter.service", "meter-rollback.service"):
        shutil.copy(UNITS / unit, tmp_path / unit)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "meter.service"),
                           str(tmp_path / "meter-rollback.service")], capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if "meter" in line and "User" not in line]
    assert done.returncode == 0 or not problems, done.stderr


def test_meter_service_references_the_rollback_unit_and_watchdog():
    text = (UNITS / "meter.service").read_text()
    assert "OnFailure=meter-rollback.service" in text and "WatchdogSec=" in text and "Type=notify" in text
    assert "RuntimeWatchdogSec=" in (UNITS / "system.conf.d" / "10-meter-watchdog.conf").read_text()


def test_rollback_unit_command_falls_back_to_the_good_slot(tmp_path):
    env = make_env(tmp_path)
    env.installer().install(env.image("0.2.0"))
    assert (env.layout.current(), env.layout.good()) == ("b", "a")
    config = write_config(env, tmp_path)
    subprocess.run(localise(exec_line("meter-rollback.service"), env, config), cwd=tmp_path, check=True,
                   timeout=60)
    assert (env.layout.current(), env.layout.good(), env.layout.trial()) == ("a", "a", None)
    last = UpgradeLog(env.settings.state_dir).entries()[-1]
    assert last["event"] == "rolled_back" and "failed repeatedly" in last["message"]


def test_meter_service_command_runs_the_meter_from_the_slot_and_notifies_systemd(tmp_path):
    env = make_env(tmp_path, provision_version=None)
    from firmware.upgrade.installer import provision

    provision(env.settings, env.image("1.0.0", tree=copy_repo(tmp_path / "src")))
    config = write_config(env, tmp_path)
    board = REPO / "boards" / "sim.toml"
    if not board.exists():
        board = tmp_path / "sim-board.toml"
        board.write_text('name = "sim"\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    proc = subprocess.Popen(localise(exec_line("meter.service"), env, config, board), cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                                 "HOME": str(tmp_path)})
    try:
        sock = tmp_path / "run" / "control.sock"
        status = wait_for(lambda: (s := status_of(sock)) and s["healthy"] and s, 60, "a healthy meter")
        assert status["services"] is not None
        messages: set[str] = set()
        deadline = time.monotonic() + 10
        while not {"READY=1", "WATCHDOG=1"} <= messages and time.monotonic() < deadline:
            with contextlib.suppress(socket.timeout):
                messages.add(notify.recv(256).decode())
        assert {"READY=1", "WATCHDOG=1"} <= messages
    finally:
        proc.send_signal(signal.SIGTERM)      # the sh -c execs the guard, so this reaches it directly
        assert proc.wait(30) == 0
        notify.close()
