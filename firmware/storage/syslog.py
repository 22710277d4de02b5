"""Syslog over UDP (RFC 5424 messages, RFC 5426 transport) to an IP address; never a host name (SPEC §5).

The severity comes from the event priority by the map of SPEC §5: 192-255 -> 2 (critical), 128-191 -> 4
(warning), 64-127 -> 5 (notice), 0-63 -> 6 (informational). Sending never blocks and never raises: a lost
datagram is what UDP syslog accepts, and an unreachable collector must not stop the meter.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import logging
import os
import socket
from typing import Any, Mapping

log = logging.getLogger("security.syslog")

DEFAULT_PORT = 514                  # RFC 5426 §3.3
FACILITY_AUTH = 4                   # RFC 5424 table 1: security/authorization messages
FACILITY_LOCAL0 = 16                # RFC 5424 table 1: local use 0 (the meter's other events)
APP_NAME = "meter"
MAX_MESSAGE_BYTES = 2048            # RFC 5426 §3.2: receivers SHOULD accept 2048 octets
SEVERITY_BANDS = ((192, 2), (128, 4), (64, 5), (0, 6))   # SPEC §5


def severity(priority: int) -> int:
    for lowest, sev in SEVERITY_BANDS:
        if priority >= lowest:
            return sev
    return 6


def _sd_escape(value: str) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' are escaped inside PARAM-VALUE.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _token(text: str, limit: int) -> str:
    # HOSTNAME, APP-NAME, PROCID and MSGID are PRINTUSASCII without spaces (RFC 5424 §6).
    out = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


def format_message(priority: int, msgid: str, text: str, fields: Mapping[str, Any] | None = None,
                   facility: int = FACILITY_AUTH, hostname: str | None = None, ts: float | None = None,
                   procid: int | None = None) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [meter@32473 k="v"...] MSG``."""
    when = (_dt.datetime.now(_dt.timezone.utc) if ts is None
            else _dt.datetime.fromtimestamp(ts, _dt.timezone.utc))
    stamp = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
    pri = facility * 8 + severity(priority)
    params = {"priority": str(priority), **{k: str(v) for k, v in (fields or {}).items()}}
    # 32473 is the private enterprise number RFC 5612 sets aside for documentation examples.
    sd = "[meter@32473 " + " ".join(f'{_token(k, 32)}="{_sd_escape(v)}"' for k, v in params.items()) + "]"
    header = (f"<{pri}>1 {stamp} {_token(hostname or socket.gethostname(), 255)} {APP_NAME} "
              f"{procid if procid is not None else os.getpid()} {_token(msgid, 32)} {sd} ")
    # The MSG is UTF-8 with a BOM (RFC 5424 §6.4).
    data = header.encode() + b"\xef\xbb\xbf" + text.encode("utf-8", "replace")
    return data[:MAX_MESSAGE_BYTES]


class SyslogSender:
    """Sends to one collector; ``address`` is an IPv4 or IPv6 literal."""

    def __init__(self, address: str, port: int = DEFAULT_PORT, facility: int = FACILITY_AUTH) -> None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"syslog target {address!r} is not an IP address (host names are not accepted)") \
                from None
        self.target = (str(ip), int(port))
        self.facility = facility
        self.sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = 0
        self.dropped = 0

    def send(self, priority: int, msgid: str, text: str, fields: Mapping[str, Any] | None = None) -> bool:
        try:
            self.sock.sendto(format_message(priority, msgid, text, fields, self.facility), self.target)
        except OSError as exc:
            self.dropped += 1
            log.debug("syslog to %s:%d failed: %s", *self.target, exc)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.sock.close()
