"""What the revenue engine publishes in the measurement snapshot.

``totals(engine)`` is the persisted energy registers as one cumulative ``EnergyIncrement``: the
metrology service hands it to ``metrology.publish.publish`` instead of its own since-start totals,
so every energy point of basic.toml and measurements.toml reads the registers that survive a power
failure. ``values(engine)`` adds the demand, TOU, BPR, freeze, test and status points of modbus.toml
and revenue.toml. Units follow ``[revenue] units`` (primary or secondary) and the energy registers
``[revenue] publish_compensated``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from firmware.revenue.demandset import CH
from metrology.energy import EnergyIncrement
from metrology.registers import COMP, QUANTITIES, RATE_SLOT0, TOTAL, UNCOMP, secondary_factor

_POWER_FACTOR = "wh_del"     # power-type quantities scale like Wh


def _scale(engine: Any, quantity: str) -> float:
    s = engine.s
    return secondary_factor(quantity, s.pt_ratio, s.ct_ratio) if s.secondary_units else 1.0


def _rate_point(quantity: str) -> str:
    """``wh_del`` -> ``wh_delivered_rate``; ``varh_q1`` -> ``varh_q1_rate``."""
    base, _, side = quantity.rpartition("_")
    if side in ("del", "rec"):
        return f"{base}_{'delivered' if side == 'del' else 'received'}_rate"
    return f"{quantity}_rate"


def totals(engine: Any) -> EnergyIncrement:
    """The billing energy registers (phases a, b, c, total) as a cumulative increment."""
    c = COMP if engine.s.publish_compensated else UNCOMP
    out = EnergyIncrement(compensated=bool(c))
    values = engine.billing.energy.values
    for q, name in enumerate(QUANTITIES):
        setattr(out, name, values[c, q, :RATE_SLOT0].copy() * _scale(engine, name))
    return out


def _energy(engine: Any, quantity: str, bank_values: Any = None) -> float:
    arr = engine.billing.energy.values if bank_values is None else np.asarray(bank_values)
    return float(arr[UNCOMP, QUANTITIES.index(quantity), TOTAL]) * _scale(engine, quantity)


def values(engine: Any) -> dict[str, Any]:
    """Point name -> value for every revenue point (NaN where there is nothing yet)."""
    nan = math.nan
    s = engine.s
    with engine.mutex:
        d = engine.billing.demand
        present, predicted = d.present(), d.predicted()
        pw = _scale(engine, _POWER_FACTOR)
        amp, volt = _scale(engine, "ah_del"), math.sqrt(_scale(engine, "v2h_del"))
        out: dict[str, Any] = {}
        for side, ch in (("delivered", "p_del"), ("received", "p_rec")):
            i = CH[ch]
            out[f"p_demand_{side}"] = present[i] * pw
            out[f"p_demand_{side}_predicted"] = predicted[i] * pw
            out[f"p_demand_{side}_peak"] = d.peaks.value[i] * pw
            out[f"p_demand_{side}_peak_time"] = d.peaks.time_s[i]
            qi = CH["q_del" if side == "delivered" else "q_rec"]
            out[f"q_demand_{side}"] = present[qi] * pw
            out[f"q_demand_{side}_predicted"] = predicted[qi] * pw
            out[f"q_demand_{side}_peak"] = d.peaks.value[qi] * pw
            out[f"q_demand_{side}_peak_time"] = d.peaks.time_s[qi]
        s_idx = [CH["s_del"], CH["s_rec"]]
        out["s_demand"] = float(present[s_idx].sum()) * pw
        out["s_demand_predicted"] = float(predicted[s_idx].sum()) * pw
        s_peak = int(s_idx[int(np.argmax(d.peaks.value[s_idx]))])
        out["s_demand_peak"] = d.peaks.value[s_peak] * pw
        out["s_demand_peak_time"] = d.peaks.time_s[s_peak]
        for k, ph in enumerate("abc"):
            out[f"i_demand_{ph}"] = present[CH["i_a"] + k] * amp
            out[f"i_demand_{ph}_peak"] = d.peaks.value[CH["i_a"] + k] * amp
            out[f"v_demand_{ph}"] = present[CH["v_a"] + k] * volt
        out["q_demand_quadrant"] = present[CH["q_q1"]:CH["q_q1"] + 4] * pw
        co = d.coincident("p_del")
        out["pf_at_p_demand_peak"] = co["pf"] if d.peaks.value[CH["p_del"]] > 0 else nan
        out["q_at_p_demand_peak"] = (co["q_del"] - co["q_rec"]) * pw
        out["s_at_p_demand_peak"] = (co["s_del"] + co["s_rec"]) * pw
        t = engine.last_utc
        out["demand_interval_remaining"] = d.clock.remaining_s(s.timezone.standard_s(t)) if t else nan
        out["p_demand_delivered_cumulative"] = d.cumulative[CH["p_del"]] * pw
        out["p_demand_delivered_cont_cumulative"] = d.continuous_cumulative()[CH["p_del"]] * pw
        # TOU
        tou = engine.tou
        out["tou_active_rate"] = tou.rate + 1 if tou else nan
        out["tou_active_season"] = tou.season + 1 if tou else nan
        out["tou_calendar_valid"] = float(tou.in_calendar) if tou else nan
        e = engine.billing.energy.values
        for q in QUANTITIES:          # every register family's rate slots: wh_delivered_rate, varh_q1_rate ...
            out[_rate_point(q)] = e[UNCOMP, QUANTITIES.index(q), RATE_SLOT0:] * _scale(engine, q)
        out["p_demand_delivered_peak_rate"] = d.rate_peak[:, CH["p_del"]] * pw
        out["p_demand_delivered_peak_rate_time"] = d.rate_peak_time[:, CH["p_del"]].copy()
        out["s_demand_delivered_peak"] = d.peaks.value[CH["s_del"]] * pw
        out["s_demand_received_peak"] = d.peaks.value[CH["s_rec"]] * pw
        out["p_demand_received_peak_rate"] = d.rate_peak[:, CH["p_rec"]] * pw
        # storage types
        bpr, season, frozen = (engine.snapshots.get(k) for k in ("bpr", "season", "freeze"))
        out["p_demand_delivered_peak_bpr"] = bpr["peaks"][CH["p_del"]] * pw if bpr else nan
        for name, q in (("wh_delivered", "wh_del"), ("wh_received", "wh_rec"), ("varh_delivered", "varh_del"),
                        ("varh_received", "varh_rec")):
            out[f"{name}_bpr"] = _energy(engine, q, bpr["energy"]) if bpr else nan
            out[f"{name}_frozen"] = _energy(engine, q, frozen["energy"]) if frozen else nan
        out["wh_delivered_season"] = _energy(engine, "wh_del", season["energy"]) if season else nan
        wh_d, wh_r = QUANTITIES.index("wh_del"), QUANTITIES.index("wh_rec")
        for period, delta in (("hour", engine.prev_hour), ("day", engine.prev_day)):
            out[f"wh_delivered_prev_{period}"] = delta.previous[wh_d] * pw
            out[f"wh_received_prev_{period}"] = delta.previous[wh_r] * pw
        out["avg_pf_since_bpr"] = engine.average_pf()
        out["bpr_count"] = engine.counters["bpr"]
        out["bpr_time"] = bpr["time"] if bpr else nan
        out["demand_reset_count"] = engine.counters["demand_reset"]
        out["energy_reset_count"] = engine.counters["energy_reset"]
        out["demand_reset_time"] = engine.last_reset_utc if engine.last_reset_utc > 0 else nan
        out["freeze_time"] = frozen["time"] if frozen else nan
        # test mode, status, conditional and incremental energy
        test = engine.test_registers()
        out["test_mode"] = 1.0 if engine.test is not None else 0.0
        for name, key in (("test_wh_delivered", "wh_del"), ("test_wh_received", "wh_rec"),
                          ("test_varh_delivered", "varh_del"), ("test_varh_received", "varh_rec"),
                          ("test_p_demand_delivered", "p_demand_del"), ("test_p_demand_received", "p_demand_rec")):
            out[name] = test.get(key, 0.0) * pw
        out["test_mode_remaining"] = (max(0.0, s.test_mode_timeout_s - ((t or 0.0) - engine.test_activity))
                                      if engine.test is not None else 0.0)
        out["revenue_locked"] = 1.0 if engine.inputs.locked else 0.0
        out["revenue_fault"] = 0.0         # raised by GuardedRevenue while the registers are unavailable
        out["dst_active"] = 1.0 if engine.dst else 0.0
        out["status_word"] = float(engine.status_word())
        out["wh_delivered_conditional"] = engine.conditional.get("wh_del") * pw
        out["wh_received_conditional"] = engine.conditional.get("wh_rec") * pw
        inc = engine.incremental
        out["wh_delivered_incremental"] = inc.previous[wh_d] * pw if inc else nan
        out["wh_delivered_incremental_present"] = inc.present[wh_d] * pw if inc else nan
    return {k: (np.asarray(v, dtype=float) if isinstance(v, np.ndarray) else float(v)) for k, v in out.items()}
