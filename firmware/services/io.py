"""The io service: the one owner of the board's digital inputs and outputs, energy pulsing and the alarms.

Inputs arrive as edge events with their time stamps (gpiod's kernel stamps on the device, the simulated
wire's stamps in simulation; ``hal.gpio``), are debounced and counted (``firmware.io.inputs``) and published
with the outputs and the alarm summary in the ``io`` snapshot at once after a change and at least every
``PUBLISH_S``. Between edges the service sleeps until its next deadline: a pulse edge, an input settling, the
next measurement second (one second after the last, then looked for every ``IDLE_S`` until it comes), the
next publication or heartbeat.
Once a second, when the metrology service has published a new measurement second, the energy pulsers take the
published energy registers, the end-of-demand-interval outputs look at ``demand_interval_remaining`` and the
setpoint alarms are evaluated (``firmware.alarms``). Alarm pickups and dropouts go to the event log; alarm
outputs follow them; a pickup with ``capture`` sends ``capture.trigger`` to the control socket (served by the
recorder when it runs; refused or absent is logged once and changes nothing). Counts are persisted before they
are published (``firmware.io.state``): killing the service loses no counted pulse.
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import Any

from firmware import powerup
from firmware.alarms.manager import AlarmEvent
from firmware.config.board import load_board
from firmware.control import ControlClient
from firmware.io import ALARM_LIST, CHANNELS, LAYOUT, SNAPSHOT_NAME, STATE_NAME, build
from firmware.io.halfcycles import POLL_S, HalfCycleFeed
from firmware.io.inputs import NS_PER_S, Transition
from firmware.io.outputs import ENERGY_POINTS
from firmware.io.state import CountStore
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.service import HEARTBEAT_INTERVAL_S, Service, command, main
from firmware.storage.eventlog import Event, EventLog
from hal.clock import SystemClock
from hal.errors import IPCError, MeterError
from hal.sim.wire import RUN_DIR_NAME as SIM_WIRE_DIR

LOOP_S = 0.002                 # edge wait while pulses are due or inputs settle: the timing resolution of both
IDLE_S = 0.05                  # a measurement second due and not there yet is looked for this often: how late its
                               # pulses may start
LATE_S = 2.0                   # a second this late (metrology stopped): looked for every HEARTBEAT_INTERVAL_S
PUBLISH_S = 1.0                # the io snapshot at least this often (readers call it stale after 10 s)
ATTACH_RETRY_S = 2.0
INPUT_EVENT_PRIORITY = 32      # digital-input state changes in the event log (Info, above the cutoff 5)


class IoService(Service):
    name = "io"

    def setup(self) -> None:
        board = load_board(self.ctx.board_path)
        self.in_pins = tuple(board.gpio.digital_inputs)[:CHANNELS]
        self.out_pins = tuple(board.gpio.digital_outputs)[:CHANNELS]
        self.gpio = self._open_gpio(board)
        self.settings = build.input_settings(self.config, len(self.in_pins))
        self.inputs = build.inputs(self.config, len(self.in_pins))
        self.outputs = build.outputs(self.config, len(self.out_pins))
        self.functions = build.functions(self.config)
        self.totalizers = build.totalizers(self.config)
        self.alarms = build.alarms(self.config, self.settings)
        # high-speed setpoints read metrology's half-cycle values from the PQ ring; none: no reader at all
        self.half_cycles = HalfCycleFeed(self.ctx.shm_name(names.PQ_EVENTS)) if self.alarms.high_speed else None
        self.store = CountStore(self.ctx.data_dir / STATE_NAME, "counts")
        self.store.restore(self.inputs, self.outputs)
        self.power_up = powerup.read(self.ctx.data_dir)
        self._pq_counts: dict[str, float] = {}     # disturbance counters at the last second (alarms on a rise)
        self.events = EventLog.from_config(self.config)
        self.snapshot = Snapshot.create(self.ctx.shm_name(SNAPSHOT_NAME), LAYOUT)
        self.measurements: Snapshot | None = None
        self._attach_at = 0.0
        self._last_second = -1
        self._second_due = 0.0                # monotonic time the next measurement second is looked for
        self._remaining = math.nan
        self._registers: dict[int, tuple[float, float]] = {}   # energy output -> (register, its second's end)
        self._dirty = True
        self._published_at = 0.0
        self._saved_at = 0.0
        self._capture_note = ""
        self._lock = threading.Lock()         # control commands and the loop share the channels
        self.counters = {"edges": 0, "transitions": 0, "seconds": 0, "alarm_events": 0, "captures": 0}
        for n, pin in enumerate(self.out_pins, start=1):
            self.gpio.setup_output(pin, self.outputs[n].level)
        # inputs are pulled up (closed contact = low); the initial state is the level now, not an edge
        self.gpio.watch_edges(self.in_pins, "up")
        now_ns = time.monotonic_ns()
        for n, pin in enumerate(self.in_pins, start=1):
            ch = self.inputs[n]
            ch.active, ch.since_ns = ch.level_active(self.gpio.read(pin)), now_ns
        self.endpoints = [f"shm:{self.ctx.shm_name(SNAPSHOT_NAME)}"]
        if self.power_up.count > self.store.power_up_seen:
            # a power-up this service has not raised yet (a restarted io service raises none)
            self._alarm_events(self.alarms.happened("power_up", self.power_up.utc, float(self.power_up.count)))
            self.store.power_up_seen = self.power_up.count
            self.store.save(self.inputs, self.outputs)

    def _open_gpio(self, board: Any) -> Any:
        if board.simulated:
            from hal.sim.gpio import SimGpio
            return SimGpio(SystemClock(), wire=self.ctx.run_dir / SIM_WIRE_DIR)
        from hal.gpio import open_gpio
        gp = board.gpio
        return open_gpio(gp.backend, chip=gp.chip) if gp.backend == "gpiod" else open_gpio(gp.backend)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        pin_to_input = {pin: n for n, pin in enumerate(self.in_pins, start=1)}
        while not self.stopping.is_set():
            edges = self.gpio.read_edges(self._wait_s())
            with self._lock:
                now_ns = time.monotonic_ns()
                transitions: list[Transition] = []
                for edge in edges:
                    n = pin_to_input.get(edge.pin)
                    if n is not None:
                        self.counters["edges"] += 1
                        transitions += self.inputs[n].edge(edge.level, edge.timestamp_ns)
                for ch in self.inputs.values():
                    transitions += ch.settle(now_ns)
                for tr in transitions:
                    self._on_transition(tr)
                self._second()
                self._half_cycle_setpoints()
                self._drive_outputs(now_ns)
                self._persist_and_publish()
            self.heartbeat(**self.counters)

    def _wait_s(self) -> float:
        busy = any(o.owed > 0 or (o.level and o.mode == "pulse" and o.source != "alarm")
                   for o in self.outputs.values())
        if busy or any(c.settling for c in self.inputs.values()):
            return LOOP_S
        now = time.monotonic()
        due = min(self._second_due, self._published_at + PUBLISH_S, now + HEARTBEAT_INTERVAL_S,
                  now + (POLL_S if self.half_cycles is not None else HEARTBEAT_INTERVAL_S))
        return min(max(due - now, 0.0), HEARTBEAT_INTERVAL_S)

    def _on_transition(self, tr: Transition) -> None:
        self.counters["transitions"] += 1
        self._dirty = True
        t = time.time() - (time.monotonic_ns() - tr.timestamp_ns) / NS_PER_S
        if self.settings[tr.number]["alarm"] == "off":
            # an input with an alarm is logged by the alarm's pickup and dropout; this one by its own events
            self._record(Event(INPUT_EVENT_PRIORITY, "io", "input_on" if tr.active else "input_off",
                               f"di{tr.number}", detail={"time": round(t, 3), "count": self.inputs[tr.number].count}))
        self._alarm_events(self.alarms.input_changed(tr.number, tr.active, t))

    def _second(self) -> None:
        """A new measurement second: energy pulsers, end of demand interval, setpoint alarms."""
        now = time.monotonic()
        if now < self._second_due:
            return
        self._second_due = now + IDLE_S
        snap = self._measurements()
        if snap is None:
            self._second_due = now + ATTACH_RETRY_S
            return
        try:
            data, updated_ns, count = snap.read_array()
        except IPCError:
            return
        age_s = (time.time_ns() - updated_ns) / 1e9
        if count == self._last_second or count == 0:
            if age_s > 1.0 + LATE_S:
                self._second_due = now + HEARTBEAT_INTERVAL_S
            return
        # metrology publishes a second once a second: nothing to look for until the next is due
        self._second_due = now + max(1.0 - age_s, IDLE_S)
        self._last_second = count
        self.counters["seconds"] += 1
        values = {name: snap.field(data, name) for name in snap.layout.offsets}
        for ch in self.outputs.values():
            if ch.source == "energy" and ch.pulser is not None:
                entry = self._output_entry(ch.number)
                register = float(values.get(ENERGY_POINTS[entry.quantity][entry.integration], math.nan))
                ch.energy(register)
                self._registers[ch.number] = (register, updated_ns / 1e9)
        remaining = float(values.get("demand_interval_remaining", math.nan))
        if math.isfinite(remaining) and math.isfinite(self._remaining) and remaining > self._remaining:
            for ch in self.outputs.values():
                if ch.source == "demand_interval":
                    ch.request_pulse()
        self._remaining = remaining
        self._alarm_events(self.alarms.evaluate(values, time.time()))
        self._disturbances(values)
        self._dirty = True

    def _half_cycle_setpoints(self) -> None:
        if self.half_cycles is not None:
            for t, urms in self.half_cycles.read():
                self._alarm_events(self.alarms.evaluate_half_cycles(t, urms))

    def _disturbances(self, values: dict[str, Any]) -> None:
        """A dip, swell or interruption counted since the last second raises its unary alarm (with the
        residual or extreme in % of Udin); the first second only takes the counters as they are."""
        for kind in build.DISTURBANCE_ALARMS:
            count = float(values.get(f"pq_{kind}_count", math.nan))
            last = self._pq_counts.get(kind)
            if math.isfinite(count):
                self._pq_counts[kind] = count
            if last is not None and math.isfinite(count) and count > last:
                extreme = float(values.get("pq_last_extreme_pct", math.nan))
                self._alarm_events(self.alarms.happened(f"pq_{kind}", time.time(), extreme))

    def _output_entry(self, number: int) -> Any:
        for e in self.config["io"].output:
            if e.number == number:
                return e
        raise MeterError(f"io: output {number} has no [[io.output]] entry")

    def _measurements(self) -> Snapshot | None:
        if self.measurements is None and time.monotonic() >= self._attach_at:
            self._attach_at = time.monotonic() + ATTACH_RETRY_S
            with contextlib.suppress(IPCError, OSError, ValueError):
                self.measurements = Snapshot.attach(self.ctx.shm_name(names.MEASUREMENTS))
        return self.measurements

    def _drive_outputs(self, now_ns: int) -> None:
        held = self.alarms.output_levels()
        active = [a for a in self.alarms.alarms if a.active]
        for n, ch in self.outputs.items():
            if ch.source == "alarm":
                threshold = self._output_entry(n).alarm_priority
                ch.hold(held.get(n, False) or any(threshold and a.priority >= threshold for a in active))
            before, pulses = ch.level, ch.pulses
            level = ch.tick(now_ns)
            if pulses != ch.pulses:
                # a pulse begins: on disk before the line changes, so no restart gives it twice
                self.store.save(self.inputs, self.outputs)
            if level != before or pulses != ch.pulses:
                self.gpio.write(self.out_pins[n - 1], level)
                self._dirty = True

    def _persist_and_publish(self) -> None:
        now = time.monotonic()
        interval = self.config["io"].persist_interval
        if self._dirty and now - self._saved_at >= interval:
            self.store.save(self.inputs, self.outputs)
            self._saved_at = now
        elif not self._dirty and now - self._published_at < PUBLISH_S:
            return
        self.snapshot.publish(self.values())
        self._published_at = now
        self._dirty = False

    # ------------------------------------------------------------------ alarms

    def _alarm_events(self, events: list[AlarmEvent]) -> None:
        for ev in events:
            self.counters["alarm_events"] += 1
            a = ev.alarm
            if a.priority > 0 and a.actions.event:
                detail = {"alarm": a.id, "value": None if math.isnan(ev.value) else ev.value, "time": ev.t}
                self._record(Event(a.priority, "alarms", f"alarm_{ev.what}", a.name, ev.user, detail))
            if ev.what == "pickup" and a.actions.capture:
                self._capture(a.name)
            self._dirty = True

    def _capture(self, why: str) -> None:
        """Ask for a waveform capture without waiting for it (the recorder may not run)."""
        self.counters["captures"] += 1
        cmd = self.config["alarms"].capture_command

        def send() -> None:
            try:
                ControlClient(self.ctx.control_socket, timeout_s=2.0, user="alarms").call(cmd, reason=why)
            except (MeterError, OSError) as exc:
                note = f"{type(exc).__name__}: {exc}"
                if note != self._capture_note:
                    self.log.info("waveform capture for alarm %r not taken (%s); alarms go on without it", why, note)
                self._capture_note = note

        threading.Thread(target=send, name="capture", daemon=True).start()

    def _record(self, event: Event) -> None:
        try:
            self.events.record(event)
        except MeterError as exc:
            self.log.warning("event log write failed: %s", exc)

    # ------------------------------------------------------------------ snapshot

    def values(self) -> dict[str, Any]:
        nan = [math.nan] * CHANNELS

        def arr(n: int, get: Any) -> list[float]:
            out = list(nan)
            for i in range(n):
                out[i] = float(get(i + 1))
            return out

        ni, no = len(self.in_pins), len(self.out_pins)
        rows = self.alarms.active_list()[:ALARM_LIST]
        pad = ALARM_LIST - len(rows)
        return {
            "di_state": arr(ni, lambda n: self.inputs[n].active),
            "di_count": arr(ni, lambda n: self.inputs[n].count),
            "di_activations": arr(ni, lambda n: self.inputs[n].activations),
            "di_total": arr(ni, lambda n: self.inputs[n].total()),
            "do_state": arr(no, lambda n: self.outputs[n].level),
            "do_pulses": arr(no, lambda n: self.outputs[n].pulses),
            "do_suspended": arr(no, lambda n: self.outputs[n].suspended),
            "pulsing_suspended": float(any(o.suspended for o in self.outputs.values())),
            **self.alarms.summary(),
            "alarm_list_id": [float(r["id"]) for r in rows] + [0.0] * pad,
            "alarm_list_priority": [float(r["priority"]) for r in rows] + [0.0] * pad,
            "alarm_list_state": [float(r["active"]) + 2.0 * float(r["acknowledged"]) for r in rows] + [0.0] * pad,
            "alarm_list_since": [float(r["since"]) for r in rows] + [math.nan] * pad,
            "alarm_list_value": [math.nan if r["value"] is None else float(r["value"]) for r in rows]
            + [math.nan] * pad,
            "power_up_count": float(self.power_up.count) if self.power_up.count else math.nan,
            "events_unread": self._events_unread(),
        }

    def _events_unread(self) -> float:
        """The event log's unread counter (ION: the unread-events warning), for the display and Modbus."""
        try:
            return float(self.events.unread())
        except MeterError:
            return math.nan

    def teardown(self) -> None:
        store = getattr(self, "store", None)
        if store is not None and hasattr(self, "outputs"):
            with contextlib.suppress(MeterError, OSError):
                store.save(self.inputs, self.outputs)
        for name in ("snapshot", "measurements", "events", "gpio", "half_cycles"):
            obj = getattr(self, name, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()

    def dump_config(self) -> dict[str, Any]:
        return dict(getattr(self, "counters", {}))

    # ------------------------------------------------------------------ commands

    @command("status")
    def cmd_status(self, user: str = "") -> dict[str, Any]:
        with self._lock:
            ins = [{"number": n, "active": c.active, "since_ns": c.since_ns, "count": c.count,
                    "activations": c.activations, "total": c.total(), "unit": self.settings[n]["unit"],
                    "mode": c.mode, "debounce_s": c.debounce_s, "bounces": c.bounces,
                    "functions": self.functions.get(n, [])} for n, c in self.inputs.items()]
            outs = [{"number": n, "source": o.source, "mode": o.mode, "level": o.level, "forced": o.forced,
                     "pulses": o.pulses, "owed": o.owed, "suspended": o.suspended,
                     **self._pulser_status(n)} for n, o in self.outputs.items()]
            totals = {t.name: t.value(self.inputs) for t in self.totalizers}
            return {"inputs": ins, "outputs": outs, "totalizers": totals, **self.alarms.summary(),
                    "persisted": self.store.writes, "now_ns": time.monotonic_ns(),
                    "half_cycle_batches": self.half_cycles.batches if self.half_cycles is not None else 0}

    def _pulser_status(self, number: int) -> dict[str, Any]:
        """An energy output's pulser: Kt, origin and pulses given since it, and the register it last took with
        the end of that measurement second (what a meter-shop test compares the pulses with)."""
        pulser = self.outputs[number].pulser
        if pulser is None:
            return {}
        register, end_s = self._registers.get(number, (math.nan, math.nan))
        return {"kt": pulser.kt, "origin": pulser.origin if math.isfinite(pulser.origin) else None,
                "given": pulser.given, "register": register if math.isfinite(register) else None,
                "register_end_s": end_s if math.isfinite(end_s) else None}

    def _output(self, output: Any) -> Any:
        if not isinstance(output, int) or output not in self.outputs:
            raise MeterError(f"io: output {output!r} does not exist; outputs are 1..{len(self.outputs)} "
                             "(board file [gpio] digital_outputs)")
        return self.outputs[output]

    @command("force")
    def cmd_force(self, user: str = "", output: Any = None, state: str = "") -> dict[str, Any]:
        """Force an output on or off, or release it to its source (state "on", "off" or "release")."""
        if state not in ("on", "off", "release"):
            raise MeterError(f"io.force: state must be \"on\", \"off\" or \"release\", got {state!r}")
        with self._lock:
            ch = self._output(output)
            old = "release" if ch.forced is None else ("on" if ch.forced else "off")
            ch.forced = None if state == "release" else state == "on"
            self._record(Event(64, "io", "output_forced", f"do{output}", user, {"old": old, "new": state}))
            self._dirty = True
        return {"output": output, "old": old, "new": state}

    @command("pulse")
    def cmd_pulse(self, user: str = "", output: Any = None, count: int = 1) -> dict[str, Any]:
        """Give ``count`` pulses (1..1000) on an output at its width and rate."""
        if not isinstance(count, int) or not 1 <= count <= 1000:
            raise MeterError(f"io.pulse: count must be 1..1000, got {count!r}")
        with self._lock:
            self._output(output).request_pulse(count)
        return {"output": output, "queued": count}

    @command("reset_counts")
    def cmd_reset_counts(self, user: str = "") -> dict[str, Any]:
        """Clear every digital input's pulse count (BACnet AV1 16498, "clear pulse counters"); the input
        metering totals follow the counts. On disk before the answer, so a restart never brings them back."""
        with self._lock:
            old = {n: ch.count for n, ch in self.inputs.items()}
            for ch in self.inputs.values():
                ch.count = 0
            self.store.save(self.inputs, self.outputs)
            self._record(Event(64, "io", "pulse_counts_reset", "digital inputs", user,
                               {"old": {str(n): c for n, c in old.items()}}))
            self._dirty = True
        return {"reset": sorted(old), "old": old}

    @command("alarms")
    def cmd_alarms(self, user: str = "") -> dict[str, Any]:
        with self._lock:
            return {"active": self.alarms.active_list(), "historic": self.alarms.historic_list(),
                    **self.alarms.summary()}

    @command("ack")
    def cmd_ack(self, user: str = "", ids: Any = None) -> dict[str, Any]:
        """Acknowledge alarms by id (a list), or every unacknowledged alarm when ``ids`` is not given."""
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
            raise MeterError(f"io.ack: ids must be a list of alarm ids (io.alarms lists them), got {ids!r}")
        with self._lock:
            known = {a.id for a in self.alarms.alarms}
            unknown = [i for i in ids or () if i not in known]
            if unknown:
                raise MeterError(f"io.ack: no alarm with id {unknown}; io.alarms lists them")
            events = self.alarms.acknowledge(ids, user, time.time())
            for ev in events:
                if ev.what != "ack":
                    self._alarm_events([ev])            # a unary alarm ends when it is acknowledged
                    continue
                self._record(Event(max(ev.alarm.priority, 6), "alarms", "alarm_ack", ev.alarm.name, user,
                                   {"alarm": ev.alarm.id}))
            self._dirty = True
        return {"acknowledged": [ev.alarm.id for ev in events if ev.what == "ack"]}


if __name__ == "__main__":
    sys.exit(main(IoService))
