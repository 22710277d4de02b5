"""``meter hil pulses``: the meter-shop accuracy test through the energy pulse output.

A meter shop checks a meter by counting its pulse output against a reference standard. Here the running meter
on the simulated board is the meter under test, the simulated wire (``hal.sim.wire``) is the pulse output's
terminals, and the simulated signal's own parameters (``hal.sim.signals.ThreePhase.truth``) are the reference.

The count runs between two quiet moments of the output: ``io.status`` says the pulser has given every pulse it
owes for the register value it last took (E_a, then E_b) and when (``now_ns``, CLOCK_MONOTONIC like the wire's
stamps). The transitions on the wire between the two moments must then be exactly the pulses the pulser gave,
and those are floor((E_b - o) / Kt) - floor((E_a - o) / Kt) for its origin o: within one pulse of the
registered energy (E_b - E_a) / Kt. The reference energy is the steady profile's power over the measurement
time between the two registers (the ends of their seconds), so lost samples filled from the chip count as
they are registered.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from firmware.config.board import load_board
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from hal.errors import MeterError
from hal.sim.wire import RUN_DIR_NAME as SIM_WIRE_DIR
from hal.sim.wire import Wire

POLL_S = 0.02
ATTACH_TIMEOUT_S = 120.0      # a meter just started on a loaded host may take this long to publish


@dataclass
class PulseReport:
    output: int
    quantity: str
    kt: float
    seconds: float                 # measurement time between the two registers
    pulses: int                    # transitions counted on the wire (KYZ) or rising edges (pulse mode)
    given: int                     # pulses the io service says it gave in between
    registered: float              # E_b - E_a, in the register's unit
    registered_pulses: float       # registered / kt
    reference: float               # the simulated signal's energy over the same seconds
    reference_pulses: float
    error_pulses: float            # pulses - registered_pulses
    registered_error_pct: float    # registered vs reference

    def within_one_pulse(self) -> bool:
        return abs(self.error_pulses) < 1.0


def _output_entry(config: Any, output: int) -> Any:
    for e in config["io"].output:
        if e.number == output and e.source == "energy":
            return e
    raise MeterError(f"meter hil pulses: output {output} is not an energy pulse output; add [[io.output]] "
                     f"number = {output}, source = \"energy\" to the configuration")


def reference_power(config: Any, quantity: str) -> float:
    """The steady profile's total power in the register's unit per hour (W, var or VA) at the primary."""
    from firmware.services.acquisition import signal_source
    from metrology.settings import from_config

    if config["simulation"].profile != "steady":
        raise MeterError("meter hil pulses: the reference energy needs [simulation] profile = \"steady\" (a "
                         f"constant load), not {config['simulation'].profile!r}")
    s = from_config(config["metrology"])
    truth = signal_source(config, int(s.nominal_frequency)).truth(0.0)
    key = {"wh": "p", "varh": "q1", "vah": "s"}[quantity]
    return sum(float(truth[ph][key]) for ph in ("a", "b", "c")) * s.pt_ratio * s.ct_ratio


def _quiet(client: ControlClient, output: int, after_end_s: float, deadline: float) -> dict[str, Any]:
    """io.status of ``output`` at a moment it owes nothing for a register taken after ``after_end_s``."""
    while time.monotonic() < deadline:
        status = client.call("io.status")
        out = status["outputs"][output - 1]
        if out["owed"] == 0 and out.get("register") is not None and out["register_end_s"] > after_end_s:
            return {**out, "now_ns": status["now_ns"]}
        time.sleep(POLL_S)
    raise MeterError("meter hil pulses: the energy pulse output did not settle (is metrology publishing, and the "
                     "pulse rate under the output's max_rate?)")


def count_pulses(config_path: str | Path, board_path: str | Path, output: int, seconds: float,
                 run_dir: str | Path | None = None) -> PulseReport:
    config = ConfigStore(config_path).load()
    board = load_board(board_path)
    if not board.simulated:
        raise MeterError("meter hil pulses counts the simulated board's output; on a real board connect the pulse "
                         "output to a reference standard's pulse input")
    entry = _output_entry(config, output)
    pin = board.gpio.digital_outputs[output - 1]
    rd = Path(run_dir or config.meter.run_dir)
    client = ControlClient(rd / "control.sock", timeout_s=10.0, user="hil")
    wire = Wire(rd / SIM_WIRE_DIR)
    a = _quiet(client, output, 0.0, time.monotonic() + ATTACH_TIMEOUT_S)
    time.sleep(seconds)
    b = _quiet(client, output, a["register_end_s"], time.monotonic() + ATTACH_TIMEOUT_S)
    if a["origin"] != b["origin"]:
        raise MeterError("meter hil pulses: the pulser restarted its count during the run (register reset or Kt "
                         "change); run it again")
    pulses = _transitions(wire, pin, entry.mode, a["now_ns"], b["now_ns"])
    registered = b["register"] - a["register"]
    span_s = b["register_end_s"] - a["register_end_s"]
    reference = reference_power(config, entry.quantity) * span_s / 3600.0
    return PulseReport(output, entry.quantity, entry.kt, span_s, pulses, b["given"] - a["given"], registered,
                       registered / entry.kt, reference, reference / entry.kt, pulses - registered / entry.kt,
                       100.0 * (registered - reference) / reference if reference else math.nan)


def _transitions(wire: Wire, pin: int, mode: str, lo_ns: int, hi_ns: int) -> int:
    """Pulses on ``pin`` with time stamps in (lo, hi]: KYZ counts every change, pulse mode each rising edge."""
    n = 0
    for p, level, stamp in wire.read_outputs():
        if p == pin and lo_ns < stamp <= hi_ns and (mode == "kyz" or level):
            n += 1
    return n


def _run(args: argparse.Namespace) -> int:
    report = count_pulses(args.config, args.board, args.output, args.seconds, args.run_dir)
    if args.json:
        print(json.dumps(asdict(report) | {"within_one_pulse": report.within_one_pulse()}, indent=2))
    else:
        print(f"output {report.output} ({report.quantity}, Kt {report.kt:g}) over {report.seconds:.1f} s: "
              f"{report.pulses} pulses ({report.given} given); registered {report.registered:.4f} = {report.registered_pulses:.2f} pulses "
              f"({report.error_pulses:+.2f}); reference {report.reference:.4f} "
              f"(registered {report.registered_error_pct:+.3f} %)")
    return 0 if report.within_one_pulse() else 2


def register(sub: Any) -> None:
    hil = sub.add_parser("hil", help="bench tests against a running meter")
    hsub = hil.add_subparsers(dest="hil_command", metavar="TEST")
    p = hsub.add_parser("pulses", help="count the simulated KYZ output against the registered and true energy")
    p.add_argument("--config", default="var/meter.toml")
    p.add_argument("--board", default="boards/sim.toml")
    p.add_argument("--run-dir", default=None, help="the running meter's run directory (default: from the config)")
    p.add_argument("--output", type=int, default=1, help="digital output number of the energy pulse output")
    p.add_argument("--seconds", type=float, default=600, help="how long to count (10 min default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)
    from firmware.cli import hil_run

    hil_run.register(hsub)
