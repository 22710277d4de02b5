"""The display service: the front panel's screens from the measurement snapshot, its modes and buttons.

Every ``[display] refresh`` (and at once after a button) it reads the measurement snapshot, asks the panel
(``firmware.display.panel``) which mode and screen to show, draws it (``firmware.display.screens``) and writes
it to the framebuffer on the device or to PNG files in simulation (``firmware.display.output``), unless
nothing it shows changed since it last drew: the same screen, mode and clock minute, and the same value of
every point that drawing read (``firmware.display.view``). Between refreshes it sleeps on the buttons. The five
buttons are GPIO inputs (board file ``[gpio] buttons``: up, down, left, right, enter; active low), read as
edge events and debounced like the digital inputs. Enter on the alarm screen acknowledges the alarms
(``io.ack`` on the control socket, as the user "display"). Enter on the setup screen opens the login
(``firmware.display.setup``): a meter user allowed over "display" logs in through the security core's login
(lockout per user at the display, security events), then changes the settings in ``SETUP_OPTIONS``, each
confirmed with its old and new value, authorized for the option's privilege, saved through the configuration
store and recorded in the event log. The login ends when the panel returns to NORM.
"""
from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import Any

from firmware import __version__
from firmware.config.board import load_board
from firmware.control import ControlClient
from firmware.display import BUTTONS
from firmware.display.output import FramebufferOutput, PngOutput
from firmware.config import meter_schema
from firmware.config.store import ConfigStore
from firmware.display.panel import ALT, SETUP, Panel
from firmware.display.screens import Context, render, text_lines
from firmware.display.setup import DisplaySetup, Setting, shown
from firmware.display.view import Shown
from firmware.io import build
from firmware.io.inputs import InputChannel
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.security.authorize import Identity, authorize, config_operation
from firmware.security.login import Logins
from firmware.service import HEARTBEAT_INTERVAL_S, Service, command, main
from firmware.storage.eventlog import Event, EventLog
from firmware.upgrade.legal import SHORT_HEX, running_code_hash
from hal.clock import SystemClock
from hal.errors import IPCError, MeterError
from hal.sim.wire import RUN_DIR_NAME as SIM_WIRE_DIR

BUTTON_DEBOUNCE_S = 0.02
SETTLE_WAIT_S = 0.005          # button wait while a button settles: the debounce's resolution
ATTACH_RETRY_S = 2.0
CLOCK_FORMAT = "%H:%M"         # the panel's clock: seconds would make every screen change every second
# What the panel's setup changes: options the buttons can step (a choice, a duration) and that concern the
# panel itself; the rest of the configuration is set on the web page or with `meter config set`.
SETUP_OPTIONS = ("display.labels", "display.scroll_interval", "display.alt_timeout")
CONFIG_CHANGE_PRIORITY = 20    # as the web's setup: a configuration change is recorded, not an alarm


class DisplayService(Service):
    name = "display"

    def setup(self) -> None:
        self.cfg = self.config["display"]
        board = load_board(self.ctx.board_path)
        self.gpio = self._open_gpio(board)
        self.button_pins = dict(zip(board.gpio.buttons, BUTTONS))
        self.buttons = {pin: InputChannel(k + 1, BUTTON_DEBOUNCE_S) for k, pin in enumerate(self.button_pins)}
        if self.button_pins:
            self.gpio.watch_edges(self.button_pins, "up")
        use_fb = self.cfg.output == "framebuffer" or (self.cfg.output == "auto" and not board.simulated)
        self.output = (FramebufferOutput(self.cfg.framebuffer) if use_fb
                       else PngOutput(self.ctx.data_dir / self.cfg.png_dir))
        self.panel = Panel(tuple(self.cfg.screens), self.cfg.scroll_interval, self.cfg.alt_timeout)
        self.static = self._static(board)
        self.measurements: Snapshot | None = None
        self._attach_at = 0.0
        self._drawn_at = -math.inf
        self._shown: tuple[str, str] = ("", "")
        self.shown = Shown()
        self.counters = {"renders": 0, "unchanged": 0, "presses": 0, "acks": 0, "changes": 0}
        self.logins = Logins.from_config(self.config, source="display")
        self.setup_dialog = DisplaySetup(self._login, self._settings, self._apply)
        self.endpoints = [f"display:{'fb ' + self.cfg.framebuffer if use_fb else self.ctx.data_dir / self.cfg.png_dir}"]

    def _open_gpio(self, board: Any) -> Any:
        if board.simulated:
            from hal.sim.gpio import SimGpio
            return SimGpio(SystemClock(), wire=self.ctx.run_dir / SIM_WIRE_DIR)
        from hal.gpio import open_gpio
        gp = board.gpio
        return open_gpio(gp.backend, chip=gp.chip) if gp.backend == "gpiod" else open_gpio(gp.backend)

    def _static(self, board: Any) -> dict[str, Any]:
        """What does not change while the service runs: nameplate, nominals, alarm names, labels."""
        met = self.config["metrology"]
        kts = [f"{e.kt:g} {e.quantity}/p (DO{e.number})" for e in self.config["io"].output if e.source == "energy"]
        nameplate = {
            "Meter": f"{self.config['meter'].name}  {self.config['meter'].serial_number}",
            "Firmware": __version__,
            "Code SHA-256": running_code_hash()[:SHORT_HEX],
            "Config": f"version {self.config['meta'].version}",
            "Volts mode": str(met.system_type),
            "PT": f"{met.pt_primary:g} : {met.pt_secondary:g} V",
            "CT": f"{met.ct_primary:g} : {met.ct_secondary:g} A",
            "Pulse Kt": ", ".join(kts) or "none",
            "Nominal": f"{met.nominal_voltage:g} V  {met.nominal_current:g} A  {met.nominal_frequency} Hz",
        }
        alarms = build.alarms(self.config, build.input_settings(self.config, len(board.gpio.digital_inputs)))
        return {"nameplate": nameplate, "alarm_names": {a.id: a.name for a in alarms.alarms},
                "nominal_v": float(met.nominal_voltage), "nominal_i": float(met.nominal_current),
                "labels": self.cfg.labels}

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        while not self.stopping.is_set():
            pressed = self._buttons()
            now = time.monotonic()
            if pressed or now - self._drawn_at >= self.cfg.refresh:
                self.draw(now)
            self.counters["presses"] += pressed      # counted once the screen it led to is shown
            self.heartbeat(mode=self.panel.mode, screen=self.panel.screen, **self.counters)

    def _wait_s(self) -> float:
        """Until the next refresh or heartbeat, or the debounce's resolution while a button settles."""
        if any(ch.settling for ch in self.buttons.values()):
            return SETTLE_WAIT_S
        due = self._drawn_at + self.cfg.refresh - time.monotonic()
        return min(max(due, 0.0), HEARTBEAT_INTERVAL_S)

    def _buttons(self) -> int:
        wait = self._wait_s()
        edges = self.gpio.read_edges(wait) if self.button_pins else []
        if not self.button_pins:
            self.stopping.wait(wait)
        now_ns = time.monotonic_ns()
        pressed = 0
        for edge in edges:
            ch = self.buttons.get(edge.pin)
            if ch is not None:
                for tr in ch.edge(edge.level, edge.timestamp_ns):
                    pressed += self._press(edge.pin, tr.active)
        for pin, ch in self.buttons.items():
            for tr in ch.settle(now_ns):
                pressed += self._press(pin, tr.active)
        return pressed

    def _press(self, pin: int, active: bool) -> int:
        if not active:
            return 0
        button, now = self.button_pins[pin], time.monotonic()
        if self.setup_dialog.active:
            self.panel.touch(now)
            self.setup_dialog.press(button)
            return 1
        action = self.panel.press(button, now)
        if action == "ack":
            self._acknowledge()
        elif action == SETUP:
            self.setup_dialog.open()
        return 1

    # ------------------------------------------------------------------ setup (login, confirmed changes)

    def _login(self, name: str, password: str) -> Identity:
        return self.logins.login(name, password, "display", where={"panel": "front"})

    def _settings(self) -> list[Setting]:
        config, schema = ConfigStore(self.ctx.config_path).load(), meter_schema()
        out = []
        for key in SETUP_OPTIONS:
            section, option = key.split(".")
            kind = next(o.kind for o in schema.section(section).options if o.name == option)
            out.append(Setting(key, kind, config[section][option]))
        return out

    def _apply(self, who: Identity, key: str, value: Any) -> str:
        section, option = key.split(".")
        rule = meter_schema().section(section).rule(option)
        authorize(who, config_operation(rule.privilege, rule.locked), "display")   # AccessDenied: shown
        store = ConfigStore(self.ctx.config_path)
        before = store.load()[section][option]
        new = store.update({section: {option: value}}, who.user, "changed at the display")
        change = f"{key}: {shown(before)!s} -> {shown(new[section][option])!s}"
        with contextlib.closing(EventLog.from_config(self.config)) as log:
            log.record(Event(CONFIG_CHANGE_PRIORITY, "display", "config_change", change, who.user,
                             {"version": new.version, "reason": "changed at the display"}))
        self.counters["changes"] += 1
        return f"{change} saved (version {new.version}); it applies when the display restarts"

    def _acknowledge(self) -> None:
        self.counters["acks"] += 1

        def send() -> None:
            try:
                ControlClient(self.ctx.control_socket, timeout_s=5.0, user="display").call("io.ack")
            except (MeterError, OSError) as exc:
                self.log.warning("alarm acknowledgement from the panel failed: %s", exc)

        threading.Thread(target=send, name="ack", daemon=True).start()

    def values(self) -> dict[str, Any]:
        if self.measurements is None and time.monotonic() >= self._attach_at:
            self._attach_at = time.monotonic() + ATTACH_RETRY_S
            with contextlib.suppress(IPCError, OSError, ValueError):
                self.measurements = Snapshot.attach(self.ctx.shm_name(names.MEASUREMENTS))
        if self.measurements is None:
            return {}
        try:
            return dict(self.measurements.read())
        except IPCError:
            return {}

    def draw(self, now: float) -> None:
        values = self.values()
        test = values.get("test_mode", math.nan)
        mode, screen = self.panel.update(now, isinstance(test, float) and test == 1.0)
        if self.setup_dialog.active and (mode != ALT or screen != SETUP):
            self.setup_dialog.close()           # the panel timed out to NORM (or test mode took over): log out
        self._drawn_at = now
        self._shown = (mode, screen)
        clock = time.strftime(CLOCK_FORMAT)
        dialog = tuple(self.setup_dialog.lines()) if screen == SETUP and self.setup_dialog.active else ()
        key = (screen, mode, clock, dialog)
        if not self.shown.changed(key, values):
            self.counters["unchanged"] += 1
            return
        s = self.static
        reads = self.shown.recorder(values)
        ctx = Context(reads, s["labels"], mode, clock, s["nominal_v"], s["nominal_i"], s["nameplate"],
                      s["alarm_names"])
        if screen == SETUP:
            lines = list(dialog) or ["Setup", "", "enter: log in to change settings"]
            self.output.show(text_lines(ctx, "Setup", lines), screen)
        else:
            self.output.show(render(screen, ctx), screen)
        self.shown.drawn(key, reads)
        self.counters["renders"] += 1

    def teardown(self) -> None:
        for name in ("output", "measurements", "gpio", "logins"):
            obj = getattr(self, name, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()

    @command("status")
    def cmd_status(self, user: str = "") -> dict[str, Any]:
        d = self.setup_dialog
        return {"mode": self._shown[0], "screen": self._shown[1], **self.counters,
                "setup": {"state": d.state, "user": d.name if d.who is not None else "", "lines": d.lines()}
                if d.active else None}


if __name__ == "__main__":
    sys.exit(main(DisplayService))
