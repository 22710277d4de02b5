"""``meter dlms keys``: the meter's own DLMS secrets, for the administrator to give its head-end system.

    meter dlms keys [--json]     LLS password, EK and AK (security suite 0), system title

They are read from the data directory (``firmware.comms.dlms.keys``), so only an account that may read it (root
or the meter's own) sees them; nothing serves them over a protocol.
"""
from __future__ import annotations

import argparse
import json

from firmware.cli.run import DEFAULT_CONFIG
from firmware.comms.dlms.keys import load_keys
from firmware.config.store import ConfigStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlms", help="DLMS/COSEM: the meter's keys for a head-end system")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    k = what.add_parser("keys", help="the LLS password, the HLS-GMAC keys (EK, AK) and the system title")
    k.add_argument("--json", action="store_true", help="as JSON")
    k.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    p.set_defaults(func=_keys)


def _keys(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    keys = load_keys(config.meter.data_dir, create=False).as_text()
    if args.json:
        print(json.dumps(keys))
    else:
        for name, text in keys.items():
            print(f"{name:14} {text}")
    return 0
