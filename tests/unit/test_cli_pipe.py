"""Every ``meter`` command ends quietly when its reader closes the pipe (``meter ... | head -1``): no
BrokenPipeError traceback, the shell's SIGPIPE status 141. The reader is gone before the command writes, the
case ``head`` makes whenever the output is longer than what it reads. The guard is ``firmware.cli.main``'s, around
every command; ``meter status`` against a running supervisor is tested in tests/integration/test_supervisor.py."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from firmware.cli import CLOSED_PIPE_STATUS


def _run_into_closed_pipe(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "firmware.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["config", "show", "--config", "meter.toml"], ["config", "defaults"]])
def test_output_into_a_closed_pipe(repo, subprocess_env, tmp_path, args):
    run = _run_into_closed_pipe(args, subprocess_env, tmp_path)
    assert run.returncode == CLOSED_PIPE_STATUS and run.stderr == "", run.stderr
