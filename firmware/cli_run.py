"""``meter run`` (the whole meter in the foreground) and ``meter status``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from firmware.config.board import load_board
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.logsetup import configure_logging

DEFAULT_CONFIG = os.environ.get("METER_CONFIG", "var/meter.toml")
DEFAULT_BOARD = os.environ.get("METER_BOARD_FILE", "boards/sim.toml")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="start the whole meter (supervisor and every service) in the foreground")
    r.add_argument("--config", default=DEFAULT_CONFIG,
                   help="configuration file (default %(default)s; absent: every option at its default)")
    r.add_argument("--board", default=DEFAULT_BOARD, help="board file (default %(default)s)")
    r.add_argument("--run-dir", default=None, help="directory for sockets (default: [meter] run_dir)")
    r.add_argument("--only", default=None, help="comma-separated services to start (default: all enabled)")
    r.set_defaults(func=_run)

    s = sub.add_parser("status", help="show the running meter's services and health")
    s.add_argument("--config", default=DEFAULT_CONFIG)
    s.add_argument("--run-dir", default=None)
    s.add_argument("--json", action="store_true", help="print the raw status object")
    s.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from firmware.services.registry import enabled_services
    from firmware.supervisor import Supervisor

    config = ConfigStore(args.config).load()
    board = Path(args.board)
    load_board(board)  # refuse a bad board file before any service starts
    data_dir = Path(config.meter.data_dir)
    configure_logging(config, "supervisor", data_dir)
    services = enabled_services(config)
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        unknown = wanted - {s.name for s in services}
        if unknown:
            raise SystemExit(f"meter run: --only names unknown services {sorted(unknown)}; "
                             f"available: {', '.join(s.name for s in services)}")
        services = [s for s in services if s.name in wanted]
    supervisor = Supervisor(config, Path(args.config), board, services,
                            run_dir=Path(args.run_dir) if args.run_dir else None, on_ready=_print_ready)
    return supervisor.run()


def _print_ready(supervisor: Any) -> None:
    status = supervisor.status()
    lines = ["", f"meter {status['version']} running (configuration version {status['config_version']})",
             f"  control socket  {status['control_socket']}   (meter status, meter config ...)"]
    for name, svc in status["services"].items():
        where = ", ".join(svc["endpoints"]) or "-"
        lines.append(f"  {name:12s} {svc['state']:8s} pid {svc['pid'] or '-':<7} {where}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def _status(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    run_dir = Path(args.run_dir or config.meter.run_dir)
    status = ControlClient(run_dir / "control.sock").call("status")
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["healthy"] else 1
    print(f"meter {status['version']}  config v{status['config_version']}  "
          f"{'healthy' if status['healthy'] else 'NOT HEALTHY'}  up {status['uptime_s']:.0f} s")
    for name, svc in status["services"].items():
        extra = f"  last exit: {svc['last_exit']}" if svc["last_exit"] else ""
        print(f"  {name:12s} {svc['state']:8s} pid {svc['pid'] or '-':<7} restarts {svc['restarts']:<3} "
              f"{', '.join(svc['endpoints'])}{extra}")
    return 0 if status["healthy"] else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the meter command")
