"""Users, lockout, sessions, per-port Modbus access, the control socket's uid map, syslog (SPEC §5, §8)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from firmware.config.schema import Bool, Duration, Enum, Int, Kind, ListOf, Option, Section, Str
from firmware.security.users import (DEFAULT_LOCKOUT_ATTEMPTS, DEFAULT_LOCKOUT_DURATION_S, DEFAULT_LOCKOUT_SOURCES,
                                     DEFAULT_LOCKOUT_SOURCES_DURATION_S, MAX_LOCKOUT_SOURCES_DURATION_S)

MODBUS_ACCESS = ("modbus", "none", "read-only", "read-write")


@dataclass(frozen=True)
class OptionalIP(Kind):
    """An IP address literal, or "" for none (host names are refused: SPEC §5, syslog to an IP address)."""

    def parse(self, raw: Any) -> str:
        if raw == "":
            return ""
        try:
            return str(ipaddress.ip_address(raw))
        except (ValueError, TypeError):
            raise ValueError(f"{raw!r} is not an IP address; allowed {self.allowed()}") from None

    def allowed(self) -> str:
        return "\"\" (off) or an IPv4/IPv6 address such as 192.168.1.20 (no host names)"


@dataclass(frozen=True)
class UidUser(Kind):
    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"{raw!r} is not UID=USER")
        uid, sep, name = raw.partition("=")
        if not sep or not uid.isdigit() or not name:
            raise ValueError(f"{raw!r} is not UID=USER such as \"1001=alice\"")
        return raw

    def allowed(self) -> str:
        return "UID=USER, such as \"1001=alice\""


SECTIONS = [
    Section("security", [
        Option("enabled", Bool(), False,
               "Advanced security: Modbus commands run only as `modbus_user`, which must be a meter user allowed "
               "over Modbus and holding the command's privilege. The control socket checks every caller's "
               "privileges whether or not this is set."),
        Option("lockout_attempts", Int(1, 100), DEFAULT_LOCKOUT_ATTEMPTS,
               "Failed logins in a row after which a user is locked out: at the display, of the display; over "
               "the web, from that client address only (see lockout_sources). Also the wrong [bacnet] passwords "
               "in a row that lock BACnet's DCC and ReinitializeDevice out. Modbus has no login, so no lockout: "
               "its access modes apply."),
        Option("lockout_duration", Duration(60, 30 * 86400), DEFAULT_LOCKOUT_DURATION_S,
               "How long a lockout lasts (a web lockout: of that user from that address).", "s"),
        Option("lockout_sources", Int(2, 1000), DEFAULT_LOCKOUT_SOURCES,
               "Distinct client addresses with failed web logins for one user (within lockout_duration) that lock "
               "the user out of the web for everyone, for lockout_sources_duration only; the event is logged."),
        Option("lockout_sources_duration", Duration(10, MAX_LOCKOUT_SOURCES_DURATION_S),
               DEFAULT_LOCKOUT_SOURCES_DURATION_S,
               "How long failures from lockout_sources addresses lock the user out of the web for everyone; kept "
               "short (at most 1 h) so that nobody can keep a user out.", "s"),
        Option("session_timeout", Duration(60, 86400), 900.0,
               "A login session (web, display) unused for this long ends.", "s"),
        Option("session_max_age", Duration(60, 7 * 86400), 12 * 3600.0,
               "A login session ends this long after the login however busy it is; log in again.", "s"),
        Option("modbus_tcp_access", Enum(*MODBUS_ACCESS), "modbus",
               "Access over Modbus TCP: none, read-only, read-write, or `modbus` to follow [modbus] access."),
        Option("modbus_rtu_access", Enum(*MODBUS_ACCESS), "modbus",
               "Access over Modbus RTU (RS-485): as modbus_tcp_access."),
        Option("modbus_user", Str(32), "",
               "Meter user whose privileges Modbus commands run with when security is enabled (Modbus has no "
               "login); empty: Modbus commands are refused while security is enabled."),
        Option("bacnet_user", Str(32), "",
               "Meter user whose privileges BACnet writes, commands, DCC, ReinitializeDevice and time syncs run "
               "with when security is enabled (BACnet has no login); empty: they are refused while security is "
               "enabled."),
        Option("dnp3_user", Str(32), "",
               "Meter user whose privileges DNP3 controls, freezes and time sets run with when security is "
               "enabled (DNP3 has no login here); empty: they are refused while security is enabled."),
        Option("control_users", ListOf(UidUser(), 0, 64), (),
               "Local accounts allowed more than reading over the control socket, as UID=USER (the meter user "
               "whose privileges they get). Root and the meter's own account are master; other accounts may "
               "only read."),
        Option("syslog_address", OptionalIP(), "",
               "Send security events to this syslog collector (RFC 5424 over UDP); empty: off.", locked=True),
        Option("syslog_port", Int(1, 65535), 514, "UDP port of the syslog collector.", locked=True),
    ], "Users and privileges on every interface, login lockout, security events (docs/security.md).",
       privilege="security"),
]
