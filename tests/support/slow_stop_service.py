"""A service whose teardown takes ``SLOW_STOP_TEARDOWN_S`` seconds (default 2), for restart tests.

Each start appends its pid to ``<run_dir>/<name>.pids`` and reports in every heartbeat (``info``) which of
the earlier pids still had a process-table entry when it started: a process that runs, or one that has
exited but was not yet reaped by the supervisor (a zombie keeps ``/proc/<pid>``). Teardown appends its pid
to ``<run_dir>/<name>.teardown`` as it begins, so a test can tell that SIGTERM came before any SIGKILL.
``beats`` counts heartbeat-loop iterations, so a growing value means the supervisor hears this process.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from firmware.service import Service, main


class SlowStopService(Service):
    name = "slow"
    step_interval_s = 0.05

    def setup(self) -> None:
        pids = self.ctx.run_dir / f"{self.ctx.name}.pids"
        earlier = [int(p) for p in pids.read_text().split()] if pids.exists() else []
        self.earlier_present = [p for p in earlier if Path(f"/proc/{p}").exists()]
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        self.beats = 0
        self.endpoints = [f"unix:{self.ctx.socket_path()}"]

    def run(self) -> None:
        while not self.stopping.is_set():
            self.stopping.wait(self.step_interval_s)
            self.beats += 1
            self.heartbeat(beats=self.beats, earlier_present=self.earlier_present)

    def teardown(self) -> None:
        with open(self.ctx.run_dir / f"{self.ctx.name}.teardown", "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(float(os.environ.get("SLOW_STOP_TEARDOWN_S", "2")))


if __name__ == "__main__":
    sys.exit(main(SlowStopService))
