"""``meter hil run``: the ADE9000 driver suite (hal/driver_suite.py) against the board this meter has, and a report.

On a CM4 the suite talks to the real chip, so the meter must be stopped first (it owns the SPI bus and the
interrupt lines): ``sudo systemctl stop meter``. On a simulated board (the emulated image of ``make
image-test``) the simulated chip runs in virtual time, as in ``make test``, so the report's form is checked
without the rig. The report (Markdown) lists each test with its outcome and time, the board, the chip's
identity, the kernel, and ends with ``N passed, N failed``; the exit status is 1 when any failed.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any

from hal.errors import MeterError

HERE = Path(__file__).resolve().parents[2]
CMDLINE = Path("/proc/cmdline")
KERNEL_BOARD = "openmeter.board="       # the word of the kernel command line meter.service reads the board from
DEFAULT_BOARD = "cm4-ade9000"


def this_board(cmdline: Path = CMDLINE) -> str:
    """The board this unit has: ``$METER_BOARD``, else the one the kernel command line names as meter.service
    reads it (``openmeter.board=NAME``: the emulated image's qemu-virt, its simulated chip), else the CM4's."""
    if os.environ.get("METER_BOARD"):
        return os.environ["METER_BOARD"]
    try:
        words = cmdline.read_text().split()
    except OSError:
        words = []
    return next((w[len(KERNEL_BOARD):] for w in words if w.startswith(KERNEL_BOARD)), DEFAULT_BOARD)


def _board_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    p = HERE / "boards" / f"{name_or_path}.toml"
    if not p.exists():
        raise MeterError(f"meter hil run: no board file {name_or_path!r} (give a path or a name in {HERE / 'boards'})")
    return p


def _open(board: Any, realtime: bool):
    from hal.ade9000 import ChipSettings
    from hal.hardware import open_hardware

    hardware = open_hardware(board, ChipSettings(board.channels), realtime=realtime)
    hardware.chip.bring_up()
    return hardware


def run_suite(board_file: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from firmware.config.board import load_board
    from hal import driver_suite

    board = load_board(board_file)
    realtime = not board.simulated
    results, about = [], {"board": f"{board.name} ({board_file})", "kernel": platform.release(),
                          "machine": platform.machine(),
                          "chip time": "real time" if realtime else "virtual (simulated chip)"}
    for name in driver_suite.__all__:
        t0 = time.monotonic()
        hw = None
        try:
            hw = _open(board, realtime)
            if "chip" not in about:
                about["chip"] = f"PART_ID {hw.chip.read('PART_ID'):#x}"
            getattr(driver_suite, name)(hw)
            outcome, detail = "passed", ""
        except AssertionError as exc:
            outcome, detail = "failed", str(exc) or traceback.format_exc(limit=1).strip().splitlines()[-1]
        except Exception as exc:  # noqa: BLE001 - a bench fault is reported per test, the run goes on
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        finally:
            if hw is not None:
                hw.close()
        results.append({"test": name, "outcome": outcome, "seconds": time.monotonic() - t0, "detail": detail})
    return results, about


def report(results: list[dict[str, Any]], about: dict[str, str]) -> str:
    passed = sum(r["outcome"] == "passed" for r in results)
    lines = ["# ADE9000 driver suite (meter hil run)", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} on {platform.node()}.", ""]
    lines += [f"- {k}: {v}" for k, v in about.items()]
    lines += ["", "| test | outcome | time | detail |", "|---|---|---|---|"]
    lines += [f"| `{r['test']}` | {r['outcome']} | {r['seconds']:.2f} s | {r['detail'].replace('|', '/')[:200]} |"
              for r in results]
    lines += ["", f"{passed} passed, {len(results) - passed} failed", ""]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    board_file = _board_path(args.board or this_board())
    results, about = run_suite(board_file)
    text = report(results, about)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)
    print(f"meter hil run: report written to {out}")
    return 0 if all(r["outcome"] == "passed" for r in results) else 1


def register(hsub: Any) -> None:
    p = hsub.add_parser("run", help="run the ADE9000 driver suite against this meter's board and write a report")
    p.add_argument("--board", default="",
                   help="board name in boards/ or a board file (default $METER_BOARD, else the kernel command "
                        f"line's {KERNEL_BOARD}NAME as meter.service reads it, else {DEFAULT_BOARD}); stop the "
                        "meter first on a real board")
    p.add_argument("--output", default="hil-report.md", help="report file (Markdown; default %(default)s)")
    p.set_defaults(func=_run)
