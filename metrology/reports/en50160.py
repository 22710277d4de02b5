"""EN 50160 weekly statistics: how much of one observation week each supply-voltage parameter kept within the
standard's limits, per phase, and whether that meets the standard's percentage.

Limits (EN 50160:2010, LV supply, synchronous connection to an interconnected system; the standard states
frequency over a year, the meter states every parameter per week as ION meters do):

==================  ======================================  ==========  ===============================
parameter           limit                                   of values   values
==================  ======================================  ==========  ===============================
frequency           fn ± 1 % (49.5-50.5 Hz)                 99.5 %      10-s means (IEC 61000-4-30 5.1),
                    fn - 6 % / + 4 % (47-52 Hz)             100 %       those the 10-min records carry;
                                                                        3-s, else 10-min values for records
                                                                        stored without them
supply voltage      Un ± 10 %                               95 %        10-min RMS, per phase
                    Un - 15 % / + 10 %                      100 %
flicker             Plt <= 1                                95 %        2-h Plt, per phase
unbalance           u2 <= 2 %                               95 %        10-min negative-sequence ratio
THD                 <= 8 % (orders 2-40)                    95 %        10-min, per phase
harmonics 2-25      Table 1 (below), % of the fundamental   95 %        10-min, per phase and order
mains signalling    Figure 1 (metrology/signalling.py)      99 %        3-s, per phase and frequency, of
                                                                        each day (the worst day counts)
==================  ======================================  ==========  ===============================

Records flagged by a dip, swell or interruption and records with lost samples are left out of every
statistic (IEC 61000-4-30 4.7: flagged values are not used for EN 50160 assessment). The 10-s frequencies carry
their own flags (a flagged one is NaN), so those of every 10-min record of the week count but the flagged ones.
The ``records`` header says how many values each statistic had: ``10min_used`` (the voltage, unbalance and
harmonic rows), ``10s_used`` or ``3s_used`` (frequency), ``2h_used`` (Plt), beside the records stored.

The week's under- and over-deviation (IEC 61000-4-30:2015 Annex D) per phase has no EN 50160 limit: the report
gives it without a verdict, over the week (the Annex D formula over every usable 10-min value) and the highest
10-min value.

The week's dips and swells are counted in the standard's classification tables (EN 50160:2010 Tables 5 and 6:
residual or maximum voltage in % of the declared voltage against duration), and its interruptions as short
(up to 3 min) or long. The standard gives these as indicative values, not limits: they have no verdict.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from metrology.intervals import FREQ_10S_SLOTS
from metrology.signalling import MEISTER_DAY_PCT, meister_limit_pct

from metrology.reports.common import DAY_S, WEEK_S, Record, nan_to_none, overall, pct_within, stack, usable, verdict, worst

STANDARD = "EN 50160:2010"
FREQ_NARROW_PCT, FREQ_NARROW_REQ = 1.0, 99.5          # fn ± 1 % during 99.5 %
FREQ_WIDE_LO_PCT, FREQ_WIDE_HI_PCT = -6.0, 4.0        # fn - 6 % / + 4 % during 100 %
VOLTAGE_NARROW_PCT, VOLTAGE_REQ = 10.0, 95.0          # Un ± 10 % for 95 % of the 10-min values
VOLTAGE_WIDE_LO_PCT, VOLTAGE_WIDE_HI_PCT = -15.0, 10.0    # all 10-min values within Un - 15 % / + 10 %
PLT_MAX, PLT_REQ = 1.0, 95.0
UNBALANCE_MAX_PCT, UNBALANCE_REQ = 2.0, 95.0
THD_MAX_PCT, THD_MAX_ORDER, HARMONIC_REQ = 8.0, 40, 95.0
# Table 1: individual harmonic voltages, % of the fundamental (orders 2-25)
HARMONIC_LIMITS_PCT: dict[int, float] = {
    2: 2.0, 3: 5.0, 4: 1.0, 5: 6.0, 6: 0.5, 7: 5.0, 8: 0.5, 9: 1.5, 10: 0.5, 11: 3.5, 12: 0.5, 13: 3.0,
    14: 0.5, 15: 0.5, 16: 0.5, 17: 2.0, 18: 0.5, 19: 1.5, 20: 0.5, 21: 0.5, 22: 0.5, 23: 1.5, 24: 0.5, 25: 1.5,
}
ORDERS = 64                    # h_mag columns: DC, fundamental, 2..63
SIGNALS = 10                   # h_mag rows: va vb vc vab vbc vca ia ib ic in
EXPECTED_10MIN = WEEK_S // 600


# EN 50160:2010 Table 5 (dips, by residual voltage u in % of the declared voltage) and Table 6 (swells, by
# maximum voltage), each against the duration: (row label, test of u)
Row = tuple[str, Callable[[float], bool]]
DIP_ROWS: tuple[Row, ...] = (("90 > u >= 80", lambda u: 80 <= u < 90), ("80 > u >= 70", lambda u: 70 <= u < 80),
                             ("70 > u >= 40", lambda u: 40 <= u < 70), ("40 > u >= 5", lambda u: 5 <= u < 40),
                             ("5 > u", lambda u: u < 5))
SWELL_ROWS: tuple[Row, ...] = (("u >= 120", lambda u: u >= 120), ("120 > u > 110", lambda u: 110 < u < 120))
DURATION_COLUMNS = (("10 <= t <= 200 ms", 0.0, 0.2), ("200 < t <= 500 ms", 0.2, 0.5), ("500 ms < t <= 1 s", 0.5, 1.0),
                    ("1 s < t <= 5 s", 1.0, 5.0), ("5 s < t <= 1 min", 5.0, 60.0))
SHORT_INTERRUPTION_S = 180.0          # up to 3 min: short; longer: long


def _column(duration_s: float) -> int | None:
    for k, (_, lo, hi) in enumerate(DURATION_COLUMNS):
        if lo < duration_s <= hi or (k == 0 and duration_s <= hi):
            return k
    return None


def _table(events: list[dict[str, Any]], rows: tuple[Row, ...]) -> dict[str, Any]:
    counts = [[0] * len(DURATION_COLUMNS) for _ in rows]
    longer = unclassified = 0
    for ev in events:
        u = float(ev["detail"].get("extreme_pct", math.nan))
        row = next((i for i, (_, within) in enumerate(rows) if within(u)), None)
        if row is None:
            unclassified += 1        # a threshold set beyond the table's (a dip at 92 %), or no residual stored
            continue
        col = _column(float(ev["duration_s"]))
        if col is None:
            longer += 1
        else:
            counts[row][col] += 1
    return {"rows": [r[0] for r in rows], "columns": [c[0] for c in DURATION_COLUMNS], "counts": counts,
            "total": len(events), "longer_than_1_min": longer, "not_in_table": unclassified}


def events_summary(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The week's dips and swells in the EN 50160 classification tables and its interruptions, short and long.
    ``events``: finished events (kind 'sag' | 'swell' | 'interruption', ``duration_s``, ``detail.extreme_pct``)."""
    events = list(events)
    intr = [e for e in events if e["kind"] == "interruption"]
    short = sum(1 for e in intr if float(e["duration_s"]) <= SHORT_INTERRUPTION_S)
    return {"dips": _table([e for e in events if e["kind"] == "sag"], DIP_ROWS),
            "swells": _table([e for e in events if e["kind"] == "swell"], SWELL_ROWS),
            "interruptions": {"short": short, "long": len(intr) - short, "short_up_to_s": SHORT_INTERRUPTION_S,
                              "longest_s": max((float(e["duration_s"]) for e in intr), default=None)}}


def _entry(parameter: str, limit: str, required: float, per_phase: list[float | None], count: int) -> dict:
    measured = worst(per_phase)
    return {"parameter": parameter, "limit": limit, "required_pct": required, "measured_pct": measured,
            "per_phase": per_phase, "values": count, "compliant": verdict(measured, required)}


def harmonic_pct(records: list[Record], signals: slice) -> np.ndarray:
    """(n, 3, 64) harmonic magnitudes of the voltage ``signals`` in % of their fundamental."""
    h = stack(records, "h_mag", (SIGNALS, ORDERS))[:, signals, :]
    fund = h[:, :, 1:2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fund > 0, 100.0 * h / fund, np.nan)


def thd_pct(h_pct: np.ndarray, max_order: int) -> np.ndarray:
    """(n, 3) THD over orders 2..max_order from harmonics in % of the fundamental."""
    return np.sqrt(np.sum(h_pct[:, :, 2:max_order + 1] ** 2, axis=2))


def frequency_values(ten_all: list[Record], three: list[Record], ten: list[Record]) -> tuple[np.ndarray, str]:
    """(n, 1) frequencies EN 50160 judges and what they are: the 10-s values (IEC 61000-4-30 5.1) of the week's
    10-min records ``ten_all`` where stored, else the usable 3-s values, else the usable 10-min values."""
    f10 = stack(ten_all, "freq_10s", (FREQ_10S_SLOTS,)).reshape(-1, 1)
    if np.isfinite(f10).any():
        return f10[np.isfinite(f10[:, 0])], "10s"
    if three:
        return stack(three, "freq", (1,)), "3s"
    return stack(ten, "freq", (1,)), "10min"


def signalling_entries(three: list[Record], nominal_v: float, signalling_hz: tuple[float, ...]) -> list[dict]:
    """One entry per signalling frequency: per phase, the lowest over the week's days of the % of that day's 3-s
    values within EN 50160 Figure 1 (4.2.5: 99 % of each day); ``days`` counts the days that had values."""
    msv = stack(three, "msv", (3, len(signalling_hz))) * (100.0 / nominal_v)
    day = np.array([(float(r["ts"]) - 1e-9) // DAY_S for r in three])
    out = []
    for k, f in enumerate(signalling_hz):
        limit = meister_limit_pct(f)
        per_day = [pct_within(msv[day == d, :, k], 0.0, limit) for d in np.unique(day)]
        per_phase = [worst([d[j] for d in per_day]) for j in range(3)]
        entry = _entry(f"mains signalling {f:g} Hz", f"<= {limit:.2f} % of Un (Figure 1) each day", MEISTER_DAY_PCT,
                       per_phase, msv.shape[0])
        entry["frequency_hz"], entry["days"] = f, len(per_day)
        out.append(entry)
    return out


def deviation_summary(ten: list[Record]) -> dict[str, Any]:
    """The week's under- and over-deviation per phase (% of Udin) from the usable 10-min values: over the week,
    the clipped values' mean square carried through (each 10-min value weighs equally, as 10-min values make a
    2-h one), and the highest 10-min value."""
    out: dict[str, Any] = {}
    for key, sign in (("under_dev", -1.0), ("over_dev", 1.0)):
        pct = stack(ten, key, (3,))
        ok = np.isfinite(pct)
        n = ok.sum(axis=0)
        ratio = np.where(ok, 1.0 + sign * pct / 100.0, 0.0)          # Uunder/Udin, Uover/Udin
        week = np.full(3, np.nan)
        np.sqrt(np.divide((ratio ** 2).sum(axis=0), n, out=week, where=n > 0), out=week)
        highest = np.where(n > 0, np.where(ok, pct, -np.inf).max(axis=0, initial=-np.inf), np.nan)
        out[key] = {"week_pct": [nan_to_none(x) for x in (sign * (week - 1.0) * 100.0).tolist()],
                    "max_10min_pct": [nan_to_none(x) for x in highest.tolist()]}
    return out


def report(records: Iterable[Record], start: float, end: float, nominal_v: float, nominal_f: float,
           voltage: str = "v_ln", events: Iterable[dict[str, Any]] = (),
           signalling_hz: tuple[float, ...] = ()) -> dict[str, Any]:
    """EN 50160 statistics of the week (start, end]; ``nominal_v`` is Un for the ``voltage`` values
    ("v_ln" phase-to-neutral, "v_ll" phase-to-phase, primary V); ``events``: the week's dips, swells and
    interruptions (see ``events_summary``); ``signalling_hz``: the frequencies of the 3-s ``msv`` values."""
    if voltage not in ("v_ln", "v_ll"):
        raise ValueError(f"voltage must be v_ln or v_ll, got {voltage!r}")
    records = list(records)
    in_week = [r for r in records if start < float(r["ts"]) <= end]
    ten = [r for r in in_week if usable(r, "10min", start, end)]
    three = [r for r in in_week if usable(r, "3s", start, end)]
    two = [r for r in in_week if usable(r, "2h", start, end)]
    params: list[dict] = []

    freq, label = frequency_values([r for r in in_week if r.get("kind") == "10min"], three, ten)
    lo, hi = nominal_f * (1 - FREQ_NARROW_PCT / 100), nominal_f * (1 + FREQ_NARROW_PCT / 100)
    params.append(_entry("frequency", f"{lo:g}..{hi:g} Hz ({label} values)", FREQ_NARROW_REQ,
                         pct_within(freq, lo, hi), freq.shape[0]))
    lo, hi = nominal_f * (1 + FREQ_WIDE_LO_PCT / 100), nominal_f * (1 + FREQ_WIDE_HI_PCT / 100)
    params.append(_entry("frequency", f"{lo:g}..{hi:g} Hz ({label} values)", 100.0, pct_within(freq, lo, hi),
                         freq.shape[0]))

    v = stack(ten, voltage, (3,))
    lo, hi = nominal_v * (1 - VOLTAGE_NARROW_PCT / 100), nominal_v * (1 + VOLTAGE_NARROW_PCT / 100)
    params.append(_entry("supply voltage", f"{lo:g}..{hi:g} V", VOLTAGE_REQ, pct_within(v, lo, hi), v.shape[0]))
    lo, hi = nominal_v * (1 + VOLTAGE_WIDE_LO_PCT / 100), nominal_v * (1 + VOLTAGE_WIDE_HI_PCT / 100)
    params.append(_entry("supply voltage", f"{lo:g}..{hi:g} V", 100.0, pct_within(v, lo, hi), v.shape[0]))

    plt = stack(two, "plt", (3,))
    params.append(_entry("flicker Plt", f"<= {PLT_MAX:g}", PLT_REQ, pct_within(plt, 0.0, PLT_MAX), plt.shape[0]))

    # the negative-sequence ratio u2 where stored, else the meter's maximum-deviation unbalance
    unb = stack(ten, "v_u2", (1,))
    if not np.isfinite(unb).any():
        unb = stack(ten, "v_unbal", (1,))
    params.append(_entry("voltage unbalance", f"<= {UNBALANCE_MAX_PCT:g} %", UNBALANCE_REQ,
                         pct_within(unb, 0.0, UNBALANCE_MAX_PCT), unb.shape[0]))

    signals = slice(0, 3) if voltage == "v_ln" else slice(3, 6)
    h = harmonic_pct(ten, signals)
    thd = thd_pct(h, THD_MAX_ORDER)
    if not np.isfinite(thd).any():
        thd = stack(ten, "thd", (SIGNALS,))[:, signals]
    params.append(_entry("THD", f"<= {THD_MAX_PCT:g} % (orders 2-{THD_MAX_ORDER})", HARMONIC_REQ,
                         pct_within(thd, 0.0, THD_MAX_PCT), thd.shape[0]))
    for order, limit in HARMONIC_LIMITS_PCT.items():
        entry = _entry(f"harmonic {order}", f"<= {limit:g} %", HARMONIC_REQ, pct_within(h[:, :, order], 0.0, limit),
                       h.shape[0])
        entry["order"] = order
        params.append(entry)
    params.extend(signalling_entries(three, nominal_v, signalling_hz))

    flagged = sum(1 for r in in_week if r.get("kind") == "10min" and r.get("flagged"))
    gaps = sum(1 for r in in_week if r.get("kind") == "10min" and r.get("gap"))
    present = sum(1 for r in in_week if r.get("kind") == "10min")
    return {
        "standard": STANDARD,
        "period": {"start": start, "end": end},
        "nominal": {"voltage": nominal_v, "voltage_values": voltage, "frequency": nominal_f},
        "records": {"10min": present, "10min_expected": EXPECTED_10MIN, "10min_flagged": flagged,
                    "10min_gap": gaps, "10min_used": len(ten), "3s_used": len(three), "2h_used": len(two),
                    "10s_used": int(np.isfinite(freq).sum()) if label == "10s" else 0, "frequency_values": label,
                    "coverage_pct": round(100.0 * len(ten) / EXPECTED_10MIN, 2)},
        "parameters": params,
        "compliant": overall(p["compliant"] for p in params),
        "events": events_summary(events),
        "deviation": deviation_summary(ten),
        "summary": {"v_min": nan_to_none(np.nanmin(v)) if np.isfinite(v).any() else None,
                    "v_max": nan_to_none(np.nanmax(v)) if np.isfinite(v).any() else None,
                    "plt_max": nan_to_none(np.nanmax(plt)) if np.isfinite(plt).any() else None},
    }


def series(records: Iterable[Record], start: float, end: float, voltage: str = "v_ln") -> dict[str, Any]:
    """The week's usable 10-min and 2-h values for a plot: times and per-phase voltage, THD, unbalance, Plt."""
    records = list(records)
    ten = [r for r in records if usable(r, "10min", start, end)]
    two = [r for r in records if usable(r, "2h", start, end)]
    signals = slice(0, 3) if voltage == "v_ln" else slice(3, 6)
    thd = thd_pct(harmonic_pct(ten, signals), THD_MAX_ORDER)
    unb = stack(ten, "v_u2", (1,))
    return {"ts": np.array([float(r["ts"]) for r in ten]), "v": stack(ten, voltage, (3,)), "thd": thd,
            "unbalance": unb[:, 0] if np.isfinite(unb).any() else stack(ten, "v_unbal", (1,))[:, 0],
            "freq": stack(ten, "freq", (1,))[:, 0],
            "ts_2h": np.array([float(r["ts"]) for r in two]), "plt": stack(two, "plt", (3,)),
            "flagged_ts": np.array([float(r["ts"]) for r in records
                                    if r.get("kind") == "10min" and start < float(r["ts"]) <= end
                                    and r.get("flagged")])}
