"""Login and authorization for the web interface: the one place the web asks the meter's security core.

``login`` checks a user name and password (with the users' lockout) for the interface ``web``; ``authorize``
asks whether a logged-in user may carry out an operation. Both go to ``firmware.security``, the meter's one
user store and one authorization point: the web keeps no users, passwords or privileges of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from hal.errors import AccessDenied

INTERFACE = "web"

# Privileges (names of firmware.security.privileges.Privilege) the web's operations need.
READ = "read"
PEAK_DEMAND_RESET = "peak-demand-reset"
SETUP = "setup"
SECURITY = "security"
TIME_SYNC = "time-sync"


class LoginRefused(AccessDenied):
    """Wrong user or password, a locked-out user, or no security core: the message says which."""


@dataclass(frozen=True)
class Principal:
    name: str
    privileges: frozenset[str]


def _core() -> object:
    try:
        import firmware.security as core
    except ImportError:
        raise LoginRefused("no one can log in: this firmware has no security core (firmware.security, the "
                           "meter's users and passwords)") from None
    return core


def login(username: str, password: str, address: str) -> Principal:
    """The user behind a name and password given to the web interface from ``address``, or LoginRefused."""
    _core()
    raise LoginRefused("no one can log in: the security core does not offer password logins yet")


def authorize(principal: Principal, privilege: str, revenue: bool = False) -> None:
    """Raise AccessDenied unless ``principal`` may do what needs ``privilege`` (``revenue``: changes revenue data,
    refused while the meter is revenue-locked)."""
    _core()
    raise AccessDenied("refused: the security core does not decide web operations yet")
