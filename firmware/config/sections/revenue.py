"""Revenue registers: demand, time zone and DST, TOU calendar, billing resets, test mode, load profile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware.config.schema import Bool, Duration, Enum, Float, Int, Kind, ListOf, Option, Section, Str, Table
from metrology.demand import DEMAND_INTERVALS_MIN
from metrology.registers import SELF_READ_TRIGGERS
from metrology.tou import DAY_TYPES, MAX_HOLIDAYS, MAX_SEASONS, RATES


@dataclass(frozen=True)
class OneOf(Kind):
    """An integer from a fixed list (demand and load-profile interval lengths)."""

    values: tuple[int, ...]

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw not in self.values:
            raise ValueError(f"{raw!r} is not allowed; allowed {self.allowed()}")
        return int(raw)

    def allowed(self) -> str:
        return "one of " + ", ".join(str(v) for v in self.values)


HHMM = Str(5, r"([01]\d|2[0-3]):[0-5]\d", "HH:MM (00:00 to 23:59)")
OFFSET = Str(6, r"[+-](0\d|1[0-3]):[0-5]\d", "+HH:MM or -HH:MM")
DST_RULE = Str(16, r"|(1[0-2]|[1-9])-[1-5]-(mon|tue|wed|thu|fri|sat|sun)-([01]\d|2[0-3]):[0-5]\d",
               "MONTH-WEEK-WEEKDAY-HH:MM, WEEK 1-4 or 5 for the last (e.g. 3-5-sun-02:00), or empty")
SCHEDULE = Str(120, r"\s*(([01]?\d|2[0-3]):[0-5]\d=[A-Ha-h][\s,]*){1,8}",
               "up to 8 switch times HH:MM=RATE with RATE A-H, e.g. \"00:00=A 07:00=B 21:00=A\"")
LP_INTERVALS_MIN = DEMAND_INTERVALS_MIN      # JEM L2395 lists a subset; every divisor of 60 aligns to the hour

DEFAULT_LP_CHANNELS = ("wh_del", "wh_rec", "varh_del", "varh_rec", "vah_del", "vah_rec", "varh_q1", "varh_q2",
                       "varh_q3", "varh_q4", "avg_v_a", "avg_v_b", "avg_v_c", "avg_i_a", "avg_pf", "status")

SECTIONS = [
    Section("revenue", [
        Option("demand_method", Enum("rolling", "block", "thermal"), "rolling",
               "Demand method: rolling block (sliding window of subintervals), block (one subinterval per "
               "interval) or thermal (exponential, 90 % of a step in the interval)."),
        Option("demand_interval", OneOf(DEMAND_INTERVALS_MIN), 15, "Demand interval length.", "min"),
        Option("demand_subintervals", Int(1, 12), 3,
               "Subintervals per interval for rolling block demand; the subinterval is the interval "
               "divided by this and must be a whole number of seconds."),
        Option("demand_sync", Enum("clock", "input", "command"), "clock",
               "What ends a subinterval: the clock (aligned to the hour in local standard time), or a "
               "synchronisation pulse from the demand-sync digital input or the demand_sync command "
               "(free-running from the last pulse in between)."),
        Option("demand_deferral", Duration(0, 86400), 0.0,
               "After power-up, peaks are not updated for this long (cold-load pickup).", "s"),
        Option("demand_reset_lockout", Duration(0, 90 * 86400), 300.0,
               "Minimum time between two peak-demand or billing-period resets (ION typical 25 d, JEM 5 min); "
               "scheduled resets are not subject to it.", "s"),
        Option("demand_reset_when_locked", Bool(), False,
               "Allow peak-demand and billing-period resets (command and BPR button) while the revenue lock "
               "is engaged. false as the ION7400, whose revenue lock refuses resets that impact revenue data, the "
               "peak demand reset among them; true as the JEMStar II, whose metrology security key does not "
               "disable the billing-period reset and whose reset button has a key of its own. Scheduled resets "
               "run either way."),
        Option("persist_interval", Duration(0.2, 3600), 1.0,
               "Registers are written to non-volatile storage at this interval, and at once on SIGTERM "
               "or the power-fail input; a sudden loss costs at most this much energy.", "s"),
        Option("test_mode_timeout", Duration(60, 86400), 1800.0,
               "Test mode ends by itself after this long without a test-mode command.", "s"),
        Option("bpr_day", Int(0, 31), 0,
               "Day of the month of the scheduled billing-period reset (0 = none; 29-31 fall back to the "
               "last day of shorter months)."),
        Option("bpr_time", HHMM, "00:00", "Local time of the scheduled billing-period reset."),
        Option("self_read_triggers", ListOf(Enum(*SELF_READ_TRIGGERS), 0, len(SELF_READ_TRIGGERS)), ("bpr",),
               "When a self-read record (of the last 96 kept) is taken."),
        Option("units", Enum("primary", "secondary"), "primary",
               "Published energy and demand registers in primary units (at the PT/CT primaries) or "
               "secondary units (at the meter terminals)."),
        Option("publish_compensated", Bool(), False,
               "Publish the loss-compensated energy registers instead of the uncompensated ones."),
        Option("accuracy_class", Float(0.05, 2.0), 0.5,
               "Largest difference allowed between the active energy of the sample path and of the ADE9000's own "
               "accumulators, over the last 15 min both measured, before the energy_paths_differ status bit and "
               "event. 0.5: the IEC 62053-22 class 0.5S limit at unity PF; each path alone meets class 0.2S "
               "(accuracy specification), so two sound paths differ by at most 0.4 %.", "%"),
        Option("incremental_start", HHMM, "00:00", "Incremental energy: start of the daily window."),
        Option("incremental_end", Str(5, r"([01]\d|2[0-3]):[0-5]\d|24:00", "HH:MM or 24:00"), "24:00",
               "Incremental energy: end of the daily window."),
        Option("incremental_interval", Int(0, 1440), 60,
               "Incremental energy interval (0 = off); the last interval of the window may be short.", "min"),
    ], "Revenue registers: energy, demand, TOU, billing-period resets, test mode, persistence.", sealed=True),
    Section("revenue.time", [
        Option("zone", OFFSET, "+00:00", "Local standard time offset from UTC, -12:00 to +13:00."),
        Option("dst_offset", OFFSET, "+00:00", "Daylight saving offset added in summer, -03:00 to +03:00."),
        Option("dst_start", DST_RULE, "",
               "Start of DST on the standard clock, e.g. 3-5-sun-02:00 (EU, CET), 3-2-sun-02:00 (US)."),
        Option("dst_end", DST_RULE, "",
               "End of DST on the daylight clock, e.g. 10-5-sun-03:00 (EU, CEST), 11-1-sun-02:00 (US)."),
    ], "Local time for TOU, demand and load-profile alignment; rules, not a tz database.", sealed=True),
    Section("revenue.tou", [
        Option("enabled", Bool(), False, "Book energy and demand to rates A-H by the calendar below."),
        Option("first_year", Int(1990, 2200), 2024, "First year of the 20-year calendar."),
        Option("override_rate", Enum(*RATES), "A", "Rate forced while the TOU override input is on."),
        Option("season", Table(tuple([Option("start", Str(5, r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", "MM-DD"),
                                             "01-01", "First day of the season.")]
                                     + [Option(day, SCHEDULE, "00:00=A", f"Switch times on {day}.")
                                        for day in DAY_TYPES]), MAX_SEASONS), (),
               "Up to 4 seasons ([[revenue.tou.season]]); none means rate A all the time."),
        Option("holiday", Table((Option("date", Str(10, r"\d{4}-\d{2}-\d{2}", "YYYY-MM-DD"), "2024-01-01",
                                        "Date of the holiday."),
                                 Option("type", Enum("holiday1", "holiday2"), "holiday1",
                                        "Day type whose schedule applies.")), MAX_HOLIDAYS), (),
               "Up to 200 holidays ([[revenue.tou.holiday]]) within the calendar years."),
    ], "Time-of-use calendar: seasons, day types, holidays, switch times.", sealed=True),
    Section("revenue.load_profile", [
        Option("interval", OneOf(LP_INTERVALS_MIN), 15, "Interval length, aligned to the hour.", "min"),
        Option("channels", ListOf(Str(40, r"[a-z0-9_.]+", "a channel name"), 1, 32), DEFAULT_LP_CHANNELS,
               "Up to 32 channels: an energy register (wh_del, varh_q1, ah_del, ... with .a/.b/.c for a "
               "phase and _comp for compensated), an average (avg_p, avg_q, avg_s, avg_pf, avg_freq, "
               "avg_v_a..c, avg_i_a..c), status, pulseN or contactN (digital input N)."),
        Option("depth", Int(100, 10_000_000), 40_000,
               "Records kept (oldest dropped); 365 days of 15-min intervals need 35,040."),
    ], "Load profile: interval records of energy, averages, status and inputs, with event records.", sealed=True),
    Section("revenue.inputs", [
        Option("bpr_button", Int(0, 32), 0, "Digital input of the billing-period reset button (0 = none)."),
        Option("demand_sync", Int(0, 32), 0, "Digital input of the demand synchronisation pulse (0 = none)."),
        Option("tou_override", Int(0, 32), 0, "Digital input forcing the override rate (0 = none)."),
        Option("energy_gate", Int(0, 32), 0,
               "Digital input gating the conditional energy registers (0 = none: they never run)."),
        Option("cover", Int(0, 32), 0,
               "Digital input of the terminal-cover switch, on while the cover is off (0 = none): status word "
               "bit cover_removed."),
        Option("sim_dir", Str(255), "var/inputs",
               "Simulated board: the power-fail line is the file power_fail here, holding 1 or 0, and the RTC "
               "backup battery's state the file battery_low; the revenue lock is [upgrade] revenue_lock_file. The "
               "digital inputs come from the io service (docs/io.md).", local=True),
    ], "Inputs the revenue registers use: the revenue lock and power-fail pins come from the board file, the "
       "digital inputs' state, counts and activations from the io service.", sealed=True),
]
