"""Why an upgrade was refused or failed.

``UpgradeRefused`` carries a short machine-readable ``reason`` (used by the upgrade log, the control
socket and the tests) and a message for people that says what was wrong and what to do.
"""
from __future__ import annotations

from hal.errors import MeterError

# Reasons a refusal can give; the upgrade log and docs/upgrade.md use the same words.
REASONS = {
    "truncated": "the image file is shorter than its own structure says",
    "damaged": "a byte of the image differs from what its manifest or tar headers say",
    "format": "the file is not a meter image of a format this firmware reads",
    "unsigned": "the image carries no signature",
    "untrusted": "no signature is by a key in the meter's trust store",
    "signature": "a signature by a trusted key does not match the manifest",
    "product": "the image is for another product",
    "board": "the image does not list this board as compatible",
    "downgrade": "the image version is not higher than the installed one",
    "floor": "the image version is below the anti-rollback floor",
    "min_from": "the image cannot upgrade from the installed version",
    "locked": "the revenue lock is on",
    "space": "not enough free space for the inactive slot",
    "busy": "another upgrade is in progress",
    "unprovisioned": "the meter has no committed slot to fall back to",
}


class UpgradeRefused(MeterError):
    """An image was refused before anything on the meter changed."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.reason = reason
        super().__init__(message)


class UpgradeFailed(MeterError):
    """An accepted image could not be installed; the running slot is unchanged."""
