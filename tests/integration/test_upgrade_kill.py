"""An install killed with SIGKILL at random steps always leaves the meter able to boot a good slot.

Each run starts a real install in its own process, waits until it reports a randomly chosen step
(start, extract, verify, place, arm, switch), lets it go on for a random 0-50 ms and SIGKILLs it.
Then the boot guard's recovery runs, as at the next boot, and the test checks: both pointers name
complete slots whose every file matches its manifest; no staging or trash directory is left; the
last good slot still holds the last committed version; and if ``current`` moved to the new slot, a
trial record says so (the guard will health-check it and fall back if needed). A pending trial is
then rolled back, as the guard does when the new slot is not healthy, and the next run starts.

Runs: ``METER_UPGRADE_KILL_RUNS`` (default 40; CI runs the default, at least 30 as required).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from firmware.upgrade.guard import Guard
from firmware.upgrade.log import UpgradeLog
from tests.integration.upgrade_env import make_env

KILL_RUNS = int(os.environ.get("METER_UPGRADE_KILL_RUNS", "40"))
STEPS = ("start", "extract", "verify", "place", "arm", "switch")
MAX_EXTRA_DELAY_S = 0.05

INSTALL_SCRIPT = """
import sys
from firmware.upgrade.installer import Installer
from firmware.upgrade.settings import UpgradeSettings
installer = Installer(UpgradeSettings.under(sys.argv[1]), progress=lambda s: print(s, flush=True))
print("start", flush=True)
installer.install(sys.argv[2], user="kill-test")
print("done", flush=True)
"""


def test_install_killed_at_random_steps_always_comes_back_on_a_good_slot(tmp_path):
    env = make_env(tmp_path)
    root = env.settings.root
    # A fixed default seed makes a failure repeatable; METER_UPGRADE_KILL_SEED explores others.
    seed = int(os.environ.get("METER_UPGRADE_KILL_SEED", "20261123"))
    rng = random.Random(seed)
    image = env.image("0.2.0", files=300)       # ~300 files: the extract step lasts long enough to land in
    killed_at: dict[str, int] = {}
    completed = 0
    for run in range(KILL_RUNS):
        target = rng.choice(STEPS)
        delay = rng.uniform(0, MAX_EXTRA_DELAY_S)
        proc = subprocess.Popen([sys.executable, "-c", INSTALL_SCRIPT, str(root), str(image)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == target:
                time.sleep(delay)
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        if proc.returncode == 0:
            completed += 1
        else:
            killed_at[target] = killed_at.get(target, 0) + 1

        guard = Guard(env.settings, command=lambda p: [], probe=lambda: None)
        guard.recover()
        layout = env.layout
        cur, good = layout.current(), layout.good()
        context = f"run {run} (seed {seed}) killed {delay * 1000:.0f} ms after {target!r}"
        assert good == "a", context
        assert layout.version(good) == "0.1.0" and layout.verify(good) == [], context
        assert layout.verify(cur) == [], context
        assert not [p for p in layout.slots_dir.iterdir() if p.name.startswith(".")], context
        if cur != good:
            trial = layout.trial()
            assert trial and trial["slot"] == cur and trial["version"] == layout.version(cur) == "0.2.0", context
            guard.rollback(trial, "kill test: next run")
        assert (layout.current(), layout.good(), layout.trial()) == ("a", "a", None), context
    print(f"seed {seed}: {KILL_RUNS} runs, killed at {killed_at}, {completed} completed before the kill")
    assert KILL_RUNS >= 30
    assert len(killed_at) >= 3, killed_at              # the kills spread over the install's steps
    # Not bricked: after all that, an uninterrupted install still works.
    result = env.installer().install(image)
    assert result["slot"] == "b" and env.layout.verify("b") == []
    log = UpgradeLog(env.settings.state_dir)
    attempts = sum(1 for r in log.entries(limit=100000) if r["event"] == "attempt")
    # A kill just after "start" can come before the attempt's first log row; every later one is logged.
    assert KILL_RUNS - killed_at.get("start", 0) + 1 <= attempts <= KILL_RUNS + 1


GUARD_SCRIPT = """
import sys
from firmware.upgrade.guard import Guard
from firmware.upgrade.settings import UpgradeSettings
guard = Guard(UpgradeSettings.under(sys.argv[1]), command=lambda p: [], probe=lambda: None)
trial = guard.layout.trial()
print("start", flush=True)
if sys.argv[2] == "commit":
    guard.commit(trial)
else:
    guard.rollback(trial, "kill test")
print("done", flush=True)
"""


def test_commit_or_fallback_killed_midway_is_finished_by_recovery(tmp_path):
    env = make_env(tmp_path)
    rng = random.Random(int(os.environ.get("METER_UPGRADE_KILL_SEED", "7")))
    version = [0, 2, 0]
    runs = max(10, KILL_RUNS // 4)
    for run in range(runs):
        committed_before = env.layout.version(env.layout.good())
        new = ".".join(map(str, version))
        env.installer().install(env.image(new))
        action = rng.choice(("commit", "rollback"))
        proc = subprocess.Popen([sys.executable, "-c", GUARD_SCRIPT, str(env.settings.root), action],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
        Guard(env.settings, command=lambda p: [], probe=lambda: None).recover()
        layout = env.layout
        cur, good, trial = layout.current(), layout.good(), layout.trial()
        assert layout.verify(cur) == [] and layout.verify(good) == []
        if trial is None:
            assert cur == good and layout.version(good) in (committed_before, new)
            if layout.version(good) == new:
                assert layout.floor() == new
                version[1] += 1
        else:   # killed before the commit or fallback touched anything: still on probation
            assert (trial["slot"], cur) == (cur, layout.other(good))
            Guard(env.settings, command=lambda p: [], probe=lambda: None).rollback(trial, "next run")
        version[2] += 1
