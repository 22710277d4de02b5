"""The upgrade service: takes images over the control socket for the web page and remote protocols.

Commands (``"upgrade.<name>"`` on the meter's control socket):

- ``install`` ``{"path": "/tmp/openmeter-0.2.0.img"}``: runs every check at once, the signature, the manifest
  and every payload file's SHA-256 included, and replies with the refusal and its reason, or accepts: the
  install (extract, re-check, switch) then goes on in the background and the reply carries the ``attempt``
  id to follow with ``progress``. While one install runs, another is refused (``busy``) and its image is
  left alone. The boot guard then restarts the meter into the new slot and commits it or falls back.
- ``check`` ``{"path": ...}``: the same checks, nothing changed.
- ``progress`` ``{"attempt": id}``: the attempt's log rows and its outcome so far.
- ``status``: slots, pointers, trial, anti-rollback floor, installed version, board, revenue lock.
- ``log`` ``{"n": 50}``: the newest upgrade log rows.
"""
from __future__ import annotations

import sys
import threading
from typing import Any

from firmware.lockstate import revenue_locked as meter_locked
from firmware.service import Service, command, main
from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.installer import Installer, new_attempt_id
from firmware.upgrade.settings import UpgradeSettings
from hal.errors import MeterError


class UpgradeService(Service):
    name = "upgrade"
    step_interval_s = 1.0

    def setup(self) -> None:
        self.settings = UpgradeSettings.from_config(self.config)
        # The lock as the meter sees it: the switch (GPIO, published by its owner) or the sim board's file.
        self.installer = Installer(self.settings, locked=lambda: meter_locked(self.config))
        self._busy = threading.Lock()
        self._current: str | None = None
        self.endpoints = [f"control upgrade.install ({self.ctx.control_socket})"]

    def teardown(self) -> None:
        self.installer.log.close()

    def dump_config(self) -> dict[str, Any]:
        return {"root": str(self.settings.root), "board": self.settings.board,
                "health_deadline_s": self.settings.health_deadline_s, "installing": self._current}

    @staticmethod
    def _refusal(exc: UpgradeRefused) -> UpgradeRefused:
        return UpgradeRefused(exc.reason, f"refused ({exc.reason}): {exc}")

    @command("check")
    def cmd_check(self, path: str, user: str = "") -> dict[str, Any]:
        try:
            checked = self.installer.check(path)
            checked.image.scan()
        except UpgradeRefused as exc:
            raise self._refusal(exc) from None
        return {"acceptable": True, "version": checked.image.manifest.version, "slot": checked.target_slot,
                "key_id": checked.key_id, "installed_version": checked.installed_version}

    @command("install")
    def cmd_install(self, path: str, user: str = "") -> dict[str, Any]:
        if not self._busy.acquire(blocking=False):
            raise UpgradeRefused("busy", f"refused (busy): attempt {self._current} is still being installed")
        try:
            checked = self.installer.check(path)
            # The whole payload too, before answering: whoever uploaded a damaged image hears so now, not
            # only later from the attempt's log.
            checked.image.scan()
        except UpgradeRefused as exc:
            self._busy.release()
            attempt = new_attempt_id()
            self.installer.log.record(attempt, "attempt", message=f"image {path}", user=user)
            self.installer.log.record(attempt, "refused", reason=exc.reason, message=str(exc), user=user)
            raise self._refusal(exc) from None
        attempt = self._current = new_attempt_id()
        threading.Thread(target=self._install, args=(path, user, attempt), name="install", daemon=True).start()
        self.log.info("installing %s as attempt %s for %s", path, attempt, user or "?")
        return {"accepted": True, "attempt": attempt, "version": checked.image.manifest.version,
                "slot": checked.target_slot, "key_id": checked.key_id}

    def _install(self, path: str, user: str, attempt: str) -> None:
        try:
            self.installer.install(path, user=user, attempt=attempt)
        except MeterError as exc:
            self.log.error("install %s: %s", attempt, exc)   # already in the upgrade log with its reason
        finally:
            self._current = None
            self._busy.release()

    @command("progress")
    def cmd_progress(self, attempt: str, user: str = "") -> dict[str, Any]:
        rows = self.installer.log.entries(attempt)
        outcome = self.installer.log.outcome(attempt)
        state = outcome["event"] if outcome else ("installing" if self._current == attempt else
                                                  "on probation" if rows else "unknown")
        return {"attempt": attempt, "state": state, "log": rows}

    @command("status")
    def cmd_status(self, user: str = "") -> dict[str, Any]:
        describe = self.installer.layout.describe()
        describe.update(installed_version=self.installer.installed_version(), board=self.settings.board,
                        revenue_locked=meter_locked(self.config), installing=self._current)
        return describe

    @command("log")
    def cmd_log(self, n: int = 50, user: str = "") -> list[dict[str, Any]]:
        return self.installer.log.entries(limit=max(1, min(int(n), 10000)))


if __name__ == "__main__":
    sys.exit(main(UpgradeService))
