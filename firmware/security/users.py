"""The meter's user accounts and their login lockouts, kept in ``data_dir/security.db``.

Up to ``MAX_USERS`` (50, ION7400 firmware 3.0) accounts, each with a set of privileges, the protocols it may
log in over, and an argon2id hash of its password (argon2-cffi; the parameters travel in the hash string, so a
change of parameters re-hashes at the next good login). Passwords are 1 to 16 characters (SPEC §8).

Lockout is kept per user AND per protocol (ION: "Lockout is applied to each user, protocol and connection
type ... serial and Ethernet protocols are locked out separately"): ``lockout_attempts`` failures in a row
over one protocol lock that user out of that protocol for ``lockout_duration_s``, while the same user can still
log in over another. Only the protocols a user logs in over (``LOGIN_PROTOCOLS``: web, display) have a
login and so a lockout; a user's ``protocols`` may also name control, Modbus and BACnet, which have no login
and say only whose privileges apply there (``[security] modbus_user``, ``bacnet_user``, the control socket's
uid map). BACnet's password (DCC, ReinitializeDevice) has its own lockout (``firmware.comms.bacnet``). A good login clears the count for its protocol. The counts and the lock times are in the
same SQLite file (WAL, synchronous FULL), so a restart neither forgets a lockout nor resets a count: pulling
the plug is no way around it.

A login with a ``source`` (the web: the client's address) is counted per (user, protocol, source) instead, so
that whoever knows a user name locks out only their own address, not the user: ``lockout_attempts`` failures
in a row from one address lock that pair out for ``lockout_duration``. The user is locked out over that
protocol for everyone only when failures come from ``lockout_sources`` distinct addresses (within
``lockout_duration``, and since the user's last such lock ended), and then only for ``lockout_sources_duration``
(at most an hour): many addresses failing at once is an attack no single pair lockout slows down, but a long
lock would hand the attacker the victim's account again. While that lock lasts nothing is checked or counted,
so it cannot be prolonged from within; the next one needs as many addresses failing again.

A fresh meter has one factory account, ``FACTORY_USER`` with the password ``FACTORY_PASSWORD`` and every
privilege (ION's "User1"/"0"); its ``default_password`` flag stays set until the password is changed, and
``UserStore.checklist()`` reports it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from firmware.security.privileges import Privilege, from_mask, names, to_mask
from firmware.storage.sqlite import open_db
from hal.errors import AccessDenied, ConfigError, StorageError

SECURITY_DB = "security.db"             # under data_dir
MAX_USERS = 50                          # ION7400 firmware 3.0: "The maximum number of users is 50"
MAX_PASSWORD_CHARS = 16                 # SPEC §8: passwords up to 16 characters
DEFAULT_LOCKOUT_ATTEMPTS = 8            # SPEC §8
DEFAULT_LOCKOUT_DURATION_S = 1440 * 60.0  # SPEC §8: 1440 min
# Distinct addresses whose failures lock a user out for everyone: well above the few devices (phone, laptop,
# office PC) one person mistypes from, yet a guesser must bring that many addresses per short lock.
DEFAULT_LOCKOUT_SOURCES = 10
DEFAULT_LOCKOUT_SOURCES_DURATION_S = 15 * 60.0
MAX_LOCKOUT_SOURCES_DURATION_S = 3600.0   # the lock everyone suffers stays short whatever the configuration
MAX_SOURCES_PER_USER = 1024             # pair counts kept per user and protocol: the table stays bounded
FACTORY_USER = "user1"                  # ION7400 firmware 3.0 troubleshooting: "Username: User1 and Password: 0"
FACTORY_PASSWORD = "0"
PROTOCOLS = ("control", "web", "modbus", "bacnet", "display", "dnp3")
LOGIN_PROTOCOLS = ("web", "display")    # the protocols with a login, hence a lockout
_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")

# argon2id at the OWASP password storage minimum (19 MiB, 2 passes, 1 lane): about 30 ms on a CM4 core,
# so a login costs little while an offline guess costs the same 19 MiB and 30 ms.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_dummy_hash = ""


def _dummy() -> str:
    """Compared against when the user does not exist, so a wrong name costs what a wrong password costs."""
    global _dummy_hash
    if not _dummy_hash:
        _dummy_hash = HASHER.hash("not a password of anyone")
    return _dummy_hash


@dataclass(frozen=True)
class User:
    name: str
    privileges: frozenset[Privilege]
    protocols: frozenset[str]
    default_password: bool

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "privileges": names(self.privileges), "protocols": sorted(self.protocols),
                "default_password": self.default_password}


@dataclass(frozen=True)
class LoginResult:
    """What one login attempt did: ``event`` is ``login_valid``, ``login_invalid`` or ``lockout``."""

    ok: bool
    user: User | None
    event: str
    reason: str
    failures: int = 0
    locked_until: float = 0.0


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"user name {name!r} is not valid: 1-32 characters, lower-case letters, digits, "
                          "'.', '_' or '-', starting with a letter")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or not 1 <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(f"a password has 1 to {MAX_PASSWORD_CHARS} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise ConfigError("a password cannot hold control characters")
    return password


def check_login_protocol(protocol: str) -> str:
    if protocol not in LOGIN_PROTOCOLS:
        hint = (" (it names whose privileges apply there: [security] modbus_user, bacnet_user, control_users)"
                if protocol in PROTOCOLS else "")
        raise ConfigError(f"protocol {protocol!r} has no login, so no lockout{hint}; logins and lockouts are over "
                          f"{', '.join(LOGIN_PROTOCOLS)}")
    return protocol


def check_protocols(protocols: set[str] | frozenset[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ConfigError(f"protocol(s) {', '.join(sorted(unknown))} not known; allowed: {', '.join(PROTOCOLS)}")
    return frozenset(protocols)


class UserStore:
    """Accounts and lockouts of one meter. Safe to share between threads; each process opens its own."""

    def __init__(self, data_dir: str | Path, lockout_attempts: int = DEFAULT_LOCKOUT_ATTEMPTS,
                 lockout_duration_s: float = DEFAULT_LOCKOUT_DURATION_S,
                 lockout_sources: int = DEFAULT_LOCKOUT_SOURCES,
                 lockout_sources_duration_s: float = DEFAULT_LOCKOUT_SOURCES_DURATION_S) -> None:
        self.path = Path(data_dir) / SECURITY_DB
        self.lockout_attempts = int(lockout_attempts)
        self.lockout_duration_s = float(lockout_duration_s)
        self.lockout_sources = max(1, int(lockout_sources))
        self.lockout_sources_duration_s = min(float(lockout_sources_duration_s), MAX_LOCKOUT_SOURCES_DURATION_S)
        self._mutex = threading.Lock()
        try:
            self._db = open_db(self.path)
            with self._tx() as db:
                db.execute("CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, "
                           "privileges INTEGER NOT NULL, protocols TEXT NOT NULL, default_password INTEGER NOT NULL)")
                db.execute("CREATE TABLE IF NOT EXISTS lockouts (name TEXT NOT NULL, protocol TEXT NOT NULL, "
                           "failures INTEGER NOT NULL, locked_until REAL NOT NULL, PRIMARY KEY (name, protocol))")
                db.execute("CREATE TABLE IF NOT EXISTS source_lockouts (name TEXT NOT NULL, protocol TEXT NOT NULL, "
                           "source TEXT NOT NULL, failures INTEGER NOT NULL, locked_until REAL NOT NULL, "
                           "last_failure REAL NOT NULL, PRIMARY KEY (name, protocol, source))")
                # security.db files of before LOGIN_PROTOCOLS may hold counts for protocols without a login:
                # nothing could ever end such a lockout by a good login, and nothing reads them any more
                db.execute(f"DELETE FROM lockouts WHERE protocol NOT IN ({','.join('?' * len(LOGIN_PROTOCOLS))})",
                           LOGIN_PROTOCOLS)
                if db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0:
                    db.execute("INSERT INTO users VALUES (?, ?, ?, ?, 1)",
                               (FACTORY_USER, HASHER.hash(FACTORY_PASSWORD), to_mask([Privilege.MASTER]),
                                ",".join(PROTOCOLS)))
        except sqlite3.Error as exc:
            raise StorageError(f"user accounts {self.path}: cannot be opened: {exc}") from None
        self._private()

    def _private(self) -> None:
        """0600, and owned by whoever owns data_dir: root running `meter user` must not leave the meter's
        account a file it cannot open."""
        owner = self.path.parent.stat()
        for f in self.path.parent.glob(SECURITY_DB + "*"):
            with contextlib.suppress(OSError):
                f.chmod(0o600)
                if os.geteuid() == 0 and f.stat().st_uid != owner.st_uid:
                    os.chown(f, owner.st_uid, owner.st_gid)

    @classmethod
    def from_config(cls, config: object) -> UserStore:
        sec = config["security"]  # type: ignore[index]
        return cls(config.meter.data_dir, sec.lockout_attempts, sec.lockout_duration,  # type: ignore[attr-defined]
                   sec.lockout_sources, sec.lockout_sources_duration)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ accounts

    def get(self, name: str) -> User | None:
        with self._mutex:
            row = self._db.execute("SELECT name, privileges, protocols, default_password FROM users WHERE name = ?",
                                   (name,)).fetchone()
        return _user(row) if row else None

    def stamp(self, name: str) -> str | None:
        """A digest of the account as it is now (password hash, privileges, protocols); None: no such user. A
        session keeps the stamp of its login and ends when the account no longer has it."""
        with self._mutex:
            row = self._db.execute("SELECT hash, privileges, protocols FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else hashlib.sha256("\x00".join(map(str, row)).encode()).hexdigest()

    def all_users(self) -> list[User]:
        with self._mutex:
            rows = self._db.execute("SELECT name, privileges, protocols, default_password FROM users "
                                    "ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def add(self, name: str, password: str, privileges: frozenset[Privilege],
            protocols: frozenset[str] = frozenset(PROTOCOLS)) -> User:
        check_name(name)
        check_password(password)
        if not privileges:
            raise ConfigError(f"user {name!r}: give at least one privilege (e.g. read)")
        digest = HASHER.hash(password)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ConfigError(f"user {name!r} exists already; use `meter user passwd` to change its password")
            if db.execute("SELECT COUNT(*) FROM users").fetchone()[0] >= MAX_USERS:
                raise ConfigError(f"the meter holds at most {MAX_USERS} users; remove one first")
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?, 0)",
                       (name, digest, to_mask(privileges), ",".join(sorted(check_protocols(protocols)))))
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> None:
        check_password(password)
        digest = HASHER.hash(password)
        with self._tx() as db:
            if not db.execute("UPDATE users SET hash = ?, default_password = 0 WHERE name = ?",
                              (digest, name)).rowcount:
                raise ConfigError(f"no user {name!r}; `meter user list` shows the users")
            db.execute("DELETE FROM lockouts WHERE name = ?", (name,))
            db.execute("DELETE FROM source_lockouts WHERE name = ?", (name,))

    def set_privileges(self, name: str, privileges: frozenset[Privilege],
                       protocols: frozenset[str] | None = None) -> None:
        with self._tx() as db:
            row = db.execute("SELECT protocols FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ConfigError(f"no user {name!r}; `meter user list` shows the users")
            protos = ",".join(sorted(check_protocols(protocols))) if protocols is not None else row[0]
            db.execute("UPDATE users SET privileges = ?, protocols = ? WHERE name = ?",
                       (to_mask(privileges), protos, name))
            self._keep_a_security_user(db)

    def remove(self, name: str) -> None:
        with self._tx() as db:
            if not db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
                raise ConfigError(f"no user {name!r}; `meter user list` shows the users")
            db.execute("DELETE FROM lockouts WHERE name = ?", (name,))
            db.execute("DELETE FROM source_lockouts WHERE name = ?", (name,))
            self._keep_a_security_user(db)

    @staticmethod
    def _keep_a_security_user(db: sqlite3.Connection) -> None:
        # At least one access path always stays open (SPEC §7): never drop the last user who can manage users.
        needed = to_mask([Privilege.SECURITY]) | to_mask([Privilege.MASTER])
        if not db.execute("SELECT 1 FROM users WHERE privileges & ? != 0", (needed,)).fetchone():
            raise AccessDenied("refused: no user with the security or master privilege would be left; "
                               "give another user the security privilege first")

    def checklist(self) -> list[str]:
        """Security warnings for the status page and the display (the default account, SPEC §8)."""
        return [f"user {u.name!r} still has its factory default password; change it with `meter user passwd "
                f"{u.name}`" for u in self.all_users() if u.default_password]

    # ------------------------------------------------------------------ login and lockout

    def login(self, name: str, password: str, protocol: str, now: float | None = None,
              source: str | None = None) -> LoginResult:
        """Check a password over ``protocol`` (one of ``LOGIN_PROTOCOLS``), keeping the lockout count of (name,
        protocol), or of (name, protocol, source) when ``source`` (the client's address) is given."""
        check_login_protocol(protocol)
        now = time.time() if now is None else now
        with self._mutex:
            row = self._db.execute("SELECT hash FROM users WHERE name = ?", (name,)).fetchone()
        stored = row[0] if row else _dummy()
        failures, locked_until = self.lockout_state(name, protocol, now)
        if locked_until > now:
            return LoginResult(False, None, "login_invalid", f"user {name!r} is locked out of {protocol} until "
                               f"{_utc(locked_until)} UTC", failures, locked_until)
        if source is not None:
            failures, locked_until = self.source_lockout_state(name, protocol, source, now)
            if locked_until > now:
                return LoginResult(False, None, "login_invalid", f"user {name!r} is locked out of {protocol} from "
                                   f"{source} until {_utc(locked_until)} UTC", failures, locked_until)
        try:
            good = HASHER.verify(stored, password) and row is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            good = False
        user = self.get(name) if good else None
        if user is not None and protocol not in user.protocols:
            good, user = False, None
        if good:
            assert user is not None
            with self._tx() as db:
                if source is None:
                    db.execute("DELETE FROM lockouts WHERE name = ? AND protocol = ?", (name, protocol))
                else:
                    db.execute("DELETE FROM source_lockouts WHERE name = ? AND protocol = ? AND source = ?",
                               (name, protocol, source))
                if HASHER.check_needs_rehash(stored):
                    db.execute("UPDATE users SET hash = ? WHERE name = ?", (HASHER.hash(password), name))
            return LoginResult(True, user, "login_valid", "", 0, 0.0)
        if row is None:
            # Counting failures for names that do not exist would let anyone grow the table without bound.
            return LoginResult(False, None, "login_invalid", "wrong user name or password", 0, 0.0)
        if source is not None:
            return self._count_source_failure(name, protocol, source, now)
        return self._count_failure(name, protocol, now)

    def _count_source_failure(self, name: str, protocol: str, source: str, now: float) -> LoginResult:
        with self._tx() as db:
            row = db.execute("SELECT failures, locked_until FROM source_lockouts WHERE name = ? AND protocol = ? "
                             "AND source = ?", (name, protocol, source)).fetchone()
            failures = (row[0] if row and row[1] <= now and row[0] < self.lockout_attempts else 0) + 1
            locked_until = now + self.lockout_duration_s if failures >= self.lockout_attempts else 0.0
            db.execute("INSERT INTO source_lockouts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name, protocol, source) "
                       "DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until, "
                       "last_failure = excluded.last_failure", (name, protocol, source, failures, locked_until, now))
            self._forget_old_sources(db, name, protocol, now)
            # addresses that failed within lockout_duration and since the user's last lock for everyone ended:
            # the addresses of one attack count once, however many locks for everyone they have caused before
            user_row = db.execute("SELECT locked_until FROM lockouts WHERE name = ? AND protocol = ?",
                                  (name, protocol)).fetchone()
            since = max(now - self.lockout_duration_s, user_row[0] if user_row else 0.0)
            sources = db.execute("SELECT COUNT(*) FROM source_lockouts WHERE name = ? AND protocol = ? AND "
                                 "last_failure > ?", (name, protocol, since)).fetchone()[0]
            user_until = now + self.lockout_sources_duration_s if sources >= self.lockout_sources else 0.0
            if user_until:
                db.execute("INSERT INTO lockouts VALUES (?, ?, ?, ?) ON CONFLICT(name, protocol) DO UPDATE SET "
                           "failures = excluded.failures, locked_until = excluded.locked_until",
                           (name, protocol, sources, user_until))
        if user_until:
            return LoginResult(False, None, "lockout", f"user {name!r} locked out of {protocol} for everyone after "
                               f"failed logins from {sources} addresses, for {self.lockout_sources_duration_s / 60:g} "
                               "min", failures, user_until)
        if locked_until:
            return LoginResult(False, None, "lockout", f"user {name!r} locked out of {protocol} from {source} after "
                               f"{failures} failed logins, for {self.lockout_duration_s / 60:g} min", failures,
                               locked_until)
        return LoginResult(False, None, "login_invalid", "wrong user name or password", failures, 0.0)

    def _forget_old_sources(self, db: sqlite3.Connection, name: str, protocol: str, now: float) -> None:
        # a count whose lock has ended and whose last failure is older than lockout_duration cannot matter any
        # more; past MAX_SOURCES_PER_USER the stalest go first, so addresses without end cannot grow the file
        db.execute("DELETE FROM source_lockouts WHERE name = ? AND protocol = ? AND locked_until <= ? AND "
                   "last_failure <= ?", (name, protocol, now, now - self.lockout_duration_s))
        db.execute("DELETE FROM source_lockouts WHERE rowid IN (SELECT rowid FROM source_lockouts WHERE name = ? "
                   "AND protocol = ? ORDER BY last_failure DESC LIMIT -1 OFFSET ?)",
                   (name, protocol, MAX_SOURCES_PER_USER))

    def source_lockout_state(self, name: str, protocol: str, source: str,
                             now: float | None = None) -> tuple[int, float]:
        """As ``lockout_state``, of ``name`` over ``protocol`` from the address ``source``."""
        check_login_protocol(protocol)
        now = time.time() if now is None else now
        with self._mutex:
            row = self._db.execute("SELECT failures, locked_until FROM source_lockouts WHERE name = ? AND "
                                   "protocol = ? AND source = ?", (name, protocol, source)).fetchone()
        if row is None:
            return 0, 0.0
        return int(row[0]), float(row[1]) if row[1] > now else 0.0

    def locked_sources(self, name: str, protocol: str, now: float | None = None) -> dict[str, float]:
        """{address: locked until} of the addresses ``name`` is locked out of ``protocol`` from now."""
        check_login_protocol(protocol)
        now = time.time() if now is None else now
        with self._mutex:
            rows = self._db.execute("SELECT source, locked_until FROM source_lockouts WHERE name = ? AND "
                                    "protocol = ? AND locked_until > ? ORDER BY source", (name, protocol, now))
            return {str(r[0]): float(r[1]) for r in rows.fetchall()}

    def _count_failure(self, name: str, protocol: str, now: float) -> LoginResult:
        with self._tx() as db:
            row = db.execute("SELECT failures, locked_until FROM lockouts WHERE name = ? AND protocol = ?",
                             (name, protocol)).fetchone()
            failures = (row[0] if row and row[1] <= now and row[0] < self.lockout_attempts else 0) + 1
            locked_until = now + self.lockout_duration_s if failures >= self.lockout_attempts else 0.0
            db.execute("INSERT INTO lockouts VALUES (?, ?, ?, ?) ON CONFLICT(name, protocol) DO UPDATE SET "
                       "failures = excluded.failures, locked_until = excluded.locked_until",
                       (name, protocol, failures, locked_until))
        if locked_until:
            return LoginResult(False, None, "lockout", f"user {name!r} locked out of {protocol} after {failures} "
                               f"failed logins, for {self.lockout_duration_s / 60:g} min", failures, locked_until)
        return LoginResult(False, None, "login_invalid", "wrong user name or password", failures, 0.0)

    def lockout_state(self, name: str, protocol: str, now: float | None = None) -> tuple[int, float]:
        """(failures in a row, locked until [epoch s, 0 when not locked]) of ``name`` over ``protocol``."""
        check_login_protocol(protocol)
        now = time.time() if now is None else now
        with self._mutex:
            row = self._db.execute("SELECT failures, locked_until FROM lockouts WHERE name = ? AND protocol = ?",
                                   (name, protocol)).fetchone()
        if row is None:
            return 0, 0.0
        return int(row[0]), float(row[1]) if row[1] > now else 0.0

    def unlock(self, name: str, protocol: str | None = None) -> None:
        if protocol is not None:
            check_login_protocol(protocol)
        with self._tx() as db:
            if protocol is None:
                db.execute("DELETE FROM lockouts WHERE name = ?", (name,))
                db.execute("DELETE FROM source_lockouts WHERE name = ?", (name,))
            else:
                db.execute("DELETE FROM lockouts WHERE name = ? AND protocol = ?", (name, protocol))
                db.execute("DELETE FROM source_lockouts WHERE name = ? AND protocol = ?", (name, protocol))


def _utc(t: float) -> str:
    return time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t))


def _user(row: tuple[str, int, str, int]) -> User:
    return User(row[0], from_mask(int(row[1])), frozenset(p for p in row[2].split(",") if p), bool(row[3]))
