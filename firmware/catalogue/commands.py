"""Every command the meter runs, declared once: its arguments, privilege, revenue-lock rule, audit trail and the
interfaces that carry it.

A command is served by its owning service as ``control`` on the control socket (``"<service>.<command>"``, or a
supervisor command); ``{service}`` in ``control`` is filled from the ``service`` argument for the commands every
service answers (``ping``, ``info``). The interfaces are projections of this table:

- the control socket and ``meter do NAME ARG=VALUE`` carry every command;
- Modbus runs a command whose ``modbus`` names a command point of the point map (its register or coil is in that
  point's ``modbus`` mapping), with the written value as ``value_arg`` and the fixed ``protocol_args``;
- BACnet runs a command whose ``bacnet_av1`` is its S4100 AV1 code;
- the web API runs a command whose ``web`` is true at ``POST /api/resets/{name}`` (``?value=`` gives
  ``value_arg``);
- DNP3 runs a command whose ``dnp3`` is a control index by a control relay output block (group 12, pulse on or
  latch on) at that index;
- DLMS/COSEM runs a command whose ``obis`` names a script of a Script table (``execute``).

``firmware.security.authorize`` builds its operations, the revenue lock's lists and the control command table
from here, so a command's privilege and lock rule are said once. The slot ``snmp`` is for an SNMP OID that would
carry a command; empty means not carried.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from hal.errors import ConfigError

# Privileges by name (firmware.security.privileges.Privilege values: the security core checks these names).
PRIVILEGES = ("read", "peak-demand-reset", "time-sync", "setup", "security", "user-defined", "master")
# Revenue-lock rules: the lock never refuses the command; always refuses it; refuses it unless
# [revenue] demand_reset_when_locked allows resets (ION p.279).
LOCK_RULES = ("allowed", "refused", "refused-unless-resets-allowed")
ARGUMENT_TYPES = ("number", "integer", "text", "choice", "bool", "integers")
SERVICES = ("acquisition", "metrology", "recorder", "io", "display", "comms", "web", "time", "mqtt", "email",
            "upgrade")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_REQUIRED = object()


@dataclass(frozen=True)
class Argument:
    """One typed argument: ``minimum``/``maximum`` bound numbers, ``choices`` the texts a ``choice`` takes."""

    name: str
    type: str
    description: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def parse(self, text: str) -> Any:
        """The value of ``text`` as given on a command line (``ARG=VALUE``), checked."""
        if self.type in ("number", "integer"):
            try:
                value: Any = float(text) if self.type == "number" else int(text)
            except ValueError:
                raise ConfigError(f"argument {self.name}: {text!r} is not {'a number' if self.type == 'number' else 'a whole number'}") from None
        elif self.type == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ConfigError(f"argument {self.name}: {text!r} is not true or false")
            value = text.lower() in ("true", "1", "yes", "on")
        elif self.type == "integers":
            try:
                value = [int(v) for v in text.split(",") if v.strip()]
            except ValueError:
                raise ConfigError(f"argument {self.name}: {text!r} is not a comma-separated list of whole "
                                  f"numbers") from None
        else:
            value = text
        return self.check(value)

    def check(self, value: Any) -> Any:
        """``value`` if this argument takes it; ``ConfigError`` saying what it takes otherwise."""
        where = f"argument {self.name}"
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{where}: {value!r} is not a finite number")
            if self.type == "integer" and value != int(value):
                raise ConfigError(f"{where}: {value!r} is not a whole number")
            lo, hi = self.minimum, self.maximum
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ConfigError(f"{where}: {value:g} {self.unit} is outside {_range(lo, hi)}".replace("  ", " "))
            return int(value) if self.type == "integer" else float(value)
        if self.type == "choice" and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
        if self.type == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not true or false")
        if self.type == "text" and not isinstance(value, str):
            raise ConfigError(f"{where}: {value!r} is not text")
        if self.type == "integers" and not (isinstance(value, list) and all(isinstance(v, int) for v in value)):
            raise ConfigError(f"{where}: {value!r} is not a list of whole numbers")
        return value


def _range(lo: float | None, hi: float | None) -> str:
    return f"{'-inf' if lo is None else f'{lo:g}'}..{'inf' if hi is None else f'{hi:g}'}"


@dataclass(frozen=True)
class Command:
    name: str                          # catalogue name: `meter do NAME`, the web's reset name
    control: str                       # "<service>.<command>" or a supervisor command on the control socket
    description: str
    privilege: str                     # one of PRIVILEGES
    operation: str = ""                # what the authorization point decides (default: the name)
    writes: bool = True
    revenue_lock: str = "allowed"      # one of LOCK_RULES
    audit: str = "control"             # where an attempt is recorded besides the control socket's audit line
    args: tuple[Argument, ...] = ()
    modbus: str = ""                   # the command point whose register or coil runs it
    value_arg: str = ""                # the argument a protocol's value gives (a written register, ?value=)
    protocol_args: tuple[tuple[str, Any], ...] = ()   # fixed arguments when Modbus, BACnet or the web run it
    bacnet_av1: int | None = None      # S4100 AV1 command code
    web: bool = False                  # POST /api/resets/{name}
    dnp3: int | None = None            # DNP3 control index (group 12)
    obis: str = ""                     # DLMS/COSEM: the Script table (class 9) and script, "A.B.C.D.E.F#N"
    snmp: str = ""                     # slot: SNMP OID
    cli: str = ""                      # a named `meter` subcommand besides `meter do` ("revenue freeze")
    title: str = ""                    # what a refusal calls it ("peak demand reset"); default: the description
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def op(self) -> str:
        return self.operation or self.name

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interfaces that carry this command."""
        found = ["control", "cli"]
        if self.modbus:
            found.append("modbus")
        if self.bacnet_av1 is not None:
            found.append("bacnet")
        if self.web:
            found.append("web")
        if self.obis:
            found.append("dlms")
        if self.dnp3 is not None:
            found.append("dnp3")
        return tuple(found)

    def required_args(self) -> list[str]:
        return [a.name for a in self.args if a.required]

    def arg(self, name: str) -> Argument:
        for a in self.args:
            if a.name == name:
                return a
        raise ConfigError(f"command {self.name}: no argument {name!r}; it takes "
                          f"{', '.join(a.name for a in self.args) or 'none'}")

    def bind(self, given: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The control command and its checked arguments for ``given`` (``service`` fills ``{service}``)."""
        out = {name: self.arg(name).check(value) for name, value in given.items()}
        missing = [name for name in self.required_args() if name not in out]
        if missing:
            raise ConfigError(f"command {self.name}: argument(s) {', '.join(missing)} missing "
                              f"(meter do {self.name} {' '.join(m + '=...' for m in missing)})")
        control = self.control
        if "{service}" in control:
            control = control.format(service=out.pop("service"))
        return control, out

    def usage(self) -> str:
        parts = []
        for a in self.args:
            text = f"{a.name}=" + ("|".join(a.choices) if a.choices else a.type.upper())
            parts.append(text if a.required else f"[{text}]")
        return " ".join([self.name, *parts])


def check(commands: tuple[Command, ...]) -> None:
    """Refuse a table with a duplicate name or control, an unknown privilege, lock rule or argument type."""
    seen: dict[str, str] = {}
    for c in commands:
        where = f"command {c.name!r}"
        if not _NAME_RE.fullmatch(c.name):
            raise ConfigError(f"{where}: name must be snake_case")
        for key in (c.name, "control:" + c.control):
            if key in seen:
                raise ConfigError(f"{where}: {key} is declared twice")
            seen[key] = c.name
        if c.privilege not in PRIVILEGES:
            raise ConfigError(f"{where}: privilege {c.privilege!r} is not one of {', '.join(PRIVILEGES)}")
        if c.revenue_lock not in LOCK_RULES:
            raise ConfigError(f"{where}: revenue_lock {c.revenue_lock!r} is not one of {', '.join(LOCK_RULES)}")
        for a in c.args:
            if a.type not in ARGUMENT_TYPES or (a.type == "choice") != bool(a.choices):
                raise ConfigError(f"{where}: argument {a.name}: type {a.type!r} (with choices only for 'choice')")
            if not a.required:
                a.check(a.default) if a.default is not None else None
        if "{service}" in c.control and not any(a.name == "service" for a in c.args):
            raise ConfigError(f"{where}: a control of '{{service}}' needs a 'service' argument")
        if c.value_arg and c.value_arg not in {a.name for a in c.args}:
            raise ConfigError(f"{where}: value_arg {c.value_arg!r} is not one of its arguments")
        _check_dnp3(c, seen)


def _check_dnp3(c: Command, seen: dict[str, str]) -> None:
    """A DNP3 control index is unique, and runs a command that needs no argument a control cannot carry."""
    if c.dnp3 is None:
        return
    if not 0 <= c.dnp3 <= 65535 or f"dnp3:{c.dnp3}" in seen:
        raise ConfigError(f"command {c.name!r}: dnp3 control index {c.dnp3} is outside 0..65535 or taken")
    seen[f"dnp3:{c.dnp3}"] = c.name
    fixed = {name for name, _ in c.protocol_args}
    if [a for a in c.required_args() if a not in fixed]:
        raise ConfigError(f"command {c.name!r}: a DNP3 control carries no value; the command needs arguments")
