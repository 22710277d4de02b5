"""Sections every meter has: metadata, identity, storage, logging, supervision, control socket."""
from firmware.config.schema import Bool, Duration, Enum, Float, Int, ListOf, Option, Section, Str

SECTIONS = [
    Section("meta", [
        Option("version", Int(0, 2**31 - 1), 0,
               "Configuration version; bumped by every saved change. Not meant to be edited by hand."),
        Option("changed_by", Str(64), "factory", "Who made the last saved change."),
        Option("changed_at", Str(40), "", "When the last change was saved (UTC, ISO 8601)."),
    ], "Written by the meter on every saved change."),
    Section("meter", [
        Option("name", Str(64), "meter", "Device name shown on the display, web page and device identification."),
        Option("serial_number", Str(32), "SIM-000001", "Serial number reported by every protocol.", locked=True),
        Option("data_dir", Str(255), "var", "Directory for revenue records, logs and recordings; relative "
               "paths are taken from the working directory.", local=True, locked=True),
        Option("run_dir", Str(255), "var/run", "Directory for the control socket and shared-memory names.",
               local=True, locked=True),
    ], "Identity and where the meter keeps its files."),
    Section("log", [
        Option("level", Enum("debug", "info", "warning", "error"), "info", "Lowest level written."),
        Option("format", Enum("json", "text"), "text", "Format of lines on stdout (journald on the device)."),
        Option("file", Bool(), True, "Also write a rotating log file under data_dir/logs.", locked=True),
        Option("file_max_bytes", Int(64 * 1024, 256 * 1024 * 1024), 4 * 1024 * 1024,
               "Size at which the log file rotates.", "bytes", locked=True),
        Option("file_count", Int(1, 100), 5, "Rotated log files kept.", locked=True),
    ], "Structured logging."),
    Section("supervisor", [
        Option("heartbeat_timeout", Duration(0.5, 600), 5.0,
               "A service that sends no heartbeat for this long is restarted.", "s"),
        Option("restart_backoff_min", Duration(0.05, 60), 0.2, "First restart delay.", "s"),
        Option("restart_backoff_max", Duration(0.1, 600), 30.0, "Longest restart delay.", "s"),
        Option("max_restarts", Int(1, 1000), 5,
               "Crashes within restart_window after which a service is marked failed."),
        Option("restart_window", Duration(1, 86400), 60.0, "Window over which crashes are counted.", "s"),
        Option("stop_timeout", Duration(0.1, 30), 3.0,
               "Time a service gets to stop after SIGTERM before SIGKILL.", "s"),
        Option("start", Enum("fork", "exec"), "fork",
               "How a service process starts: forked from the supervisor, which imported the services' code once, "
               "so that the processes share those pages (fork; docs/memory.md), or as a new interpreter that "
               "imports everything again (exec)."),
    ], "How the supervisor starts, watches and restarts services."),
    Section("simulation", [
        Option("realtime", Bool(), True, "Run the simulated board in real time (false: as fast as read)."),
        Option("profile", Enum("day", "steady", "no_load", "off"), "day",
               "Load the simulated board sees: a day-long commercial load profile, a steady load, the nominal "
               "voltage with the current circuit open (no_load: the meter must register no energy), or none."),
        Option("time_scale", Float(1, 10000), 1.0,
               "How many simulated seconds pass per real second in the day profile's load changes."),
        Option("dips", ListOf(Float(0, 1e7), 0, 1000), (),
               "Times (s after the acquisition service starts) of a 100-ms dip to 60 % on phase A, starting at a "
               "zero crossing: PQ events, captures and the recorder at work (docs/pq.md)."),
    ], "The simulated board used by `make run` and the tests."),
]
