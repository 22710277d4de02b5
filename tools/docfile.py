"""The command line every whole-file doc generator shares: render the text, then write the file, or with
``--check`` exit 1 (naming the file and the command that regenerates it) when the committed file differs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def generate(doc: Path, render: Callable[[], str], argv: list[str] | None, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {doc.name} is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not doc.exists() or doc.read_text(encoding="utf-8") != text:
            print(f"out of date: {doc.name}; run `{prog}` (or `make docs`)", file=sys.stderr)
            return 1
        return 0
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
    return 0
