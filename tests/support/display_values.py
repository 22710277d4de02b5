"""Published points of a meter under a known load, for drawing the display's screens in tests."""
from __future__ import annotations

import math

import numpy as np


def sample_values() -> dict:
    h = np.full(64, math.nan)
    h[0], h[1] = 0.0, 230.0
    for order, pct in ((3, 1.0), (5, 2.5), (7, 1.2), (9, 0.4), (11, 0.8), (13, 0.5)):
        h[order] = 230.0 * pct / 100.0
    h[[n for n in range(2, 64) if not math.isfinite(h[n])]] = 0.05
    ids = np.zeros(16)
    prio = np.zeros(16)
    state = np.zeros(16)
    ids[:2], prio[:2], state[:2] = (4, 12), (160, 200), (1, 2)
    return {
        "v_an": 230.12, "v_bn": 229.87, "v_cn": 231.02, "i_a": 5.001, "i_b": 4.998, "i_c": 12.5,
        "p_total": 3448.7, "q_total": -12.3, "s_total": 3451.2, "pf_total": 0.9993, "frequency": 50.002,
        "angle_v_bn": -120.0, "angle_v_cn": 120.0, "angle_i_a": -10.0, "angle_i_b": -130.0, "angle_i_c": 110.0,
        "wh_delivered": 1234567.8, "wh_received": 12.5, "varh_delivered": 45678.9, "varh_received": math.nan,
        "vah_delivered": 1240000.0, "p_demand_delivered": 3400.0, "p_demand_delivered_predicted": 3460.0,
        "p_demand_delivered_peak": 5120.0, "q_demand_delivered": 110.0, "s_demand": 3410.0,
        "demand_interval_remaining": 421.0, "harmonics_v_an": h, "thd_v_an": 3.1,
        "alarm_list_id": ids, "alarm_list_priority": prio, "alarm_list_state": state, "alarm_active_count": 1.0,
        "alarm_highest_priority": 200.0, "events_unread": 3.0, "test_wh_delivered": 12.34, "test_wh_received": 0.0,
        "test_varh_delivered": 1.5, "test_p_demand_delivered": 3450.0, "test_mode_remaining": 1500.0,
    }
