"""Setpoint alarms on published points, with the ION7400 default alarms (SPEC §6; ION7400 manual "Default
alarms": Over THD V1-3 Medium enabled, Freq Setpoint Medium enabled, 4-30 Volt Intrp Ph1-3 Low enabled).
Evaluated every second by the io service; digital-input alarms are set per input in [[io.input]]."""
from firmware.config.schema import Bool, Duration, Enum, Float, Int, Option, Section, Str, Table
from firmware.alarms.setpoint import HALF_CYCLE_POINTS, KINDS

MAX_SETPOINTS = 64                 # JEM: up to 64 triggers

SETPOINT = (
    Option("name", Str(32), "alarm", "Label shown in the alarm lists and the event log."),
    Option("enabled", Bool(), True, "Evaluate this alarm."),
    Option("point", Str(64, r"[a-z][a-z0-9_]*", "a point name"), "v_an",
           "Published point (docs/modbus.md lists them), e.g. v_an, thd_v_an, frequency, p_total."),
    Option("index", Int(0, 4095), 0, "Element of an array point (harmonic order ...)."),
    Option("kind", Enum(*KINDS), "over",
           "over: above pickup; under: below pickup; deviation: |value - nominal| above pickup."),
    Option("by", Enum("value", "percent"), "value",
           "Pickup and dropout as values of the point or in % of the nominal (V, A, Hz from [metrology])."),
    Option("pickup", Float(-1e15, 1e15), 0.0, "Value at which the alarm turns on."),
    Option("dropout", Float(-1e15, 1e15), 0.0, "Value at which the alarm turns off."),
    Option("pickup_delay", Duration(0, 86400), 0.0, "Time beyond the pickup before the alarm turns on.", "s"),
    Option("dropout_delay", Duration(0, 86400), 0.0, "Time back past the dropout before it turns off.", "s"),
    Option("priority", Int(0, 255), 128,
           "High 192-255, Medium 128-191, Low 64-127 are alarms; Info 1-63 only logs; None 0 does nothing."),
    Option("output", Int(0, 16), 0, "Digital output held on while the alarm is active (0: none)."),
    Option("capture", Bool(), False,
           "Take a waveform capture when the alarm picks up ([alarms] capture_command; the recorder's capture, "
           "named ..._alarm, its event naming the alarm)."),
    Option("high_speed", Bool(), False,
           "Evaluate on every half-cycle r.m.s. value (Urms(1/2), the values metrology computes for the PQ "
           "events) instead of the 1-s value, the delays counting from each value's own time; point one of "
           f"{', '.join(HALF_CYCLE_POINTS)} (index 0)."),
)

# Over THD V: the EN 50160 limit for THD (8 %), 1 % hysteresis; frequency: the EN 50160 band for 99.5 % of a
# year (+-1 % of nominal), dropout 0.8 %; interruption: IEC 61000-4-30 / ION default threshold 10 % of the
# nominal with the 2 % hysteresis of the PQ settings (SPEC §4).
DEFAULT_SETPOINTS = Table(SETPOINT, MAX_SETPOINTS).parse(
    [{"name": f"Over THD V{n}", "point": f"thd_v_{p}n", "kind": "over", "pickup": 8.0, "dropout": 7.0,
      "pickup_delay": 1.0, "dropout_delay": 1.0, "priority": 160} for n, p in ((1, "a"), (2, "b"), (3, "c"))]
    + [{"name": "Freq Setpoint", "point": "frequency", "kind": "deviation", "by": "percent", "pickup": 1.0,
        "dropout": 0.8, "priority": 160}]
    + [{"name": f"4-30 Volt Intrp Ph{n}", "point": f"v_{p}n", "kind": "under", "by": "percent", "pickup": 10.0,
        "dropout": 12.0, "priority": 96} for n, p in ((1, "a"), (2, "b"), (3, "c"))])

SECTIONS = [
    Section("alarms", [
        Option("setpoint", Table(SETPOINT, MAX_SETPOINTS), DEFAULT_SETPOINTS,
               "Setpoint alarms ([[alarms.setpoint]]); the defaults are the ION7400's enabled default alarms. "
               "Writing any [[alarms.setpoint]] replaces the whole list."),
        Option("historic_depth", Int(10, 10000), 100, "Ended alarms kept in the historic list.", locked=True),
        Option("power_up_priority", Int(0, 255), 128,
               "Priority of the Power Up unary alarm, raised when the meter has started (firmware.powerup); "
               "like the disturbance alarms it stays active until acknowledged. 0: none."),
        Option("power_up_output", Int(0, 16), 0, "Digital output held on while the Power Up alarm is active."),
        Option("disturbance_output", Int(0, 16), 0,
               "Digital output held on while a Sag, Swell or Interruption unary alarm is active (their priorities "
               "are [pq] priority_sag, priority_swell, priority_interruption)."),
        Option("capture_command", Str(64, r"[a-z]+\.[a-z_]+", "service.command"), "recorder.capture",
               "Control command sent for an alarm's waveform capture, with the alarm's name as `reason` (the "
               "recorder's, when it runs); it runs with the meter's own rights, hence master.", privilege="master"),
    ], "Alarms (docs/io.md): setpoints evaluated every second, priorities, acknowledgement, actions."),
]
