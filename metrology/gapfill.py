"""Energy of lost samples from the chip's own accumulators: overlap, apportioning, four-quadrant split.

The ADE9000 accumulates Wh, varh and VAh per phase over its energy interval (EGYRDY) whether or not the
host reads every waveform page. Each record of one interval names the sample-stream frames it covers
(``[start_index, end_index)``), so the energy of frames the sample path never measured (a *hole* between
two measured cycles: the lost frames plus the partial cycles the pipeline drops on either side) is the
energy of the records that overlap the hole, each in proportion to the overlap. Within one record the
load is taken as steady: the error is the change of load inside the record times the hole's share of it.

Each record's share becomes a mean power over the overlap and goes through ``metrology.energy.cycle_energy``
exactly like one measured cycle, so direction, quadrants and totals follow the sample path's rules: the
quadrant of a phase from the signs of its Wh and varh, the total's from the signs of their sums, VAh with
the direction of Wh. Chip energies are at the input terminals; ``phase_gain`` takes them to primary units
with the polarity the pipeline applies (PT ratio x CT ratio, inverted inputs). Apparent energy is the
system's arithmetic VAh, each phase current against its phase voltage: ``apparent_gain`` takes the chip's
there (a DELTA meter's chip meters line voltages, √3 times the phase voltages the sample path takes).

The chip keeps no Ah, V²h or I²h, and no loss terms: over a hole these take the rate of a reference
interval the sample path measured (the same second, or the last one measured before it).

No creep: a phase whose share carries less apparent power than the no-load level (``no_load_va``: the creep
current at the nominal phase voltage, the sample path's creep rule in power terms) registers nothing. With the
current circuit open the chip still accumulates its noise floor; that is not energy.

Pure computation: records are duck-typed (``start_index``, ``end_index``, ``wh``, ``varh``, ``vah``), no
I/O, no clock.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from metrology.crosscheck import nominal_flow
from metrology.energy import S_PER_H, EnergyIncrement, cycle_energy
from metrology.power import PowerValues
from metrology.settings import MetrologySettings
from metrology.systems import INPUTS, wiring

NS_PER_S = 1_000_000_000
_SQRT3_2 = math.sqrt(3) / 2


@dataclass(frozen=True)
class ChipShare:
    """The part of one chip record that falls inside a frame range, in the record's (terminal) units."""
    frames: float             # frames of the overlap
    wh: np.ndarray            # (3,) per phase, signed
    varh: np.ndarray          # (3,) per phase, signed
    vah: np.ndarray           # (3,) per phase


def overlap(lo: float, hi: float, start: float, end: float) -> float:
    """Length of ``[lo, hi) ∩ [start, end)``, 0 when they do not meet."""
    return max(0.0, min(hi, end) - max(lo, start))


def apportion(records: Iterable[Any], lo: float, hi: float) -> list[ChipShare]:
    """The shares of ``records`` in frames ``[lo, hi)``: each record's energy x overlap / record length."""
    out = []
    for r in records:
        length = r.end_index - r.start_index
        ov = overlap(lo, hi, r.start_index, r.end_index)
        if length <= 0 or ov <= 0:
            continue
        f = ov / length
        out.append(ChipShare(ov, np.asarray(r.wh, float) * f, np.asarray(r.varh, float) * f,
                             np.asarray(r.vah, float) * f))
    return out


def split_by_second(lo: float, hi: float, origin_ns: float, fs: float) -> list[tuple[int, float, float]]:
    """``[lo, hi)`` cut at whole clock seconds: (second, lo, hi) with frame ``n`` at ``origin_ns + n/fs``."""
    out = []
    at = lo
    while at < hi:
        key = math.floor((origin_ns + at * NS_PER_S / fs) / NS_PER_S)
        boundary = ((key + 1) * NS_PER_S - origin_ns) * fs / NS_PER_S
        end = min(hi, boundary) if boundary > at else hi
        out.append((key, at, end))
        at = end
    return out


def phase_gain(settings: MetrologySettings) -> np.ndarray:
    """(3,) factor from the chip's per-phase terminal energy to the pipeline's primary energy of that phase:
    PT ratio x CT ratio, negative where one of the phase's V and I inputs is inverted, 0 where the phase is no
    element of the system type's meter (``Wiring.elements``: phase B of DELTA, the phases a system lacks)."""
    inv = dict(zip(INPUTS, settings.invert))
    sign = np.array([-1.0 if inv[f"V{p}"] != inv[f"I{p}"] else 1.0 for p in "ABC"])
    present = np.asarray(wiring(settings.system_type).elements, dtype=float)
    return settings.pt_ratio * settings.ct_ratio * sign * present


def apparent_gain(settings: MetrologySettings) -> np.ndarray:
    """(3,) factor from the chip's per-phase terminal VAh to the system's apparent energy (primary VAh):
    PT ratio x CT ratio x ``Wiring.chip_va`` (a DELTA meter's chip phases meter line voltages: 1/√3 on each of
    the three, phase B included; elsewhere the elements')."""
    return settings.pt_ratio * settings.ct_ratio * np.asarray(wiring(settings.system_type).chip_va, dtype=float)


def no_load_va(settings: MetrologySettings) -> float:
    """Apparent power per phase (primary VA) below which a phase registers nothing: creep current x Udin."""
    return settings.creep_fraction * nominal_flow(settings) / max(wiring(settings.system_type).n_phases, 1)


def _rates(ref: EnergyIncrement | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean V² and I² per phase over a reference interval (zeros without one)."""
    if ref is None or ref.duration_s <= 0:
        return np.zeros(3), np.zeros(3)
    per_s = S_PER_H / ref.duration_s
    return (ref.v2h_del + ref.v2h_rec)[:3] * per_s, (ref.i2h_del + ref.i2h_rec)[:3] * per_s


def _loss_rates(ref: EnergyIncrement | None, ref_comp: EnergyIncrement | None) -> tuple[np.ndarray, np.ndarray]:
    """Loss power per phase (W, var) of a reference interval: compensated minus uncompensated net flow."""
    if ref is None or ref_comp is None or ref.duration_s <= 0:
        return np.zeros(3), np.zeros(3)
    per_s = S_PER_H / ref.duration_s
    return ((ref_comp.net("wh") - ref.net("wh"))[:3] * per_s,
            (ref_comp.net("varh") - ref.net("varh"))[:3] * per_s)


def _power(p3: np.ndarray, q3: np.ndarray, s3: np.ndarray) -> PowerValues:
    """Per-phase (m, 3) flows to the (m, 4) ``PowerValues`` ``cycle_energy`` integrates (totals appended)."""
    p4, q4, s4 = (np.concatenate((x, x.sum(axis=1, keepdims=True)), axis=1) for x in (p3, q3, s3))
    return PowerValues(p=p4, q=q4, s_arith=s4, s_vect=np.hypot(p4, q4), pf=None, dpf=None, quadrant=None,
                       qh=p4 / 2 + q4 * _SQRT3_2, p1=p4)


def _on_elements(s3: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Apparent power (m, 3) of phases that are no element (DELTA's B) moved onto the elements in proportion to
    theirs (equally where they have none), so that it takes the direction of the elements' Wh; totals kept."""
    element = np.abs(gain) > 0
    if element.all() or not element.any():
        return s3
    rest = np.where(element, 0.0, s3).sum(axis=1, keepdims=True)
    own = np.where(element, s3, 0.0)
    mass = own.sum(axis=1, keepdims=True)
    share = np.where(mass > 0, own / np.where(mass > 0, mass, 1.0), element / element.sum())
    return own + rest * share


def fill_energy(shares: list[ChipShare], fs: float, gain: np.ndarray, reference: EnergyIncrement | None = None,
                reference_comp: EnergyIncrement | None = None, compensated: bool = False,
                no_load: float = 0.0, apparent: np.ndarray | None = None
                ) -> tuple[EnergyIncrement, EnergyIncrement | None]:
    """Energy of ``shares`` in primary units as an ``EnergyIncrement`` (and its loss-compensated twin when
    ``compensated``); ``duration_s`` and ``filled_s`` are the time the shares cover. ``apparent``: the chip's
    VAh to the system's (``apparent_gain``; None: ``|gain|``). A phase of a share below ``no_load`` VA
    (``no_load_va``) registers nothing."""
    if not shares:
        return EnergyIncrement(), (EnergyIncrement(compensated=True) if compensated else None)
    dt = np.array([s.frames / fs for s in shares])
    per_s = S_PER_H / dt[:, None]
    s3 = np.stack([s.vah for s in shares]) * (np.abs(gain) if apparent is None else apparent) * per_s
    loaded = s3 > no_load
    p3 = np.where(loaded, np.stack([s.wh for s in shares]) * gain * per_s, 0.0)
    q3 = np.where(loaded, np.stack([s.varh for s in shares]) * gain * per_s, 0.0)
    s3 = _on_elements(np.where(loaded, s3, 0.0), gain)
    v_ms, i_ms = (np.broadcast_to(x, p3.shape) for x in _rates(reference))
    live = np.broadcast_to(np.abs(gain) > 0, p3.shape) & (i_ms > 0) & loaded
    inc = cycle_energy(_power(p3, q3, s3), v_ms, i_ms, live, dt)
    inc.filled_s = inc.duration_s
    if not compensated:
        return inc, None
    w_loss, var_loss = _loss_rates(reference, reference_comp)
    present = np.abs(gain) > 0
    p3c = p3 + np.where(present, w_loss, 0.0)
    q3c = q3 + np.where(present, var_loss, 0.0)
    comp = cycle_energy(_power(p3c, q3c, s3), v_ms, i_ms, live, dt, compensated=True)
    comp.filled_s = comp.duration_s
    return inc, comp


def frames_covered(shares: list[ChipShare]) -> float:
    return float(sum(s.frames for s in shares))
