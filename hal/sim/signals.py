"""Synthetic three-phase signals with analytic truth, for the simulated board and for conformance tests.

``ThreePhase`` is a pure description: calling ``sample(t)`` returns float64 (n, 7) in the ADE9000
channel order IA, VA, IB, VB, IC, VC, IN, in V and A at the meter's input terminals. The same
parameters always give the same samples (noise comes from ``seed`` and the sample index, see
``sample_range``).

Conventions (the analytic truth follows from them):
- Phase angle: channel value = sqrt(2) * rms * cos(theta(t) + angle), theta(t) = 2*pi * integral of
  f. Va is on the +x axis (angle 0), angles counter-clockwise positive, ABC rotation: Vb at -120 deg,
  Vc at +120 deg. A current angle is absolute; a lagging (inductive) load has ``i_angle = v_angle - phi``
  and PF = cos(phi).
- Harmonic h of a channel: sqrt(2) * rms * m_h * cos(h * (theta(t) + angle) + phase_h), so a balanced
  set gives the textbook sequences (3rd zero, 5th negative, 7th positive); ``m_h`` is relative to
  the fundamental rms, ``phase_h`` in degrees.
- Interharmonic at absolute frequency f_i: sqrt(2) * rms * m * cos(2*pi*f_i*t + (f_i/f_nom) * angle + phase).
- IN is the residual -(ia + ib + ic) unless ``neutral_rms`` gives a separate sinusoid.
- Voltage events scale the voltage envelope of the phases they name (``residual`` 0.7 = 70 % remains);
  transients add volts; flicker multiplies by 1 + (dV/V)/2 * m(t) with m a unit sine or square wave
  (dV/V peak-to-peak, as IEC 61000-4-15 states it).

Truth: ``truth(t)`` returns the steady-state quantities at time t (rms, fundamental phasors, powers,
THD, frequency) computed from the parameters, not from samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from hal.board import CHANNELS

SQRT2 = np.sqrt(2.0)
PHASES = "ABC"
V_ANGLES_DEG = (0.0, -120.0, 120.0)


@dataclass(frozen=True)
class Harmonic:
    order: int
    magnitude: float          # relative to the fundamental rms
    phase_deg: float = 0.0


@dataclass(frozen=True)
class Interharmonic:
    frequency_hz: float
    magnitude: float
    phase_deg: float = 0.0


@dataclass(frozen=True)
class Frequency:
    """Steady (f0), ramp (f0 -> f1 linearly between t0 and t1) or step (f0 -> f1 at t0), phase-continuous."""

    f0: float = 50.0
    kind: str = "steady"      # "steady", "ramp", "step"
    f1: float = 50.0
    t0: float = 0.0
    t1: float = 0.0

    def at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if self.kind == "steady":
            return np.full_like(t, self.f0)
        if self.kind == "step":
            return np.where(t < self.t0, self.f0, self.f1)
        frac = np.clip((t - self.t0) / max(self.t1 - self.t0, 1e-12), 0.0, 1.0)
        return self.f0 + (self.f1 - self.f0) * frac

    def cycles(self, t: np.ndarray) -> np.ndarray:
        """Integral of f from 0 to t (cycles), exact for each profile."""
        t = np.asarray(t, dtype=np.float64)
        if self.kind == "steady":
            return self.f0 * t
        if self.kind == "step":
            return np.where(t < self.t0, self.f0 * t, self.f0 * self.t0 + self.f1 * (t - self.t0))
        t0, t1 = self.t0, max(self.t1, self.t0 + 1e-12)
        slope = (self.f1 - self.f0) / (t1 - t0)
        before = self.f0 * np.minimum(t, t0)
        tr = np.clip(t, t0, t1) - t0
        during = self.f0 * tr + 0.5 * slope * tr**2
        after = self.f1 * np.maximum(t - t1, 0.0)
        return before + during + after


@dataclass(frozen=True)
class VoltageEvent:
    """Sag (dip), swell or interruption: the named phases' voltage envelope becomes ``residual``.

    With ``point_on_wave_deg`` the event starts at the first instant at or after ``start_s`` where
    phase A's angle theta(t) + 0 equals that angle (mod 360), and ends a whole number of half
    cycles later, as test generators do.
    """

    kind: str                 # "sag", "swell", "interruption"
    residual: float           # 0.7 sag, 1.2 swell, 0.0 interruption
    start_s: float
    duration_s: float
    phases: str = "ABC"
    point_on_wave_deg: float | None = None


@dataclass(frozen=True)
class RapidVoltageChange:
    """Step of the voltage envelope by ``delta`` (fraction, +-) over ``ramp_s`` starting at ``start_s``; persists."""

    delta: float
    start_s: float
    ramp_s: float = 0.0
    phases: str = "ABC"


@dataclass(frozen=True)
class Transient:
    """Oscillatory: peak * exp(-dt/tau) * sin(2 pi f dt). Impulsive: peak * (exp(-dt/fall) - exp(-dt/rise)) / norm."""

    kind: str                 # "oscillatory" or "impulsive"
    peak_v: float
    start_s: float
    phases: str = "A"
    frequency_hz: float = 3000.0      # oscillatory
    tau_s: float = 0.5e-3             # oscillatory decay
    rise_s: float = 1.2e-6 / 2.47     # impulsive (1.2/50 us shape constants)
    fall_s: float = 50e-6 / 0.69


@dataclass(frozen=True)
class Flicker:
    """Amplitude modulation of the voltage: 1 + depth/2 * m(t), m a unit sine or square at ``frequency_hz``."""

    depth: float              # dV/V, peak to peak (e.g. 0.01 = 1 %)
    frequency_hz: float = 8.8
    shape: str = "sine"       # "sine" or "rectangular"
    start_s: float = 0.0
    duration_s: float = float("inf")
    phases: str = "ABC"


@dataclass(frozen=True)
class DayLoadProfile:
    """A commercial building over a day: current level, power factor and harmonic content vs time of day.

    ``time_scale`` compresses the day (3600 = a day passes in 24 s). ``start_hour`` is the time of day at t=0.
    """

    base: float = 0.25        # night load, fraction of peak
    start_hour: float = 8.0
    time_scale: float = 1.0
    seed: int = 7

    _HOURS: ClassVar[np.ndarray] = np.array([0, 5, 7, 9, 12, 13, 14, 17, 19, 22, 24], dtype=np.float64)
    _LEVEL: ClassVar[np.ndarray] = np.array([0.0, 0.0, 0.6, 1.0, 0.95, 0.8, 0.97, 0.9, 0.4, 0.05, 0.0])
    _PF_ANGLE: ClassVar[np.ndarray] = np.array([12, 12, 25, 32, 30, 28, 31, 30, 20, 14, 12], dtype=np.float64)   # degrees lag
    _ELECTRONIC: ClassVar[np.ndarray] = np.array([0.6, 0.6, 0.5, 0.35, 0.4, 0.45, 0.35, 0.4, 0.55, 0.6, 0.6])    # share of SMPS load

    def hour(self, t: np.ndarray) -> np.ndarray:
        return (self.start_hour + np.asarray(t, dtype=np.float64) * self.time_scale / 3600.0) % 24.0

    def level(self, t: np.ndarray) -> np.ndarray:
        h = self.hour(t)
        return self.base + (1.0 - self.base) * np.interp(h, self._HOURS, self._LEVEL)

    def angle_deg(self, t: np.ndarray) -> np.ndarray:
        return np.interp(self.hour(t), self._HOURS, self._PF_ANGLE)

    def harmonics(self, t: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Current harmonics of switch-mode supplies, scaled by the electronic share (rel. magnitudes)."""
        share = np.interp(self.hour(t), self._HOURS, self._ELECTRONIC)
        return [(3, 0.30 * share), (5, 0.18 * share), (7, 0.09 * share), (9, 0.04 * share), (11, 0.03 * share)]


@dataclass(frozen=True)
class ThreePhase:
    """Per-phase fundamental, harmonics, interharmonics, frequency profile, DC, noise, events and load profile."""

    v_rms: tuple[float, float, float] = (230.0, 230.0, 230.0)
    v_angle_deg: tuple[float, float, float] = V_ANGLES_DEG
    i_rms: tuple[float, float, float] = (5.0, 5.0, 5.0)
    i_angle_deg: tuple[float, float, float] = V_ANGLES_DEG
    frequency: Frequency = field(default_factory=Frequency)
    nominal_hz: float = 50.0
    v_harmonics: tuple[Harmonic, ...] = ()
    i_harmonics: tuple[Harmonic, ...] = ()
    v_interharmonics: tuple[Interharmonic, ...] = ()
    i_interharmonics: tuple[Interharmonic, ...] = ()
    dc: tuple[float, ...] = (0.0,) * 7                   # per channel, terminal units
    noise_rms: tuple[float, ...] = (0.0,) * 7            # per channel, terminal units
    neutral_rms: float | None = None                     # None: IN = -(IA+IB+IC)
    events: tuple[VoltageEvent | RapidVoltageChange | Transient | Flicker, ...] = ()
    load_profile: DayLoadProfile | None = None
    seed: int = 1

    # ------------------------------------------------------------------ samples
    def theta(self, t: np.ndarray) -> np.ndarray:
        return 2 * np.pi * self.frequency.cycles(t)

    def sample(self, t: np.ndarray | Sequence[float]) -> np.ndarray:
        """Noise-free samples at times ``t`` (s): shape (n,) -> (n, 7); shape (n, 7) -> each column its own time."""
        t = np.asarray(t, dtype=np.float64)
        per_channel = t.ndim == 2
        out = np.empty((t.shape[0], 7))
        for p in range(3):
            tv = t[:, 2 * p + 1] if per_channel else t
            ti = t[:, 2 * p] if per_channel else t
            out[:, 2 * p + 1] = self._voltage(p, tv)
            out[:, 2 * p] = self._current(p, ti)
        if self.neutral_rms is None:
            out[:, 6] = -(out[:, 0] + out[:, 2] + out[:, 4])
        else:
            tn = t[:, 6] if per_channel else t
            out[:, 6] = SQRT2 * self.neutral_rms * np.cos(self.theta(tn))
        return out + np.asarray(self.dc, dtype=np.float64)

    def noise(self, start_index: int, n: int) -> np.ndarray:
        """Gaussian noise (n, 7) for sample indices start..start+n, the same whoever asks and in what chunks."""
        sigma = np.asarray(self.noise_rms, dtype=np.float64)
        if not sigma.any() or n <= 0:
            return np.zeros((max(n, 0), 7))
        block = 4096
        first, last = start_index // block, (start_index + n - 1) // block
        parts = [np.random.default_rng([self.seed, b]).normal(size=(block, 7)) for b in range(first, last + 1)]
        z = np.concatenate(parts)[start_index - first * block:start_index - first * block + n]
        return z * sigma

    def sample_range(self, start_index: int, n: int, rate_hz: float) -> np.ndarray:
        """Samples start..start+n at ``rate_hz`` from t=0, noise included."""
        t = (start_index + np.arange(n)) / rate_hz
        return self.sample(t) + self.noise(start_index, n)

    def _voltage(self, p: int, t: np.ndarray) -> np.ndarray:
        ang = np.deg2rad(self.v_angle_deg[p])
        th = self.theta(t)
        wave = np.cos(th + ang)
        for h in self.v_harmonics:
            wave = wave + h.magnitude * np.cos(h.order * (th + ang) + np.deg2rad(h.phase_deg))
        for ih in self.v_interharmonics:
            wave = wave + ih.magnitude * np.cos(2 * np.pi * ih.frequency_hz * t
                                                + ih.frequency_hz / self.nominal_hz * ang + np.deg2rad(ih.phase_deg))
        v = SQRT2 * self.v_rms[p] * wave * self.envelope(p, t)
        return v + self._transients(p, t)

    def _current(self, p: int, t: np.ndarray) -> np.ndarray:
        th = self.theta(t)
        ang = np.deg2rad(self.i_angle_deg[p])
        level: np.ndarray | float = 1.0
        harmonics: list[tuple[int, Any, float]] = [(h.order, h.magnitude, np.deg2rad(h.phase_deg))
                                                   for h in self.i_harmonics]
        if self.load_profile is not None:
            level = self.load_profile.level(t)
            ang = np.deg2rad(self.v_angle_deg[p] - self.load_profile.angle_deg(t))
            harmonics += [(order, mag, 0.0) for order, mag in self.load_profile.harmonics(t)]
        wave = np.cos(th + ang)
        for order, mag, ph in harmonics:
            wave = wave + mag * np.cos(order * (th + ang) + ph)
        for ih in self.i_interharmonics:
            wave = wave + ih.magnitude * np.cos(2 * np.pi * ih.frequency_hz * t
                                                + ih.frequency_hz / self.nominal_hz * ang + np.deg2rad(ih.phase_deg))
        return SQRT2 * self.i_rms[p] * level * wave

    # ------------------------------------------------------------------ events
    def event_window(self, ev: VoltageEvent) -> tuple[float, float]:
        """Actual start and end (s) of a sag/swell/interruption, after point-on-wave alignment."""
        start = ev.start_s
        if ev.point_on_wave_deg is not None:
            f = float(self.frequency.at(np.array([start]))[0])
            cyc = float(self.frequency.cycles(np.array([start]))[0])
            want = ev.point_on_wave_deg / 360.0
            start += ((want - cyc) % 1.0) / f
            half = 0.5 / f
            return start, start + max(1, round(ev.duration_s / half)) * half
        return start, start + ev.duration_s

    def envelope(self, p: int, t: np.ndarray) -> np.ndarray:
        """Voltage envelope of phase p (1.0 = nominal) from sags, swells, interruptions, RVC and flicker."""
        env = np.ones_like(np.asarray(t, dtype=np.float64))
        name = PHASES[p]
        for ev in self.events:
            if name not in getattr(ev, "phases", ""):
                continue
            if isinstance(ev, VoltageEvent):
                a, b = self.event_window(ev)
                env = np.where((t >= a) & (t < b), env * ev.residual, env)
            elif isinstance(ev, RapidVoltageChange):
                frac = np.clip((t - ev.start_s) / ev.ramp_s, 0.0, 1.0) if ev.ramp_s > 0 else (t >= ev.start_s) * 1.0
                env = env * (1.0 + ev.delta * frac)
            elif isinstance(ev, Flicker):
                on = (t >= ev.start_s) & (t < ev.start_s + ev.duration_s)
                ph = 2 * np.pi * ev.frequency_hz * (t - ev.start_s)
                m = np.sin(ph) if ev.shape == "sine" else np.where(np.sin(ph) >= 0, 1.0, -1.0)
                env = np.where(on, env * (1.0 + ev.depth / 2.0 * m), env)
        return env

    def _transients(self, p: int, t: np.ndarray) -> np.ndarray:
        out = np.zeros_like(np.asarray(t, dtype=np.float64))
        for ev in self.events:
            if not isinstance(ev, Transient) or PHASES[p] not in ev.phases:
                continue
            dt = t - ev.start_s
            on = dt >= 0
            d = np.where(on, dt, 0.0)
            if ev.kind == "oscillatory":
                out += np.where(on, ev.peak_v * np.exp(-d / ev.tau_s) * np.sin(2 * np.pi * ev.frequency_hz * d), 0.0)
            else:
                tp = np.log(ev.fall_s / ev.rise_s) * ev.rise_s * ev.fall_s / (ev.fall_s - ev.rise_s)
                norm = np.exp(-tp / ev.fall_s) - np.exp(-tp / ev.rise_s)
                out += np.where(on, ev.peak_v * (np.exp(-d / ev.fall_s) - np.exp(-d / ev.rise_s)) / norm, 0.0)
        return out

    # ------------------------------------------------------------------ analytic truth
    def truth(self, t: float) -> dict[str, object]:
        """Steady-state quantities at time t from the parameters (not from samples).

        Per phase (keys ``a``, ``b``, ``c``): v_rms, i_rms, v1/i1 (complex rms fundamental phasors, angle in
        radians with Va on +x), p (W, all harmonics), p1 and q1 (fundamental W and var), s (V*I), pf (p/s),
        thd_v and thd_i (harmonics / fundamental, interharmonics excluded). Also ``frequency``. Transients,
        flicker ripple and noise are left out; the envelope (sag, swell, RVC) is included.
        """
        tt = np.array([float(t)])
        out: dict[str, object] = {"frequency": float(self.frequency.at(tt)[0])}
        for p, name in enumerate(PHASES):
            env = float(self._steady_envelope(p, tt)[0])
            v1m = self.v_rms[p] * env
            va = np.deg2rad(self.v_angle_deg[p])
            ia = np.deg2rad(self.i_angle_deg[p])
            level, i_harm = 1.0, [(h.order, h.magnitude, np.deg2rad(h.phase_deg)) for h in self.i_harmonics]
            if self.load_profile is not None:
                level = float(self.load_profile.level(tt)[0])
                ia = np.deg2rad(self.v_angle_deg[p] - float(self.load_profile.angle_deg(tt)[0]))
                i_harm += [(o, float(m[0]), 0.0) for o, m in self.load_profile.harmonics(tt)]
            i1m = self.i_rms[p] * level
            v_h = {h.order: v1m * h.magnitude * np.exp(1j * (h.order * va + np.deg2rad(h.phase_deg)))
                   for h in self.v_harmonics}
            i_h: dict[int, complex] = {}
            for order, mag, ph in i_harm:
                i_h[order] = i_h.get(order, 0) + i1m * mag * np.exp(1j * (order * ia + ph))
            v1, i1 = v1m * np.exp(1j * va), i1m * np.exp(1j * ia)
            p1 = float((v1 * np.conj(i1)).real)
            q1 = float((v1 * np.conj(i1)).imag)
            p_h = sum(float((v_h[h] * np.conj(i_h[h])).real) for h in v_h if h in i_h)
            v_ih = sum((v1m * ih.magnitude) ** 2 for ih in self.v_interharmonics)
            i_ih = sum((i1m * ih.magnitude) ** 2 for ih in self.i_interharmonics)
            v_rms = np.sqrt(v1m**2 + sum(abs(x) ** 2 for x in v_h.values()) + v_ih + self.dc[2 * p + 1] ** 2)
            i_rms = np.sqrt(i1m**2 + sum(abs(x) ** 2 for x in i_h.values()) + i_ih + self.dc[2 * p] ** 2)
            s = float(v_rms * i_rms)
            out[name.lower()] = {
                "v_rms": float(v_rms), "i_rms": float(i_rms), "v1": complex(v1), "i1": complex(i1),
                "p": p1 + p_h, "p1": p1, "q1": q1, "s": s, "pf": (p1 + p_h) / s if s else float("nan"),
                "thd_v": float(np.sqrt(sum(abs(x) ** 2 for x in v_h.values())) / v1m) if v1m else float("nan"),
                "thd_i": float(np.sqrt(sum(abs(x) ** 2 for x in i_h.values())) / i1m) if i1m else float("nan"),
            }
        return out

    def _steady_envelope(self, p: int, t: np.ndarray) -> np.ndarray:
        steady = ThreePhase(events=tuple(e for e in self.events if not isinstance(e, (Flicker, Transient))))
        return steady.envelope(p, t)


# The wirings a meter's inputs can be connected in: the system types of ``hal.ade9000.WIRING_VCONSEL``.
THREE_WIRE = ("3W-WYE", "DELTA")


def terminals(x: np.ndarray, wiring: str) -> np.ndarray:
    """What the meter's seven inputs (IA VA IB VB IC VC IN, columns of ``x``: an installation's phase currents and
    voltages to neutral, and its neutral current) see when the meter is wired as ``wiring``:

    ========  =============================================================================================
    4W-WYE    everything as it is (DEMO too)
    3W-WYE    no neutral: the phase currents lose their zero-sequence part (it has no return), IN open
    DELTA     no neutral as in 3W-WYE; VA = V(A-B), VC = V(C-B) (line B is the voltage reference), VB open
    SINGLE    VA, IA of phase A; IN carries IA back
    2L        VA = V(A-B), IA (it returns on line B); the other inputs open
    2L+1n     VA, VB, IA, IB of phases A and B; IN carries both back
    ========  =============================================================================================
    """
    ia, va, ib, vb, ic, vc, i_n = (x[:, k] for k in range(7))
    if wiring in ("4W-WYE", "DEMO"):
        return x
    out = np.zeros_like(x)
    if wiring in THREE_WIRE:
        i0 = (ia + ib + ic) / 3.0
        out[:, 0], out[:, 2], out[:, 4] = ia - i0, ib - i0, ic - i0
        if wiring == "DELTA":
            out[:, 1], out[:, 5] = va - vb, vc - vb
        else:
            out[:, 1], out[:, 3], out[:, 5] = va, vb, vc
    elif wiring == "SINGLE":
        out[:, 0], out[:, 1], out[:, 6] = ia, va, -ia
    elif wiring == "2L":
        out[:, 0], out[:, 1] = ia, va - vb
    elif wiring == "2L+1n":
        out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 6] = ia, va, ib, vb, -(ia + ib)
    else:
        raise ValueError(f"unknown wiring {wiring!r}")
    return out


@dataclass(frozen=True)
class Connected:
    """An installation (a ``ThreePhase``) as a meter wired as ``wiring`` sees it (``terminals``): the simulated
    board's input follows the configured system type, as a meter's connection follows its installation.
    ``truth`` and ``noise`` are the installation's (noise is per input, whatever it is connected to)."""

    source: ThreePhase
    wiring: str = "4W-WYE"

    def __post_init__(self) -> None:
        terminals(np.zeros((1, 7)), self.wiring)        # an unknown wiring is refused here, not at the first frame

    def sample(self, t: np.ndarray | Sequence[float]) -> np.ndarray:
        return terminals(self.source.sample(t), self.wiring)

    def noise(self, start_index: int, n: int) -> np.ndarray:
        return self.source.noise(start_index, n)

    def sample_range(self, start_index: int, n: int, rate_hz: float) -> np.ndarray:
        t = (start_index + np.arange(n)) / rate_hz
        return self.sample(t) + self.noise(start_index, n)

    def truth(self, t: float) -> dict[str, object]:
        return self.source.truth(t)


def day_profile(time_scale: float = 1.0, seed: int = 7, v_rms: float = 230.0, i_peak: float = 5.0,
                nominal_hz: float = 50.0) -> ThreePhase:
    """The default load of ``make run``: 230 V, up to 5 A, a commercial day with changing PF and harmonics."""
    return ThreePhase(v_rms=(v_rms,) * 3, i_rms=(i_peak,) * 3, frequency=Frequency(nominal_hz),
                      nominal_hz=nominal_hz,
                      v_harmonics=(Harmonic(3, 0.01), Harmonic(5, 0.025, 180.0), Harmonic(7, 0.012)),
                      load_profile=DayLoadProfile(time_scale=time_scale, seed=seed), seed=seed)


def steady(v_rms: float = 230.0, i_rms: float = 5.0, pf_angle_deg: float = 0.0, nominal_hz: float = 50.0,
           seed: int = 1) -> ThreePhase:
    """A balanced steady load; ``pf_angle_deg`` > 0 means current lags (inductive)."""
    return ThreePhase(v_rms=(v_rms,) * 3, i_rms=(i_rms,) * 3,
                      i_angle_deg=(V_ANGLES_DEG[0] - pf_angle_deg, V_ANGLES_DEG[1] - pf_angle_deg,
                                   V_ANGLES_DEG[2] - pf_angle_deg),
                      frequency=Frequency(nominal_hz), nominal_hz=nominal_hz, seed=seed)


__all__ = ["CHANNELS", "Connected", "DayLoadProfile", "Flicker", "Frequency", "Harmonic", "Interharmonic",
           "RapidVoltageChange", "ThreePhase", "Transient", "VoltageEvent", "day_profile", "steady", "terminals"]
