"""Analytic three-phase test signals with exact truth, shared by the metrology unit and conformance tests.

A signal is described by per-channel harmonic tables; samples are evaluated in closed form at
integer sample indices, so the expected RMS, power and harmonics follow from the table alone.
Frequency ramps are evaluated through the phase integral, so zero-crossing times are exact too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FS = 32000.0
INPUTS = ("IA", "VA", "IB", "VB", "IC", "VC", "IN")


@dataclass
class Channel:
    # (order, RMS amplitude, phase degrees of the cosine at t = 0 in units of that harmonic)
    parts: list[tuple[float, float, float]] = field(default_factory=list)

    def rms(self) -> float:
        return math.sqrt(sum(a * a for _, a, _ in self.parts))


@dataclass
class ThreePhase:
    f0: float = 50.0
    ramp_hz_per_s: float = 0.0
    channels: dict[str, Channel] = field(default_factory=dict)

    def phase(self, n: np.ndarray) -> np.ndarray:
        """Fundamental phase in radians at sample indices ``n``."""
        t = n / FS
        return 2 * math.pi * (self.f0 * t + 0.5 * self.ramp_hz_per_s * t * t)

    def samples(self, first: int, count: int) -> np.ndarray:
        n = np.arange(first, first + count, dtype=np.float64)
        th = self.phase(n)
        x = np.zeros((count, 7))
        for name, ch in self.channels.items():
            col = INPUTS.index(name)
            for order, a, deg in ch.parts:
                x[:, col] += a * math.sqrt(2) * np.cos(order * th + math.radians(deg))
        return x

    def crossings(self, t_end: float) -> np.ndarray:
        """Times (s) where the fundamental phase is a whole number of turns (rising cosine at -90°)."""
        r = self.ramp_hz_per_s
        k = np.arange(1, int(self.f0 * t_end + r * t_end * t_end) + 2)
        t = k / self.f0 if r == 0 else (-self.f0 + np.sqrt(self.f0 ** 2 + 2 * r * k)) / r
        return t[t <= t_end]


def balanced(v_rms: float = 230.0, i_rms: float = 5.0, phi_deg: float = 0.0, f0: float = 50.0,
             v_harm: list[tuple[int, float, float]] | None = None,
             i_harm: list[tuple[int, float, float]] | None = None, ramp: float = 0.0,
             order: str = "ABC") -> ThreePhase:
    """Balanced wye: VA at -90° (so its rising zero crossing is at t = 0), current lagging by ``phi_deg``.

    Harmonic entries are (order, fraction of fundamental, phase degrees); phase h of phase x is
    rotated by h times the phase displacement, as in a real balanced system.
    """
    sig = ThreePhase(f0=f0, ramp_hz_per_s=ramp)
    shifts = (0.0, -120.0, 120.0) if order == "ABC" else (0.0, 120.0, -120.0)
    for ph, shift in zip("ABC", shifts):
        vp = [(1, v_rms, -90.0 + shift)] + [(h, v_rms * fr, deg + h * (shift - 90.0))
                                            for h, fr, deg in (v_harm or [])]
        ip = [(1, i_rms, -90.0 + shift - phi_deg)] + [(h, i_rms * fr, deg + h * (shift - 90.0 - phi_deg))
                                                     for h, fr, deg in (i_harm or [])]
        sig.channels["V" + ph] = Channel(vp)
        sig.channels["I" + ph] = Channel(ip)
    return sig


def active_power(v: Channel, i: Channel) -> float:
    """Exact mean v*i of two channels from their harmonic tables."""
    total = 0.0
    for hv, av, dv in v.parts:
        for hi, ai, di in i.parts:
            if hv == hi:
                total += av * ai * math.cos(math.radians(dv - di))
    return total


def fundamental_reactive(v: Channel, i: Channel) -> float:
    (_, av, dv), (_, ai, di) = v.parts[0], i.parts[0]
    return av * ai * math.sin(math.radians(dv - di))


def feed(pipeline, sig: ThreePhase, seconds: float, block: int = 1024, t0_ns: int = 1_700_000_000_000_000_000,
         transform=None) -> list:
    """Run ``seconds`` of ``sig`` through ``pipeline`` in blocks; returns the FeedResults."""
    out = []
    total = int(seconds * FS)
    for first in range(0, total, block):
        x = sig.samples(first, min(block, total - first))
        if transform is not None:
            x = transform(x)
        out.append(pipeline.feed_values(x, first, t0_ns + round(first * 1e9 / FS)))
    return out
