"""The meter's event log (SPEC §5): the priority cutoff, the depth and what goes to syslog
(firmware.storage.eventlog)."""
from firmware.config.schema import Int, Option, Section
from firmware.storage.eventlog import DEFAULT_CUTOFF, DEFAULT_DEPTH, DEFAULT_SYSLOG_PRIORITY, PRIORITY_MAX

SECTIONS = [
    Section("events", [
        Option("cutoff", Int(0, PRIORITY_MAX), DEFAULT_CUTOFF,
               "Events with a priority at or below this are not recorded (ION event log controller).", locked=True),
        Option("depth", Int(100, 1000000), DEFAULT_DEPTH,
               "Events kept in data_dir/events.db; the oldest is overwritten.", locked=True),
        Option("syslog_priority", Int(0, PRIORITY_MAX + 1), DEFAULT_SYSLOG_PRIORITY,
               "Every event at or above this priority (alarms, PQ events, changes ...) also goes to the syslog "
               "collector of [security] syslog_address, facility local0; 256: none. Security events go there "
               "whatever their priority (facility auth).", locked=True),
    ], "The event log every service writes: PQ events, alarms, security, configuration changes.",
       privilege="security"),
]
