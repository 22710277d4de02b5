"""The upgrade log: every attempt, each step it reached and its outcome (SPEC 9).

A bounded SQLite log (``firmware.storage.logstore``, WAL, synchronous=FULL, circular) shared by
the installer and the boot guard, which run as different processes. One row per event; rows of
one attempt share its ``attempt`` id.

Events: ``attempt`` (an image was offered), ``refused`` (a check failed; ``reason`` says which),
``step`` (extract, verify, place, arm, switch), ``failed`` (install error, running slot unchanged),
``trial`` (the new slot was started), ``committed`` (it reported healthy), ``rolled_back``
(it did not; ``reason`` says why), ``recovered`` (an interrupted install or fallback was tidied).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from firmware.storage.logstore import LogStore

COLUMNS = {"attempt": "TEXT", "event": "TEXT", "version": "TEXT", "slot": "TEXT", "reason": "TEXT",
           "message": "TEXT", "user": "TEXT"}
OUTCOMES = ("refused", "failed", "committed", "rolled_back")


class UpgradeLog:
    def __init__(self, state_dir: str | Path, depth: int = 2000) -> None:
        self.store = LogStore(Path(state_dir) / "upgrade.db", "upgrade", COLUMNS, depth, mode="circular")

    def record(self, attempt: str, event: str, *, version: str = "", slot: str = "", reason: str = "",
               message: str = "", user: str = "") -> None:
        self.store.append(time.time(), {"attempt": attempt, "event": event, "version": version, "slot": slot,
                                        "reason": reason, "message": message, "user": user})

    def entries(self, attempt: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.store.last(limit)
        return [r for r in rows if attempt is None or r["attempt"] == attempt]

    def outcome(self, attempt: str) -> dict[str, Any] | None:
        for row in reversed(self.entries(attempt)):
            if row["event"] in OUTCOMES:
                return row
        return None

    def close(self) -> None:
        self.store.close()
