"""``meter reset master|factory|wipe``: master reset, factory defaults and device wipe of the running meter
(firmware.maintenance), through its control socket: the master privilege and no revenue lock."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.maintenance import ACTIONS
from hal.errors import MeterError

DEFAULT_CONFIG = os.environ.get("METER_CONFIG", "var/meter.toml")
WHICH = {"master": "master_reset", "factory": "factory_defaults", "wipe": "device_wipe"}
TIMEOUT_S = 150.0              # every service stopped and started again


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reset", help="master reset, factory defaults or device wipe of the running meter",
                       description="; ".join(f"{k}: {ACTIONS[v]}" for k, v in WHICH.items()) +
                       ". Needs the master privilege; refused while the revenue lock is engaged; logged.")
    p.add_argument("which", choices=tuple(WHICH))
    p.add_argument("--yes", action="store_true", help="do it (without it, nothing is done)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--run-dir", default=None, help="the meter's run directory (default: from the configuration)")
    p.set_defaults(func=_reset)


def _reset(args: argparse.Namespace) -> int:
    action = WHICH[args.which]
    if not args.yes:
        raise MeterError(f"meter reset {args.which} would {ACTIONS[action]}; add --yes to do it")
    run_dir = Path(args.run_dir or ConfigStore(args.config).load().meter.run_dir)
    answer = ControlClient(run_dir / "control.sock", timeout_s=TIMEOUT_S).call(action)
    print(json.dumps(answer))
    return 0
