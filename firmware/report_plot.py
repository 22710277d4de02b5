"""PNG plots of the EN 50160 and IEEE 519 weeks (matplotlib, Agg: no display needed).

Figures are drawn on ``matplotlib.figure.Figure`` directly, never through pyplot's global state, so the
command can draw several in one process and nothing opens a window.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.dates import DateFormatter, DayLocator
from matplotlib.figure import Figure

PHASES = ("A", "B", "C")
DPI = 100


def _dates(ts: np.ndarray) -> list[datetime.datetime]:
    return [datetime.datetime.fromtimestamp(float(t), datetime.timezone.utc) for t in ts]


def _axis(ax: Any, title: str, unit: str, start: float, end: float) -> None:
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel(unit, fontsize=8)
    ax.set_xlim(*_dates(np.array([start, end])))
    ax.xaxis.set_major_locator(DayLocator())
    ax.xaxis.set_major_formatter(DateFormatter("%a %d"))
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


def _phases(ax: Any, ts: np.ndarray, y: np.ndarray) -> None:
    if ts.size == 0:
        return
    for k, name in enumerate(PHASES):
        if np.isfinite(y[:, k]).any():
            ax.plot(_dates(ts), y[:, k], lw=0.8, label=name)
    ax.legend(fontsize=7, loc="upper right")


def _limit(ax: Any, *values: float) -> None:
    for v in values:
        ax.axhline(v, color="red", lw=0.8, ls="--")


def _verdict(report: dict) -> str:
    return {True: "compliant", False: "NOT compliant", None: "not enough data"}[report["compliant"]]


def en50160_png(path: str | Path, report: dict, s: dict[str, np.ndarray]) -> None:
    """Voltage, frequency, THD, unbalance and Plt of the week with the EN 50160 limits; flagged intervals grey."""
    start, end = report["period"]["start"], report["period"]["end"]
    un, fn = report["nominal"]["voltage"], report["nominal"]["frequency"]
    fig = Figure(figsize=(11, 10), dpi=DPI, layout="constrained")
    axes = fig.subplots(5, 1, sharex=True)
    fig.suptitle(f"{report['standard']}: week from {_dates(np.array([start]))[0]:%Y-%m-%d} (UTC), {_verdict(report)}",
                 fontsize=11)
    _phases(axes[0], s["ts"], s["v"])
    _limit(axes[0], 0.9 * un, 1.1 * un, 0.85 * un)
    _axis(axes[0], "Supply voltage, 10-min (limits Un ±10 %, -15 %)", "V", start, end)
    if s["ts"].size:
        axes[1].plot(_dates(s["ts"]), s["freq"], lw=0.8, color="black")
    _limit(axes[1], 0.99 * fn, 1.01 * fn)
    _axis(axes[1], "Frequency, 10-min (limits fn ±1 %)", "Hz", start, end)
    _phases(axes[2], s["ts"], s["thd"])
    _limit(axes[2], 8.0)
    _axis(axes[2], "THD (orders 2-40), 10-min (limit 8 %)", "%", start, end)
    if s["ts"].size:
        axes[3].plot(_dates(s["ts"]), s["unbalance"], lw=0.8, color="black")
    _limit(axes[3], 2.0)
    _axis(axes[3], "Voltage unbalance, 10-min (limit 2 %)", "%", start, end)
    _phases(axes[4], s["ts_2h"], s["plt"])
    _limit(axes[4], 1.0)
    _axis(axes[4], "Flicker Plt, 2-h (limit 1)", "", start, end)
    for t in _dates(s["flagged_ts"]):
        for ax in axes:
            ax.axvspan(t - datetime.timedelta(minutes=10), t, color="grey", alpha=0.3, lw=0)
    fig.savefig(path, format="png")


def ieee519_png(path: str | Path, report: dict, s: dict[str, np.ndarray]) -> None:
    """THD and TDD over the week with their limits, and each harmonic's weekly 95th percentile against its limit."""
    start, end = report["period"]["start"], report["period"]["end"]
    lim = report["limits"]
    fig = Figure(figsize=(11, 9), dpi=DPI, layout="constrained")
    axes = fig.subplots(4, 1)
    fig.suptitle(f"{report['standard']}: week from {_dates(np.array([start]))[0]:%Y-%m-%d} (UTC), ISC/IL "
                 f"{report['pcc']['isc_il']:g}, {report['pcc']['bus_kv']:.3g} kV, {_verdict(report)}", fontsize=11)
    _phases(axes[0], s["ts"], s["thd"])
    _limit(axes[0], lim["voltage_thd_pct"])
    _axis(axes[0], "Voltage THD, 10-min", "%", start, end)
    _phases(axes[1], s["ts"], s["tdd"])
    _limit(axes[1], lim["current_tdd_pct"])
    _axis(axes[1], "Current TDD, 10-min", "% of IL", start, end)
    for ax, entries, title in ((axes[2], report["voltage"][1:], "Voltage harmonics: weekly 95th percentile"),
                               (axes[3], report["current"][1:], "Current harmonics: weekly 95th percentile")):
        orders = [e["order"] for e in entries]
        p95 = [np.nan if e["p95_10min"] is None else e["p95_10min"] for e in entries]
        colors = ["tab:red" if e["compliant"] is False else "tab:blue" for e in entries]
        ax.bar(orders, p95, color=colors, width=0.7)
        ax.step(orders, [e["limit_pct"] for e in entries], where="mid", color="red", lw=0.8)
        ax.set_title(title + " (bars) and limit (line)", fontsize=9, loc="left")
        ax.set_xlabel("order", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    fig.savefig(path, format="png")
