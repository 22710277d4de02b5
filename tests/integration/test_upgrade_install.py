"""Installer: each refusal with its reason and the running slot untouched; a good image installs."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from firmware.lockstate import set_file_lock
from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.guard import Guard
from tests.integration.upgrade_env import make_env, snapshot
from tools.image.keys import keygen


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


def refused(env, image, reason: str, **installer_kw) -> str:
    """Install must refuse with ``reason`` and leave every file of the slot root as it was."""
    before = snapshot(env.settings.root)
    installer = env.installer(**installer_kw)
    with pytest.raises(UpgradeRefused) as err:
        installer.install(image, user="tester")
    assert err.value.reason == reason, str(err.value)
    assert snapshot(env.settings.root) == before
    last = installer.log.entries()[-1]
    assert (last["event"], last["reason"], last["user"]) == ("refused", reason, "tester")
    return str(err.value)


def test_provisioned_meter(env):
    layout = env.layout
    assert (layout.current(), layout.good(), layout.version("a"), layout.floor()) == ("a", "a", "0.1.0", "0.1.0")
    assert layout.verify("a") == []


def test_flipped_byte_in_payload_is_refused(env):
    img = env.image("0.2.0")
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 0x40                   # inside the payload (the manifest is near the start)
    img.write_bytes(bytes(data))
    message = refused(env, img, "damaged")
    assert img.name in message


def test_flipped_byte_in_manifest_fails_the_signature(env):
    img = env.image("0.2.0")
    data = bytearray(img.read_bytes())
    at = data.index(b'"version": "0.2.0"') + len('"version": "0.2.0"') - 2
    data[at] ^= 0x01                               # 0.2.0 -> 0.2.1: a valid manifest, but not the signed one
    img.write_bytes(bytes(data))
    assert "altered after signing" in refused(env, img, "signature")


def test_truncated_image_is_refused(env):
    img = env.image("0.2.0")
    img.write_bytes(img.read_bytes()[:-3000])
    assert "truncated" in refused(env, img, "truncated")


def test_wrong_key_is_refused(env):
    other_key, _, other_kid = keygen(env.base / "intruder")
    img = env.image("0.2.0", key=other_key)
    message = refused(env, img, "untrusted")
    assert other_kid in message and env.key_id in message


def test_unsigned_image_is_refused(env):
    refused(env, env.image("0.2.0", sign=False), "unsigned")


def test_downgrade_and_same_version_are_refused(env):
    assert "installed version is 0.1.0" in refused(env, env.image("0.0.9"), "downgrade")
    refused(env, env.image("0.1.0"), "downgrade")


def test_below_anti_rollback_floor_is_refused(env):
    env.layout.raise_floor("0.5.0")
    assert "floor 0.5.0" in refused(env, env.image("0.3.0"), "floor")


def test_min_from_version_is_enforced(env):
    assert "upgrade from version 0.1.5" in refused(env, env.image("0.2.0", min_from_version="0.1.5"), "min_from")


def test_wrong_board_is_refused(env):
    message = refused(env, env.image("0.2.0", boards=["cm4-ade9000"]), "board")
    assert "'sim'" in message and "cm4-ade9000" in message


def test_locked_meter_is_refused_and_unlocking_allows_it(env):
    img = env.image("0.2.0")
    set_file_lock(env.settings.revenue_lock_file, True)
    assert "revenue lock is on" in refused(env, img, "locked")
    set_file_lock(env.settings.revenue_lock_file, False)
    assert env.installer().install(img)["slot"] == "b"


def test_lock_published_by_its_owner_is_honoured(env):
    """On a real board the switch is a GPIO owned by the revenue registers, which publish it in the measurement
    snapshot; the upgrade checks (service and CLI) read it there through firmware.lockstate."""
    from firmware.config import meter_schema
    from firmware.ipc.names import instance_name
    from firmware.ipc.snapshot import Snapshot
    from firmware.lockstate import revenue_locked
    from firmware.points import snapshot_layout

    run_dir = env.base / "run"
    config = meter_schema().load({"meter": {"run_dir": str(run_dir)},
                                  "upgrade": {"revenue_lock_file": str(env.settings.revenue_lock_file)}})
    snap = Snapshot.create(f"{instance_name(run_dir)}.measurements", snapshot_layout())
    try:
        snap.publish({"revenue_locked": 1.0})
        refused(env, env.image("0.2.0"), "locked", locked=lambda: revenue_locked(config))
        snap.publish({"revenue_locked": 0.0})
        assert env.installer(locked=lambda: revenue_locked(config)).install(env.image("0.2.0"))["slot"] == "b"
    finally:
        snap.unlink()


def test_the_installer_on_its_own_reads_the_published_lock_too(env):
    """An installer given no lock reader asks the one every process uses (switch file and published point)."""
    from firmware.ipc.names import instance_name
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout

    snap = Snapshot.create(f"{instance_name(env.settings.run_dir)}.measurements", snapshot_layout())
    try:
        snap.publish({"revenue_locked": 1.0})
        assert "revenue lock is on" in refused(env, env.image("0.2.0"), "locked")
        snap.publish({"revenue_locked": 0.0})
        assert env.installer().install(env.image("0.2.0"))["slot"] == "b"
    finally:
        snap.unlink()


def test_not_enough_space_is_refused(env):
    from dataclasses import replace

    env.settings = replace(env.settings, free_space_margin=1 << 60)
    assert "bytes" in refused(env, env.image("0.2.0"), "space")


def test_good_image_installs_to_inactive_slot_and_arms_a_trial(env):
    img = env.image("0.2.0", files=20)
    a_before = {k: v for k, v in snapshot(env.settings.root).items() if k.startswith("slots/a")}
    result = env.installer().install(img, user="tester")
    layout = env.layout
    assert result["slot"] == "b" and result["previous"] == "a" and result["guard_pid"] is None
    assert (layout.current(), layout.good()) == ("b", "a")
    assert layout.verify("b") == [] and layout.version("b") == "0.2.0"
    assert {k: v for k, v in snapshot(env.settings.root).items() if k.startswith("slots/a")} == a_before
    trial = layout.trial()
    assert (trial["slot"], trial["version"], trial["boots"]) == ("b", "0.2.0", 0)
    steps = [r["message"] for r in env.installer().log.entries(result["attempt"]) if r["event"] == "step"]
    assert steps == ["extract", "verify", "place", "arm", "switch"]
    # A second image while the first is on probation is refused.
    refused(env, env.image("0.3.0"), "busy")


def test_guard_commit_raises_floor_and_rotates_keys(env):
    _, new_pub, new_kid = keygen(env.base / "vendor-2026")
    img = env.image("0.2.0", trust_update={"add": [{"pem": new_pub.read_text(), "comment": "2026"}],
                                           "revoke": [env.key_id]})
    env.installer().install(img)
    guard = Guard(env.settings, command=lambda p: [], probe=lambda: None)
    guard.commit(env.layout.trial())
    layout = env.layout
    assert (layout.current(), layout.good(), layout.floor(), layout.trial()) == ("b", "b", "0.2.0", None)
    states = {k: e["state"] for k, e in guard.trust.entries().items()}
    assert states == {env.key_id: "revoked", new_kid: "trusted"}
    # Images signed by the old key are refused from now on.
    refused(env, env.image("0.3.0"), "untrusted")


def test_guard_rollback_restores_previous_slot(env):
    env.installer().install(env.image("0.2.0"))
    guard = Guard(env.settings, command=lambda p: [], probe=lambda: None)
    guard.rollback(env.layout.trial(), "test: not healthy")
    layout = env.layout
    assert (layout.current(), layout.good(), layout.floor(), layout.trial()) == ("a", "a", "0.1.0", None)
    assert env.installer().log.entries()[-1]["event"] == "rolled_back"
    # The same image can be tried again after a fallback.
    assert env.installer().install(env.image("0.2.0"))["slot"] == "b"


def test_slot_started_too_often_without_health_is_given_up(env):
    env.installer().install(env.image("0.2.0"))
    guard = Guard(env.settings, command=lambda p: [], probe=lambda: None)
    assert guard._trial_to_start()["boots"] == 1              # first start (e.g. before a power cut)
    assert guard._trial_to_start()["boots"] == 2              # second start
    assert guard._trial_to_start() is None                    # third: max_trial_boots (2) exceeded
    layout = env.layout
    assert (layout.current(), layout.good(), layout.trial()) == ("a", "a", None)
    last = guard.log.entries()[-1]
    assert last["event"] == "rolled_back" and "started 2 times" in last["message"]


def test_recovery_forgets_a_trial_that_was_never_switched_to(env):
    env.installer().install(env.image("0.2.0"))
    env.layout.set_pointer("current", "a")                    # as if killed between arm and switch
    Guard(env.settings, command=lambda p: [], probe=lambda: None).recover()
    assert (env.layout.current(), env.layout.good(), env.layout.trial()) == ("a", "a", None)
    assert "interrupted before the switch" in env.installer().log.entries()[-1]["message"]


def test_cli_install_reports_refusal_reason(env, tmp_path):
    cfg = tmp_path / "meter.toml"
    s = env.settings
    cfg.write_text(f'[upgrade]\nroot = "{s.root}"\nstate_dir = "{s.state_dir}"\ntrust_store = "{s.trust_store}"\n'
                   f'revenue_lock_file = "{s.revenue_lock_file}"\n')
    img = env.image("0.0.5")
    done = subprocess.run([sys.executable, "-m", "firmware.cli", "image", "install", str(img), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert json.loads(done.stdout)["refused"] == "downgrade"
    assert "refused (downgrade)" in done.stderr
    ok = subprocess.run([sys.executable, "-m", "firmware.cli", "image", "install", str(env.image("0.2.0")),
                         "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["slot"] == "b"


def test_bundled_wheels_are_installed_into_the_slot_venv(env, tmp_path):
    # A real wheel, built here offline from a one-module project, stands in for a downloaded one.
    project = tmp_path / "tinydep"
    (project / "tinydep").mkdir(parents=True)
    (project / "tinydep" / "__init__.py").write_text("ANSWER = 42\n")
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                            'build-backend = "setuptools.build_meta"\n'
                                            '[project]\nname = "tinydep"\nversion = "1.0"\n')
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheels), str(project)], check=True, timeout=300)
    img = env.image("0.2.0", deps=str(wheels))
    result = env.installer().install(img)
    steps = [r["message"] for r in env.installer().log.entries(result["attempt"]) if r["event"] == "step"]
    assert steps == ["extract", "deps", "verify", "place", "arm", "switch"]
    python = env.layout.slot_path("b") / "venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import tinydep; print(tinydep.ANSWER)"], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "42", out.stderr
    assert env.layout.verify("b") == []


def test_trial_rolls_back_at_once_when_a_service_of_the_new_slot_is_given_up(env):
    env.installer().install(env.image("0.2.0"))
    status = {"healthy": False, "services": {"comms": {"state": "running"}, "upgrade": {"state": "failed"}}}
    guard = Guard(env.settings, command=lambda p: [sys.executable, "-c", "import time; time.sleep(60)"],
                  probe=lambda: status)
    trial = guard._trial_to_start()
    guard.start_child(env.layout.current())
    try:
        t0 = time.monotonic()
        assert guard.watch_trial(trial) == "rolled_back"
        assert time.monotonic() - t0 < env.settings.health_deadline_s / 2
    finally:
        guard.stop_child()
    layout = env.layout
    assert (layout.current(), layout.good(), layout.trial()) == ("a", "a", None)
    last = guard.log.entries()[-1]
    assert last["event"] == "rolled_back" and "upgrade failed (the supervisor gave up" in last["message"]
