"""``meter image install|provision|status|log|trust|guard|verify|show``: the meter side of an upgrade.

These run on the meter and only call ``firmware.upgrade``; the settings come from the meter's
configuration file (``[upgrade]``). Building, signing and making signing keys happen off the meter, with the
host tool ``meter-image`` (``tools.image.cli``).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from firmware.config.store import ConfigStore
from firmware.upgrade.errors import UpgradeRefused
from firmware.upgrade.image import Image, key_id
from firmware.upgrade.settings import UpgradeSettings
from firmware.upgrade.trust import TrustStore, load_public_key, public_raw, verify_signatures

DEFAULT_CONFIG = os.environ.get("METER_CONFIG", "var/meter.toml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="install firmware images and check them (build and sign with meter-image)")
    isub = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="meter configuration (default %(default)s)")

    i = isub.add_parser("install", help="check an image and install it to the inactive slot")
    i.add_argument("image")
    config_arg(i)
    i.add_argument("--user", default=None, help="who asks (default: the login name); goes to the upgrade log")
    i.add_argument("--check-only", action="store_true", help="run every check, change nothing")
    i.add_argument("--wait", action="store_true", help="wait until the new slot is committed or rolled back")
    i.set_defaults(func=_install)

    p = isub.add_parser("provision", help="factory: install a verified image as the first, committed slot")
    p.add_argument("image")
    config_arg(p)
    p.set_defaults(func=_provision)

    s = isub.add_parser("status", help="slots, pointers, trial, anti-rollback floor")
    config_arg(s)
    s.set_defaults(func=_status)

    g = isub.add_parser("log", help="the upgrade log (newest last)")
    config_arg(g)
    g.add_argument("-n", type=int, default=50)
    g.set_defaults(func=_log)

    t = isub.add_parser("trust", help="list, add or revoke the public keys this meter accepts")
    config_arg(t)
    t.add_argument("action", choices=("list", "add", "revoke"))
    t.add_argument("key", nargs="?", help="add: public key PEM file; revoke: key id")
    t.add_argument("--comment", default="")
    t.set_defaults(func=_trust)

    b = isub.add_parser("guard", help="the boot guard run by meter.service (starts the supervisor from a slot)")
    config_arg(b)
    b.add_argument("--board", default=os.environ.get("METER_BOARD_FILE", "boards/sim.toml"))
    b.add_argument("--run-dir", default=None)
    b.add_argument("--fallback", action="store_true", help="only fall back to the last good slot and exit")
    b.set_defaults(func=_guard)

    v = isub.add_parser("verify", help="check an image's structure, every file's hash and its signature")
    v.add_argument("image")
    v.add_argument("--pubkey", action="append", default=[], help="trusted public key PEM, repeatable")
    v.add_argument("--trust-store", default=None, help="or: a meter trust store directory")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_verify)

    m = isub.add_parser("show", help="print an image's manifest (not verified)")
    m.add_argument("image")
    m.set_defaults(func=_show)


def _settings(args: argparse.Namespace) -> UpgradeSettings:
    return UpgradeSettings.from_config(ConfigStore(args.config).load())


def _locked(args: argparse.Namespace) -> bool:
    from firmware.lockstate import revenue_locked

    return revenue_locked(ConfigStore(args.config).load())


def _install(args: argparse.Namespace) -> int:
    from firmware.upgrade.installer import Installer

    installer = Installer(_settings(args), locked=lambda: _locked(args),
                          progress=lambda step: print(f"  {step}", file=sys.stderr))
    try:
        if args.check_only:
            checked = installer.check(args.image)
            checked.image.scan()
            print(json.dumps({"image": args.image, "acceptable": True, "version": checked.image.manifest.version,
                              "slot": checked.target_slot, "key_id": checked.key_id}))
            return 0
        result = installer.install(args.image, user=args.user or getpass.getuser())
    except UpgradeRefused as exc:
        print(json.dumps({"image": args.image, "refused": exc.reason, "error": str(exc)}))
        print(f"meter image install: refused ({exc.reason}): {exc}", file=sys.stderr)
        return 1
    if result["guard_pid"] is None:
        print("  no boot guard is running: restart the meter (systemctl restart meter) to start the new slot",
              file=sys.stderr)
    if args.wait:
        outcome = installer.wait(result["attempt"], installer.settings.health_deadline_s * 2 + 30)
        result["outcome"] = outcome["event"] if outcome else "pending"
        result["message"] = outcome["message"] if outcome else ""
    print(json.dumps(result))
    return 0 if result.get("outcome", "committed") == "committed" else 1


def _provision(args: argparse.Namespace) -> int:
    from firmware.upgrade.installer import provision

    print(json.dumps(provision(_settings(args), args.image)))
    return 0


def _status(args: argparse.Namespace) -> int:
    from firmware.upgrade.slots import SlotLayout

    settings = _settings(args)
    print(json.dumps(SlotLayout(settings.root, settings.state_dir).describe(), indent=2))
    return 0


def _log(args: argparse.Namespace) -> int:
    from firmware.upgrade.log import UpgradeLog

    settings = _settings(args)
    for row in UpgradeLog(settings.state_dir, settings.log_depth).entries(limit=args.n):
        print(json.dumps(row))
    return 0


def _trust(args: argparse.Namespace) -> int:
    store = TrustStore(_settings(args).trust_store)
    if args.action == "add":
        if not args.key:
            print("meter image trust add: give the public key PEM file", file=sys.stderr)
            return 2
        print(json.dumps({"added": store.add(Path(args.key).read_bytes(), args.comment)}))
    elif args.action == "revoke":
        if not args.key:
            print("meter image trust revoke: give the key id", file=sys.stderr)
            return 2
        store.revoke(args.key)
        print(json.dumps({"revoked": args.key}))
    else:
        for kid, entry in sorted(store.entries().items()):
            print(json.dumps({"key_id": kid, "state": entry.get("state"), "comment": entry.get("comment"),
                              "added_at": entry.get("added_at"), "revoked_at": entry.get("revoked_at")}))
    return 0


def _guard(args: argparse.Namespace) -> int:
    from firmware.upgrade.guard import main

    argv = ["--config", args.config, "--board", args.board] + (["--run-dir", args.run_dir] if args.run_dir else [])
    return main(argv + (["--fallback"] if args.fallback else []))


def _verify(args: argparse.Namespace) -> int:
    image = Image.open(args.image)
    try:
        image.scan()
        if args.trust_store:
            store = TrustStore(args.trust_store)
            kid = store.verify(image.manifest.raw, image.signatures)
        else:
            if not args.pubkey:
                print("meter image verify: give --pubkey PEM or --trust-store DIR", file=sys.stderr)
                return 2
            keys = {}
            for p in args.pubkey:
                key = load_public_key(Path(p).read_bytes())
                keys[key_id(public_raw(key))] = key
            kid = verify_signatures(image.manifest.raw, image.signatures, keys)
    except UpgradeRefused as exc:
        if args.json:
            print(json.dumps({"image": args.image, "valid": False, "reason": exc.reason, "error": str(exc)}))
        else:
            print(f"meter image verify: refused ({exc.reason}): {exc}", file=sys.stderr)
        return 1
    result = {"image": args.image, "valid": True, "version": image.manifest.version, "key_id": kid,
              "boards": list(image.manifest.boards), "files": len(image.manifest.files),
              "payload_bytes": image.manifest.payload_bytes}
    print(json.dumps(result) if args.json else f"{args.image}: valid, version {image.manifest.version}, "
          f"signed by {kid}, {len(image.manifest.files)} files")
    return 0


def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(Image.open(args.image).manifest.raw.decode())
    return 0
