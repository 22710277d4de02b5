"""COMTRADE (IEEE C37.111-1999 and -2013) reader and writer, and mapping of channels to the meter's inputs.

Reader: the .cfg (station line, channel counts, analog lines ``An,ch_id,ph,ccbm,uu,a,b,skew,min,max,
primary,secondary,PS``, digital lines, line frequency, sample rates, start/trigger times, file type,
time multiplier, and the 2013 time-code lines) and the .dat in ASCII, BINARY (int16), BINARY32 (int32)
or FLOAT32. Each analog value is ``a * x + b`` in the channel's unit; ``PS`` says whether that is a
primary or secondary quantity, and ``primary/secondary`` converts between them. Missing samples
(blank in ASCII, -32768 / -2^31 in binary) become NaN.

Mapping (``meter_channels``): voltage and current channels are found by phase and unit (``ph`` A/B/C/N
or R/S/T, 1/2/3; ``uu`` V, kV, A, kA) or by name (VA, Va, UA, Ua, VAN, V1; IA, Ia, I1; IN, In, I4),
and returned in the ADE9000 order IA, VA, IB, VB, IC, VC, IN as secondary-side values (what the meter's
terminals see). A recording without IN leaves that input at zero and reports it unmapped (an empty name),
so that the measured neutral current (I4) is published as not available rather than made up.

Resampling: ``ComtradeSource.sample(t)`` evaluates the record at any time with cubic (Keys, a = -0.5)
interpolation, the simulated chip then takes its 32 kSPS samples from it. At 128 samples per cycle the
interpolation error of the fundamental is below 1e-6 relative; a harmonic with fewer than ~8 source
samples per period is attenuated by more than 1 %.
"""
from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hal.errors import ComtradeError

ORDER = ("IA", "VA", "IB", "VB", "IC", "VC", "IN")
_UNIT_SCALE = {"v": 1.0, "kv": 1e3, "mv": 1e-3, "a": 1.0, "ka": 1e3, "ma": 1e-3}
_PHASE_ALIASES = {"a": "A", "r": "A", "1": "A", "l1": "A", "b": "B", "s": "B", "2": "B", "l2": "B",
                  "c": "C", "t": "C", "3": "C", "l3": "C", "n": "N", "4": "N", "0": "N"}
_NAME_RE = re.compile(r"^\s*(?P<kind>[VUI])\s*[-_ ]?\s*(?P<phase>[ABCNRST1234]|L[123])\s*(?:N|-?N)?\s*$", re.I)
_FORMATS = {"ASCII": None, "BINARY": ("<h", -32768), "BINARY32": ("<i", -(2**31)), "FLOAT32": ("<f", None)}


@dataclass
class AnalogChannel:
    index: int
    name: str
    phase: str
    circuit: str
    unit: str
    a: float
    b: float
    skew_us: float = 0.0
    min: float = -32767
    max: float = 32767
    primary: float = 1.0
    secondary: float = 1.0
    ps: str = "S"


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
    sample_rate_hz: float = 0.0         # 0 when timestamps drive the time base
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def secondary(self, k: int) -> np.ndarray:
        """Channel k in secondary units (V or A at the meter's terminals), unit prefixes resolved."""
        ch = self.analogs[k]
        x = self.analog[:, k] * _UNIT_SCALE.get(ch.unit.strip().lower(), 1.0)
        if ch.ps.upper() == "P" and ch.primary and ch.secondary:
            x = x * (ch.secondary / ch.primary)
        return x


def _fail(path: Path | str, what: str) -> ComtradeError:
    return ComtradeError(f"comtrade {path}: {what}")


def _num(text: str, path: Path, where: str, default: float | None = None) -> float:
    text = text.strip()
    if not text and default is not None:
        return default
    try:
        return float(text)
    except ValueError:
        raise _fail(path, f"{where}: {text!r} is not a number") from None


def _parse_time(text: str) -> dt.datetime | None:
    text = text.strip()
    for fmt in ("%d/%m/%Y,%H:%M:%S.%f", "%m/%d/%Y,%H:%M:%S.%f", "%d/%m/%y,%H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def read_comtrade(path: str | Path) -> Comtrade:
    """Read ``x.cfg`` + ``x.dat`` (give either file or the base name)."""
    p = Path(path)
    cfg_path = p.with_suffix(".cfg") if p.suffix.lower() in (".dat", ".cfg", "") else p
    if not cfg_path.exists() and cfg_path.with_suffix(".CFG").exists():
        cfg_path = cfg_path.with_suffix(".CFG")
    try:
        lines = [ln.rstrip("\r\n") for ln in cfg_path.read_text(encoding="latin-1").splitlines()]
    except OSError as exc:
        raise _fail(cfg_path, f"cannot be read: {exc}") from None
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < 6:
        raise _fail(cfg_path, f"only {len(lines)} lines; a .cfg has at least 6")
    head = [x.strip() for x in lines[0].split(",")]
    station, device = head[0], head[1] if len(head) > 1 else ""
    rev = int(head[2]) if len(head) > 2 and head[2].isdigit() else 1991
    counts = [x.strip().upper() for x in lines[1].split(",")]
    try:
        total, n_a, n_d = int(counts[0]), int(counts[1].rstrip("A")), int(counts[2].rstrip("D"))
    except (IndexError, ValueError):
        raise _fail(cfg_path, f"line 2 {lines[1]!r} is not 'TT,##A,##D'") from None
    if total != n_a + n_d:
        raise _fail(cfg_path, f"line 2 says {total} channels but {n_a}A + {n_d}D")
    if len(lines) < 2 + total + 5:
        raise _fail(cfg_path, f"too short for {total} channel lines and the rate/time lines")
    analogs = []
    for k in range(n_a):
        f = [x.strip() for x in lines[2 + k].split(",")]
        where = f"analog channel line {k + 1}"
        if len(f) < 10:
            raise _fail(cfg_path, f"{where} has {len(f)} fields; at least 10 (An,ch_id,ph,ccbm,uu,a,b,skew,min,max)")
        analogs.append(AnalogChannel(
            index=k, name=f[1], phase=f[2], circuit=f[3], unit=f[4], a=_num(f[5], cfg_path, f"{where} a"),
            b=_num(f[6], cfg_path, f"{where} b", 0.0), skew_us=_num(f[7], cfg_path, f"{where} skew", 0.0),
            min=_num(f[8], cfg_path, f"{where} min", -32767), max=_num(f[9], cfg_path, f"{where} max", 32767),
            primary=_num(f[10], cfg_path, f"{where} primary", 1.0) if len(f) > 10 else 1.0,
            secondary=_num(f[11], cfg_path, f"{where} secondary", 1.0) if len(f) > 11 else 1.0,
            ps=(f[12] if len(f) > 12 and f[12] else "S").upper()))
        if analogs[-1].ps not in ("P", "S"):
            raise _fail(cfg_path, f"{where}: PS flag {analogs[-1].ps!r}; allowed P or S")
    digital_names = [lines[2 + n_a + k].split(",")[1].strip() for k in range(n_d)]
    i = 2 + total
    line_hz = _num(lines[i], cfg_path, "line frequency", 50.0)
    nrates = int(_num(lines[i + 1], cfg_path, "nrates"))
    rates = []
    for k in range(max(nrates, 1)):
        f = lines[i + 2 + k].split(",")
        rates.append((_num(f[0], cfg_path, "samp"), int(_num(f[1], cfg_path, "endsamp"))))
    i += 2 + max(nrates, 1)
    start, trigger = _parse_time(lines[i]), _parse_time(lines[i + 1])
    ft = lines[i + 2].strip().upper() if len(lines) > i + 2 else "ASCII"
    if ft not in _FORMATS:
        raise _fail(cfg_path, f"file type {ft!r}; allowed {', '.join(_FORMATS)}")
    timemult = _num(lines[i + 3], cfg_path, "timemult", 1.0) if len(lines) > i + 3 else 1.0
    dat_path = cfg_path.with_suffix(".dat")
    if not dat_path.exists() and dat_path.with_suffix(".DAT").exists():
        dat_path = dat_path.with_suffix(".DAT")
    n_samples = rates[-1][1] if nrates else 0
    stamps, raw, dig = _read_dat(dat_path, ft, n_a, n_d, n_samples)
    a = np.array([c.a for c in analogs])
    b = np.array([c.b for c in analogs])
    values = raw * a + b
    rate = rates[0][0] if nrates and rates[0][0] > 0 else 0.0
    if rate > 0 and len(rates) == 1:
        times = np.arange(len(values)) / rate
    elif rate > 0:
        times = _multi_rate_times(rates, len(values))
        rate = 0.0
    else:
        if np.isnan(stamps).any():
            raise _fail(dat_path, "no sample rate in the .cfg and missing time stamps in the .dat")
        times = (stamps - stamps[0]) * timemult * 1e-6
    return Comtrade(station, device, rev, line_hz, analogs, digital_names, times, values, dig, start, trigger,
                    rate, str(cfg_path))


def _multi_rate_times(rates: list[tuple[float, int]], n: int) -> np.ndarray:
    times, t, first = np.empty(n), 0.0, 0
    for samp, end in rates:
        end = min(end, n)
        k = np.arange(end - first)
        times[first:end] = t + k / samp
        t = times[end - 1] + 1.0 / samp if end > first else t
        first = end
    return times


def _read_dat(path: Path, ft: str, n_a: int, n_d: int, n_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read: {exc}") from None
    if ft == "ASCII":
        rows = [r for r in data.decode("latin-1").splitlines() if r.strip()]
        stamps = np.full(len(rows), np.nan)
        raw = np.full((len(rows), n_a), np.nan)
        dig = np.zeros((len(rows), n_d), dtype=np.uint8)
        for r, row in enumerate(rows):
            f = row.split(",")
            if len(f) < 2 + n_a + n_d:
                raise _fail(path, f"line {r + 1} has {len(f)} fields; expected {2 + n_a + n_d}")
            if f[1].strip():
                stamps[r] = float(f[1])
            for k in range(n_a):
                s = f[2 + k].strip()
                if s:
                    try:
                        raw[r, k] = float(s)
                    except ValueError:
                        raise _fail(path, f"line {r + 1}, analog {k + 1}: {s!r} is not a number") from None
            for k in range(n_d):
                dig[r, k] = int(f[2 + n_a + k].strip() or 0)
        return stamps, raw, dig
    code, missing = _FORMATS[ft]
    size = struct.calcsize(code)
    n_words = (n_d + 15) // 16
    rec = np.dtype([("n", "<u4"), ("t", "<u4"), ("a", code, (n_a,)), ("d", "<u2", (n_words,))])
    if len(data) % rec.itemsize:
        raise _fail(path, f"{len(data)} bytes is not a whole number of {rec.itemsize}-byte {ft} records "
                          f"({n_a} analog x {size} bytes, {n_d} digital)")
    arr = np.frombuffer(data, dtype=rec)
    raw = arr["a"].astype(np.float64)
    if missing is not None:
        raw[arr["a"] == missing] = np.nan
    stamps = arr["t"].astype(np.float64)
    stamps[arr["t"] == 0xFFFFFFFF] = np.nan
    if n_d == 0:
        return stamps, raw, np.zeros((len(arr), 0), dtype=np.uint8)
    bits = np.unpackbits(np.ascontiguousarray(arr["d"]).view(np.uint8).reshape(len(arr), -1), axis=1,
                         bitorder="little")
    return stamps, raw, bits[:, :n_d].astype(np.uint8)


def _identify(ch: AnalogChannel) -> tuple[str, str] | None:
    """(kind 'V' or 'I', phase 'A'/'B'/'C'/'N') of a channel, or None if it is not a phase quantity."""
    unit = ch.unit.strip().lower()
    kind = "V" if unit in ("v", "kv", "mv") else "I" if unit in ("a", "ka", "ma") else ""
    m = _NAME_RE.match(ch.name)
    if m:
        kind = kind or ("I" if m["kind"].upper() == "I" else "V")
        phase = _PHASE_ALIASES.get(m["phase"].lower(), "")
        if phase:
            return kind, phase
    phase = _PHASE_ALIASES.get(ch.phase.strip().lower(), "")
    return (kind, phase) if kind and phase else None


def meter_channels(rec: Comtrade) -> tuple[np.ndarray, list[str]]:
    """(n, 7) secondary values in the order IA VA IB VB IC VC IN, and which source channel fed each."""
    found: dict[str, int] = {}
    for k, ch in enumerate(rec.analogs):
        ident = _identify(ch)
        if ident:
            found.setdefault(ident[0] + ident[1], k)
    if not any(k in found for k in ("VA", "VB", "VC", "IA", "IB", "IC")):
        names = ", ".join(f"{c.name} ({c.phase}, {c.unit})" for c in rec.analogs)
        raise _fail(rec.source, f"no phase voltage or current channel recognised among: {names}; "
                                "name them VA/IA... or set ph to A/B/C/N and uu to V/kV/A/kA")
    out = np.zeros((len(rec.times_s), 7))
    used = []
    for j, name in enumerate(ORDER):
        key = name[0] + name[1]
        if key in found:
            out[:, j] = np.nan_to_num(rec.secondary(found[key]))
            used.append(rec.analogs[found[key]].name)
        else:
            used.append("")
    return out, used


class ComtradeSource:
    """A recording as a signal source for the simulated chip: ``sample(t)`` with t from the first sample."""

    def __init__(self, rec: Comtrade, loop: bool = False) -> None:
        self.rec = rec
        self.values, self.mapping = meter_channels(rec)
        self.times = rec.times_s
        self.loop = loop
        self.duration_s = float(self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0

    def sample(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 1:
            t = np.repeat(t[:, None], 7, axis=1)
        if self.loop and self.duration_s > 0:
            t = np.mod(t, self.duration_s)
        out = np.empty(t.shape)
        for c in range(7):
            out[:, c] = cubic_interp(self.times, self.values[:, c], t[:, c])
        return out


def cubic_interp(x: np.ndarray, y: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Keys cubic convolution (a = -0.5) on a (nearly) uniform grid; zero outside the record."""
    n = len(x)
    if n < 4:
        return np.interp(xq, x, y, left=0.0, right=0.0)
    h = (x[-1] - x[0]) / (n - 1)
    u = (xq - x[0]) / h
    i = np.floor(u).astype(np.int64)
    s = u - i
    idx = np.clip(np.stack([i - 1, i, i + 1, i + 2]), 0, n - 1)
    p = y[idx]
    w = np.stack([((-0.5 * s + 1.0) * s - 0.5) * s, (1.5 * s - 2.5) * s * s + 1.0,
                  ((-1.5 * s + 2.0) * s + 0.5) * s, (0.5 * s - 0.5) * s * s])
    out = np.sum(w * p, axis=0)
    return np.where((u < 0) | (u > n - 1), 0.0, out)


def write_comtrade(base: str | Path, names: list[str], units: list[str], phases: list[str], data: np.ndarray,
                   rate_hz: float, *, start: dt.datetime | None = None, trigger: dt.datetime | None = None,
                   station: str = "openmeter", device: str = "meter", rev_year: int = 2013, line_hz: float = 50.0,
                   fmt: str = "BINARY", primary: list[float] | None = None, secondary: list[float] | None = None,
                   ps: str = "S") -> tuple[Path, Path]:
    """Write ``base.cfg`` and ``base.dat``; integer formats scale each channel to use its full range."""
    if fmt not in _FORMATS:
        raise ComtradeError(f"comtrade {base}: format {fmt!r}; allowed {', '.join(_FORMATS)}")
    if rev_year not in (1999, 2013):
        raise ComtradeError(f"comtrade {base}: revision {rev_year}; allowed 1999 or 2013")
    if fmt == "FLOAT32" and rev_year == 1999:
        raise ComtradeError(f"comtrade {base}: FLOAT32 needs revision 2013")
    data = np.asarray(data, dtype=np.float64)
    n, k = data.shape
    base = Path(base)
    start = start or dt.datetime(2000, 1, 1)
    trigger = trigger or start
    primary = primary or [1.0] * k
    secondary = secondary or [1.0] * k
    limit = {"ASCII": 99999, "BINARY": 32767, "BINARY32": 2**31 - 1, "FLOAT32": 1}[fmt]
    peak = np.maximum(np.nanmax(np.abs(data), axis=0), 1e-12) if n else np.ones(k)
    a = peak / limit if fmt != "FLOAT32" else np.ones(k)
    fmt_t = "%d/%m/%Y,%H:%M:%S.%f"
    lines = [f"{station},{device},{rev_year}", f"{k},{k}A,0D"]
    for j in range(k):
        lines.append(f"{j + 1},{names[j]},{phases[j]},,{units[j]},{a[j]:.17g},0,0,{-limit},{limit},"
                     f"{primary[j]:g},{secondary[j]:g},{ps}")
    lines += [f"{line_hz:g}", "1", f"{rate_hz:g},{n}", start.strftime(fmt_t), trigger.strftime(fmt_t), fmt, "1"]
    if rev_year == 2013:
        lines += ["+0h00,+0h00", "0,0"]
    cfg = base.with_suffix(".cfg")
    cfg.write_text("\r\n".join(lines) + "\r\n", encoding="latin-1")
    stamps = np.rint(np.arange(n) / rate_hz * 1e6).astype(np.int64)
    dat = base.with_suffix(".dat")
    if fmt == "ASCII":
        q = np.rint(data / a).astype(np.int64)
        rows = [f"{i + 1},{stamps[i]}," + ",".join(str(v) for v in q[i]) for i in range(n)]
        dat.write_text("\r\n".join(rows) + "\r\n", encoding="latin-1")
    else:
        code = _FORMATS[fmt][0]
        rec = np.dtype([("n", "<u4"), ("t", "<u4"), ("a", code, (k,))])
        arr = np.zeros(n, dtype=rec)
        arr["n"] = np.arange(1, n + 1)
        arr["t"] = stamps
        arr["a"] = data if fmt == "FLOAT32" else np.rint(data / a)
        dat.write_bytes(arr.tobytes())
    return cfg, dat
