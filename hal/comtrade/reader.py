"""A whole COMTRADE recording: the .cfg and .dat read, checked against each other, values scaled, time axis built.

Each analog value is ``a * x + b`` in the channel's unit; ``PS`` says whether that is a primary or secondary
quantity, and ``primary/secondary`` converts between them. The time of each sample comes from the sample
rates of the .cfg (several rates: each segment at its own spacing, so the axis is uneven) or, when the
rates are 0, from the .dat time stamps times ``timemult`` (microseconds). Uneven axes are kept as they are:
``hal.comtrade.source`` interpolates on the real time stamps.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hal.comtrade.cfg import AnalogChannel, Config, Rate, carries_fundamental, fail, min_rate_hz, read_cfg
from hal.comtrade.dat import read_dat

_UNIT_SCALE = {"v": 1.0, "kv": 1e3, "mv": 1e-3, "a": 1.0, "ka": 1e3, "ma": 1e-3}


@dataclass
class Comtrade:
    station: str
    device: str
    rev_year: int
    line_hz: float
    analogs: list[AnalogChannel]
    digital_names: list[str]
    times_s: np.ndarray                 # (n,) from the first sample
    analog: np.ndarray                  # (n, n_analog) in channel units (a*x+b), as recorded (P or S)
    digital: np.ndarray                 # (n, n_digital) uint8
    start: dt.datetime | None = None
    trigger: dt.datetime | None = None
    sample_rate_hz: float = 0.0         # one fixed rate; 0 when the axis is uneven (several rates, time stamps)
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)   # what was read with an assumption, for the user
    line_hz_line: int = 0               # the .cfg line of lf
    # (from, to) in seconds, exclusive: stretches between the usable samples around a rate too slow to carry
    # the fundamental (a relay's slow segments between fault records); a replay treats them as lost samples
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def secondary(self, k: int) -> np.ndarray:
        """Channel k in secondary units (V or A at the meter's terminals), unit prefixes resolved."""
        ch = self.analogs[k]
        x = self.analog[:, k] * unit_scale(ch.unit)
        if ch.ps.upper() == "P" and ch.primary and ch.secondary:
            x = x * (ch.secondary / ch.primary)
        return x

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0]) if len(self.times_s) > 1 else 0.0


def unit_scale(unit: str) -> float:
    return _UNIT_SCALE.get(unit.strip().lower(), 1.0)


def _find(path: Path, suffix: str) -> Path:
    p = path.with_suffix(suffix)
    if not p.exists() and p.with_suffix(suffix.upper()).exists():
        return p.with_suffix(suffix.upper())
    return p


def read_comtrade(path: str | Path) -> Comtrade:
    """Read ``x.cfg`` + ``x.dat`` (give either file or the base name)."""
    p = Path(path)
    cfg_path = _find(p, ".cfg") if p.suffix.lower() in (".dat", ".cfg", "") else p
    config = read_cfg(cfg_path)
    dat_path = _find(cfg_path, ".dat")
    data = read_dat(config, dat_path)
    a = np.array([c.a for c in config.analogs])
    b = np.array([c.b for c in config.analogs])
    with np.errstate(over="ignore", invalid="ignore"):
        values = data.raw * a + b
    overflow = np.isinf(values)
    if overflow.any():
        k, j = (int(v[0]) for v in np.nonzero(overflow))
        raise fail(cfg_path, f"line {config.analogs[j].line}, fields a/b: sample {k + 1} of {config.analogs[j].name} "
                             "scales beyond the floating-point range")
    if config.timed_by_stamps:
        times = _stamp_times(config, dat_path, data.stamps)
        rate = 0.0
    elif len(config.rates) == 1:
        rate = config.rates[0].samp
        times = np.arange(len(values)) / rate
    else:
        times = multi_rate_times(config.rates, len(values))
        rate = 0.0
    gaps = slow_gaps(config, cfg_path, times)
    return Comtrade(config.station, config.device, config.rev_year, config.line_hz, config.analogs,
                    config.digital_names, times, values, data.digital, config.start, config.trigger, rate,
                    str(cfg_path), warnings=config.warnings, line_hz_line=config.line_hz_line, gaps=gaps)


def slow_gaps(config: Config, cfg_path: Path, times: np.ndarray) -> list[tuple[float, float]]:
    """The stretches of rates too slow for the fundamental, from the last usable sample before to the first
    after (a note in ``config.warnings`` for each)."""
    n, first, out = len(times), 0, []
    for r in config.rates:
        end = min(r.endsamp, n)
        if end > first and not carries_fundamental(r, config.line_hz):
            lo = times[first - 1] if first > 0 else times[first]
            hi = times[end] if end < n else times[end - 1]
            out.append((float(lo), float(hi)))
            config.warnings.append(
                f"{cfg_path}: samples {first + 1}-{end} at {r.samp:g} Hz (line {r.line}) cannot carry the "
                f"{max(config.line_hz, 50):g} Hz fundamental: {hi - lo:.3f} s from {lo:.3f} s treated as a gap")
        first = end
    return out


def multi_rate_times(rates: list[Rate], n: int) -> np.ndarray:
    """Sample times of a recording in segments: samples up to ``endsamp`` of a rate are ``1/samp`` apart, and the
    first sample of the next segment follows the last of this one by this one's spacing."""
    times, t, first = np.empty(n), 0.0, 0
    for r in rates:
        end = min(r.endsamp, n)
        times[first:end] = t + np.arange(end - first) / r.samp
        if end > first:
            t = times[end - 1] + 1.0 / r.samp
        first = end
    return times


def _stamp_times(config: Config, path: Path, stamps: np.ndarray) -> np.ndarray:
    where = "line" if config.file_type == "ASCII" else "record"
    missing = np.flatnonzero(np.isnan(stamps))
    if len(missing):
        raise fail(path, f"{where} {int(missing[0]) + 1}, field timestamp: missing, and the .cfg (line "
                         f"{config.rates[0].line}) has no sample rate: the time stamps are the time base")
    times = (stamps - stamps[0]) * config.timemult * 1e-6
    if len(times) > 1:
        step = np.diff(times)
        bad = np.flatnonzero(step <= 0)
        if len(bad):
            k = int(bad[0]) + 1
            raise fail(path, f"{where} {k + 1}, field timestamp: {stamps[k]:.0f} after {stamps[k - 1]:.0f}; "
                             "time stamps must increase")
        longest = 1.0 / min_rate_hz(config.line_hz)
        bad = np.flatnonzero(step >= longest)
        if len(bad):
            k = int(bad[0]) + 1
            raise fail(path, f"{where} {k + 1}, field timestamp: {stamps[k]:.0f} is {step[k - 1]:.6g} s after the "
                             f"sample before; the line frequency is only recorded with steps under {longest:.6g} s")
    return times
