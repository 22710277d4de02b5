"""Guessing a shared password: BACnet's DeviceCommunicationControl and ReinitializeDevice carry one password and
no user name, so there is no user to lock out. ``PasswordGuard`` checks no attempt within ``min_interval_s`` of
a wrong one (those are refused unchecked) and, after ``attempts`` wrong ones in a row, refuses every attempt, the
right password too, for ``lockout_s`` (``[security] lockout_attempts`` and ``lockout_duration``, as a user's
login). Its state is kept in a small file so a restart does not end a lockout.
"""
from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from firmware.storage.atomic import atomic_write


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""             # why refused: what and what to do
    locked_now: bool = False     # this attempt started a lockout


class PasswordGuard:
    def __init__(self, path: Path, attempts: int, lockout_s: float, min_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.attempts = attempts
        self.lockout_s = lockout_s
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.failures = 0
        self.locked_until = 0.0
        self.last_failure = float("-inf")
        try:
            state = json.loads(path.read_text())
            self.failures, self.locked_until = int(state["failures"]), float(state["locked_until"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            # a damaged state file must not end a lockout: treat it as one starting now
            self.locked_until = self.clock() + lockout_s

    def _save(self) -> None:
        atomic_write(self.path, json.dumps({"failures": self.failures, "locked_until": self.locked_until}).encode(),
                     mode=0o600)

    def check(self, given: str | None, password: str, what: str) -> Verdict:
        """Whether ``given`` may pass as ``password`` now; ``what`` names the service in the reasons."""
        now = self.clock()
        if now < self.locked_until:
            until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.locked_until))
            return Verdict(False, f"{what}: locked out until {until} after {self.attempts} wrong passwords; "
                                  "wait, or have an administrator check who is guessing")
        if now - self.last_failure < self.min_interval_s:
            return Verdict(False, f"{what}: no password is checked within {self.min_interval_s:g} s of a wrong one; "
                                  "try again later")
        if given is not None and hmac.compare_digest(given.encode(), password.encode()):
            if self.failures:
                self.failures = 0
                self._save()
            return Verdict(True)
        self.failures += 1
        self.last_failure = now
        if self.failures >= self.attempts:
            self.failures = 0
            self.locked_until = now + self.lockout_s
            self._save()
            return Verdict(False, f"{what}: wrong password; locked out for {self.lockout_s / 60:g} min after "
                                  f"{self.attempts} wrong passwords in a row", locked_now=True)
        self._save()
        return Verdict(False, f"{what}: wrong password ({self.failures} of {self.attempts} before a lockout)")
