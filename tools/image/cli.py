"""``meter-image build|keygen|sign``: the host side of firmware images (``python -m tools.image``).

An image is built from a source tree and signed on a build machine, where the signing key is; a meter only checks
and installs it (``meter image install|verify|show|...``, ``firmware.cli.image``).
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from firmware.cli import run_command
from firmware.upgrade.image import Image
from firmware.upgrade.trust import load_public_key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meter-image", description="Build and sign firmware images (host side).")
    isub = parser.add_subparsers(dest="image_command", metavar="ACTION")

    b = isub.add_parser("build", help="build an unsigned, reproducible image of a source tree")
    b.add_argument("--tree", default=".", help="source tree (default: the current directory)")
    b.add_argument("-o", "--output", default=None, help="image file (default build/openmeter-VERSION.img)")
    b.add_argument("--version", default=None, help="image version (default: pyproject.toml's)")
    b.add_argument("--board", action="append", default=None,
                   help="compatible board, repeatable (default: cm4-ade9000 and sim)")
    b.add_argument("--min-from", default="0.0.0", help="oldest installed version this image may upgrade")
    b.add_argument("--deps", default="download",
                   help="'download' (pip download the pinned CM4 wheels, sources otherwise; what a release "
                        "image carries), a directory of wheels/source archives (offline build), or 'none' "
                        "(application only, for development slots) (default %(default)s)")
    b.add_argument("--extensions", default=None, metavar="DIR",
                   help="add the compiled C extensions (*.so) under DIR, at their paths in the application "
                        "(built for the target, e.g. by `make image`)")
    b.add_argument("--source-date-epoch", type=int, default=None,
                   help="timestamp for every member (default: $SOURCE_DATE_EPOCH, else the last git commit)")
    b.add_argument("--trust-add", action="append", default=[], metavar="PUBKEY.pem",
                   help="key rotation: meters trust this key once the image is committed")
    b.add_argument("--trust-revoke", action="append", default=[], metavar="KEYID",
                   help="key rotation: meters revoke this key once the image is committed")
    b.set_defaults(func=_build)

    k = isub.add_parser("keygen", help="make an Ed25519 signing key pair PREFIX.key / PREFIX.pub")
    k.add_argument("prefix")
    k.add_argument("--encrypt", action="store_true",
                   help="encrypt the private key with a passphrase ($METER_SIGNING_PASSPHRASE or prompted)")
    k.set_defaults(func=_keygen)

    s = isub.add_parser("sign", help="add a signature over the image manifest")
    s.add_argument("image")
    s.add_argument("--key", required=True, help="private key PEM (PREFIX.key)")
    s.add_argument("-o", "--output", default=None, help="signed image (default: replace IMAGE)")
    s.set_defaults(func=_sign)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


def _build(args: argparse.Namespace) -> int:
    from tools.image.build import DEFAULT_BOARDS, build_image

    trust = {}
    if args.trust_add:
        trust["add"] = [{"pem": load_key_text(p), "comment": Path(p).stem} for p in args.trust_add]
    if args.trust_revoke:
        trust["revoke"] = sorted(args.trust_revoke)
    tree = Path(args.tree)
    out = args.output
    if out is None:
        import tomllib

        version = args.version or tomllib.loads((tree / "pyproject.toml").read_text())["project"]["version"]
        out = tree / "build" / f"openmeter-{version}.img"
    manifest = build_image(tree, out, version=args.version, boards=args.board or DEFAULT_BOARDS,
                           min_from_version=args.min_from, deps=args.deps, epoch=args.source_date_epoch,
                           trust_update=trust or None, extensions=args.extensions)
    Image.open(out).scan()
    size = Path(out).stat().st_size
    print(json.dumps({"image": str(out), "version": manifest["version"], "files": len(manifest["files"]),
                      "bytes": size, "dependencies": manifest["dependencies"], "signed": False}))
    return 0


def load_key_text(path: str) -> str:
    pem = Path(path).read_text()
    load_public_key(pem)
    return pem


def _keygen(args: argparse.Namespace) -> int:
    from tools.image.keys import PASSPHRASE_ENV, keygen

    passphrase = None
    if args.encrypt:
        text = os.environ.get(PASSPHRASE_ENV) or getpass.getpass("passphrase for the new signing key: ")
        passphrase = text.encode()
    private, public, kid = keygen(args.prefix, passphrase)
    print(json.dumps({"private_key": str(private), "public_key": str(public), "key_id": kid}))
    print(f"Keep {private} offline; copy only {public} to meters and build machines.", file=sys.stderr)
    return 0


def _sign(args: argparse.Namespace) -> int:
    from tools.image.keys import load_private_key, sign_image

    kid = sign_image(args.image, load_private_key(args.key), args.output)
    print(json.dumps({"image": str(args.output or args.image), "key_id": kid}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
