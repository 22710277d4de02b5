"""``meter config validate|show|defaults|set``."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

import tomli_w

from firmware.config import meter_schema
from firmware.config.checks import check_whole
from firmware.config.store import ConfigStore, load_file, parse_toml
from hal.errors import ConfigError

DEFAULT_CONFIG = os.environ.get("METER_CONFIG", "var/meter.toml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="validate, show or change the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    v = csub.add_parser("validate", help="check a configuration file; exit 1 with the reason if it is invalid")
    v.add_argument("file")
    v.set_defaults(func=_validate)

    s = csub.add_parser("show", help="print the effective configuration (file merged over defaults)")
    s.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    s.add_argument("--changed", action="store_true", help="only options that differ from the defaults")
    s.set_defaults(func=_show)

    d = csub.add_parser("defaults", help="print every option with its default value")
    d.set_defaults(func=_defaults)

    u = csub.add_parser("set", help="change options and save atomically: meter config set modbus.tcp_port=5021")
    u.add_argument("--config", default=DEFAULT_CONFIG)
    u.add_argument("--user", default=None, help="who makes the change (default: the login name)")
    u.add_argument("--reason", default="")
    u.add_argument("--defaults-only", action="store_true",
                   help="change only the options still at their default value; nothing is saved when none is "
                        "(make run sets its development settings so, around what was set before)")
    u.add_argument("assignments", nargs="+", metavar="SECTION.OPTION=VALUE",
                   help="VALUE is TOML: 5021, true, \"text\", [1, 2]")
    u.set_defaults(func=_set)


def _still_default(store: ConfigStore, changes: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """The assignments whose option the file leaves at its default (the file holds only what differs)."""
    saved = store.load().to_dict(only_changed=True)
    out: dict[str, dict[str, object]] = {}
    for section, values in changes.items():
        node: object = saved
        for part in section.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        for option, value in values.items():
            if not isinstance(node, dict) or option not in node:
                out.setdefault(section, {})[option] = value
    return out


def _validate(args: argparse.Namespace) -> int:
    cfg = load_file(args.file)
    check_whole(cfg)                  # what the revenue code would refuse at start is refused here
    print(f"{args.file}: valid (configuration version {cfg.version})")
    return 0


def _show(args: argparse.Namespace) -> int:
    cfg = ConfigStore(args.config).load()
    sys.stdout.write(tomli_w.dumps(cfg.to_dict(only_changed=args.changed)))
    return 0


def _defaults(args: argparse.Namespace) -> int:
    sys.stdout.write(tomli_w.dumps(meter_schema().defaults().to_dict()))
    return 0


def _set(args: argparse.Namespace) -> int:
    changes: dict[str, dict[str, object]] = {}
    for item in args.assignments:
        key, sep, raw = item.partition("=")
        section, dot, option = key.rpartition(".")
        if not sep or not dot:
            print(f"meter config set: {item!r} is not SECTION.OPTION=VALUE", file=sys.stderr)
            return 2
        try:
            value = parse_toml(f"v = {raw}", f"meter config set {key}")["v"]
        except ConfigError:
            if raw[:1] in "[{\"'" or raw[:1].isdigit():
                raise                 # meant as TOML (a list, a table, a number) but not usable: say so
            value = raw  # bare words are taken as strings: level=debug
        changes.setdefault(section, {})[option] = value
    store = ConfigStore(Path(args.config))
    if args.defaults_only:
        changes = _still_default(store, changes)
        if not changes:
            cfg = store.load()
            print(json.dumps({"saved": None, "version": cfg.version, "unchanged": str(store.path)}))
            return 0
    cfg = store.update(changes, user=args.user or getpass.getuser(), reason=args.reason)
    print(json.dumps({"saved": str(store.path), "version": cfg.version}))
    return 0
