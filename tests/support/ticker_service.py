"""A minimal service for supervisor tests: counts ticks, and can be told to hang or crash.

``TICKER_BEHAVIOUR=crash-at-start`` in the environment makes every start fail (a service that keeps
crashing); the control commands ``hang`` and ``crash`` misbehave on request. Its heartbeats carry the
sample-loss counters the acquisition service sends (``gaps``, ``lost_frames``, and after a gap
``last_gap_frames``, ``last_gap_unix_s``) and metrology's ``overruns``; the command ``lose`` adds to them.
"""
from __future__ import annotations

import os
import sys
import time

from firmware.service import Service, command, main


class TickerService(Service):
    name = "ticker"
    step_interval_s = 0.05

    def setup(self) -> None:
        if os.environ.get("TICKER_BEHAVIOUR") == "crash-at-start":
            raise SystemExit(3)
        self.ticks = 0
        self.hanging = False
        self.counters: dict[str, float] = {"gaps": 0, "lost_frames": 0, "overruns": 0}
        self.endpoints = [f"unix:{self.ctx.socket_path()}"]

    def step(self) -> None:
        while self.hanging:
            time.sleep(0.05)
        self.ticks += 1
        self.stopping.wait(self.step_interval_s)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.step()
            self.heartbeat(**self.counters)

    @command("lose")
    def cmd_lose(self, frames: int = 0, overruns: int = 0, user: str = "") -> float:
        """One gap of ``frames`` lost frames (none for 0) and ``overruns`` more; returns the gap's time."""
        now = time.time()
        counters = dict(self.counters)
        counters["overruns"] += overruns
        if frames:
            counters.update(gaps=counters["gaps"] + 1, lost_frames=counters["lost_frames"] + frames,
                            last_gap_frames=frames, last_gap_unix_s=now)
        self.counters = counters  # one assignment: the main loop sends either the old or the new counters
        return now

    @command("ticks")
    def cmd_ticks(self, user: str = "") -> int:
        return self.ticks

    @command("hang")
    def cmd_hang(self, user: str = "") -> str:
        self.hanging = True
        return "hanging"

    @command("crash")
    def cmd_crash(self, user: str = "") -> None:
        os._exit(7)


if __name__ == "__main__":
    sys.exit(main(TickerService))
