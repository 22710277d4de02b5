"""The supervisor's shared-memory instance: a fresh unguessable token at each start, private to the meter,
a taken name reported and replaced, the previous start's segments swept."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from firmware.ipc import shm
from firmware.ipc.instance import start_instance
from firmware.ipc.names import SAMPLES, TOKEN_FILE, instance_name, instance_of_token, shm_name
from tests.support.shm_sweep import sweep_instance


def _squat(name: str) -> Path:
    """Create ``name`` in /dev/shm from another process, world-readable, as someone else's object would be."""
    path = shm.SHM_DIR / name
    subprocess.run([sys.executable, "-c", "import os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644);"
                    " os.fchmod(fd, 0o644); os.write(fd, b'x' * 4096)", str(path)], check=True)
    return path


def test_each_start_draws_a_private_token_that_every_reader_finds(tmp_path):
    run_dir = tmp_path / "run"
    first = start_instance(run_dir, on_squat=lambda p: None)
    token_file = run_dir / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert instance_name(run_dir) == first
    second = start_instance(run_dir, on_squat=lambda p: None)
    assert second != first and instance_name(run_dir) == second
    assert len(second) == len("meter-") + 32


def test_a_taken_name_is_reported_and_another_drawn(tmp_path):
    run_dir = tmp_path / "run"
    tokens = iter(["a" * 32, "b" * 32])
    squatted = _squat(shm_name(instance_of_token("a" * 32), SAMPLES))
    reported: list[Path] = []
    try:
        instance = start_instance(run_dir, on_squat=reported.append, draw=lambda: next(tokens))
        assert reported == [squatted]
        assert instance == instance_of_token("b" * 32) == instance_name(run_dir)
        assert squatted.exists(), "someone else's object is not ours to remove"
    finally:
        squatted.unlink()


def test_the_previous_starts_segments_are_swept(tmp_path):
    run_dir = tmp_path / "run"
    old = start_instance(run_dir, on_squat=lambda p: None)
    mapping, _ = shm.open_mapping(shm_name(old, SAMPLES), 4096, create=True)
    mapping.close()
    left = shm.SHM_DIR / shm_name(old, SAMPLES)
    assert left.exists()
    new = start_instance(run_dir, on_squat=lambda p: None)
    assert not left.exists()
    mapping, _ = shm.open_mapping(shm_name(new, SAMPLES), 4096, create=True)
    mapping.close()
    sweep_instance(run_dir)
    assert not (shm.SHM_DIR / shm_name(new, SAMPLES)).exists()


def test_a_token_file_that_is_a_link_is_not_followed_and_is_replaced(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "elsewhere").write_text("c" * 32)
    os.symlink(tmp_path / "elsewhere", run_dir / TOKEN_FILE)
    assert instance_name(run_dir) != instance_of_token("c" * 32)
    instance = start_instance(run_dir, on_squat=lambda p: None)
    assert not (run_dir / TOKEN_FILE).is_symlink() and instance_name(run_dir) == instance
    assert (tmp_path / "elsewhere").read_text() == "c" * 32


def test_a_taken_name_is_a_security_event_naming_the_path(tmp_path):
    from firmware.config.store import ConfigStore
    from firmware.ipc.instance import squat_reporter
    from firmware.storage.eventlog import EventLog

    config_path = tmp_path / "meter.toml"
    config_path.write_text(f'[meter]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n')
    squatted = _squat(shm_name(instance_of_token("d" * 32), SAMPLES))
    try:
        start_instance(tmp_path / "run", squat_reporter(ConfigStore(config_path).load()),
                       draw=iter(["d" * 32, "e" * 32]).__next__)
    finally:
        squatted.unlink()
    events = [e for e in EventLog(tmp_path / "data").read() if e["cause"] == "shm_squat"]
    assert len(events) == 1 and str(squatted) in events[0]["effect"], events
    assert events[0]["priority"] == 192
