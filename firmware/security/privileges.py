"""The seven user privileges and what each one lets a user do (SPEC §8; ION7400 firmware 3.0 "Advanced security").

The ION names are given beside ours: Read Access, Peak Demand Reset Access, Time Sync Access, Full Meter
Config Access (with Comm Config and Test Mode folded in: "setup"), Security Config Access. ``user-defined`` is
a privilege with no built-in operation: extensions and site procedures name it for operations of their own.
``master`` holds every other privilege.
"""
from __future__ import annotations

import enum
from typing import Iterable

from hal.errors import ConfigError


class Privilege(str, enum.Enum):
    READ = "read"                          # ION "Read Access": view everything except the security setup
    PEAK_DEMAND_RESET = "peak-demand-reset"  # ION "Peak Demand Reset Access"
    TIME_SYNC = "time-sync"                # ION "Time Sync Access"
    SETUP = "setup"                        # ION "Full Meter Config", "Comm Config", "Test Mode" access
    SECURITY = "security"                  # ION "Security Config Access": users, lockout, security settings
    USER_DEFINED = "user-defined"          # operations that extensions or site procedures define
    MASTER = "master"                      # every privilege


ALL = frozenset(Privilege)


def parse_privileges(names: Iterable[str]) -> frozenset[Privilege]:
    """Privileges from their names ("read", "setup"...); ``master`` expands to all of them."""
    out: set[Privilege] = set()
    for name in names:
        try:
            out.add(Privilege(name.strip().lower()))
        except ValueError:
            allowed = ", ".join(p.value for p in Privilege)
            raise ConfigError(f"privilege {name!r} is not known; allowed: {allowed}") from None
    return expand(out)


def expand(privileges: Iterable[Privilege]) -> frozenset[Privilege]:
    found = frozenset(privileges)
    return ALL if Privilege.MASTER in found else found


def to_mask(privileges: Iterable[Privilege]) -> int:
    order = list(Privilege)
    return sum(1 << order.index(p) for p in set(privileges))


def from_mask(mask: int) -> frozenset[Privilege]:
    return expand(p for i, p in enumerate(Privilege) if mask >> i & 1)


def names(privileges: Iterable[Privilege]) -> list[str]:
    found = set(privileges)
    return [p.value for p in Privilege if p in found]
