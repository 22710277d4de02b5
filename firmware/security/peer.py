"""Who is on the other end of a Unix socket: the kernel's word (SO_PEERCRED), never the client's.

``peer_credentials(sock)`` gives the (pid, uid, gid) the kernel recorded at connect(). ``PeerPolicy`` maps a
uid to an identity: root and the meter's own uid are ``master`` (they own the meter's files already); a uid
named in ``[security] control_users`` ("1001=alice") acts with the privileges of that meter user; any other
uid may read (``read`` operations) and nothing else.
"""
from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field

from firmware.security.authorize import Identity
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore
from hal.errors import ConfigError

_UCRED = struct.Struct("3i")     # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (socket(7))


@dataclass(frozen=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCred:
    pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return PeerCred(pid, uid, gid)


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
            name = "root" if cred.uid == 0 else "meter"
            return Identity.master(name, "control", **where)
        mapped = self.uid_map.get(cred.uid)
        user = self.users.get(mapped) if (mapped and self.users is not None) else None
        if user is not None and "control" in user.protocols:
            return Identity.for_user(user, "control", **where)
        return Identity(f"uid{cred.uid}", frozenset({Privilege.READ}), "control", **where)  # type: ignore[arg-type]
