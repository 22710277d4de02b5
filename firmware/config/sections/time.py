"""Time: chrony's NTP sources, the time-quality thresholds, correction logging, time-source priority (SPEC §8)."""
from firmware.config.schema import Bool, Duration, Enum, Float, Int, ListOf, Option, Section, Str

# An NTP server as chrony's `server` directive takes it: a host name or a literal address, optionally ":port".
NTP_SERVER = Str(255, r"[A-Za-z0-9._-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?",
                 "a host name or address, optionally with :port ([v6]:port for IPv6)")
# Sources of a time set, in the order they may be given priority.
TIME_SOURCES = ("ntp", "protocol", "manual")

SECTIONS = [
    Section("time", [
        Option("enabled", Bool(), True,
               "Run the time service: write chrony's sources, read its tracking state into `time_synced`, "
               "log corrections, accept protocol time sets by priority."),
        Option("ntp_servers", ListOf(NTP_SERVER, 0, 8), (),
               "NTP servers written as chrony `server` lines (none: chrony's own configuration is left as it is). "
               "Who the meter takes its time from (its events' and intervals' time stamps): security.",
               privilege="security"),
        Option("iburst", Bool(), True, "Send a burst of requests at start so the first sync takes seconds."),
        Option("minpoll", Int(-6, 24), 6, "chrony's minpoll for these servers (log2 seconds; 6 = 64 s)."),
        Option("maxpoll", Int(-6, 24), 10, "chrony's maxpoll for these servers (log2 seconds; 10 = 1024 s)."),
        Option("chrony_sources_file", Str(255), "/etc/chrony/sources.d/openmeter.sources",
               "File the service writes the `server` lines to; chrony reads it through its `sourcedir` "
               "directive (Debian's chrony.conf has `sourcedir /etc/chrony/sources.d`).", local=True),
        Option("chronyc", Str(255), "chronyc", "The chronyc program.", local=True),
        Option("chrony_socket", Str(255), "/run/chrony/chronyd.sock",
               "chronyd's command socket (its `bindcmdaddress`); privileged commands (reload, settime) need it.",
               local=True),
        Option("poll", Duration(0.2, 600), 10.0, "How often chrony's tracking state is read.", "s"),
        Option("max_offset", Duration(0.000001, 3600), 0.1,
               "Largest offset at which the clock counts as synchronised: the larger of the offset chrony is "
               "still slewing away and the correction at its last update (so a step not yet applied counts).",
               "s"),
        Option("max_error", Duration(0.000001, 3600), 0.5,
               "Largest root distance (root delay / 2 + root dispersion) at which the clock counts as "
               "synchronised.", "s"),
        Option("max_stratum", Int(1, 15), 10, "Highest stratum at which the clock counts as synchronised."),
        Option("max_age", Duration(1, 86400), 3600.0,
               "A reference time older than this (no update from the source) means not synchronised.", "s"),
        Option("step_threshold", Duration(0.001, 3600), 1.0,
               "chrony steps (rather than slews) a correction larger than this: written as `makestep` "
               "advice in docs/time.md and used to tell steps from slews in the event log.", "s"),
        Option("log_threshold", Duration(0, 3600), 0.01,
               "Corrections at least this large are logged as time events (steps always are).", "s"),
        Option("priority", ListOf(Enum(*TIME_SOURCES), 1, 3), ("ntp", "protocol"),
               "Time sources in priority order. A time set from a protocol (Modbus, BACnet) or by hand is "
               "refused while a source earlier in the list keeps the clock synchronised, and always when "
               "its source is not listed. Whether an unauthenticated protocol may set the clock: security.",
               privilege="security"),
        Option("event_depth", Int(10, 1000000), 5000, "Time events kept (circular log in data_dir/time.db).",
               locked=True),
        Option("protocol_set_min_step", Float(0, 3600), 0.5,
               "A protocol time set that differs from the clock by less than this is acknowledged without "
               "touching the clock.", "s"),
    ], "Clock synchronisation through the system's chrony (docs/time.md)."),
]
