"""The one authorization point: may this identity run this operation over this interface, now?

Every interface asks here before it changes anything: the control socket (identity from the peer's
credentials, ``firmware.security.peer``), Modbus (access mode per port, the configured Modbus user), and the
web (HTTPS login), BACnet and display services, which log users in with ``UserStore.login`` and then call::

    from firmware.security.authorize import Identity, authorize, decide, Access, operation_for_command

    identity = Identity.for_user(user, interface="web")          # after a good login
    decision = authorize(identity, "demand_reset", "web",        # raises AccessDenied when refused
                         revenue_locked=lock_now, access=Access.READ_WRITE)

``decide(...)`` takes the same arguments and returns the ``Decision`` without raising (for a page that greys out
a button). ``operation_for_command("metrology.demand_reset")`` names the operation of a control command.

The rules, in the order they are checked (the first that refuses gives the reason):

1. the operation must be known (``OPERATIONS``: the catalogue's commands, ``firmware.catalogue``, and the
   operations on configuration, files and users); an unknown one needs ``master``;
2. the interface's access mode: ``none`` refuses everything, ``read-only`` every operation that writes;
3. the identity must hold the operation's privilege (``master`` holds all);
4. the revenue lock: while it is engaged, the operations in ``REVENUE_LOCKED`` are refused for everyone,
   and the peak-demand and billing-period resets too unless ``[revenue] demand_reset_when_locked`` is set
   (ION p.279: "Revenue-locked meters must be unlocked to perform resets that impact revenue data").

Each command's privilege and revenue-lock rule are declared in its catalogue entry and read from there; the
revenue commands, the Modbus and BACnet commands, the upgrade service and the configuration store ask
``revenue_lock_refusal`` rather than keeping lists of their own.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from firmware.catalogue import command_for_control, commands
from firmware.security.privileges import ALL, Privilege
from hal.errors import AccessDenied, ConfigError

if TYPE_CHECKING:
    from firmware.security.users import User

INTERFACES = ("control", "modbus", "web", "bacnet", "display", "dnp3")


class Access(str, enum.Enum):
    """An interface's access mode (ION "Modbus Access"; FW3: None / Read-only / Read-write)."""

    NONE = "none"
    READ_ONLY = "read-only"
    READ_WRITE = "read-write"


@dataclass(frozen=True)
class Operation:
    name: str
    privilege: Privilege
    writes: bool
    description: str


R, W = False, True
# Operations that are not commands of the catalogue: reading, configuration, the web's files, users.
_OTHER_OPERATIONS: tuple[Operation, ...] = (
    Operation("read", Privilege.READ, R, "read measurements, registers, logs and status"),
    Operation("config_set", Privilege.SETUP, W, "change configuration that is not sealed"),
    Operation("config_set_sealed", Privilege.SETUP, W,
              "change configuration that affects billing data, the revenue lock or the logs (revenue-locked options)"),
    Operation("config_set_master", Privilege.MASTER, W, "change configuration only a master user may change "
              "(upgrade, commands the meter runs as itself)"),
    Operation("web_files", Privilege.SETUP, W, "change the web server's files or certificate"),
    Operation("user_admin", Privilege.SECURITY, W, "add, remove or change users and security settings"),
    Operation("communication_control", Privilege.SECURITY, W,
              "disable or enable a protocol's communication (BACnet DeviceCommunicationControl)"),
    Operation("user_defined", Privilege.USER_DEFINED, W, "an operation an extension or site procedure defines"),
)
# Refused while the revenue lock is engaged, whoever asks (SPEC §3, §8), besides the commands whose catalogue
# entry says so.
_OTHER_REVENUE_LOCKED = ("config_set_sealed", "web_files")


def _command_operations() -> dict[str, Operation]:
    """One operation per catalogue command (commands that share an operation must agree on it)."""
    out: dict[str, Operation] = {}
    for c in commands():
        if c.op == "read":
            continue
        op = Operation(c.op, Privilege(c.privilege), c.writes, c.title or c.description[:1].lower() + c.description[1:])
        if c.op in out and (out[c.op].privilege, out[c.op].writes) != (op.privilege, op.writes):
            raise ConfigError(f"catalogue: commands of operation {c.op!r} disagree on its privilege")
        out.setdefault(c.op, op)
    return out


OPERATIONS: dict[str, Operation] = {**{op.name: op for op in _OTHER_OPERATIONS}, **_command_operations()}
REVENUE_LOCKED: frozenset[str] = frozenset(
    {*_OTHER_REVENUE_LOCKED, *(c.op for c in commands() if c.revenue_lock == "refused")})
# Refused while locked unless [revenue] demand_reset_when_locked allows them.
REVENUE_LOCKED_RESETS: frozenset[str] = frozenset(
    c.op for c in commands() if c.revenue_lock == "refused-unless-resets-allowed")
# Control commands ("<service>.<command>" as the supervisor's socket sees them) and their operations, from the
# catalogue. A command the catalogue does not name is the unknown operation: master only.
COMMAND_OPERATIONS: dict[str, str] = {c.control: c.op for c in commands() if "{service}" not in c.control}


def config_operation(privilege: str, locked: bool) -> str:
    """The operation a change of one configuration option is, from its rule in the schema
    (``firmware.config.schema.Rule``: the privilege it needs and whether the revenue lock refuses it)."""
    if privilege == "master":
        return "config_set_master"
    if privilege == "security":
        return "user_admin"          # a locked security option is also refused by the store while locked
    return "config_set_sealed" if locked else "config_set"


def operation_for_command(cmd: str) -> str:
    """The operation a control command performs (``metrology.demand_reset`` -> ``demand_reset``)."""
    found = command_for_control(cmd)
    return found.op if found is not None else cmd


@dataclass(frozen=True)
class Identity:
    """Who asks: a user name, its privileges, and where the request came from (for the audit line)."""

    user: str
    privileges: frozenset[Privilege]
    interface: str
    uid: int | None = None
    pid: int | None = None
    note: str = ""                    # what the client said about itself; never used to decide
    protocols: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_user(cls, user: User, interface: str, **where: object) -> Identity:
        return cls(user.name, user.privileges, interface, protocols=user.protocols, **where)  # type: ignore[arg-type]

    @classmethod
    def master(cls, name: str, interface: str, **where: object) -> Identity:
        return cls(name, ALL, interface, **where)  # type: ignore[arg-type]

    @classmethod
    def anonymous(cls, interface: str, **where: object) -> Identity:
        return cls("", frozenset(), interface, **where)  # type: ignore[arg-type]

    def label(self) -> str:
        """The user as audit lines show it: ``alice (uid 1001, pid 4242)``, with what the client claimed."""
        where = ", ".join(f"{k} {v}" for k, v in (("uid", self.uid), ("pid", self.pid)) if v is not None)
        text = (self.user or "anonymous") + (f" ({where})" if where else "")
        if self.note and self.note != self.user:
            text += f" claiming {_printable(self.note)!r}"
        return text


@dataclass(frozen=True)
class Decision:
    allowed: bool
    operation: str
    interface: str
    user: str
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


def revenue_lock_refusal(operation: str, revenue_locked: bool, resets_when_locked: bool = False) -> str:
    """Why the revenue lock refuses ``operation`` now ("" when it does not)."""
    if not revenue_locked:
        return ""
    if operation in REVENUE_LOCKED or (operation in REVENUE_LOCKED_RESETS and not resets_when_locked):
        what = OPERATIONS[operation].description if operation in OPERATIONS else operation
        return (f"{what} refused: the meter is revenue-locked; open the sealed revenue lock switch to do this")
    return ""


def blocked_by_revenue_lock(operation: str, resets_when_locked: bool = False) -> bool:
    """Whether the revenue lock (when engaged) refuses ``operation``."""
    return bool(revenue_lock_refusal(operation, True, resets_when_locked))


def decide(identity: Identity, operation: str, interface: str | None = None, *, revenue_locked: bool = False,
           resets_when_locked: bool = False, access: Access | str = Access.READ_WRITE) -> Decision:
    """The decision for ``identity`` to run ``operation`` over ``interface`` (default: the identity's)."""
    interface = interface or identity.interface
    op = OPERATIONS.get(operation)
    refusal = ""
    if Access(access) is Access.NONE:
        refusal = f"{interface} access is set to none"
    elif op is None and Privilege.MASTER not in identity.privileges:
        refusal = f"operation {operation!r} is not known; only a master user may run it"
    elif (op is None or op.writes) and Access(access) is Access.READ_ONLY:
        refusal = f"{interface} access is read-only"
    elif op is not None and op.privilege not in identity.privileges:
        refusal = f"user {identity.user or 'anonymous'!r} lacks the {op.privilege.value} privilege"
    else:
        refusal = revenue_lock_refusal(operation, revenue_locked, resets_when_locked)
    if refusal and not refusal.endswith("to do this"):
        what = op.description if op is not None else operation
        refusal = f"{what} refused over {interface}: {refusal}"
    return Decision(not refusal, operation, interface, identity.user, refusal)


def authorize(identity: Identity, operation: str, interface: str | None = None, *, revenue_locked: bool = False,
              resets_when_locked: bool = False, access: Access | str = Access.READ_WRITE) -> Decision:
    """``decide`` and raise ``AccessDenied`` (whose message is the reason) when it refuses."""
    decision = decide(identity, operation, interface, revenue_locked=revenue_locked,
                      resets_when_locked=resets_when_locked, access=access)
    if not decision.allowed:
        raise AccessDenied(decision.reason)
    return decision


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:64])
