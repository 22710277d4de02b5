"""Digital inputs and outputs: debounce, input modes and metering, energy pulsing, forced and alarm outputs
(SPEC §6; ION7400 manual "Digital inputs", "Energy pulsing"). Run by the io service (docs/io.md)."""
from firmware.config.schema import Bool, Duration, Enum, Float, Int, ListOf, Option, Section, Str, Table
from firmware.io.inputs import INPUT_DEFAULTS as D
from firmware.io.inputs import MAX_CHANNELS, MODES
from firmware.io.outputs import ENERGY_INTEGRATIONS, ENERGY_POINTS, MAX_RATE_HZ, SOURCES

WEIGHTED_INPUT = Str(24, r"[0-9]{1,2}:[+-]?[0-9.]+(e[+-]?[0-9]+)?", "INPUT:WEIGHT, e.g. 1:+1 or 3:-0.5")

INPUT = (
    Option("number", Int(1, MAX_CHANNELS), 1, "Digital input number (board file [gpio] digital_inputs, from 1)."),
    Option("mode", Enum(*MODES), D["mode"],
           "pulse: a whole pulse (off-on-off) counts one (Form A); kyz: every transition counts one (Form C)."),
    Option("debounce", Duration(0, 1), D["debounce"],
           "How long the line must stay in a new state before it is a valid state change.", "s"),
    Option("polarity", Enum("non_inverting", "inverting"), D["polarity"],
           "non_inverting: a closed contact (line pulled low) is on; inverting: an open contact is on."),
    Option("ke", Float(1e-9, 1e9), D["ke"], "Units per counted pulse (input metering: pulse weight)."),
    Option("unit", Str(16), D["unit"], "Unit of the metered total (kWh, m3, kg ...)."),
    Option("rollover", Float(0, 1e15), D["rollover"], "The metered total wraps to 0 at this value (0: never)."),
    Option("alarm", Enum("off", "on", "off_state"), D["alarm"],
           "Digital-input alarm: active while the input is on (on), while it is off (off_state), or none (off)."),
    Option("alarm_priority", Int(0, 255), D["alarm_priority"],
           "Priority of the digital-input alarm (ION default Info Only: events, no alarm indication)."),
)

OUTPUT = (
    Option("number", Int(1, MAX_CHANNELS), 1, "Digital output number (board file [gpio] digital_outputs, from 1)."),
    Option("source", Enum(*SOURCES), "none",
           "energy: KYZ energy pulsing; demand_interval: one pulse at the end of each demand interval; "
           "alarm: on while an alarm at or above alarm_priority is active, or an alarm naming this output."),
    Option("quantity", Enum(*ENERGY_POINTS), "wh", "Energy pulsed: wh, varh or vah."),
    Option("integration", Enum(*ENERGY_INTEGRATIONS), "delivered",
           "delivered (forward), received (reverse), absolute (delivered + received) or net (delivered - "
           "received) register."),
    Option("kt", Float(1e-6, 1e12), 1000.0,
           "Energy per pulse in the register's unit (Wh, varh, VAh); kWh per pulse = max kW / 3600 / pulses per "
           "s."),
    Option("mode", Enum("pulse", "kyz"), "kyz",
           "pulse: a complete pulse (on for the width) per Kt; kyz: one transition per Kt."),
    Option("pulse_width", Duration(0.001, 2_000_000), 0.02,
           "pulse mode: on time of a pulse; kyz: the minimum time between transitions.", "s"),
    Option("max_rate", Float(0.01, MAX_RATE_HZ), MAX_RATE_HZ,
           "Most pulses a second; more owed than one second can give is 'pulsing suspended'.", "Hz"),
    Option("alarm_priority", Int(0, 255), 192,
           "alarm source: on while an active alarm has at least this priority (0: only alarms naming it)."),
)

TOTALIZER = (
    Option("name", Str(32, r"[a-z][a-z0-9_]*", "snake_case"), "total", "Name in io.status."),
    Option("inputs", ListOf(WEIGHTED_INPUT, 1, 8), ("1:+1",), "Up to 8 inputs with signed weights."),
)

SECTIONS = [
    Section("io", [
        Option("enabled", Bool(), True, "Run the io service (digital inputs, outputs, pulsing, alarms)."),
        Option("input", Table(INPUT, MAX_CHANNELS), (),
               "Per-input settings ([[io.input]]); inputs not listed are status inputs with the defaults above."),
        Option("output", Table(OUTPUT, MAX_CHANNELS), (),
               "Per-output settings ([[io.output]]); outputs not listed stay off unless forced."),
        Option("totalizer", Table(TOTALIZER, MAX_CHANNELS), (),
               "Totalization channels ([[io.totalizer]]): weighted sums of input metering."),
        Option("persist_interval", Duration(0, 10), 0.0,
               "Counts are written at most this often (0: at every change, so a kill loses no counted pulse).",
               "s"),
    ], "Digital inputs and outputs (docs/io.md)."),
]
