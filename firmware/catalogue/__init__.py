"""The catalogue: every quantity and every command of the meter, declared once, that each interface projects.

Quantities are the point map (``firmware/points/*.toml``: name, unit, kind, description, size, and where Modbus,
BACnet, DNP3, OBIS and SNMP carry them); commands are ``firmware/catalogue/table.py``. Every numeric quantity is
carried by the control socket (``metrology.read``), ``meter read`` and the web API (``GET /api/values``, under
the same name); Modbus carries those with a ``modbus`` mapping, BACnet those its object model
(``firmware/comms/bacnet/objects.toml``) names, SNMP those with an ``snmp`` OID (``firmware/points/maps/snmp.toml``),
MQTT those its configuration lists. A protocol adapter translates
what is declared here; it declares nothing of its own, and ``tests/unit/test_catalogue.py`` walks this
catalogue against every interface.

This package imports nothing of the meter above the point map, so every layer may read it.
"""
from __future__ import annotations

from functools import lru_cache

from firmware.catalogue.commands import SERVICES, Argument, Command, check
from firmware.catalogue.table import COMMANDS
from firmware.points import Point, load_points
from hal.errors import ConfigError

__all__ = ["Argument", "Command", "Point", "commands", "command", "command_for_control", "quantities",
           "quantity", "READ_KINDS"]

# Kinds of points that are not measured values: what identifies the meter, runs a command or shows a setting.
NOT_MEASURED = ("identity", "command", "setting")
READ_KINDS = tuple(k for k in ("instantaneous", "total", "demand", "peak", "status", "statistic"))


@lru_cache(maxsize=1)
def commands() -> tuple[Command, ...]:
    check(COMMANDS)
    return COMMANDS


def command(name: str) -> Command:
    for c in commands():
        if c.name == name:
            return c
    raise ConfigError(f"no command {name!r}; `meter do --list` lists them")


def command_for_control(control: str) -> Command | None:
    """The command served as ``control`` (``metrology.demand_reset``; ``web.ping`` for a ``{service}`` one)."""
    for c in commands():
        if c.control == control:
            return c
        if "{service}" in c.control:
            service, _, verb = control.partition(".")
            if c.control == "{service}." + verb and service in c.arg("service").choices:
                return c
    return None


def commands_module_services() -> tuple[str, ...]:
    """The services commands may name (checked equal to ``firmware.services.registry`` by a test)."""
    return SERVICES


def quantities() -> tuple[Point, ...]:
    """The measured quantities: every point of the point map that is not an identity, command or setting."""
    return tuple(p for p in load_points() if p.kind not in NOT_MEASURED)


def quantity(name: str) -> Point:
    for p in quantities():
        if p.name == name:
            return p
    raise ConfigError(f"no quantity {name!r} in the catalogue; `meter read --list` lists them")
