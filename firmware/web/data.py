"""Handlers of the API's read-only data: measurements, events, load profile, diagnostics, the point map."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from firmware.catalogue.values import pick, split_names
from firmware.control import ControlError
from firmware.points import AREAS
from firmware.revenue.settings import from_config as revenue_settings
from firmware.storage.eventlog import band
from firmware.web.pq import finite
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.errors import ConfigError, IPCError
from metrology.tou import utc_datetime

MAX_ROWS = 1000               # records one request may return (events, load profile)
CLOCK_YEARS = 20              # years back the pages know the DST periods of (older times: standard time)


async def _measured(ctx: WebContext, group: str, *args: Any) -> Any:
    try:
        return getattr(ctx.measurements, group)(*args)
    except IPCError as exc:
        raise ApiError(503, str(exc)) from None


async def readings(ctx: WebContext, call: Call) -> Any:
    return await _measured(ctx, "readings")


async def energy(ctx: WebContext, call: Call) -> Any:
    return await _measured(ctx, "energy")


async def harmonics(ctx: WebContext, call: Call) -> Any:
    return await _measured(ctx, "harmonics", call.params["channel"])


async def phasors(ctx: WebContext, call: Call) -> Any:
    return await _measured(ctx, "phasors")


async def values(ctx: WebContext, call: Call) -> Any:
    """Any quantity of the catalogue by name, as ``meter read`` answers it."""
    try:
        names = split_names(call.params["names"])
        frame = ctx.measurements.frame()
        return {**frame.meta(), "values": pick(frame.values, names)}
    except ConfigError as exc:
        raise ApiError(400, f"parameter 'names': {exc}") from None
    except IPCError as exc:
        raise ApiError(503, str(exc)) from None


async def points(ctx: WebContext, call: Call) -> Any:
    """The point map as the pages show it: labels in the configured convention, the areas, the meter's clock."""
    labels = ctx.config["display"].labels
    return {"labels": labels, "points": ctx.measurements.point_table(labels),
            "areas": [{"name": a.name, "title": a.title, "page": a.page, "main": a.main} for a in AREAS],
            "clock": local_clock(ctx.config, time.time())}


def local_clock(config: Any, now: float) -> dict[str, Any]:
    """The meter's local time ([revenue.time]: an offset and DST rules, no tz database) as a page applies it:
    the standard offset, the DST offset and the DST periods (UTC seconds, from, to) of the last
    ``CLOCK_YEARS`` years and the next."""
    tz = revenue_settings(config).timezone
    periods: list[list[float]] = []
    if tz.has_dst:
        year = utc_datetime(now).year
        for y in range(year - CLOCK_YEARS, year + 2):
            start, end = tz.transitions(y)
            periods.append([start, end if start < end else tz.transitions(y + 1)[1]])
    return {"offset_min": tz.offset_min, "dst_offset_min": tz.dst_offset_min if tz.has_dst else 0, "dst": periods}


async def events(ctx: WebContext, call: Call) -> Any:
    p = call.params
    feed = ctx.kept_events if p["kept"] else ctx.events
    rows = await asyncio.to_thread(feed.read_range, p["since"], p["until"], p["limit"], p["order"] == "newest",
                                   ("priority", p["min_priority"]) if p["min_priority"] else None)
    for row in rows:
        row["band"] = band(int(row.get("priority") or 0))
    unread = await asyncio.to_thread(ctx.event_log().unread)
    return {"events": rows, "unread": unread}


async def events_read(ctx: WebContext, call: Call) -> Any:
    """Mark every event read: the unread counter (web, display, `meter status`) goes back to 0."""
    assert call.identity is not None
    ctx.authorize(call.identity, "alarm_ack")
    last = await asyncio.to_thread(ctx.event_log().mark_read)
    return {"read_up_to": last, "unread": await asyncio.to_thread(ctx.event_log().unread)}


async def revenue_registers(ctx: WebContext, call: Call) -> Any:
    try:
        return finite(await ctx.control(call.user, "metrology.registers"))
    except (ControlError, IPCError) as exc:
        raise ApiError(503, f"the revenue registers did not answer: {exc}") from None


async def load_profile(ctx: WebContext, call: Call) -> Any:
    p = call.params
    if p["since"] is not None and p["until"] is not None and p["until"] < p["since"]:
        raise ApiError(400, f"parameter 'until' ({p['until']:g}) is before 'since' ({p['since']:g})")
    rows = await asyncio.to_thread(ctx.profile.read_range, p["since"], p["until"], p["limit"], p["order"] == "newest")
    channels = list(ctx.config["revenue.load_profile"].channels)
    return {"channels": channels, "interval_min": ctx.config["revenue.load_profile"].interval, "records": rows}


async def diagnostics(ctx: WebContext, call: Call) -> Any:
    """Services from the supervisor, sample gaps, the cross-check of the two energy paths."""
    out: dict[str, Any] = {"web": {**ctx.counters, "streams": ctx.streams,
                                   "certificate": ctx.certs.active()}}
    try:
        status = await ctx.control(call.user, "status")
        out["meter"] = {k: status.get(k) for k in ("state", "healthy", "metering", "lost_frames_per_min",
                                                   "overruns_per_min", "last_gap", "version", "config_version",
                                                   "config_started_version", "uptime_s")}
        out["services"] = {name: {k: svc.get(k) for k in ("state", "pid", "restarts", "endpoints", "last_exit",
                                                          "essential", "description")}
                           for name, svc in status.get("services", {}).items()}
        out["metrology"] = {k: v for k, v in status.get("services", {}).get("metrology", {}).get("info", {}).items()
                            if k in ("gaps", "lost_s", "overruns", "seconds")}
    except (ControlError, IPCError) as exc:
        out["meter"] = {"state": "unknown", "error": f"the supervisor did not answer: {exc}"}
        out["services"] = {}
    try:
        out["energy_paths"] = ctx.measurements.diagnostics()
    except IPCError as exc:
        out["energy_paths"] = {"error": str(exc)}
    out["time"] = time.time()
    return out
