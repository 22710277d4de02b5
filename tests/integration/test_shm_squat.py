"""Shared-memory names taken by another process before the meter starts (the name the meter used to derive
from its run directory, and a guess at the new pattern) do not stop metering: the meter's names are drawn
at random at each start, readable only through its run directory."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.health import EXIT_STATUS
from firmware.ipc import shm
from firmware.ipc.names import OBJECTS, shm_name
from tests.integration.test_meter_run import _wait_healthy, meter  # noqa: F401 - the fixture is used by name


def _legacy_instance(run_dir: Path) -> str:
    """The instance name as it was derived before: predictable by anyone who knows the run directory."""
    import hashlib

    return "meter-" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:10]


@pytest.fixture
def squatted(tmp_path):
    """World-readable objects under the meter's likely names, made by another process before the meter starts."""
    names = [shm_name(_legacy_instance(tmp_path / "run"), what) for what in OBJECTS]
    names += [shm_name("meter-" + "0" * 32, what) for what in OBJECTS]
    paths = [shm.SHM_DIR / name for name in names]
    subprocess.run([sys.executable, "-c", "import os, sys\nfor p in sys.argv[1:]:\n"
                    "    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644); os.fchmod(fd, 0o644)\n"
                    "    os.write(fd, b'\\xff' * 65536); os.close(fd)", *map(str, paths)], check=True)
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


def test_squatted_names_do_not_stop_metering(squatted, meter, tmp_path, repo, subprocess_env):  # noqa: F811
    proc, client, _ = meter
    status = _wait_healthy(proc, client)
    assert status["metering"] is True, status
    config = tmp_path / "meter.toml"
    cli = [sys.executable, "-m", "firmware.cli"]
    answer = subprocess.run([*cli, "status", "--json", "--config", str(config)], cwd=repo, env=subprocess_env,
                            capture_output=True, text=True, timeout=60)
    # Samples lost to a stalled host make the meter "degraded" (its own exit status); it still meters.
    assert answer.returncode in (EXIT_STATUS["healthy"], EXIT_STATUS["degraded"]), answer.stdout + answer.stderr
    assert json.loads(answer.stdout)["metering"] is True, answer.stdout
    read = subprocess.run([*cli, "read", "--json", "--config", str(config), "v_an", "v_bn", "v_cn"], cwd=repo,
                          env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stdout + read.stderr
    volts = json.loads(read.stdout)["values"]
    assert all(50.0 < v < 500.0 for v in volts.values()), volts
    assert all(path.exists() for path in squatted), "the squatters' objects are not the meter's to remove"
