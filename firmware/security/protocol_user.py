"""Whom a protocol without a login of its own (Modbus, BACnet) runs its writes and commands as.

With ``[security] enabled`` off, the interface's access mode alone decides (the protocol acts as master); with
it on, as the meter user that ``[security] <interface>_user`` names, when that user exists and is allowed the
protocol, else as nobody (every write refused, and the reason logged once at start).
"""
from __future__ import annotations

import logging
from typing import Any

from firmware.security.authorize import Identity
from firmware.security.users import UserStore

log = logging.getLogger("security")


def protocol_user(config: Any, interface: str) -> Identity | None:
    security = config["security"]
    if not security.enabled:
        return Identity.master(interface, interface)
    name = getattr(security, f"{interface}_user")
    if not name:
        log.warning("%s: security is enabled and [security] %s_user is empty: writes and commands are refused",
                    interface, interface)
        return None
    users = UserStore.from_config(config)
    try:
        user = users.get(name)
    finally:
        users.close()
    if user is None or interface not in user.protocols:
        log.warning("%s: [security] %s_user %r %s: writes and commands are refused", interface, interface, name,
                    "does not exist" if user is None else f"may not use {interface} (protocols)")
        return None
    return Identity.for_user(user, interface)
