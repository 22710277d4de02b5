"""The ``meter`` command. Each subcommand lives in its own module exposing ``register(subparsers)``.

Every subcommand is one the meter itself can run: on the device the firmware slot runs from ``PYTHONPATH``
(``python -m firmware.cli``), so nothing here may need the host tools in ``tools/`` or an installed
distribution's metadata. The host tools have entry points of their own (``[project.scripts]``: ``meter-image``
builds and signs images); ``meter --help`` names those that are installed beside it.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib import metadata

from hal.errors import MeterError

# Modules that add subcommands.
COMMAND_MODULES = (
    "firmware.cli.run",       # run, status
    "firmware.cli.maintenance",  # reset master|factory|wipe
    "firmware.cli.config",    # config validate/show/defaults/set
    "firmware.cli.user",      # user add/passwd/list/remove/unlock
    "firmware.cli.snmp",      # snmp mib/secrets/set
    "firmware.cli.recorder",  # pq events/capture/captures/recorders/read/aggregates
    "firmware.cli.replay",    # replay RECORDING.cfg
    "firmware.cli.report",    # report en50160|ieee519
    "firmware.cli.commands",  # read, do, revenue
    "firmware.cli.dlms",      # dlms keys
    "firmware.cli.image",     # image install/provision/status/log/trust/guard/verify/show
    "firmware.cli.hil_pulses",  # hil pulses|run
)
DISTRIBUTION = "openmeter"


def host_tools() -> list[str]:
    """The other commands the installed distribution provides (none where the firmware runs from a slot)."""
    try:
        scripts = metadata.distribution(DISTRIBUTION).entry_points
    except metadata.PackageNotFoundError:
        return []
    return sorted(e.name for e in scripts if e.group == "console_scripts" and e.name != "meter")


def build_parser() -> argparse.ArgumentParser:
    from firmware import __version__

    tools = host_tools()
    epilog = f"Host tools installed beside it: {', '.join(tools)} (each with --help)." if tools else None
    parser = argparse.ArgumentParser(prog="meter", description="Open revenue and power-quality meter firmware.",
                                     epilog=epilog)
    parser.add_argument("--version", action="version", version=f"meter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# What a shell reports for a command ended by SIGPIPE (128 + 13): `meter status | head -1` reads as usual.
CLOSED_PIPE_STATUS = 141


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run one command of ``parser``; a reader that closes the pipe early (``| head``) ends it quietly, as it does
    a C tool."""
    try:
        status = _run(parser, argv)
        sys.stdout.flush()       # inside the try: the last buffered output can meet the closed pipe too
        return status
    except BrokenPipeError:
        # Python ignores SIGPIPE, so a write to a closed pipe raises; point stdout at /dev/null so the
        # interpreter's own flush at exit does not raise again, and end with the shell's SIGPIPE status.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_PIPE_STATUS


def _run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse ends a usage error with status 2, which `meter status` gives to a degraded meter;
        # a usage error is an error like any other (1)
        return 1 if exc.code else 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except MeterError as exc:
        print(f"meter: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
