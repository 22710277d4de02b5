"""A minimal service for supervisor tests: counts ticks, and can be told to hang or crash.

``TICKER_BEHAVIOUR=crash-at-start`` in the environment makes every start fail (a service that keeps
crashing); the control commands ``hang`` and ``crash`` misbehave on request.
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
        self.endpoints = [f"unix:{self.ctx.socket_path()}"]

    def step(self) -> None:
        while self.hanging:
            time.sleep(0.05)
        self.ticks += 1
        self.stopping.wait(self.step_interval_s)

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
