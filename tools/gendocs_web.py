"""Generate docs/web-api.md, the web JSON API reference, from the route table (firmware/web/routes.py).

Run: ``python -m tools.gendocs_web`` (rewrites it) or ``--check`` (exit 1 if it is stale). The same table
gives the OpenAPI document the meter serves at /api/openapi.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware.services.registry import SERVICES
from firmware.web.api import markdown
from firmware.web.app import route_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "web-api.md"
GENERATOR = "make docs (python -m tools.gendocs_web)"


def render() -> str:
    _, document = route_table([s.name for s in SERVICES])
    return markdown(document, GENERATOR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gendocs_web")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"out of date: {DOC.name}; run `make docs`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
