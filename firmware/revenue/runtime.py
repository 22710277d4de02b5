"""The revenue engine inside the metrology service: inputs, power-fail watch, control commands.

``RevenueRuntime`` wraps a ``RevenueEngine`` with what a running meter adds: the board inputs
(revenue lock, power fail, BPR button, demand sync, TOU override, energy gate) sampled every
second, a thread that watches the power-fail input every ``POWER_FAIL_POLL_S`` and persists the
registers at once when it goes active, and the control commands served as ``metrology.<name>``.
It has the engine's per-second interface (``on_second``, ``values``, ``flush``), so the service
calls it as it would the engine.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

from firmware.revenue import publish
from firmware.revenue.engine import RevenueEngine
from firmware.revenue.inputs import InputState, open_inputs
from firmware.revenue.settings import from_config
from hal.errors import MeterError

log = logging.getLogger("revenue")
POWER_FAIL_POLL_S = 0.01        # the supply's hold-up time is tens of ms; one record write fits in it
COMMAND_NAMES = ("demand_reset", "billing_reset", "energy_reset", "demand_sync", "freeze", "preset",
                 "test_mode_enter", "test_mode_exit", "registers", "load_profile", "self_reads", "revenue_audit")


class RevenueRuntime:
    def __init__(self, config: Any, data_dir: str | Path, board_path: str | Path | None = None,
                 pt_ratio: float = 1.0, ct_ratio: float = 1.0) -> None:
        self.settings = from_config(config, pt_ratio, ct_ratio)
        self.inputs = open_inputs(config, board_path, self.settings)
        self.engine = RevenueEngine(self.settings, data_dir, self.inputs.locked)
        self._last = InputState()
        self._stop = threading.Event()
        self.power_failed = False
        self._watch = threading.Thread(target=self._power_fail_watch, name="power-fail", daemon=True)
        self._watch.start()

    # ------------------------------------------------------------------ per second

    def on_second(self, inc: Any, comp: Any = None, values: Any = None, now_utc: float | None = None,
                  mono_s: float | None = None) -> None:
        state = self.inputs.read()
        if state.bpr_button and not self._last.bpr_button:
            self._button("billing_reset", lambda: self.engine.billing_reset(user="button", source="button"))
        if state.demand_sync and not self._last.demand_sync:
            self._button("demand_sync", lambda: self.engine.demand_sync(user="input"))
        self._last = state
        self.engine.on_second(inc, comp, values, now_utc, mono_s, state)

    @staticmethod
    def _button(what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except MeterError as exc:      # refused (lock, lockout): already in the audit log
            log.info("%s input ignored: %s", what, exc)

    def values(self) -> dict[str, Any]:
        return publish.values(self.engine)

    def totals(self) -> Any:
        return publish.totals(self.engine)

    def flush(self, reason: str = "stop") -> None:
        self.engine.flush(reason)

    def close(self) -> None:
        self._stop.set()
        self.engine.flush("stop")
        self.engine.close()

    # ------------------------------------------------------------------ power fail

    def _power_fail_watch(self) -> None:
        while not self._stop.wait(POWER_FAIL_POLL_S):
            try:
                failing = self.inputs.power_fail()
            except Exception:
                continue
            if failing and not self.power_failed:
                self.power_failed = True
                try:
                    self.engine.flush("power_fail")
                except Exception:
                    log.exception("power-fail flush failed")
            elif not failing:
                self.power_failed = False

    # ------------------------------------------------------------------ commands

    def commands(self) -> dict[str, Callable[..., Any]]:
        return self.engine.commands()


def revenue_commands(get: Callable[[], RevenueRuntime | None]) -> dict[str, Callable[..., Any]]:
    """Handlers for ``metrology.<name>`` that reach the runtime once the service has set it up."""

    def make(name: str) -> Callable[..., Any]:
        def handler(user: str = "", **args: Any) -> Any:
            rt = get()
            if rt is None:
                raise MeterError(f"{name}: the revenue registers are not running (see the metrology log)")
            return rt.commands()[name](user=user, **args)
        return handler

    return {name: make(name) for name in COMMAND_NAMES}
