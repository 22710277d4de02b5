"""``meter read``, ``meter do`` and ``meter revenue``: every quantity and command of the catalogue
(``firmware.catalogue``) from the command line, through the running meter's control socket.

The supervisor's socket decides each command as it decides one from the network (``firmware.security.authorize``
with the account the kernel names), so these commands can do exactly what their user may do over Modbus, BACnet
or the web. Arguments are checked against the catalogue before anything is sent: a wrong name, type or range is
refused here with what is allowed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from firmware.catalogue import Command, command, commands, quantities
from firmware.catalogue.values import split_names
from firmware.cli.run import DEFAULT_CONFIG
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from hal.errors import ConfigError

READ_TIMEOUT_S = 10.0
WATCH_MIN_S = 0.2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    p.add_argument("--run-dir", default=None, help="directory of the control socket (default: [meter] run_dir)")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("read", help="read quantities of the catalogue by name (meter read --list names them)")
    r.add_argument("points", nargs="*", metavar="POINT", help="point name; NAME[i] for one element of an array")
    r.add_argument("--watch", nargs="?", type=float, const=1.0, default=None, metavar="SECONDS",
                   help="read again every SECONDS (default 1) until interrupted")
    r.add_argument("--json", action="store_true", help="one JSON object per read")
    r.add_argument("--list", action="store_true", help="list every quantity: name, unit, kind, description")
    _common(r)
    r.set_defaults(func=_read)

    d = sub.add_parser("do", help="run a command of the catalogue (meter do --list names them)")
    d.add_argument("name", nargs="?", metavar="COMMAND")
    d.add_argument("args", nargs="*", metavar="ARG=VALUE")
    d.add_argument("--list", action="store_true", help="list every command with its arguments and privilege")
    _common(d)
    d.set_defaults(func=_do)

    v = sub.add_parser("revenue", help="the revenue registers: freeze, preset, test mode, self-reads, registers, "
                                       "min/max")
    vs = v.add_subparsers(dest="revenue_command", metavar="WHAT", required=True)
    for name, what, help_text in (("freeze", "freeze", "freeze (snapshot) the billing registers"),
                                  ("self-reads", "self_reads", "the newest self-read records"),
                                  ("registers", "revenue_registers", "every revenue register"),
                                  ("minmax", "revenue_registers", "the min/max/average registers")):
        p = vs.add_parser(name, help=help_text)
        if name == "self-reads":
            p.add_argument("-n", type=int, default=96, help="records (default %(default)s)")
        _common(p)
        p.set_defaults(func=_revenue, command_name=what, section="minmax" if name == "minmax" else None)
    p = vs.add_parser("preset", help="preset one energy register (only while the revenue lock is open)")
    p.add_argument("args", nargs="+", metavar="ARG=VALUE",
                   help="register=wh_del value=1000 [phase=a|b|c|total] [rate=A..H] [compensated=true]")
    _common(p)
    p.set_defaults(func=_revenue, command_name="preset", section=None)
    p = vs.add_parser("test-mode", help="enter (on) or leave (off) test mode")
    p.add_argument("state", choices=("on", "off"))
    _common(p)
    p.set_defaults(func=_revenue, command_name=None, section=None)


def client(args: argparse.Namespace, timeout_s: float = READ_TIMEOUT_S) -> ControlClient:
    config = ConfigStore(args.config).load()
    run_dir = Path(args.run_dir or config.meter.run_dir)
    return ControlClient(run_dir / "control.sock", timeout_s=timeout_s)


def _print(value: Any) -> None:
    print(json.dumps(value, indent=1, default=str))


# ---------------------------------------------------------------------- read

def _read(args: argparse.Namespace) -> int:
    if args.list:
        for p in quantities():
            size = f"[{p.size}]" if p.size > 1 else ""
            print(f"{p.name + size:40s} {p.unit:8s} {p.kind:13s} {p.description}")
        return 0
    names = split_names(args.points)
    units = {p.name: p.unit for p in quantities()}
    c = client(args)
    while True:
        answer = c.call("metrology.read", names=",".join(names))
        if args.json:
            print(json.dumps(answer), flush=True)
        else:
            for name, value in answer["values"].items():
                unit = units.get(name.partition("[")[0], "")
                print(f"{name:32s} {_text(value)} {unit}".rstrip(), flush=True)
        if args.watch is None:
            return 0
        time.sleep(max(WATCH_MIN_S, args.watch))
        if not args.json:
            print(flush=True)


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return f"{value:.9g}"


# ---------------------------------------------------------------------- do

def parse_args(cmd: Command, pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"{cmd.name}: {pair!r} is not ARG=VALUE; usage: meter do {cmd.usage()}")
        try:
            out[name] = cmd.arg(name).parse(text)
        except ConfigError as exc:
            raise ConfigError(f"{cmd.name}: {exc}; usage: meter do {cmd.usage()}") from None
    return out


def run(args: argparse.Namespace, cmd: Command, given: dict[str, Any]) -> Any:
    control, checked = cmd.bind(given)
    return client(args, timeout_s=60.0).call(control, **checked)


def _do(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for cmd in commands():
            print(f"{cmd.usage()}\n    {cmd.description} [privilege {cmd.privilege}"
                  f"{'; refused while revenue-locked' if cmd.revenue_lock != 'allowed' else ''}; "
                  f"{', '.join(cmd.interfaces)}]")
        return 0 if args.list else 1
    cmd = command(args.name)
    _print(run(args, cmd, parse_args(cmd, args.args)))
    return 0


# ---------------------------------------------------------------------- revenue

def _revenue(args: argparse.Namespace) -> int:
    if args.revenue_command == "test-mode":
        cmd = command("test_mode_enter" if args.state == "on" else "test_mode_exit")
        given: dict[str, Any] = {}
    else:
        cmd = command(args.command_name)
        given = parse_args(cmd, args.args) if args.command_name == "preset" else {}
        if args.revenue_command == "self-reads":
            given = {"n": cmd.arg("n").check(args.n)}
    answer = run(args, cmd, given)
    if args.section:
        answer = {"minmax": answer.get("minmax"), "avg_pf_since_bpr": answer.get("avg_pf_since_bpr")}
    _print(answer)
    return 0
