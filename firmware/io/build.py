"""Inputs, outputs, totalizers and alarms from the configuration ([io], [alarms], [revenue.inputs])."""
from __future__ import annotations

import math
from typing import Any

from firmware.alarms.manager import Actions, AlarmManager, InputAlarm, UnaryAlarm
from firmware.alarms.setpoint import HALF_CYCLE_POINTS, Setpoint
from firmware.io.inputs import INPUT_DEFAULTS, INPUT_FUNCTIONS, MAX_CHANNELS, InputChannel, Totalizer
from firmware.io.outputs import EnergyPulser, OutputChannel
from hal.errors import ConfigError

UNIT_NOMINAL = {"V": "nominal_voltage", "A": "nominal_current", "Hz": "nominal_frequency"}


def input_settings(config: Any, count: int) -> dict[int, Any]:
    """The [[io.input]] entry of each of the board's ``count`` inputs (defaults where none is given)."""
    out: dict[int, Any] = {n: dict(INPUT_DEFAULTS, number=n) for n in range(1, count + 1)}
    for entry in config["io"].input:
        if entry.number > count:
            raise ConfigError(f"config: [[io.input]] number {entry.number}: the board has {count} digital inputs "
                              "(board file [gpio] digital_inputs); remove the entry or use another board file")
        out[entry.number] = dict(entry)
    return out


def inputs(config: Any, count: int) -> dict[int, InputChannel]:
    return {n: InputChannel(n, e["debounce"], e["mode"], e["polarity"] == "inverting", e["ke"], e["rollover"])
            for n, e in input_settings(config, count).items()}


def functions(config: Any) -> dict[int, list[str]]:
    """Input number -> the revenue functions [revenue.inputs] gives it."""
    out: dict[int, list[str]] = {}
    section = config["revenue.inputs"]
    for name in INPUT_FUNCTIONS:
        number = getattr(section, name)
        if number:
            out.setdefault(number, []).append(name)
    return out


def outputs(config: Any, count: int) -> dict[int, OutputChannel]:
    out = {n: OutputChannel(n) for n in range(1, count + 1)}
    for e in config["io"].output:
        if e.number > count:
            raise ConfigError(f"config: [[io.output]] number {e.number}: the board has {count} digital outputs "
                              "(board file [gpio] digital_outputs)")
        ch = OutputChannel(e.number, e.source, e.mode, e.pulse_width, e.max_rate)
        if e.source == "energy":
            ch.pulser = EnergyPulser(e.kt)
        out[e.number] = ch
    return out


def totalizers(config: Any) -> list[Totalizer]:
    out = []
    for e in config["io"].totalizer:
        pairs = tuple((int(n), float(w)) for n, w in (item.split(":") for item in e.inputs))
        out.append(Totalizer(e.name, pairs))
    return out


def _nominal(config: Any, point_unit: str) -> float:
    key = UNIT_NOMINAL.get(point_unit)
    if key is None:
        return math.nan
    return float(config["metrology"][key])


def check(config: Any) -> None:
    """What the io service refuses at start, short of the board's input and output counts: the setpoint alarms'
    points and nominals, the totalizers' inputs (``firmware.config.checks``, run when a change is saved)."""
    alarms(config, input_settings(config, MAX_CHANNELS))
    totalizers(config)


def alarms(config: Any, input_settings_by_number: dict[int, Any]) -> AlarmManager:
    from firmware.points import points_by_name
    points = points_by_name()
    setpoints = []
    for e in config["alarms"].setpoint:
        if not e.enabled:
            continue
        point = points.get(e.point)
        if point is None:
            raise ConfigError(f"config: [[alarms.setpoint]] {e.name!r}: point {e.point!r} is not published; "
                              "docs/modbus.md lists the points")
        if e.index >= point.size:
            raise ConfigError(f"config: [[alarms.setpoint]] {e.name!r}: index {e.index} is past the {point.size} "
                              f"elements of {e.point}")
        if e.high_speed and e.point not in HALF_CYCLE_POINTS:
            raise ConfigError(f"config: [[alarms.setpoint]] {e.name!r}: high_speed = true needs a point with "
                              f"half-cycle r.m.s. values ({', '.join(HALF_CYCLE_POINTS)}), not {e.point!r}; "
                              "set high_speed = false to watch it every second")
        nominal = _nominal(config, point.unit)
        if (e.by == "percent" or e.kind == "deviation") and not math.isfinite(nominal):
            raise ConfigError(f"config: [[alarms.setpoint]] {e.name!r}: {e.point} is in {point.unit or 'no unit'}, "
                              "which has no nominal; use by = \"value\" and kind over or under")
        sp = Setpoint(e.name, e.point, e.kind, e.pickup, e.dropout, e.pickup_delay, e.dropout_delay,
                      e.by == "percent", nominal, e.index, e.priority, e.high_speed)
        setpoints.append((sp, Actions(e.output, e.capture, True)))
    input_alarms = [(InputAlarm(f"Digital In {n}", n, s["alarm"] == "on", s["alarm_priority"]), Actions())
                    for n, s in input_settings_by_number.items() if s["alarm"] != "off"]
    al, pq = config["alarms"], config["pq"]
    unary = [(UnaryAlarm("Power Up", "power_up", al.power_up_priority), Actions(al.power_up_output)),
             *[(UnaryAlarm(name, f"pq_{kind}", getattr(pq, f"priority_{kind}")), Actions(al.disturbance_output))
               for kind, name in DISTURBANCE_ALARMS.items()]]
    return AlarmManager(setpoints, input_alarms, al.historic_depth, unary)


# The disturbances that are unary alarms (ION7400 "Sag/Swell" and "4-30 Volt Intrp"), by PQ counter kind; their
# priorities are the event-log priorities of [pq].
DISTURBANCE_ALARMS = {"sag": "Sag", "swell": "Swell", "interruption": "Interruption"}
