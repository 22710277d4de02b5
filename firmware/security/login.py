"""Logging a user in over an interface that has logins (web, BACnet, display): the password check, the lockout
per user and protocol (per user, protocol and address over the network), and the security event, in one call.

    gate = Logins.from_config(config)
    identity = gate.login("alice", password, "web", where={"address": "192.0.2.7"})   # AccessDenied if refused
    authorize(identity, "demand_reset", "web", revenue_locked=...)                    # then per operation

Each attempt is one event: ``login_valid`` (priority 0), ``login_invalid`` (128) or ``lockout`` (255), in the
event log and to syslog (``SecurityAudit``). A refused login gets one answer whatever the reason (wrong name,
wrong password, locked out), so it does not tell a guesser which names exist; the event log says which.
"""
from __future__ import annotations

from typing import Any, Mapping

from firmware.security.audit import SecurityAudit
from firmware.security.authorize import Identity
from firmware.security.users import UserStore
from hal.errors import AccessDenied


class Logins:
    def __init__(self, users: UserStore, audit: SecurityAudit | None = None) -> None:
        self.users = users
        self.audit = audit

    @classmethod
    def from_config(cls, config: Any, source: str = "security") -> Logins:
        return cls(UserStore.from_config(config), SecurityAudit.from_config(config, source))

    def close(self) -> None:
        self.users.close()
        if self.audit is not None:
            self.audit.close()

    def login(self, name: str, password: str, protocol: str, where: Mapping[str, Any] | None = None,
              source: str | None = None) -> Identity:
        """The identity of ``name`` over ``protocol`` (an interface name); AccessDenied when refused. With a
        ``source`` (a network client's address) failures lock out that user from that address only, unless
        many addresses fail (``UserStore.login``)."""
        result = self.users.login(name, password, protocol, source=source)
        detail = {"protocol": protocol, **(where or {})}
        if result.failures:
            detail["failures"] = result.failures
        if self.audit is not None:
            effect = "logged in" if result.ok else result.reason
            self.audit.record(result.event, name[:64], f"{effect} over {protocol}", detail)
        if not result.ok or result.user is None:
            # one answer for a wrong name, a wrong password and a locked-out account: the answer must not tell a
            # guesser which names exist (the event log has the reason)
            raise AccessDenied(f"login refused: wrong user name or password, or the account is locked out of "
                               f"{protocol} after repeated failures (`meter user unlock` ends a lockout)")
        return Identity.for_user(result.user, protocol)
