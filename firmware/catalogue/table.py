"""The meter's commands (``firmware.catalogue.commands`` says what each field means).

Adding a command: one entry here and its handler in the owning service. The interfaces, the authorization
point, the docs and ``meter do`` take it from this table.
"""
from __future__ import annotations

from firmware.catalogue.commands import SERVICES, Argument, Command
from metrology.registers import QUANTITIES as ENERGY_REGISTERS
from metrology.tou import RATES

LAST_TIME_S = 7258118400           # 2200-01-01: later times are typing errors
FIRST_TIME_S = 946684800           # 2000-01-01: the time service refuses earlier sets
AGGREGATE_KINDS = ("3s", "10min", "2h")

_SINCE = Argument("since_ts", "number", "from this time (seconds since 1970, UTC)", "s", 0, LAST_TIME_S, None)
_UNTIL = Argument("until_ts", "number", "up to this time (seconds since 1970, UTC)", "s", 0, LAST_TIME_S, None)


def _service(*names: str) -> Argument:
    return Argument("service", "choice", "which service answers", choices=names or SERVICES)


def _n(default: int, most: int, what: str = "newest records returned") -> Argument:
    return Argument("n", "integer", what, "", 1, most, default)


def _limit(default: int, most: int) -> Argument:
    return Argument("limit", "integer", "most records returned", "", 1, most, default)


R = "read"
PDR = "peak-demand-reset"
LOCKED, LOCKED_RESET = "refused", "refused-unless-resets-allowed"
AUDIT = "revenue_audit"            # the revenue registers' audit log (data_dir/revenue_audit.db)
EVENTS = "event_log"

COMMANDS: tuple[Command, ...] = (
    # ------------------------------------------------------------------ revenue registers
    Command("demand_reset", "metrology.demand_reset", "Peak demand reset (subject to the reset lockout)", PDR,
            revenue_lock=LOCKED_RESET, audit=AUDIT, modbus="cmd_demand_reset", bacnet_av1=21212, web=True, dnp3=0,
            obis="0.0.10.0.1.255#1",
            args=(Argument("source", "choice", "what asked for it (kept in the audit log)",
                           choices=("command", "protocol", "button"), default="command"),),
            title="peak demand reset"),
    Command("billing_reset", "metrology.billing_reset",
            "Billing-period reset: snapshot the billing registers (BPR) and start a new period", PDR,
            revenue_lock=LOCKED_RESET, audit=AUDIT, modbus="cmd_billing_reset", web=True, dnp3=1,
            obis="0.0.10.0.1.255#2",
            args=(Argument("source", "choice", "what asked for it (kept in the audit log)",
                           choices=("command", "protocol", "button"), default="command"),),
            title="billing-period reset (BPR)"),
    Command("energy_reset", "metrology.energy_reset", "Clear every energy register", "setup",
            revenue_lock=LOCKED, audit=AUDIT, modbus="cmd_energy_reset", bacnet_av1=30078, web=True, dnp3=3,
            title="clear the energy registers"),
    Command("demand_sync", "metrology.demand_sync",
            "Demand synchronisation pulse: end the present demand subinterval now", PDR, audit=AUDIT,
            modbus="cmd_demand_sync", bacnet_av1=21211, web=True, dnp3=2,
            title="demand synchronisation pulse"),
    Command("freeze", "metrology.freeze", "Freeze (snapshot) the billing registers; not a reset", PDR, audit=AUDIT,
            cli="revenue freeze", web=True, dnp3=4,
            title="freeze (snapshot) the billing registers"),
    Command("preset", "metrology.preset", "Preset one energy register (primary units)", "setup",
            revenue_lock=LOCKED, audit=AUDIT, cli="revenue preset",
            args=(Argument("register", "choice", "energy register", choices=ENERGY_REGISTERS),
                  Argument("value", "number", "new value, in the register's primary unit (Wh, varh, VAh, Ah, "
                           "V²h, A²h)", "", 0, 1e15),
                  Argument("phase", "choice", "phase slot", choices=("a", "b", "c", "total"), default="total"),
                  Argument("rate", "choice", "TOU rate slot instead of a phase", choices=("", *tuple(RATES)),
                           default=""),
                  Argument("compensated", "bool", "the loss-compensated register", default=False)),
            title="preset an energy register"),
    Command("test_mode_enter", "metrology.test_mode_enter",
            "Enter test mode: billing registers stop, test registers count", "setup", revenue_lock=LOCKED,
            audit=AUDIT, cli="revenue test-mode on",
            title="enter test mode"),
    Command("test_mode_exit", "metrology.test_mode_exit", "Leave test mode", "setup", audit=AUDIT,
            cli="revenue test-mode off",
            title="leave test mode"),
    Command("revenue_registers", "metrology.registers",
            "Every revenue register: energy by phase and rate, demands, peaks, cumulative and coincident demand, "
            "min/max, snapshots, counters", R, operation="read", writes=False, cli="revenue registers"),
    Command("load_profile", "metrology.load_profile", "Load-profile records", R, operation="read", writes=False,
            args=(Argument("mode", "choice", "all records, those since the last such read, or the last days",
                           choices=("all", "since_last_read", "days"), default="all"),
                  Argument("days", "integer", "days back (mode days)", "d", 0, 3660, 0),
                  Argument("limit", "integer", "most records", "", 1, 100000, 100000))),
    Command("self_reads", "metrology.self_reads", "The newest self-read records", R, operation="read",
            writes=False, args=(_n(96, 96),), cli="revenue self-reads"),
    Command("revenue_audit", "metrology.revenue_audit", "The newest revenue audit records", R, operation="read",
            writes=False, args=(_n(100, 10000),)),
    Command("energy_since_start", "metrology.energy",
            "Energy measured since the metrology service started (not the billed registers)", R, operation="read",
            writes=False),
    Command("pq_counters_reset", "metrology.pq_counters_reset",
            "Set the disturbance counters (dips, swells, interruptions, RVCs, transients) to zero", "master",
            operation="pq_counters_reset", audit=EVENTS),
    Command("read_points", "metrology.read", "Latest values of points of the catalogue (`meter read`)", R,
            operation="read", writes=False,
            args=(Argument("names", "text", "point names, comma-separated (meter read lists them)"),)),
    # ------------------------------------------------------------------ time, alarms, outputs
    Command("time_set", "time.set", "Set the clock: accepted by [time] priority", "time-sync", audit="time_log",
            modbus="cmd_time_set", value_arg="utc", protocol_args=(("source", "protocol"),), web=True,
            args=(Argument("utc", "number", "UTC time", "s since 1970", FIRST_TIME_S, LAST_TIME_S),
                  Argument("source", "choice", "who sets it, as [time] priority ranks it",
                           choices=("protocol", "manual"), default="manual")),
            title="set the clock or time synchronisation"),
    Command("time_status", "time.status", "Clock, synchronisation quality and sources", R, operation="read",
            writes=False),
    Command("time_events", "time.events", "Time events (sets, steps, synchronisation)", R, operation="read",
            writes=False, args=(Argument("since_id", "integer", "after this record id", "", 0, None, 0),
                                _limit(100, 1000))),
    Command("alarm_ack", "io.ack", "Acknowledge alarms (every active or unacknowledged one unless ids are given)",
            R, audit=EVENTS, modbus="cmd_alarm_ack", web=True, dnp3=5,
            args=(Argument("ids", "integers", "alarm ids (io_alarms lists them)", default=None),),
            title="acknowledge alarms"),
    Command("pulse_count_reset", "io.reset_counts", "Clear every digital input's pulse count", "setup",
            audit=EVENTS, modbus="cmd_pulse_count_reset", bacnet_av1=16498, web=True, dnp3=6,
            title="clear the digital inputs' pulse counts"),
    Command("io_alarms", "io.alarms", "Active and historic alarms", R, operation="read", writes=False),
    Command("output_force", "io.force", "Force a digital output on or off, or release it to its source",
            "master", operation="output_force", audit=EVENTS,
            args=(Argument("output", "integer", "output number (board file [gpio] digital_outputs)", "", 1, 64),
                  Argument("state", "choice", "new state", choices=("on", "off", "release")))),
    Command("output_pulse", "io.pulse", "Give pulses on a digital output at its width and rate", "master",
            operation="output_pulse",
            args=(Argument("output", "integer", "output number", "", 1, 64),
                  Argument("count", "integer", "pulses", "", 1, 1000, 1))),
    # ------------------------------------------------------------------ recorder
    Command("capture", "recorder.capture", "A waveform capture now (COMTRADE)", "master", operation="capture",
            audit=EVENTS, args=(Argument("ascii", "bool", "ASCII .dat instead of binary", default=False),)),
    Command("capture_status", "recorder.capture_status", "What became of a capture asked lately: pending, "
            "written (its .cfg) or failed (why)", R, operation="read", writes=False,
            args=(Argument("name", "text", "the capture's name, as `capture` answered it"),)),
    Command("captures", "recorder.captures", "The waveform captures kept", R, operation="read", writes=False),
    Command("pq_events", "recorder.events", "PQ events by time", R, operation="read", writes=False,
            args=(_SINCE, _UNTIL, _limit(1000, 10000))),
    Command("pq_aggregates", "recorder.aggregates", "PQ aggregates (3 s, 10 min, 2 h) by time", R,
            operation="read", writes=False,
            args=(Argument("kind", "choice", "aggregation interval", choices=AGGREGATE_KINDS, default="10min"),
                  _SINCE, _UNTIL, _limit(1000, 10000))),
    Command("hsrms", "recorder.hsrms", "High-speed RMS bursts (half-cycle RMS around each PQ event)", R,
            operation="read", writes=False, args=(_SINCE, _limit(10, 1000))),
    Command("recorders", "recorder.recorders", "The data recorders and their channels", R, operation="read",
            writes=False),
    Command("recorder_read", "recorder.read", "Records of one data recorder by time", "master",
            operation="recorder_read", writes=False,
            args=(Argument("recorder", "integer", "recorder number", "", 1, 16, 1), _SINCE, _UNTIL,
                  _limit(10000, 100000))),
    # ------------------------------------------------------------------ upgrade, mail
    Command("upgrade_install", "upgrade.install", "Install a signed firmware image", "master", revenue_lock=LOCKED,
            audit="upgrade_log", args=(Argument("path", "text", "image file on the meter"),),
            title="install a firmware image"),
    # master: it opens any path it is given with the meter's rights (a reader would learn which files exist)
    Command("upgrade_check", "upgrade.check", "Check a firmware image without installing it", "master",
            operation="upgrade_check", writes=False, args=(Argument("path", "text", "image file on the meter"),)),
    Command("upgrade_progress", "upgrade.progress", "Progress of one install attempt", R, operation="read",
            writes=False, args=(Argument("attempt", "text", "attempt id"),)),
    Command("upgrade_status", "upgrade.status", "Slots, installed version, revenue lock", R, operation="read",
            writes=False),
    Command("upgrade_log", "upgrade.log", "The newest upgrade log rows", R, operation="read", writes=False,
            args=(_n(50, 1000, "rows"),)),
    Command("mail_test", "email.test", "Send a test e-mail", "setup",
            title="send a test e-mail"),
    # ------------------------------------------------------------------ diagnostics of the services
    Command("chip_registers", "acquisition.registers", "The ADE9000's configuration registers", R,
            operation="read", writes=False),
    Command("latency", "acquisition.latency", "Read-loop latency of the acquisition", R, operation="read",
            writes=False, args=(Argument("reset", "bool", "start the statistics again", default=False),)),
    Command("sim_freeze", "acquisition.freeze", "Simulated board: freeze the read loop (fault injection)",
            "master", operation="diagnostic",
            args=(Argument("seconds", "number", "how long", "s", 0, 60, 0.5),),
            title="fault injection of the simulated board (freeze, stall)"),
    Command("sim_stall", "acquisition.stall", "Simulated board: stall page reads (fault injection)", "master",
            operation="diagnostic",
            args=(Argument("seconds", "number", "each stall", "s", 0, 10, 0.006),
                  Argument("count", "integer", "stalls", "", 1, 10000, 1)),
            title="fault injection of the simulated board (freeze, stall)"),
    Command("service_status", "{service}.status", "A service's own status", R, operation="read", writes=False,
            args=(_service("time", "display", "io", "upgrade"),)),
    Command("service_stats", "{service}.stats", "A service's counters", R, operation="read", writes=False,
            args=(_service("web", "comms", "mqtt"),)),
    Command("ping", "{service}.ping", "Whether a service answers", R, operation="read", writes=False,
            args=(_service(),)),
    Command("info", "{service}.info", "A service's endpoints and configuration at start", R, operation="read",
            writes=False, args=(_service(),)),
    # ------------------------------------------------------------------ supervisor
    Command("status", "status", "Services and health of the meter (`meter status`)", R, operation="read",
            writes=False),
    Command("restart", "restart", "Restart one service", "master",
            args=(_service(*SERVICES),),
            title="restart a service"),
    Command("master_reset", "master_reset", "Master reset: clear every recorded and accumulated value", "master",
            revenue_lock=LOCKED, audit=EVENTS, cli="reset master",
            title="clear every recorded and accumulated value (ION master reset)"),
    Command("factory_defaults", "factory_defaults", "Set the configuration back to the factory defaults", "master",
            revenue_lock=LOCKED, audit=EVENTS, cli="reset factory",
            title="set the configuration back to the factory defaults"),
    Command("device_wipe", "device_wipe", "Erase the meter's data, users and configuration, then stop it",
            "master", revenue_lock=LOCKED, audit=EVENTS, cli="reset wipe",
            title="erase the meter's data, users and configuration, then stop it"),
    Command("shutdown", "shutdown", "Stop the meter", "master",
            title="stop the meter"),
)
