"""The gate of the meter's control socket (``control.sock``, served by the supervisor).

Any local account may connect; who it is comes from SO_PEERCRED (``PeerPolicy``), never from the request's
``user`` field, which is kept only as a note in the audit line. Each command is decided by the authorization
point (``firmware.security.authorize``) with the command's operation; a refusal is a security event.
"""
from __future__ import annotations

import logging
from typing import Any

from firmware.security.audit import SecurityAudit
from firmware.security.authorize import decide, operation_for_command
from firmware.security.peer import Gate, PeerCred, PeerPolicy, parse_uid_map
from hal.errors import AccessDenied

log = logging.getLogger("control.audit")


class ControlGate(Gate):
    def __init__(self, policy: PeerPolicy, audit: SecurityAudit | None = None) -> None:
        super().__init__(policy)
        self.audit = audit

    def admit(self, cred: PeerCred) -> str:
        return ""

    def check(self, cred: PeerCred, cmd: str, note: str) -> str:
        identity = self.policy.identity(cred, note)
        operation = operation_for_command(cmd)
        decision = decide(identity, operation, "control")
        label = identity.label()
        if not decision.allowed:
            log.warning("control: %s refused for %s: %s", cmd, label, decision.reason,
                        extra={"fields": {"uid": cred.uid, "pid": cred.pid, "cmd": cmd}})
            if self.audit is not None:
                self.audit.record("access_denied", identity.user, f"{cmd} refused: {decision.reason}",
                                  {"uid": cred.uid, "pid": cred.pid, "interface": "control", "note": note[:64]})
            raise AccessDenied(decision.reason + "; ask the meter's administrator to map your account to a "
                               "meter user with that privilege ([security] control_users)")
        if operation != "read":
            log.info("control: %s by %s", cmd, label,
                     extra={"fields": {"uid": cred.uid, "pid": cred.pid, "cmd": cmd}})
        return label


def from_config(config: Any) -> ControlGate:
    """The gate of control.sock: callers from SO_PEERCRED, mapped to meter users, every command authorized."""
    from firmware.security.users import UserStore

    users = UserStore.from_config(config)
    return ControlGate(PeerPolicy(users, parse_uid_map(config.security.control_users)),
                       SecurityAudit.from_config(config, source="control"))
