"""Under- and over-deviation of the supply voltage (IEC 61000-4-30:2015 Annex D, clause 5.12 of the 2008 edition).

The basic values are the 10/12-cycle r.m.s. voltages Urms,i of each channel (L-N, L-L where the system has no
neutral), clipped at the declared voltage Udin:

    Uunder,i = min(Urms,i, Udin)        Uover,i = max(Urms,i, Udin)

and over an aggregation interval of n such values

    Uunder = (Udin - sqrt(sum Uunder,i² / n)) / Udin * 100 %
    Uover  = (sqrt(sum Uover,i² / n) - Udin) / Udin * 100 %

Both are >= 0; a voltage that stays above Udin has no under-deviation, one that stays below has no
over-deviation, and one that swings both ways has both. The clipped values are r.m.s.-type quantities
(``v_under``, ``v_over`` in ``metrology.intervals.RMS_KEYS``), so the 150/180-cycle, 10-min and 2-h
aggregations make the square-root mean of squares; ``annotate`` turns each aggregate into the two
percentages (``under_dev``, ``over_dev``, one per channel).
"""
from __future__ import annotations

import numpy as np


WINDOW_KEYS = ("v_under", "v_over", "under_dev", "over_dev")     # the values a window has of them, in order


def window_values(v_rms: np.ndarray, udin_v: float) -> dict[str, np.ndarray]:
    """The clipped 10/12-cycle values of the channels ``v_rms`` (V; NaN for an absent channel), and the window's
    own ``under_dev`` and ``over_dev`` (what ``annotate`` adds), in one buffer."""
    out = np.empty((4, np.shape(v_rms)[0]))
    under, over, under_dev, over_dev = out
    np.minimum(v_rms, udin_v, out=under)
    np.maximum(v_rms, udin_v, out=over)
    np.subtract(udin_v, under, out=under_dev)
    np.subtract(over, udin_v, out=over_dev)
    dev = out[2:]
    dev /= udin_v
    dev *= 100.0
    return dict(zip(WINDOW_KEYS, out))


def annotate(values: dict[str, np.ndarray], udin_v: float) -> None:
    """Add ``under_dev`` and ``over_dev`` (% of Udin) to ``values`` from its (aggregated) ``v_under``/``v_over``."""
    if "v_under" not in values:
        return
    values["under_dev"] = (udin_v - values["v_under"]) / udin_v * 100.0
    values["over_dev"] = (values["v_over"] - udin_v) / udin_v * 100.0
