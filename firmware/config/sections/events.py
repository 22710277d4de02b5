"""The meter's event log (SPEC §5): the priority cutoff and the depth (firmware.storage.eventlog)."""
from firmware.config.schema import Int, Option, Section
from firmware.storage.eventlog import DEFAULT_CUTOFF, DEFAULT_DEPTH, PRIORITY_MAX

SECTIONS = [
    Section("events", [
        Option("cutoff", Int(0, PRIORITY_MAX), DEFAULT_CUTOFF,
               "Events with a priority at or below this are not recorded (ION event log controller).", locked=True),
        Option("depth", Int(100, 1000000), DEFAULT_DEPTH,
               "Events kept in data_dir/events.db; the oldest is overwritten.", locked=True),
    ], "The event log every service writes: PQ events, alarms, security, configuration changes.",
       privilege="security"),
]
