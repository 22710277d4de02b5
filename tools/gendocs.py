"""Generate the reference docs from the code's own tables: ``make docs`` (or ``--check`` to verify).

This module writes docs/configuration.md from the configuration schema, then runs every
``tools/gendocs_<area>.py`` (each has ``main(argv)`` accepting ``--check``).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import tools
from firmware.config import GENERATOR, meter_schema

REPO = Path(__file__).resolve().parent.parent
# Generators that run measurements (minutes) rather than render tables; `--quick` skips them. Their
# figures are asserted by their own conformance tests.
EXPENSIVE_GENERATORS = ("gendocs_metrology",)
CONFIG_DOC = REPO / "docs" / "configuration.md"

INTRO = """The meter reads one TOML file (`meter run --config FILE`; default `var/meter.toml`). Every option has a
default, so an empty or absent file is a complete configuration. Unknown sections or options, wrong types and
out-of-range values are refused when the file is loaded, with a message naming the section, the option and what
is allowed:

```
$ meter config validate meter.toml
meter: config meter.toml: [supervisor] option 'max_restarts': 0 is out of range; allowed 1..1000
```

Durations are a number of seconds or text with a unit (`"250 ms"`, `"15 min"`, `"2 h"`, `"1 d"`). IP
addresses are literal (no host names). `meter config show` prints the effective configuration, `meter config
defaults` every default, and `meter config set SECTION.OPTION=VALUE --user NAME` saves a change atomically:
each saved change increments `[meta] version` and appends who changed what (old and new value) to
`FILE.history.jsonl`.

A change is also checked against the whole configuration (`firmware/config/checks.py`): among others, two
protocols on one TCP or UDP port of overlapping bind addresses, or on one serial line, are refused, and so is a
configuration that closes every network path into the meter (Modbus TCP off or with access none, the web
disabled and BACnet/IP off): one stays open, as on the ION7400."""


def render_config() -> str:
    return meter_schema().markdown("Configuration reference", INTRO, GENERATOR) + "\n"


def _check_or_write(path: Path, text: str, check: bool) -> bool:
    if check:
        return path.exists() and path.read_text() == text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gendocs")
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated doc is out of date")
    parser.add_argument("--quick", action="store_true", help="skip generators that run measurements")
    args = parser.parse_args(argv)
    stale = []
    if not _check_or_write(CONFIG_DOC, render_config(), args.check):
        stale.append(str(CONFIG_DOC.relative_to(REPO)))
    for info in sorted(pkgutil.iter_modules(tools.__path__), key=lambda i: i.name):
        if info.name.startswith("gendocs_") and not (args.quick and info.name in EXPENSIVE_GENERATORS):
            module = importlib.import_module(f"tools.{info.name}")
            if module.main(["--check"] if args.check else []) != 0:
                stale.append(info.name)
    if stale:
        print(f"out of date: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
