"""End to end: the boot guard runs `meter run` from a slot; upgrades arrive over the control socket
and the command line; a good one is committed, a crashing one and a never-healthy one fall back.

Images are built from copies of this repository (the real application), so the slot's supervisor
and services are the real ones, run from the slot directory.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.control import ControlClient
from firmware.upgrade.installer import provision
from firmware.upgrade.log import UpgradeLog
from firmware.upgrade.slots import SlotLayout
from tests.integration.upgrade_env import REPO, copy_repo, make_env
from tools.image.build import build_image
from tools.image.keys import load_private_key, sign_image

HEALTH_DEADLINE_S = 40.0      # the never-healthy slot waits this long; the real ones need a few seconds
START_TIMEOUT_S = 60.0


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")


def status_of(sock: Path) -> dict | None:
    try:
        return ControlClient(sock, timeout_s=2.0).call("status")
    except Exception:  # noqa: BLE001 - no answer while the meter restarts
        return None


@pytest.fixture
def meter(tmp_path):
    env = make_env(tmp_path, provision_version=None)
    run_dir, data_dir = tmp_path / "run", tmp_path / "data"
    s = env.settings
    config = tmp_path / "meter.toml"
    config.write_text(
        f'[meter]\nrun_dir = "{run_dir}"\ndata_dir = "{data_dir}"\n'
        f'[upgrade]\nroot = "{s.root}"\nstate_dir = "{s.state_dir}"\ntrust_store = "{s.trust_store}"\n'
        f'revenue_lock_file = "{s.revenue_lock_file}"\nhealth_deadline = {HEALTH_DEADLINE_S}\nhealth_poll = 0.2\n'
        # Not the device's 443/80 on every interface in a test; the web has tests of its own.
        '[web]\nmode = "disabled"\n')
    board = REPO / "boards" / "sim.toml"
    if not board.exists():
        board = tmp_path / "sim-board.toml"
        board.write_text('name = "sim"\n')

    def image(version: str, patch: dict[str, str] | None = None) -> Path:
        tree = copy_repo(tmp_path / f"src-{version}", patch)
        out = tmp_path / "images" / f"openmeter-{version}.img"
        build_image(tree, out, version=version, epoch=1_700_000_000)
        sign_image(out, load_private_key(env.key_path))
        return out

    provision(env.settings, image("1.0.0"))
    guard = subprocess.Popen([sys.executable, "-m", "firmware.upgrade.guard", "--config", str(config),
                              "--board", str(board)], cwd=tmp_path)
    yield env, config, run_dir / "control.sock", image, guard
    if guard.poll() is None:
        guard.send_signal(signal.SIGTERM)
        guard.wait(30)


def test_upgrade_commit_and_automatic_fallbacks(meter):
    env, config, sock, image, guard = meter
    layout = SlotLayout(env.settings.root, env.settings.state_dir)
    log = UpgradeLog(env.settings.state_dir)
    first = wait_for(lambda: (s := status_of(sock)) and s["healthy"] and s, START_TIMEOUT_S, "a healthy meter")
    assert (layout.current(), layout.good()) == ("a", "a")

    # 1. A good image over the control socket: accepted, switched, restarted, healthy, committed.
    reply = ControlClient(sock, timeout_s=30.0).call("upgrade.install", path=str(image("2.0.0")))
    assert reply["accepted"] and reply["slot"] == "b" and reply["version"] == "2.0.0"
    outcome = wait_for(lambda: log.outcome(reply["attempt"]), HEALTH_DEADLINE_S + START_TIMEOUT_S, "a commit")
    assert outcome["event"] == "committed", outcome
    assert (layout.current(), layout.good(), layout.floor()) == ("b", "b", "2.0.0")
    second = wait_for(lambda: (s := status_of(sock)) and s["healthy"] and s, START_TIMEOUT_S, "healthy on b")
    assert second["pid"] != first["pid"]                   # the meter was restarted into the new slot
    events = [r["event"] for r in log.entries(reply["attempt"])]
    assert events[:2] == ["attempt", "accepted"] and "trial" in events and events[-1] == "committed"
    client = ControlClient(sock, timeout_s=30.0)
    progress = client.call("upgrade.progress", attempt=reply["attempt"])
    assert progress["state"] == "committed" and [r["event"] for r in progress["log"]] == events
    state = client.call("upgrade.status")
    assert (state["current"], state["good"], state["installed_version"], state["revenue_locked"]) == \
        ("b", "b", "2.0.0", False)
    assert client.call("upgrade.log", n=3)[-1]["event"] == "committed"

    # A refusal over the control socket says why, and changes nothing.
    refusal = ControlClient(sock, timeout_s=30.0).request("upgrade.install", {"path": str(image("1.5.0"))})
    assert not refusal["ok"] and refusal["error"].startswith("refused (downgrade)")

    # 2. A slot whose meter exits at once: rolled back to b by the guard, from the command line.
    crash = image("3.0.0", {"firmware/cli/__main__.py": "import sys\n\nsys.exit(3)\n"})
    done = subprocess.run([sys.executable, "-m", "firmware.cli", "image", "install", str(crash), "--config",
                           str(config), "--wait"], capture_output=True, text=True, timeout=180)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1 and result["outcome"] == "rolled_back", done.stderr
    assert "exited with code 3" in result["message"]
    assert (layout.current(), layout.good(), layout.floor()) == ("b", "b", "2.0.0")
    wait_for(lambda: (s := status_of(sock)) and s["healthy"] and s, START_TIMEOUT_S, "healthy on b again")

    # 3. A slot that runs but never reports healthy (its upgrade service fails at start-up): rolled back as
    #    soon as the supervisor gives that service up, without waiting for the health deadline.
    broken = (REPO / "firmware/services/upgrade.py").read_text().replace(
        "    def setup(self) -> None:\n", "    def setup(self) -> None:\n        raise RuntimeError('broken build')\n", 1)
    assert "broken build" in broken
    reply = ControlClient(sock, timeout_s=30.0).call("upgrade.install",
                                                    path=str(image("3.0.1", {"firmware/services/upgrade.py": broken})))
    outcome = wait_for(lambda: log.outcome(reply["attempt"]), HEALTH_DEADLINE_S + START_TIMEOUT_S, "a fallback")
    assert outcome["event"] == "rolled_back", outcome
    assert "upgrade failed (the supervisor gave up restarting)" in outcome["message"], outcome
    assert (layout.current(), layout.good(), layout.version("b")) == ("b", "b", "2.0.0")
    wait_for(lambda: (s := status_of(sock)) and s["healthy"] and s, START_TIMEOUT_S, "healthy after fallback")

    # The guard stops cleanly with the meter.
    guard.send_signal(signal.SIGTERM)
    assert guard.wait(30) == 0
    assert status_of(sock) is None
    assert not layout.guard_pid_file.exists()
