"""The meter's durable record feeds for the services that forward them (MQTT, e-mail).

One place names where each record lives: the load profile (interval and event records, written by the
revenue registers in the metrology service), the time events (written by the time service) and the
meter's event log (written by every service, firmware.storage.eventlog). Each is
read through ``firmware.storage.feed.LogFeed`` after a record id the reader keeps.
"""
from __future__ import annotations

from pathlib import Path

from firmware.revenue.engine import REVENUE_DB, REVENUE_SUBDIR
from firmware.revenue.loadprofile import TABLE as LP_TABLE
from firmware.storage.eventlog import EVENTS_DB as EVENT_LOG_DB
from firmware.storage.eventlog import KEPT_TABLE
from firmware.storage.eventlog import TABLE as EVENT_LOG_TABLE
from firmware.storage.feed import LogFeed
from firmware.timesync import EVENTS_DB, EVENTS_TABLE

# load-profile record kinds that are events (everything else, "interval", is interval data)
LP_INTERVAL_KIND = "interval"


def load_profile(data_dir: str | Path) -> LogFeed:
    return LogFeed(Path(data_dir) / REVENUE_SUBDIR / REVENUE_DB, LP_TABLE, ("data", "info"))


def time_events(data_dir: str | Path) -> LogFeed:
    return LogFeed(Path(data_dir) / EVENTS_DB, EVENTS_TABLE, ("info",))


def event_log(data_dir: str | Path) -> LogFeed:
    return LogFeed(Path(data_dir) / EVENT_LOG_DB, EVENT_LOG_TABLE, ("detail",))


def kept_events(data_dir: str | Path) -> LogFeed:
    """The audit trail the event log keeps apart, where no flood of failed attempts reaches."""
    return LogFeed(Path(data_dir) / EVENT_LOG_DB, KEPT_TABLE, ("detail",))
