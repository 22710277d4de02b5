"""Login, sessions and authorization for the web interface: the one place the web asks the meter's security core.

``WebAuth.login`` checks a user name and password with ``firmware.security.login`` over the protocol ``web``
(password, the lockout per user and client address, the security event) and opens a session in
``firmware.security.sessions`` (``[security] session_timeout``). ``WebAuth.authorize`` asks
``firmware.security.authorize`` (privilege, interface, the revenue lock) for every operation. The web keeps no
users, passwords, privileges or lock rules of its own.

The session token travels in a ``__Host-`` cookie (Secure, Path=/, no Domain; HttpOnly; SameSite=Strict). Its CSRF
token is an HMAC of the session token under a key this process draws at start: the page gets it at login and
from ``GET /api/session`` and sends it in ``X-CSRF-Token`` on every request that changes something; a page of
another site can read neither.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from firmware.lockstate import revenue_locked
from firmware.security.authorize import Identity, authorize, blocked_by_revenue_lock
from firmware.security.login import Logins
from firmware.security.privileges import names
from firmware.security.sessions import Sessions
from hal.errors import AccessDenied

INTERFACE = "web"
COOKIE = "__Host-meter_session"
CSRF_HEADER = "x-csrf-token"


class LoginRefused(AccessDenied):
    """Wrong user or password, or a locked-out user: the message says which."""


class WebAuth:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.logins = Logins.from_config(config, source=INTERFACE)
        self.users = self.logins.users
        self.sessions = Sessions(config["security"].session_timeout, max_age_s=config["security"].session_max_age)
        self._csrf_key = secrets.token_bytes(32)

    def close(self) -> None:
        self.logins.close()

    # ------------------------------------------------------------------ login

    def login(self, user: str, password: str, address: str) -> tuple[str, Identity]:
        """(session token, identity) of a good login from ``address``, or LoginRefused with the reason."""
        try:
            # counted per address: a stranger who knows the name locks out their own address, not the user
            identity = self.logins.login(user, password, INTERFACE, where={"address": address}, source=address)
        except AccessDenied as exc:
            raise LoginRefused(str(exc)) from None
        return self.sessions.open(identity, self.users.stamp(identity.user) or ""), identity

    def session(self, token: str | None) -> Identity | None:
        """The identity of a live session (using it restarts its inactivity clock), or None: also when its
        user was removed or changed since the login (privileges, protocols, password)."""
        identity = self.sessions.get(token) if token else None
        if identity is None or not self.alive(token or ""):
            return None
        return identity

    def alive(self, token: str) -> bool:
        """Whether the session is live and its account unchanged, without counting as use; a changed one ends."""
        session = self.sessions.peek(token)
        if session is None:
            return False
        if self.users.stamp(session.identity.user) != session.stamp:
            self.sessions.close(token)
            return False
        return True

    def logout(self, token: str) -> None:
        self.sessions.close(token)

    def csrf(self, token: str) -> str:
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf(token), str(presented))

    # ------------------------------------------------------------------ authorization

    def authorize(self, identity: Identity, operation: str) -> None:
        """Raise AccessDenied (with the reason) unless ``identity`` may run ``operation`` over the web now."""
        # The lock is read only for operations it can refuse (a read would pay a snapshot attach for nothing).
        locked = blocked_by_revenue_lock(operation) and revenue_locked(self.config)
        authorize(identity, operation, INTERFACE, revenue_locked=locked,
                  resets_when_locked=self.config["revenue"].demand_reset_when_locked)

    def refuse(self, identity: Identity, operation: str, exc: AccessDenied) -> None:
        if self.logins.audit is not None:
            self.logins.audit.record("access_denied", identity.user, f"{operation} over web: {exc}")


def privilege_names(identity: Identity) -> list[str]:
    return names(identity.privileges)
