"""Who is on the other end of a Unix socket: the kernel's word (SO_PEERCRED), never the client's.

``peer_credentials(sock)`` gives the (pid, uid, gid) the kernel recorded at connect(). ``PeerPolicy`` maps a
uid to an identity: root and the meter's own uid are ``master`` (they own the meter's files already) and may name whom they act
for; a uid
named in ``[security] control_users`` ("1001=alice") acts with the privileges of that meter user; any other
uid may read (``read`` operations) and nothing else.
"""
from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from firmware.security.authorize import Identity
from firmware.security.privileges import Privilege
from hal.errors import ConfigError

if TYPE_CHECKING:        # every service imports this module (control.py): argon2 only where users are read
    from firmware.security.users import UserStore

_UCRED = struct.Struct("3i")     # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (socket(7))


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCred:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return PeerCred(pid, uid, gid)


def _printable_name(text: str) -> str:
    return "".join(c for c in text[:64] if c.isprintable())


def parse_uid_map(entries: tuple[str, ...] | list[str]) -> dict[int, str]:
    """``["1001=alice", "1002=bob"]`` -> ``{1001: "alice", 1002: "bob"}``."""
    out: dict[int, str] = {}
    for entry in entries:
        uid, sep, name = entry.partition("=")
        if not sep or not uid.strip().isdigit() or not name.strip():
            raise ConfigError(f"[security] control_users: {entry!r} is not UID=USER (e.g. \"1001=alice\")")
        out[int(uid)] = name.strip()
    return out


@dataclass
class PeerPolicy:
    users: UserStore | None = None
    uid_map: dict[int, str] = field(default_factory=dict)
    own_uid: int = field(default_factory=os.geteuid)

    def trusted(self, cred: PeerCred) -> bool:
        """Root or the meter itself (the supervisor forwarding for someone it already authorized)."""
        return cred.uid in (0, self.own_uid)

    def identity(self, cred: PeerCred, note: str = "") -> Identity:
        where = {"uid": cred.uid, "pid": cred.pid, "note": note}
        if self.trusted(cred):
            # Root and the meter's own processes are master anyway; they may name whom they act for (the
            # Modbus service says "modbus"), which the audit line shows beside their uid and pid.
            name = _printable_name(note) or ("root" if cred.uid == 0 else "meter")
            return Identity.master(name, "control", **where)
        mapped = self.uid_map.get(cred.uid)
        user = self.users.get(mapped) if (mapped and self.users is not None) else None
        if user is not None and "control" in user.protocols:
            return Identity.for_user(user, "control", **where)
        return Identity(f"uid{cred.uid}", frozenset({Privilege.READ}), "control", **where)  # type: ignore[arg-type]


class Gate:
    """Decides, per connection and per request, for a ``ControlServer``; the default admits only the meter.

    Service sockets use this default: only root and the meter's own account may connect (the supervisor
    forwards for the users it has already authorized, and names them in the request's ``user``, which is
    believed only when the peer is the supervisor, our parent process).
    """

    def __init__(self, policy: PeerPolicy | None = None) -> None:
        self.policy = policy or PeerPolicy()

    def admit(self, cred: PeerCred) -> str:
        """"" to serve this connection, else why it is refused."""
        if self.policy.trusted(cred):
            return ""
        return (f"this socket serves the meter's own processes only (uid {cred.uid} refused); "
                "send commands to the meter's control.sock")

    def trusted(self, cred: PeerCred) -> bool:
        return self.policy.trusted(cred)

    def check(self, cred: PeerCred, cmd: str, note: str) -> str:
        """The user label the handler gets; raises AccessDenied when ``cmd`` is refused."""
        if cred.pid == os.getppid() and note:
            return note
        return self.policy.identity(cred, note).label()
