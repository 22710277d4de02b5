"""The boot guard: starts the supervisor from the right slot and decides whether a new slot stays.

``meter.service`` runs the guard from the ``good`` slot (the last one that reported healthy), so
the code that judges a new slot is never the new code itself. The guard:

1. recovers: removes staging/trash leftovers and makes the pointers and ``trial.json`` agree
   (an install killed before its switch is forgotten, a commit or fallback cut short is finished);
2. starts ``meter run`` from ``current`` (its own process group, the slot's ``app`` first on
   ``PYTHONPATH``);
3. if ``current`` is a new slot on probation, asks its ``status`` over the control socket every
   ``health_poll`` until it answers ``healthy`` within ``health_deadline``: then commits it (raises
   the anti-rollback floor, applies the image's key rotation, points ``good`` at it); otherwise,
   or if the supervisor exits, or after ``max_trial_boots`` starts (power cycles) without a healthy
   report, stops it and falls back to ``good``;
4. afterwards keeps watching: a new install (``current`` moved, SIGHUP or the next poll) restarts
   into it; a supervisor exit ends the guard with its exit code so that systemd restarts it.

While the meter answers ``status`` the guard feeds the systemd watchdog (``WATCHDOG=1``).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from firmware.upgrade.log import UpgradeLog
from firmware.upgrade.settings import UpgradeSettings
from firmware.upgrade.slots import SlotLayout
from firmware.upgrade.trust import TrustStore

log = logging.getLogger("upgrade.guard")

STOP_TIMEOUT_S = 10.0         # supervisor's own stop_timeout is 3 s per service; then SIGKILL the group
Probe = Callable[[], "dict[str, Any] | None"]


def sd_notify(message: str) -> None:
    """Send one sd_notify(3) datagram if systemd gave us a socket; silently nothing otherwise."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), addr)
    except OSError:
        pass


def control_probe(socket_path: Path, timeout_s: float = 2.0) -> Probe:
    def probe() -> dict[str, Any] | None:
        from firmware.control import ControlClient
        from hal.errors import MeterError

        try:
            status = ControlClient(socket_path, timeout_s=timeout_s, user="upgrade-guard").call("status")
        except (MeterError, OSError, ValueError):
            return None
        return status if isinstance(status, dict) else None

    return probe


def describe_status(status: dict[str, Any] | None) -> str:
    if status is None:
        return "no reply on the control socket"
    bad = [f"{n} {s.get('state')}" for n, s in (status.get("services") or {}).items() if s.get("state") != "running"]
    parts = bad + (["not metering"] if status.get("metering") is False else [])
    return ", ".join(parts) or "unhealthy"


class Guard:
    def __init__(self, settings: UpgradeSettings, command: Callable[[Path], list[str]], probe: Probe,
                 upgrade_log: UpgradeLog | None = None, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.layout = SlotLayout(settings.root, settings.state_dir)
        self.trust = TrustStore(settings.trust_store)
        self.log = upgrade_log or UpgradeLog(settings.state_dir, settings.log_depth)
        self.command = command
        self.probe = probe
        self.env = env
        self.child: subprocess.Popen[bytes] | None = None
        self.running_slot: str | None = None
        self.child_started = 0.0
        self._stop = False
        self._wake = threading.Event()

    # ------------------------------------------------------------------ recovery (no processes)

    def recover(self) -> None:
        layout = self.layout
        removed = layout.cleanup_transient()
        if removed:
            self.log.record("", "recovered", message=f"removed {', '.join(removed)} left by an interrupted install")
        cur, good = layout.current(), layout.good()
        if good is None or not layout.slot_path(good).is_dir():
            if cur is None or not layout.slot_path(cur).is_dir():
                raise SystemExit(f"upgrade guard: no slot installed under {layout.root}; "
                                 "provision one with `meter image provision IMAGE`")
            layout.set_pointer("good", cur)
            good = cur
        if cur is None or not layout.slot_path(cur).is_dir():
            layout.set_pointer("current", good)
            cur = good
        trial = layout.trial()
        if trial is None:
            if cur != good:
                layout.set_pointer("current", good)
                self.log.record("", "recovered", slot=good, message=f"current pointed at {cur} with no trial; "
                                f"back to last good slot {good}")
            return
        attempt, slot = str(trial.get("attempt", "")), trial.get("slot")
        if slot == good and cur == good:
            self._finish_commit(trial, "commit completed after an interruption")
        elif slot != cur:
            why = ("fallback completed after an interruption" if trial.get("boots") else
                   "install interrupted before the switch; nothing was started")
            layout.clear_trial()
            self.log.record(attempt, "recovered", version=str(trial.get("version", "")), slot=good, message=why)
        # else: slot == cur != good, a trial in progress: run() resumes it

    # ------------------------------------------------------------------ decisions

    def _finish_commit(self, trial: dict[str, Any], message: str) -> None:
        slot, version = trial["slot"], str(trial.get("version", ""))
        floor = self.layout.raise_floor(version) if version else self.layout.floor()
        manifest = self.layout.manifest(slot)
        changes = self.trust.apply(manifest.trust_update) if manifest and manifest.trust_update else []
        self.layout.set_pointer("good", slot)
        self.layout.clear_trial()
        extra = f"; trust store: {', '.join(changes)}" if changes else ""
        self.log.record(str(trial.get("attempt", "")), "committed", version=version, slot=slot,
                        message=f"{message}; anti-rollback floor {floor}{extra}")

    def commit(self, trial: dict[str, Any]) -> None:
        self._finish_commit(trial, "reported healthy")

    def rollback(self, trial: dict[str, Any], reason: str) -> None:
        self.stop_child()
        good = self.layout.good()
        assert good is not None
        self.layout.set_pointer("current", good)
        self.layout.clear_trial()
        self.log.record(str(trial.get("attempt", "")), "rolled_back", version=str(trial.get("version", "")),
                        slot=good, reason="unhealthy", message=reason)
        log.warning("fell back to slot %s: %s", good, reason)

    def _trial_to_start(self) -> dict[str, Any] | None:
        cur, good, trial = self.layout.current(), self.layout.good(), self.layout.trial()
        if not trial or trial.get("slot") != cur or cur == good:
            return None
        trial["boots"] = int(trial.get("boots", 0)) + 1
        self.layout.write_trial(trial)
        if trial["boots"] > self.settings.max_trial_boots:
            self.rollback(trial, f"slot {cur} was started {trial['boots'] - 1} times without reporting healthy")
            return None
        self.log.record(str(trial.get("attempt", "")), "trial", version=str(trial.get("version", "")), slot=cur or "",
                        message=f"start {trial['boots']} of {self.settings.max_trial_boots}; healthy needed within "
                        f"{self.settings.health_deadline_s:g} s")
        return trial

    # ------------------------------------------------------------------ processes

    def start_child(self, slot: str) -> None:
        path = self.layout.slot_path(slot)
        env = dict(self.env if self.env is not None else os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str((path / "app").resolve()), env.get("PYTHONPATH", "")) if p)
        env["METER_SLOT"] = slot
        env["PYTHONSAFEPATH"] = "1"   # `python -m` must not put the working directory before the slot
        self.child = subprocess.Popen(self.command(path), env=env, start_new_session=True)
        self.child_started = time.monotonic()
        self.running_slot = slot
        log.info("started slot %s (pid %d)", slot, self.child.pid)

    def stop_child(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        try:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        except ProcessLookupError:
            child.wait()

    def _sleep(self) -> None:
        self._wake.wait(self.settings.health_poll_s)
        self._wake.clear()

    def watch_trial(self, trial: dict[str, Any]) -> str:
        deadline = time.monotonic() + self.settings.health_deadline_s
        while not self._stop:
            assert self.child is not None
            code = self.child.poll()
            if code is not None:
                self.rollback(trial, f"the new slot's supervisor exited with code {code} before reporting healthy")
                return "rolled_back"
            sd_notify("WATCHDOG=1")     # the guard is alive; the health deadline covers the new slot
            status = self.probe()
            if status and status.get("healthy") is True:
                self.commit(trial)
                return "committed"
            given_up = sorted(n for n, s in ((status or {}).get("services") or {}).items() if s.get("state") == "failed")
            if given_up:
                # the supervisor stopped restarting them: the slot can no longer become healthy
                self.rollback(trial, f"{', '.join(given_up)} failed (the supervisor gave up restarting) before the "
                              "new slot reported healthy")
                return "rolled_back"
            if time.monotonic() >= deadline:
                self.rollback(trial, f"not healthy within {self.settings.health_deadline_s:g} s "
                              f"({describe_status(status)})")
                return "rolled_back"
            self._sleep()
        return "stopped"

    def watch(self) -> int | None:
        """Steady state: None to restart into a newly switched slot, else the supervisor's exit code."""
        while not self._stop:
            assert self.child is not None
            code = self.child.poll()
            if code is not None:
                log.error("supervisor exited with code %s", code)
                return code or 1
            if self.layout.current() != self.running_slot and self._trial_pending():
                self.stop_child()
                return None
            # The supervisor's start-up (every service imported and started: a minute on a slow CPU) is not a
            # hang: for the health deadline after its start the guard vouches for it, as in a trial; after
            # that only its answers to 'status' count.
            if self.probe() is not None or time.monotonic() - self.child_started < self.settings.health_deadline_s:
                sd_notify("WATCHDOG=1")
            self._sleep()
        return 0

    def _trial_pending(self) -> bool:
        trial = self.layout.trial()
        return bool(trial and trial.get("slot") == self.layout.current() != self.layout.good())

    def run(self) -> int:
        pid_file = self.layout.guard_pid_file
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
        try:
            self.recover()
            while not self._stop:
                trial = self._trial_to_start()
                slot = self.layout.current()
                assert slot is not None
                self.start_child(slot)
                sd_notify("READY=1")
                if trial and self.watch_trial(trial) == "rolled_back":
                    continue
                code = self.watch()
                if code is not None:
                    return code
            return 0
        finally:
            self.stop_child()
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()

    def fall_back(self, reason: str) -> int:
        """Without starting anything: abandon a slot on probation and point ``current`` at ``good``."""
        self.recover()
        trial = self.layout.trial()
        if trial and trial.get("slot") == self.layout.current() != self.layout.good():
            self.rollback(trial, reason)
        return 0

    def request_stop(self, *_: Any) -> None:
        self._stop = True
        self.wake()

    def wake(self, *_: Any) -> None:
        # Called from signal handlers: the main thread may hold the event's lock inside its own wait, so the
        # event is set from another thread rather than here.
        threading.Thread(target=self._wake.set, name="wake", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    from firmware.config.store import ConfigStore

    p = argparse.ArgumentParser(prog="python -m firmware.upgrade.guard", description=__doc__.split("\n")[0])
    p.add_argument("--config", default=os.environ.get("METER_CONFIG", "var/meter.toml"))
    p.add_argument("--board", default=os.environ.get("METER_BOARD_FILE", "boards/sim.toml"),
                   help="board file; a relative path is looked up in the slot's app/ when not found here")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--fallback", action="store_true",
                   help="only point 'current' back at the last good slot and exit (meter-rollback.service)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s upgrade-guard %(levelname)s %(message)s")
    config = ConfigStore(args.config).load()
    settings = UpgradeSettings.from_config(config)
    run_dir = Path(args.run_dir or config.meter.run_dir)

    def command(slot_path: Path) -> list[str]:
        venv_python = slot_path / "venv" / "bin" / "python"
        python = str(venv_python) if venv_python.exists() else sys.executable
        board = Path(args.board)
        if not board.is_absolute() and not board.exists() and (slot_path / "app" / board).exists():
            board = slot_path / "app" / board
        cmd = [python, "-m", "firmware.cli", "run", "--config", args.config, "--board", str(board)]
        return cmd + (["--run-dir", args.run_dir] if args.run_dir else [])

    guard = Guard(settings, command, control_probe(run_dir / "control.sock"))
    if args.fallback:
        return guard.fall_back("meter.service failed repeatedly (systemd OnFailure)")
    signal.signal(signal.SIGTERM, guard.request_stop)
    signal.signal(signal.SIGINT, guard.request_stop)
    signal.signal(signal.SIGHUP, guard.wake)
    return guard.run()


if __name__ == "__main__":
    sys.exit(main())
