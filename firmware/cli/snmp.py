"""``meter snmp mib|secrets|set``: the SNMP agent's MIB for the configured enterprise OID, and this meter's SNMP
secrets (data_dir/snmp/secrets.json, docs/snmp.md).

``secrets`` and ``set`` work on the secrets file directly, so they need the file permissions of the meter's
account (root or the ``meter`` user on the device): that is the check. A change is a security event in the event
log (never the secret itself); the agent reads the secrets when the comms service starts
(``meter do restart service=comms``).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from firmware.cli.config import DEFAULT_CONFIG
from firmware.comms.snmp.keystore import SecretStore
from firmware.config.store import ConfigStore
from hal.errors import ConfigError

SECRET_ENV = "METER_SNMP_SECRET"   # for scripts: the new secret without a prompt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snmp", help="the SNMP agent: its MIB, this meter's community and v3 passphrases")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    ssub = p.add_subparsers(dest="snmp_command", metavar="ACTION", required=True)
    m = ssub.add_parser("mib", help="print OPENMETER-MIB for [snmp] enterprise_oid")
    m.set_defaults(func=_mib)
    s = ssub.add_parser("secrets", help="print the v2c community and each [[snmp.user]]'s passphrases as JSON")
    s.set_defaults(func=_secrets)
    w = ssub.add_parser("set", help="replace a secret: community, USER.auth or USER.priv (prompts, or reads "
                                    f"${SECRET_ENV})")
    w.add_argument("what")
    w.set_defaults(func=_set)


def _mib(args: argparse.Namespace) -> int:
    from firmware.comms.snmp import ber
    from firmware.comms.snmp.mibtext import render

    config = ConfigStore(args.config).load()
    sys.stdout.write(render(ber.oid(config["snmp"].enterprise_oid)))
    return 0


def _secrets(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    s = config["snmp"]
    store = SecretStore(config["meter"].data_dir)
    users = {}
    for u in s.user:
        auth, priv = store.user(u.name)
        users[u.name] = {"auth_protocol": u.auth, "auth": auth, "priv_protocol": u.priv, "priv": priv}
    print(json.dumps({"community": store.community(s.community), "community_from": "configuration" if s.community
                      else "this meter's secrets", "users": users}, indent=1))
    return 0


def _set(args: argparse.Namespace) -> int:
    config = ConfigStore(args.config).load()
    if args.what != "community" and args.what.rpartition(".")[0] not in {u.name for u in config["snmp"].user}:
        raise ConfigError(f"{args.what!r}: write community, or USER.auth / USER.priv of a [[snmp.user]]")
    if SECRET_ENV in os.environ:
        value = os.environ[SECRET_ENV]
    else:
        value = getpass.getpass(f"new {args.what}: ")
        if getpass.getpass("again: ") != value:
            raise ConfigError("the two entries differ; nothing changed")
    SecretStore(config["meter"].data_dir).set(args.what, value)
    from firmware.security.audit import SecurityAudit

    who = f"{getpass.getuser()} (uid {os.getuid()})"
    SecurityAudit.from_config(config, source="cli").record("user_change", who, f"SNMP secret {args.what} changed")
    print(json.dumps({"changed": args.what, "in_effect": "when the comms service starts next"}))
    return 0
