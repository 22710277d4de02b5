"""``meter user add|passwd|list|remove|unlock``: the meter's user accounts (data_dir/security.db).

The command works on the accounts file directly, so it needs the file permissions of the meter's account (root
or the ``meter`` user on the device): that is the check. Every change is a security event in the event log.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from firmware.cli.config import DEFAULT_CONFIG
from firmware.config.store import ConfigStore
from firmware.security.audit import SecurityAudit
from firmware.security.privileges import names, parse_privileges
from firmware.security.users import LOGIN_PROTOCOLS, PROTOCOLS, UserStore, check_password, check_protocols
from hal.errors import ConfigError

PASSWORD_ENV = "METER_PASSWORD"   # for scripts: the password without a prompt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="add, change, list or remove the meter's users")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    a = usub.add_parser("add", help="add a user: meter user add alice --privileges read,peak-demand-reset")
    a.add_argument("name")
    a.add_argument("--privileges", required=True,
                   help="comma-separated: read, peak-demand-reset, time-sync, setup, security, user-defined, master")
    a.add_argument("--protocols", default=",".join(PROTOCOLS),
                   help="comma-separated protocols the user may log in over (web, display) or whose privileges "
                        "apply to it (control, modbus, bacnet: no login) (default %(default)s)")
    a.set_defaults(func=_add)

    w = usub.add_parser("passwd", help="change a user's password (prompts, or reads $METER_PASSWORD)")
    w.add_argument("name")
    w.set_defaults(func=_passwd)

    ls = usub.add_parser("list", help="list users, privileges, protocols and lockouts as JSON")
    ls.set_defaults(func=_list)

    r = usub.add_parser("remove", help="remove a user")
    r.add_argument("name")
    r.set_defaults(func=_remove)

    u = usub.add_parser("unlock", help="end a user's lockout (every login protocol, or --protocol)")
    u.add_argument("name")
    u.add_argument("--protocol", choices=LOGIN_PROTOCOLS,
                   help="only this one (Modbus, BACnet and control have no login, so no lockout)")
    u.set_defaults(func=_unlock)


def _open(args: argparse.Namespace) -> tuple[UserStore, SecurityAudit]:
    config = ConfigStore(args.config).load()
    return UserStore.from_config(config), SecurityAudit.from_config(config, source="cli")


def _password(prompt: str) -> str:
    if PASSWORD_ENV in os.environ:
        return check_password(os.environ[PASSWORD_ENV])
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; nothing changed")
    return check_password(first)


def _who() -> str:
    return f"{getpass.getuser()} (uid {os.getuid()})"


def _add(args: argparse.Namespace) -> int:
    users, audit = _open(args)
    privileges = parse_privileges(p for p in args.privileges.split(",") if p)
    protocols = check_protocols([p for p in args.protocols.split(",") if p])
    user = users.add(args.name, _password(f"password for {args.name}: "), privileges, protocols)
    audit.record("user_change", _who(), f"added user {user.name}", {"privileges": names(user.privileges)})
    print(json.dumps(user.to_dict()))
    return 0


def _passwd(args: argparse.Namespace) -> int:
    users, audit = _open(args)
    users.set_password(args.name, _password(f"new password for {args.name}: "))
    audit.record("user_change", _who(), f"password of {args.name} changed")
    print(json.dumps({"user": args.name, "password": "changed"}))
    return 0


def _list(args: argparse.Namespace) -> int:
    users, _ = _open(args)
    out = []
    for user in users.all_users():
        locks = {p: users.lockout_state(user.name, p) for p in LOGIN_PROTOCOLS}
        out.append({**user.to_dict(), "locked_out": {p: until for p, (_, until) in locks.items() if until},
                    "failures": {p: n for p, (n, _) in locks.items() if n},
                    # web lockouts are per address (the user is locked for everyone only briefly, above)
                    "locked_out_addresses": users.locked_sources(user.name, "web")})
    print(json.dumps(out, indent=1))
    for warning in users.checklist():
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _remove(args: argparse.Namespace) -> int:
    users, audit = _open(args)
    users.remove(args.name)
    audit.record("user_change", _who(), f"removed user {args.name}")
    print(json.dumps({"user": args.name, "removed": True}))
    return 0


def _unlock(args: argparse.Namespace) -> int:
    users, audit = _open(args)
    if users.get(args.name) is None:
        raise ConfigError(f"no user {args.name!r}; `meter user list` shows the users")
    users.unlock(args.name, args.protocol)
    audit.record("user_change", _who(), f"lockout of {args.name} ended ({args.protocol or 'every protocol'})")
    print(json.dumps({"user": args.name, "unlocked": args.protocol or "all"}))
    return 0
