"""Generate docs/web-api.md, the web JSON API reference, from the route table (firmware/web/routes.py).

Run: ``python -m tools.gendocs_web`` (rewrites it) or ``--check`` (exit 1 if it is stale). The same table
gives the OpenAPI document the meter serves at /api/openapi.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.services.registry import SERVICES
from firmware.web.api import markdown
from firmware.web.app import route_table
from tools.docfile import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "web-api.md"
GENERATOR = "make docs (python -m tools.gendocs_web)"


def render() -> str:
    _, document = route_table([s.name for s in SERVICES])
    return markdown(document, GENERATOR)


def main(argv: list[str] | None = None) -> int:
    return generate(DOC, render, argv, "python -m tools.gendocs_web")


if __name__ == "__main__":
    sys.exit(main())
