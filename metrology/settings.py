"""What the metrology pipeline needs to know about the installation: one frozen dataclass.

The firmware builds a ``MetrologySettings`` from the ``[metrology]`` configuration section
(``from_config``); tests and ``meter replay`` build one directly. Nothing here reads files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metrology.signalling import check_frequencies
from metrology.systems import INPUTS

SAMPLE_RATE_HZ = 32000.0          # ADE9000 waveform buffer, WF_SRC=0 (sinc4 output), SPEC §1
SAMPLES_PER_CYCLE = 512           # design requirement, SPEC §1 (JEM L6317)
TRACK_MIN_HZ = 40.0               # the tracker locks from 40 to 70 Hz; SPEC §1 asks for 45..65 Hz
TRACK_MAX_HZ = 70.0
REPORT_MIN_HZ = 42.5              # per-cycle frequency outside this band publishes NaN ("out of range")
REPORT_MAX_HZ = 69.0

SYSTEM_TYPES = ("4W-WYE", "DELTA", "3W-WYE", "SINGLE", "2L", "2L+1n")


@dataclass(frozen=True)
class LossCoefficients:
    """EEI transformer/line loss coefficients, each in % of the rated VA (SPEC §2 Decision)."""
    fe_w_pct: float = 0.0       # iron (no-load) watt loss at Vcal
    cu_w_pct: float = 0.0       # copper (load) watt loss at Ical, line I²R included
    fe_var_pct: float = 0.0     # iron var loss at Vcal
    cu_var_pct: float = 0.0     # copper var loss at Ical


@dataclass(frozen=True)
class LossCompensation:
    enabled: bool = False
    va_rated: float = 0.0           # transformer rating, VA (primary side, total of all phases)
    v_cal: float = 0.0              # L-N voltage at which the iron losses are stated, V (primary)
    i_cal: float = 0.0              # current at which the copper losses are stated, A (primary)
    delivered: LossCoefficients = field(default_factory=LossCoefficients)
    received: LossCoefficients = field(default_factory=LossCoefficients)


@dataclass(frozen=True)
class MetrologySettings:
    system_type: str = "4W-WYE"
    nominal_voltage: float = 230.0      # Udin, L-N (L-L for DELTA and 2L), primary V
    nominal_current: float = 5.0        # In, primary A
    nominal_frequency: float = 50.0     # 50 or 60 Hz: chooses 10- or 12-cycle windows (IEC 61000-4-30)
    sample_rate_hz: float = SAMPLE_RATE_HZ
    pt_primary: float = 1.0
    pt_secondary: float = 1.0
    ct_primary: float = 1.0
    ct_secondary: float = 1.0
    # per-input polarity inversion, burst order IA VA IB VB IC VC IN
    invert: tuple[bool, ...] = (False,) * 7
    # PT/CT phase-angle correction, degrees at nominal frequency, per input (burst order);
    # positive advances the input (compensates a transformer that lags).
    phase_correction_deg: tuple[float, ...] = (0.0,) * 7
    phase_order: str = "ABC"            # or "ACB"
    pf_convention: str = "IEEE"         # IEEE: PF sign + lagging (Q1, Q3); IEC: PF sign = sign of P
    creep_fraction: float = 0.0005      # no creep: |I| below this fraction of In registers nothing
    voltage_present_fraction: float = 0.10   # below this fraction of Udin the voltage is "absent"
    dip_pct: float = 90.0               # event flagging thresholds, % of Udin (IEC 61000-4-30 5.4)
    swell_pct: float = 110.0
    interruption_pct: float = 10.0
    hysteresis_pct: float = 2.0
    rvc_enabled: bool = True            # rapid voltage change (IEC 61000-4-30 5.11), % of Udin
    rvc_threshold_pct: float = 5.0
    rvc_hysteresis_pct: float = 2.5
    transient_enabled: bool = True      # sample against the same sample one cycle earlier
    transient_threshold_pct: float = 10.0   # % of Udin (JEMStar example: 10 V on 120 V secondary)
    transient_consecutive: int = 3
    transient_holdoff_halves: int = 120
    demand_current: float = 0.0         # I_L for TDD (IEEE 519); 0 means "use nominal_current"
    # flicker lamp model (IEC 61000-4-15), 230 or 120 V; 0: by the mains, 120 V at 60 Hz, 230 V at 50 Hz
    flicker_lamp_v: int = 0
    # ripple-control frequencies whose mains signalling voltage is measured (IEC 61000-4-30 5.10), Hz
    signalling_hz: tuple[float, ...] = ()
    losses: LossCompensation = field(default_factory=LossCompensation)

    def __post_init__(self) -> None:
        if self.system_type not in SYSTEM_TYPES:
            raise ValueError(f"system_type {self.system_type!r} is not one of {', '.join(SYSTEM_TYPES)}")
        if self.nominal_frequency not in (50.0, 60.0):
            raise ValueError(f"nominal_frequency must be 50 or 60 Hz, got {self.nominal_frequency}")
        if self.phase_order not in ("ABC", "ACB"):
            raise ValueError(f"phase_order must be ABC or ACB, got {self.phase_order!r}")
        if self.pf_convention not in ("IEEE", "IEC"):
            raise ValueError(f"pf_convention must be IEEE or IEC, got {self.pf_convention!r}")
        if len(self.invert) != 7 or len(self.phase_correction_deg) != 7:
            raise ValueError("invert and phase_correction_deg need one entry per input (7)")
        check_frequencies(self.signalling_hz)
        for name in ("pt_primary", "pt_secondary", "ct_primary", "ct_secondary"):
            if not 1 <= getattr(self, name) <= 999_999:
                raise ValueError(f"{name} must be 1..999999 (SPEC §2), got {getattr(self, name)}")

    @property
    def cycles_per_window(self) -> int:
        """10 cycles at 50 Hz, 12 at 60 Hz (IEC 61000-4-30 5.2: the 200 ms basic interval)."""
        return 10 if self.nominal_frequency == 50.0 else 12

    @property
    def flicker_lamp(self) -> int:
        return self.flicker_lamp_v or (120 if self.nominal_frequency == 60.0 else 230)

    @property
    def pt_ratio(self) -> float:
        return self.pt_primary / self.pt_secondary

    @property
    def ct_ratio(self) -> float:
        return self.ct_primary / self.ct_secondary

    @property
    def tdd_current(self) -> float:
        return self.demand_current or self.nominal_current


def from_config(section: Any, pq: Any = None) -> MetrologySettings:
    """Build settings from the ``[metrology]`` configuration section and the event thresholds of ``[pq]``
    (attribute access; without it the defaults)."""
    losses = LossCompensation(
        enabled=section.loss_compensation,
        va_rated=section.loss_va_rated, v_cal=section.loss_v_cal, i_cal=section.loss_i_cal,
        delivered=LossCoefficients(section.loss_del_fe_w, section.loss_del_cu_w,
                                   section.loss_del_fe_var, section.loss_del_cu_var),
        received=LossCoefficients(section.loss_rec_fe_w, section.loss_rec_cu_w,
                                  section.loss_rec_fe_var, section.loss_rec_cu_var),
    )
    return MetrologySettings(
        system_type=section.system_type,
        nominal_voltage=section.nominal_voltage,
        nominal_current=section.nominal_current,
        nominal_frequency=float(section.nominal_frequency),
        pt_primary=section.pt_primary, pt_secondary=section.pt_secondary,
        ct_primary=section.ct_primary, ct_secondary=section.ct_secondary,
        invert=tuple(ch in section.invert_inputs for ch in INPUTS),
        phase_correction_deg=tuple(float(x) for x in section.phase_correction_deg),
        phase_order=section.phase_order,
        pf_convention=section.pf_convention,
        creep_fraction=section.creep_fraction,
        demand_current=section.tdd_demand_current,
        losses=losses,
        **(_pq_settings(pq) if pq is not None else {}),
    )


def _pq_settings(pq: Any) -> dict[str, Any]:
    return {"dip_pct": pq.sag_pct, "swell_pct": pq.swell_pct, "interruption_pct": pq.interruption_pct,
            "hysteresis_pct": pq.hysteresis_pct, "rvc_enabled": pq.rvc_enabled,
            "rvc_threshold_pct": pq.rvc_threshold_pct, "rvc_hysteresis_pct": pq.rvc_hysteresis_pct,
            "transient_enabled": pq.transient_enabled, "transient_threshold_pct": pq.transient_threshold_pct,
            "transient_consecutive": pq.transient_consecutive, "transient_holdoff_halves": pq.transient_holdoff,
            "signalling_hz": tuple(float(f) for f in pq.signalling_frequencies)}
