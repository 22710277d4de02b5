"""Security events: into the meter's event log and, when ``[security] syslog_address`` is set, to syslog.

Priorities (SPEC §5): a valid login 0, an invalid one 128, a lockout 255; a refused command is logged as an
invalid attempt (128). The event log's cutoff (default 5) keeps valid logins out of the event log unless it is
lowered; syslog gets every security event, at the severity the priority maps to.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from firmware.storage.syslog import SyslogSender
from firmware.storage.eventlog import Event, EventLog

log = logging.getLogger("security")

PRIORITY = {"login_valid": 0, "login_invalid": 128, "lockout": 255, "access_denied": 128,
            "default_password": 192, "user_change": 128, "config_tamper": 255, "config_hand_edit": 128,
            "password_invalid": 128, "password_lockout": 255, "shm_squat": 192}
# What anyone who reaches a port can cause at will: a repeat is counted into the record before it (EventLog's
# aggregation), so a flood of guesses cannot push the audit trail out of the event log.
AGGREGATED = frozenset({"login_invalid", "access_denied", "password_invalid"})


class SecurityAudit:
    def __init__(self, eventlog: EventLog | None, syslog: SyslogSender | None = None, source: str = "security") -> None:
        self.eventlog = eventlog
        self.syslog = syslog
        self.source = source

    @classmethod
    def from_config(cls, config: Any, source: str = "security") -> SecurityAudit:
        sec = config["security"]
        sender = SyslogSender(sec.syslog_address, sec.syslog_port) if sec.syslog_address else None
        return cls(EventLog.from_config(config), sender, source)

    def close(self) -> None:
        if self.eventlog is not None:
            self.eventlog.close()
        if self.syslog is not None:
            self.syslog.close()

    def record(self, cause: str, user: str, effect: str = "", detail: Mapping[str, Any] | None = None) -> None:
        priority = PRIORITY.get(cause, 128)
        fields = {"cause": cause, "user": user, **(detail or {})}
        log.info("security event %s: %s %s", cause, user, effect, extra={"fields": fields})
        if self.eventlog is not None:
            self.eventlog.record(Event(priority, self.source, cause, effect, user, dict(detail or {})),
                                 aggregate=cause in AGGREGATED, syslog=False)      # sent below, facility auth
        if self.syslog is not None:
            self.syslog.send(priority, cause, f"{cause} {user}: {effect}".strip(), fields)
