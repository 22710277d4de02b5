"""Energy: four-quadrant integration of every cycle, without blind time, and the cumulative registers.

Each cycle contributes its mean power times its exact duration (from the sample clock); the cycles
tile the stream end to end, so nothing between two cycles is lost. An ``EnergyIncrement`` holds
the energy of an interval (normally one clock second) for phases a, b, c and the total (index 3)
in Wh, varh, VAh, Ah, V²h and I²h; the revenue registers (demand, TOU, persistence) add these up.

Direction (SPEC §2, JEM): delivered W = Q1 + Q4 (W >= 0), received W = Q2 + Q3; delivered var =
Q1 + Q2 (var >= 0), received var = Q3 + Q4. VAh, Ah, V²h and I²h follow the direction of W; Qh
follows its own sign. Net = delivered - received, absolute = delivered + received.

No creep: ``compute_power`` has already zeroed W, var and VA of a phase whose current is below the
creep threshold; Ah and I²h are zeroed the same way here, so nothing registers with the current
circuit open.

Loss compensation (SPEC §2 Decision, EEI form): per phase, with VA_r the rating per phase,
W_loss = (V/Vcal)² %FeW VA_r + (I/Ical)² %CuW VA_r and var_loss = (V/Vcal)⁴ %Fevar VA_r +
(I/Ical)² %Cuvar VA_r, with the delivered or received coefficient set by the direction of W.
Losses are added to W and var, i.e. added to delivered and subtracted from received; the
compensated registers are a second ``EnergyIncrement`` with ``compensated=True``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from metrology.power import PowerValues
from metrology.settings import LossCompensation

S_PER_H = 3600.0


def _z() -> np.ndarray:
    return np.zeros(4)


@dataclass
class EnergyIncrement:
    """Energy of one interval; every array is (4,) for phases a, b, c and the total."""
    start_ns: int = 0
    duration_s: float = 0.0      # time covered by measured cycles
    gap_s: float = 0.0           # time lost to acquisition gaps inside the interval (not integrated)
    filled_s: float = 0.0        # time lost to gaps whose energy came from the chip's accumulators (gapfill)
    compensated: bool = False
    wh_del: np.ndarray = field(default_factory=_z)
    wh_rec: np.ndarray = field(default_factory=_z)
    varh_del: np.ndarray = field(default_factory=_z)
    varh_rec: np.ndarray = field(default_factory=_z)
    varh_q1: np.ndarray = field(default_factory=_z)
    varh_q2: np.ndarray = field(default_factory=_z)
    varh_q3: np.ndarray = field(default_factory=_z)
    varh_q4: np.ndarray = field(default_factory=_z)
    vah_del: np.ndarray = field(default_factory=_z)        # arithmetic VA
    vah_rec: np.ndarray = field(default_factory=_z)
    vah_vect_del: np.ndarray = field(default_factory=_z)   # vectorial VA
    vah_vect_rec: np.ndarray = field(default_factory=_z)
    qh_del: np.ndarray = field(default_factory=_z)
    qh_rec: np.ndarray = field(default_factory=_z)
    ah_del: np.ndarray = field(default_factory=_z)
    ah_rec: np.ndarray = field(default_factory=_z)
    v2h_del: np.ndarray = field(default_factory=_z)
    v2h_rec: np.ndarray = field(default_factory=_z)
    i2h_del: np.ndarray = field(default_factory=_z)
    i2h_rec: np.ndarray = field(default_factory=_z)

    @classmethod
    def quantities(cls) -> tuple[str, ...]:
        return _QUANTITIES

    @classmethod
    def of_rows(cls, rows: np.ndarray, duration_s: float, compensated: bool = False) -> EnergyIncrement:
        """The increment ``cls(duration_s=duration_s, compensated=compensated, **dict(zip(quantities(), rows)))`` of
        ``rows`` (quantities, 4) in ``quantities()`` order, its arrays the rows' views: its attributes set in the
        order the constructor sets them, without the constructor's work per field (a 1-s interval makes two)."""
        inc = cls.__new__(cls)
        attrs = inc.__dict__
        attrs.update(_SCALARS)
        attrs["duration_s"], attrs["compensated"] = duration_s, compensated
        attrs.update(zip(_QUANTITIES, rows))
        return inc

    def add(self, other: EnergyIncrement) -> None:
        """Accumulate ``other`` into this increment (in place)."""
        self.duration_s += other.duration_s
        self.gap_s += other.gap_s
        self.filled_s += other.filled_s
        for name in _QUANTITIES:
            getattr(self, name).__iadd__(getattr(other, name))

    def net(self, base: str) -> np.ndarray:
        """Delivered minus received of ``base`` (e.g. ``"wh"``)."""
        return getattr(self, f"{base}_del") - getattr(self, f"{base}_rec")

    def absolute(self, base: str) -> np.ndarray:
        return getattr(self, f"{base}_del") + getattr(self, f"{base}_rec")



_QUANTITIES = tuple(f.name for f in fields(EnergyIncrement) if f.name.endswith(("_del", "_rec")) or "_q" in f.name)
# the other fields, with their defaults, in their order (every one before the quantities)
_SCALARS = {f.name: f.default for f in fields(EnergyIncrement) if f.name not in _QUANTITIES}
assert list(_SCALARS) + list(_QUANTITIES) == [f.name for f in fields(EnergyIncrement)]

def cycle_energy(pw: PowerValues, v_ms: np.ndarray, i_ms: np.ndarray, live: np.ndarray,
                 duration_s: np.ndarray, compensated: bool = False) -> EnergyIncrement:
    """Sum of the energy of a batch of cycles. ``pw`` arrays are (m, 4); ``v_ms``, ``i_ms``, ``live`` (m, 3)."""
    dt = duration_s[:, None] / S_PER_H                  # hours per cycle
    i_ms = np.where(live, i_ms, 0.0)
    amps = np.stack((np.sqrt(i_ms), v_ms, i_ms))        # Ah, V²h, I²h per phase, then with their totals
    amps = np.concatenate((amps, amps.sum(axis=2, keepdims=True)), axis=2)
    # every quantity whose direction is that of W, as (quantity, cycle, phase) hours
    by_w = np.concatenate((np.stack((pw.p, pw.s_arith, pw.s_vect)), amps)) * dt
    d = pw.p >= 0
    dl = np.where(d, by_w, 0.0).sum(axis=1)
    rc = np.where(d, 0.0, by_w).sum(axis=1)
    q = pw.q
    pos_q = q >= 0
    q_h = q * dt
    qh_h = pw.qh * dt
    pos_qh = pw.qh >= 0
    quadrants = np.stack((d & pos_q, ~d & pos_q, ~d & ~pos_q, d & ~pos_q))
    varh_q = np.where(quadrants, np.abs(q_h), 0.0).sum(axis=1)
    return EnergyIncrement(
        duration_s=float(duration_s.sum()), compensated=compensated,
        wh_del=dl[0], wh_rec=-rc[0],
        varh_del=np.where(pos_q, q_h, 0.0).sum(axis=0), varh_rec=-np.where(pos_q, 0.0, q_h).sum(axis=0),
        varh_q1=varh_q[0], varh_q2=varh_q[1], varh_q3=varh_q[2], varh_q4=varh_q[3],
        vah_del=dl[1], vah_rec=rc[1], vah_vect_del=dl[2], vah_vect_rec=rc[2],
        qh_del=np.where(pos_qh, qh_h, 0.0).sum(axis=0), qh_rec=-np.where(pos_qh, 0.0, qh_h).sum(axis=0),
        ah_del=dl[3], ah_rec=rc[3], v2h_del=dl[4], v2h_rec=rc[4], i2h_del=dl[5], i2h_rec=rc[5],
    )


def loss_power(v_ms: np.ndarray, i_ms: np.ndarray, delivering: np.ndarray, present: np.ndarray,
               losses: LossCompensation) -> tuple[np.ndarray, np.ndarray]:
    """(W_loss, var_loss), each (m, 3), per phase, by the EEI form (see module docstring)."""
    n = max(int(present.sum()), 1)
    va_r = losses.va_rated / n
    v2 = v_ms / losses.v_cal ** 2 if losses.v_cal > 0 else np.zeros_like(v_ms)
    i2 = i_ms / losses.i_cal ** 2 if losses.i_cal > 0 else np.zeros_like(i_ms)
    out = []
    for fe, cu, vpow in (("fe_w_pct", "cu_w_pct", 1), ("fe_var_pct", "cu_var_pct", 2)):
        cd, cr = losses.delivered, losses.received
        fe_pct = np.where(delivering, getattr(cd, fe), getattr(cr, fe))
        cu_pct = np.where(delivering, getattr(cd, cu), getattr(cr, cu))
        out.append(np.where(present, (v2 ** vpow * fe_pct + i2 * cu_pct) / 100 * va_r, 0.0))
    return out[0], out[1]


class EnergyRegisters:
    """Cumulative energy since a start: the increments added up (uncompensated and compensated). The quantities
    of ``total`` and ``compensated`` are the rows of one (2, quantities, 4) array, in ``_QUANTITIES`` order, so
    that ``add_table`` adds an interval's quantities in one operation."""

    def __init__(self) -> None:
        self._table = np.zeros((2, len(_QUANTITIES), 4))
        self.total = EnergyIncrement(**dict(zip(_QUANTITIES, self._table[0])))
        self.compensated = EnergyIncrement(compensated=True, **dict(zip(_QUANTITIES, self._table[1])))

    def add(self, inc: EnergyIncrement, comp: EnergyIncrement | None = None) -> None:
        self.total.add(inc)
        if comp is not None:
            self.compensated.add(comp)

    def add_table(self, inc: EnergyIncrement, comp: EnergyIncrement | None, table: np.ndarray) -> None:
        """``add(inc, comp)`` for increments whose quantities are ``table[0]`` and ``table[1]`` ((2, quantities, 4),
        ``_QUANTITIES`` order; the interval_energy kernel's output): the same sums, element by element."""
        for reg, other in ((self.total, inc), (self.compensated, comp)):
            if other is not None:
                reg.duration_s += other.duration_s
                reg.gap_s += other.gap_s
                reg.filled_s += other.filled_s
        if comp is None:
            self._table[0] += table[0]
        else:
            self._table += table
