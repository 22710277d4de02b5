"""The revenue engine inside the metrology service: inputs, power-fail watch, control commands, faults.

``RevenueRuntime`` wraps a ``RevenueEngine`` with what a running meter adds: the board inputs
(revenue lock, power fail; BPR button, demand sync, TOU override and energy gate from the io service's
snapshot) read every second, a thread that watches the power-fail input and persists the registers at once when it
goes active (it sleeps until the line may have changed: on the simulated board a write of its file, on a GPIO line its
next edge, gpiod's edge events; a backend without them has the line read every ``POWER_FAIL_POLL_S``), and the control commands served as ``metrology.<name>``.

``GuardedRevenue`` is what the metrology service holds: the runtime behind a fault boundary, so
that a fault of the registers never stops the measurements and never publishes a wrong billed
value. When the runtime cannot start, or raises while registering a second, the registers are
*unavailable*: every energy point and every revenue point is NaN (Modbus reads "not available"),
``revenue_fault`` is 1, and the fault is logged once. The broken runtime is dropped without
writing its state (it may hold half a second) and a new one starts from the last persisted record
after ``RETRY_MIN_S``, the wait doubling up to ``RETRY_MAX_S`` while it keeps failing. Seconds
while unavailable are not registered; when the registers come back after more than
``engine.OUTAGE_MIN_S`` without registering, the load profile records an outage for them.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from firmware.revenue import publish
from firmware.revenue.engine import RevenueEngine
from firmware.revenue.inputs import BoardInputs, InputState, open_inputs
from firmware.revenue.settings import from_config
from firmware.storage.eventlog import EventLog
from hal.errors import MeterError
from metrology.energy import EnergyIncrement

log = logging.getLogger("revenue")
POWER_FAIL_POLL_S = 0.01        # the supply's hold-up time is tens of ms; one record write fits in it
POWER_FAIL_IDLE_S = 0.5         # longest wait of the watch on a line that reports its changes (the stop is seen then)
RETRY_MIN_S = 1.0               # first restart of faulted registers; a transient fault costs about a second
RETRY_MAX_S = 60.0              # a persistent fault is retried (and costs a record load) at most once a minute
COMMAND_NAMES = ("demand_reset", "billing_reset", "energy_reset", "demand_sync", "freeze", "preset",
                 "test_mode_enter", "test_mode_exit", "registers", "load_profile", "self_reads", "revenue_audit")


class RevenueRuntime:
    def __init__(self, config: Any, data_dir: str | Path, inputs: BoardInputs, pt_ratio: float = 1.0,
                 ct_ratio: float = 1.0, clock: Any = time) -> None:
        self.settings = from_config(config, pt_ratio, ct_ratio)
        self.inputs = inputs
        events = config["events"]
        self.engine = RevenueEngine(self.settings, data_dir, self.inputs.locked, clock,
                                    EventLog(data_dir, events.cutoff, events.depth))
        self._last = InputState()
        self._stop = threading.Event()
        self.power_failed = False
        self._watch = threading.Thread(target=self._power_fail_watch, name="power-fail", daemon=True)
        self._watch.start()

    # ------------------------------------------------------------------ per second

    def on_second(self, inc: Any, comp: Any = None, values: Any = None, now_utc: float | None = None,
                  mono_s: float | None = None) -> None:
        state = self.inputs.read()
        if "bpr_button" in state.pressed:
            self._button("billing_reset", lambda: self.engine.cmd.billing_reset(user="button", source="button"))
        if "demand_sync" in state.pressed:
            self._button("demand_sync", lambda: self.engine.cmd.demand_sync(user="input"))
        self._last = state
        self.engine.on_second(inc, comp, values, now_utc, mono_s, state)

    @staticmethod
    def _button(what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except MeterError as exc:      # refused (lock, lockout): already in the audit log
            log.info("%s input ignored: %s", what, exc)

    def energy_paths(self, differ: bool, now_utc: float, info: dict[str, Any]) -> None:
        self.engine.energy_paths(differ, now_utc, info)

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

    def abandon(self) -> None:
        """Stop without writing: after a fault the registers in memory may hold half a second."""
        self._stop.set()
        self._watch.join(timeout=1.0)
        self.engine.close()

    # ------------------------------------------------------------------ power fail

    def _power_fail_watch(self) -> None:
        while not self._stop.is_set():
            try:
                failing = self.inputs.power_fail()
            except Exception:  # noqa: BLE001 - a failing power-fail line is read again next poll
                failing = self.power_failed
            if failing and not self.power_failed:
                self.power_failed = True
                try:
                    self.engine.flush("power_fail")
                except Exception:
                    log.exception("power-fail flush failed")
            elif not failing:
                self.power_failed = False
            self.inputs.wait_power_fail(POWER_FAIL_POLL_S, POWER_FAIL_IDLE_S)

    # ------------------------------------------------------------------ commands

    def commands(self) -> dict[str, Callable[..., Any]]:
        return self.engine.commands()


class GuardedRevenue:
    """The revenue registers as the metrology service runs them (see the module docstring)."""

    def __init__(self, open_board_inputs: Callable[[], BoardInputs],
                 start: Callable[[BoardInputs], RevenueRuntime], clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self._open_inputs = open_board_inputs
        self._start = start
        self.clock = clock
        self.log = logger
        self.inputs: BoardInputs | None = None
        self.runtime: RevenueRuntime | None = None
        self.fault: str | None = None       # why the registers are unavailable, while they are
        self.faults = 0                     # fault episodes since the service started
        self.retry_s = RETRY_MIN_S
        self.retry_at = 0.0
        self.fault_since = 0.0
        self._names: set[str] = set()      # revenue points published while running
        self._try_start()

    @classmethod
    def for_service(cls, config: Any, data_dir: str | Path, board_path: str | Path | None, pt_ratio: float,
                    ct_ratio: float, logger: logging.Logger = log, io_snapshot: str | None = None,
                    time_snapshot: str | None = None) -> GuardedRevenue:
        return cls(lambda: open_inputs(config, board_path, io_snapshot, time_snapshot),
                   lambda inputs: RevenueRuntime(config, data_dir, inputs, pt_ratio, ct_ratio), logger=logger)

    # ------------------------------------------------------------------ faults

    def _try_start(self) -> None:
        try:
            if self.inputs is None:
                self.inputs = self._open_inputs()
            self.runtime = self._start(self.inputs)
        except Exception as exc:  # noqa: BLE001 - a revenue fault is isolated from metrology (GuardedRevenue)
            self._failed("could not start", exc)
            return
        if self.fault is not None:
            self.log.warning("revenue registers running again after %.0f s unavailable (%s)",
                             self.clock() - self.fault_since, self.fault)
            self.runtime.engine.general_failure()      # the status word says the registers were down
        self.fault = None
        self.retry_s = RETRY_MIN_S

    def _failed(self, what: str, exc: Exception) -> None:
        if self.fault is None:
            # once per episode: a fault that persists is retried quietly until it clears
            self.faults += 1
            self.fault_since = self.clock()
            self.log.error("revenue registers %s: %s: %s; energy and revenue points read 'not available' "
                           "(revenue_fault = 1), retrying in %.0f s", what, type(exc).__name__, exc,
                           self.retry_s, exc_info=exc)
        else:
            self.retry_s = min(self.retry_s * 2, RETRY_MAX_S)
        self.fault = f"{what}: {type(exc).__name__}: {exc}"
        self.retry_at = self.clock() + self.retry_s
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            try:
                runtime.abandon()
            except Exception:
                self.log.debug("closing the faulted revenue registers failed", exc_info=True)

    # ------------------------------------------------------------------ per second

    def on_second(self, inc: EnergyIncrement, comp: EnergyIncrement | None, values: Any, now_utc: float,
                  mono_s: float | None = None) -> None:
        if self.runtime is None:
            if self.clock() < self.retry_at:
                return
            self._try_start()
            if self.runtime is None:
                return
        try:
            self.runtime.on_second(inc, comp, values, now_utc, mono_s)
        except Exception as exc:  # noqa: BLE001 - a revenue fault is isolated from metrology (GuardedRevenue)
            self._failed("failed registering a second", exc)

    def energy_paths(self, differ: bool, now_utc: float, info: dict[str, Any]) -> None:
        """The energy-path cross-check crossed the accuracy class; a fault here faults the registers."""
        if self.runtime is None:
            return
        try:
            self.runtime.energy_paths(differ, now_utc, info)
        except Exception as exc:  # noqa: BLE001 - a revenue fault is isolated from metrology (GuardedRevenue)
            self._failed("failed recording the energy-path check", exc)

    def totals(self) -> EnergyIncrement:
        """The billed energy registers; NaN in every register while unavailable."""
        if self.runtime is not None:
            try:
                return self.runtime.totals()
            except Exception as exc:  # noqa: BLE001 - a revenue fault is isolated from metrology (GuardedRevenue)
                self._failed("failed publishing", exc)
        out = EnergyIncrement()
        for q in out.quantities():
            setattr(out, q, np.full(4, math.nan))
        return out

    def values(self) -> dict[str, Any]:
        """Revenue points; while unavailable NaN, with ``revenue_fault`` = 1 and the lock still shown."""
        if self.runtime is not None:
            try:
                out = self.runtime.values()
                self._names.update(out)
                return out
            except Exception as exc:  # noqa: BLE001 - a revenue fault is isolated from metrology (GuardedRevenue)
                self._failed("failed publishing", exc)
        out = {name: math.nan for name in self._names}
        out["revenue_fault"] = 1.0
        out["revenue_locked"] = self._locked()
        return out

    def _locked(self) -> float:
        """The lock from the board input; a lock that cannot be read counts as locked."""
        if self.inputs is None:
            return 1.0
        try:
            return 1.0 if self.inputs.locked() else 0.0
        except Exception:  # noqa: BLE001 - an unreadable lock counts as locked
            return 1.0

    # ------------------------------------------------------------------ service

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()          # persists the registers at once (SIGTERM costs nothing)
            self.runtime = None


def revenue_commands(get: Callable[[], GuardedRevenue | None]) -> dict[str, Callable[..., Any]]:
    """Handlers for ``metrology.<name>`` that reach the registers while they run."""

    def make(name: str) -> Callable[..., Any]:
        def handler(user: str = "", **args: Any) -> Any:
            guard = get()
            runtime = guard.runtime if guard is not None else None
            if runtime is None:
                why = f" ({guard.fault}; retried automatically)" if guard is not None and guard.fault else ""
                raise MeterError(f"{name}: the revenue registers are not running{why}; see the metrology log")
            return runtime.commands()[name](user=user, **args)
        return handler

    return {name: make(name) for name in COMMAND_NAMES}
