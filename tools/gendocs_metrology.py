"""Accuracy of the metrology pipeline through the simulated ADC, and docs/accuracy.md generated from it.

``python -m tools.gendocs_metrology`` (also run by ``make docs``) sweeps the IEC 62053-22 load points
and the other accuracy figures the meter promises through ``hal.sim.adc`` (24-bit codes, datasheet noise) and the very
``metrology.pipeline.Pipeline`` the meter runs, compares each result with the analytic truth of the
signal, and writes docs/accuracy.md with an SVG plot of energy error against load. The conformance
tests (tests/conformance/test_metrology_accuracy.py) run the same functions and assert the limits.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.ipc.samples import FLAG_SIMULATED, SampleBlock
from hal.board import default_channels
from hal.sim import adc
from hal.sim.signals import Frequency, Harmonic, ThreePhase
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "accuracy.md"
SVG = REPO / "docs" / "accuracy-energy.svg"
FS = 32000.0
T0_NS = 1_700_000_000 * 10 ** 9       # on a 10-s (and 10-min) clock boundary
V_NOM, I_NOM = 230.0, 5.0
LOADS_PCT = (1, 2, 5, 10, 50, 100, 120)                 # IEC 62053-22 test points, % of In
PFS = (("1", 0.0), ("0.5L", 60.0), ("0.8C", -36.87))   # label, current lag in degrees
FREQS = (45.0, 50.0, 60.0, 65.0)
HARMONICS = (Harmonic(5, 0.10, 0.0), Harmonic(7, 0.05, 0.0))
ENERGY_LIMIT_PCT, ENERGY_LIMIT_LOW_PCT, REACTIVE_LIMIT_PCT = 0.02, 0.05, 0.05
RMS_LIMIT_PCT, F_STEADY_LIMIT_HZ, F_RAMP_LIMIT_HZ = 0.01, 0.5e-3, 5e-3
HARM_REL_LIMIT_PCT, HARM_ABS_LIMIT_PCT, ANGLE_LIMIT_DEG = 0.5, 0.005, 0.05


def nominal_for(f: float) -> float:
    return 50.0 if f < 55.0 else 60.0


def run(sig: ThreePhase, seconds: float, nominal: float, seed: int = 7, block: int = 4096) -> tuple[Pipeline, list]:
    """Feed ``seconds`` of ``sig`` through the simulated ADC and a fresh pipeline, as SampleBlocks."""
    channels = default_channels()
    scale = tuple(ch.scale() for ch in channels)
    rng = np.random.default_rng(seed)
    pipeline = Pipeline(MetrologySettings(nominal_voltage=V_NOM, nominal_current=I_NOM, nominal_frequency=nominal))
    results = []
    total = int(seconds * FS)
    for first in range(0, total, block):
        n = min(block, total - first)
        codes = adc.quantise(sig.sample_range(first, n, FS), channels, noise=True, rng=rng)
        blk = SampleBlock(first, T0_NS + round(first * 1e9 / FS), FS, codes, scale, FLAG_SIMULATED)
        results.append(pipeline.feed(SampleBlock.decode(blk.encode())))
    return pipeline, results


def three_phase(f: float, load_pct: float, lag_deg: float, harmonics: bool,
                frequency: Frequency | None = None) -> ThreePhase:
    i = I_NOM * load_pct / 100
    h = HARMONICS if harmonics else ()
    return ThreePhase(v_rms=(V_NOM,) * 3, i_rms=(i,) * 3, i_angle_deg=(-lag_deg, -120.0 - lag_deg, 120.0 - lag_deg),
                      frequency=frequency or Frequency(f), nominal_hz=nominal_for(f), v_harmonics=h, i_harmonics=h)


def truth_power(sig: ThreePhase) -> tuple[float, float]:
    """Total W (harmonics included) and fundamental var of a balanced ``ThreePhase``."""
    p = q = 0.0
    for ph in range(3):
        d = math.radians(sig.v_angle_deg[ph] - sig.i_angle_deg[ph])
        v, i = sig.v_rms[ph], sig.i_rms[ph]
        p += v * i * math.cos(d)
        q += v * i * math.sin(d)
        for hv in sig.v_harmonics:
            for hi in sig.i_harmonics:
                if hv.order == hi.order:
                    p += v * i * hv.magnitude * hi.magnitude * math.cos(
                        hv.order * d + math.radians(hv.phase_deg - hi.phase_deg))
    return p, q


@dataclass
class EnergyPoint:
    f: float
    load_pct: float
    pf: str
    harmonics: bool
    wh_err_pct: float
    varh_err_pct: float
    v_rms_err_pct: float
    i_rms_err_pct: float

    @property
    def wh_limit(self) -> float:
        return ENERGY_LIMIT_PCT if self.load_pct >= 5 else ENERGY_LIMIT_LOW_PCT


def energy_point(f: float, load_pct: float, pf: str, lag: float, harmonics: bool, seconds: float = 3.2) -> EnergyPoint:
    sig = three_phase(f, load_pct, lag, harmonics)
    pipeline, results = run(sig, seconds, nominal_for(f), seed=int(f * 1000 + load_pct * 10 + lag))
    seconds_out = [s for r in results for s in r.seconds][1:]      # the first second holds the start-up
    dur = sum(s.energy.duration_s for s in seconds_out)
    wh = sum(s.energy.net("wh")[3] for s in seconds_out)
    varh = sum(s.energy.net("varh")[3] for s in seconds_out)
    p, q = truth_power(sig)
    wh_err = 100 * (wh / (p * dur / 3600) - 1)
    varh_err = 100 * (varh / (q * dur / 3600) - 1) if abs(q) > 1e-9 else 100 * varh / (abs(p) * dur / 3600)
    wins = [w for r in results for w in r.windows][5:]
    hsum = sum(h.magnitude ** 2 for h in sig.v_harmonics)
    v_true = V_NOM * math.sqrt(1 + hsum)
    i_true = sig.i_rms[0] * math.sqrt(1 + sum(h.magnitude ** 2 for h in sig.i_harmonics))
    v_err = max(float(np.abs(w.values["v_ln"] / v_true - 1).max()) for w in wins) * 100
    i_err = max(float(np.abs(w.values["i"] / i_true - 1).max()) for w in wins) * 100
    return EnergyPoint(f, load_pct, pf, harmonics, wh_err, varh_err, v_err, i_err)


def energy_sweep() -> list[EnergyPoint]:
    return [energy_point(f, load, label, lag, h) for f in FREQS for h in (False, True)
            for label, lag in PFS for load in LOADS_PCT]


def ramp_truth(f0: float, rate: float, t_start: float, t_end: float) -> float:
    """Whole cycles of VA (rising crossing at cycles = k - 1/4) inside [t_start, t_end] over their duration."""
    def t_at(c: np.ndarray) -> np.ndarray:
        return c / f0 if rate == 0 else (-f0 + np.sqrt(f0 * f0 + 2 * rate * c)) / rate
    c0 = f0 * t_start + rate * t_start ** 2 / 2
    c1 = f0 * t_end + rate * t_end ** 2 / 2
    ks = np.arange(math.ceil(c0 + 0.25), math.floor(c1 + 0.25) + 1) - 0.25
    t = t_at(ks)
    return (len(t) - 1) / (t[-1] - t[0])


def frequency_point(f0: float, rate: float) -> tuple[float, float]:
    """(measured, true) 10-s frequency of the interval 10..20 s."""
    freq = Frequency(f0, "ramp", f0 + rate * 22.0, 0.0, 22.0) if rate else Frequency(f0)
    sig = three_phase(f0, 100, 0.0, True, frequency=freq)
    _, results = run(sig, 21.0, 60.0 if rate else nominal_for(f0), block=8192)
    values = {t: v for r in results for t, v in r.frequency_10s}
    return values[T0_NS + 10 * 10 ** 9], ramp_truth(f0, rate, 10.0, 20.0)


HARMONIC_SET = (Harmonic(2, 0.005, 30.0), Harmonic(3, 0.04, -60.0), Harmonic(5, 0.10, 20.0),
                Harmonic(7, 0.05, 110.0), Harmonic(11, 0.02, -150.0), Harmonic(13, 0.008, 45.0),
                Harmonic(25, 0.01, 0.0), Harmonic(49, 0.003, 60.0), Harmonic(63, 0.01, -30.0))


def harmonic_point(f: float) -> list[tuple[int, float, float, float, float]]:
    """Per order: (order, true V, measured V, error % of reading or of nominal, angle error °)."""
    sig = ThreePhase(v_rms=(V_NOM,) * 3, i_rms=(I_NOM,) * 3, frequency=Frequency(f), nominal_hz=nominal_for(f),
                     v_harmonics=HARMONIC_SET)
    _, results = run(sig, 1.5, nominal_for(f))
    w = [w for r in results for w in r.windows][-1].values
    out = []
    for h in HARMONIC_SET:
        true = V_NOM * h.magnitude
        got = float(w["h_mag"][0, h.order])
        big = h.magnitude >= 0.01
        err = 100 * (got / true - 1) if big else 100 * (got - true) / V_NOM
        ang = (float(w["h_angle"][0, h.order]) - h.phase_deg + 180) % 360 - 180
        out.append((h.order, true, got, err, ang))
    return out


# ---------------------------------------------------------------------------------------------- rendering

def svg_plot(points: list[EnergyPoint]) -> str:
    w, h, left, right, top, bottom = 640, 360, 70, 150, 30, 50
    x0, x1 = math.log10(0.8), math.log10(150)
    ymax = 0.06

    def px(load: float) -> float:
        return left + (math.log10(load) - x0) / (x1 - x0) * (w - left - right)

    def py(err: float) -> float:
        return top + (ymax - err) / (2 * ymax) * (h - top - bottom)

    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
             f'font-size="11">', f'<rect width="{w}" height="{h}" fill="white"/>']
    for e in (-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06):
        lines.append(f'<line x1="{left}" x2="{w - right}" y1="{py(e):.1f}" y2="{py(e):.1f}" stroke="#ddd"/>')
        lines.append(f'<text x="{left - 6}" y="{py(e) + 4:.1f}" text-anchor="end">{e:+.2f}</text>')
    for load in LOADS_PCT:
        lines.append(f'<line x1="{px(load):.1f}" x2="{px(load):.1f}" y1="{top}" y2="{h - bottom}" stroke="#eee"/>')
        lines.append(f'<text x="{px(load):.1f}" y="{h - bottom + 15}" text-anchor="middle">{load}</text>')
    limit = [(0.8, ENERGY_LIMIT_LOW_PCT), (5, ENERGY_LIMIT_LOW_PCT), (5, ENERGY_LIMIT_PCT), (150, ENERGY_LIMIT_PCT)]
    for sign in (1, -1):
        pts = " ".join(f"{px(x):.1f},{py(sign * y):.1f}" for x, y in limit)
        lines.append(f'<polyline points="{pts}" fill="none" stroke="#c00" stroke-dasharray="4 3"/>')
    colours = {"1": "#1f77b4", "0.5L": "#2ca02c", "0.8C": "#ff7f0e"}
    for k, (label, _) in enumerate(PFS):
        for harm, dash in ((False, ""), (True, ' stroke-dasharray="2 2"')):
            worst = []
            for load in LOADS_PCT:
                errs = [p.wh_err_pct for p in points if p.pf == label and p.harmonics == harm and p.load_pct == load]
                worst.append(max(errs, key=abs))
            pts = " ".join(f"{px(x):.1f},{py(max(min(y, ymax), -ymax)):.1f}" for x, y in zip(LOADS_PCT, worst))
            lines.append(f'<polyline points="{pts}" fill="none" stroke="{colours[label]}"{dash}/>')
        y = top + 14 + 32 * k
        lines.append(f'<line x1="{w - right + 10}" x2="{w - right + 30}" y1="{y}" y2="{y}" stroke="{colours[label]}"/>')
        lines.append(f'<text x="{w - right + 34}" y="{y + 4}">PF {label}</text>')
        lines.append(f'<text x="{w - right + 34}" y="{y + 17}" fill="#666">dotted: 5th+7th</text>')
    lines.append(f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">load, % of In (log)</text>')
    lines.append(f'<text x="14" y="{(top + h - bottom) / 2}" transform="rotate(-90 14 {(top + h - bottom) / 2})" '
                 'text-anchor="middle">active energy error, % (worst over 45-65 Hz)</text>')
    lines.append('</svg>')
    return "\n".join(lines) + "\n"


def render(points: list[EnergyPoint], freqs: list[tuple[str, float, float]],
           harms: dict[float, list[tuple[int, float, float, float, float]]]) -> str:
    out = ["# Metrology accuracy", "",
           "Generated by `python -m tools.gendocs_metrology` (run by `make docs`); do not edit. Every figure is a",
           "measurement of the pipeline the meter runs (`metrology.pipeline.Pipeline`), fed through the simulated",
           "24-bit ADC (`hal.sim.adc`, datasheet-derived noise), against the analytic truth of the test signal.",
           "The conformance tests (`tests/conformance/test_metrology_accuracy.py`) assert the same limits.", "",
           "![active energy error against load](accuracy-energy.svg)", "",
           "## Summary", "", "| quantity | limit | worst measured |", "|---|---|---|"]
    hi = [p for p in points if p.load_pct >= 5]
    lo = [p for p in points if p.load_pct < 5]
    out.append(f"| active energy, I >= 5 % In | {ENERGY_LIMIT_PCT} % | {max(abs(p.wh_err_pct) for p in hi):.4f} % |")
    out.append(f"| active energy, I < 5 % In | {ENERGY_LIMIT_LOW_PCT} % | {max(abs(p.wh_err_pct) for p in lo):.4f} % |")
    out.append(f"| reactive energy | {REACTIVE_LIMIT_PCT} % | {max(abs(p.varh_err_pct) for p in points):.4f} % |")
    out.append(f"| V RMS, 10/12 cycles | {RMS_LIMIT_PCT} % | {max(p.v_rms_err_pct for p in points):.5f} % |")
    out.append(f"| I RMS, 10/12 cycles, I >= 10 % In | {RMS_LIMIT_PCT} % | "
               f"{max(p.i_rms_err_pct for p in points if p.load_pct >= 10):.5f} % |")
    out.append(f"| I RMS, 10/12 cycles, I < 10 % In (ADC noise floor, ~53 codes rms) | not asserted | "
               f"{max(p.i_rms_err_pct for p in points if p.load_pct < 10):.5f} % |")
    for label, got, true in freqs:
        lim = F_RAMP_LIMIT_HZ if "ramp" in label else F_STEADY_LIMIT_HZ
        out.append(f"| frequency (10 s), {label} | {lim * 1e3:g} mHz | {abs(got - true) * 1e3:.4f} mHz |")
    allh = [x for v in harms.values() for x in v]
    out.append(f"| harmonic magnitude >= 1 % of nominal | {HARM_REL_LIMIT_PCT} % of reading | "
               f"{max(abs(e) for o, t, g, e, a in allh if t >= 0.01 * V_NOM):.4f} % |")
    out.append(f"| harmonic magnitude < 1 % of nominal | {HARM_ABS_LIMIT_PCT} % of nominal | "
               f"{max(abs(e) for o, t, g, e, a in allh if t < 0.01 * V_NOM):.5f} % |")
    out.append(f"| harmonic phase angle | {ANGLE_LIMIT_DEG}° | {max(abs(a) for *_, a in allh):.4f}° |")
    out += ["", "## Energy load points (IEC 62053-22)", "",
            "Balanced 4W-WYE, 230 V, In = 5 A, 2 s of registered energy after a 1-s start-up, net total registers.",
            "", "| f (Hz) | harmonics | PF | load % In | Wh error % | varh error % | V RMS error % | I RMS error % |",
            "|---|---|---|---|---|---|---|---|"]
    for p in points:
        out.append(f"| {p.f:g} | {'5th 10 %, 7th 5 %' if p.harmonics else 'none'} | {p.pf} | {p.load_pct:g} | "
                   f"{p.wh_err_pct:+.4f} | {p.varh_err_pct:+.4f} | {p.v_rms_err_pct:.5f} | {p.i_rms_err_pct:.5f} |")
    out += ["", "## Harmonics (IEC 61000-4-7 subgroups, V A-N)", "",
            "| f (Hz) | order | true V | measured V | error | angle error ° |", "|---|---|---|---|---|---|"]
    for f, rows in harms.items():
        for order, true, got, err, ang in rows:
            unit = "% of reading" if true >= 0.01 * V_NOM else "% of nominal"
            out.append(f"| {f:g} | {order} | {true:.4f} | {got:.4f} | {err:+.4f} {unit} | {ang:+.4f} |")
    return "\n".join(out) + "\n"


def measure_all() -> tuple[list[EnergyPoint], list[tuple[str, float, float]], dict]:
    points = energy_sweep()
    freqs = [(f"steady {f:g} Hz", *frequency_point(f, 0.0)) for f in FREQS]
    freqs.append(("ramp 1 Hz/s (54-64 Hz)", *frequency_point(44.0, 1.0)))
    harms = {f: harmonic_point(f) for f in (50.0, 60.0)}
    return points, freqs, harms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gendocs_metrology")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/accuracy.md is out of date")
    args = parser.parse_args(argv)
    points, freqs, harms = measure_all()
    doc, svg = render(points, freqs, harms), svg_plot(points)
    if args.check:
        same = DOC.exists() and DOC.read_text() == doc and SVG.exists() and SVG.read_text() == svg
        return 0 if same else 1
    DOC.write_text(doc)
    SVG.write_text(svg)
    print(f"wrote {DOC.relative_to(REPO)} and {SVG.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
