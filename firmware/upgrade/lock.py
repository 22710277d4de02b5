"""Where the upgrade checks read the revenue lock.

The revenue lock is a sealable switch on a board GPIO input (SPEC 8; ``hal.board.GpioParams
.revenue_lock``), owned by the revenue registers, which publish it in the measurement snapshot;
``firmware.lockstate.revenue_locked(config)`` is how the upgrade service and ``meter image install``
read it. This module holds the file form of the switch used by the simulated board: the meter is
locked while ``[upgrade] revenue_lock_file`` holds "locked", "1", "on" or "true". An unreadable
file counts as locked: an upgrade is refused rather than allowed by mistake.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

LOCKED_WORDS = {"locked", "1", "on", "true", "yes"}

_source: Callable[[], bool] | None = None


def set_revenue_lock_source(source: Callable[[], bool] | None) -> None:
    """Make ``revenue_locked`` ask ``source()``; None returns to the file-backed simulated lock."""
    global _source
    _source = source


def file_lock_state(path: str | Path) -> bool:
    try:
        return Path(path).read_text().strip().lower() in LOCKED_WORDS
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True


def set_file_lock(path: str | Path, locked: bool) -> None:
    """Set the simulated lock (tests and the simulated board's front panel)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("locked\n" if locked else "unlocked\n")


def _default_source(lock_file: str | Path) -> bool:
    return file_lock_state(lock_file)


def revenue_locked(lock_file: str | Path) -> bool:
    if _source is not None:
        return bool(_source())
    return _default_source(lock_file)
