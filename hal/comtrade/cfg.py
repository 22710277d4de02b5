"""The COMTRADE configuration file (.cfg), IEEE C37.111-1991/1999/2013.

Lines: ``station_name,rec_dev_id,rev_year``; ``TT,##A,##D``; one line per analog channel
``An,ch_id,ph,ccbm,uu,a,b,skew,min,max,primary,secondary,PS`` (the last three from 1999 on); one line
per digital channel ``Dn,ch_id,ph,ccbm,y`` (1991: ``Dn,ch_id,y``); the line frequency ``lf``; ``nrates``;
``nrates`` lines ``samp,endsamp`` (one ``0,endsamp`` line when nrates is 0: the time stamps of the .dat
are then the time base); the date and time of the first sample and of the trigger
(``dd/mm/yyyy,hh:mm:ss.ssssss``, 2013 up to nanoseconds; 1991 ``mm/dd/yy``); the file type
(ASCII, BINARY, BINARY32, FLOAT32); ``timemult``; 2013 adds ``time_code,local_code`` and
``tmq_code,leapsec``, which the meter does not need.

Every refusal is a ``ComtradeError`` naming the file, the line number and the field.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

from hal.errors import ComtradeError

FILE_TYPES = ("ASCII", "BINARY", "BINARY32", "FLOAT32")
MAX_CHANNELS = 100_000
MAX_RATES = 999


@dataclass
class AnalogChannel:
    index: int                  # position among the analog channels, from 0 (printed from 1, as An)
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
    line: int = 0               # line of the .cfg that declares the channel


@dataclass
class Rate:
    samp: float                 # Hz; 0: the .dat time stamps are the time base
    endsamp: int                # number of the last sample at this rate
    line: int


@dataclass
class Config:
    path: Path
    station: str
    device: str
    rev_year: int
    analogs: list[AnalogChannel]
    digital_names: list[str]
    line_hz: float
    line_hz_line: int
    rates: list[Rate]
    start: dt.datetime | None
    trigger: dt.datetime | None
    file_type: str
    timemult: float
    warnings: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.rates[-1].endsamp

    @property
    def timed_by_stamps(self) -> bool:
        return all(r.samp == 0 for r in self.rates)


def fail(path: Path | str, what: str) -> ComtradeError:
    return ComtradeError(f"comtrade {path}: {what}")


class _Lines:
    """The non-blank lines of a text file with their 1-based line numbers."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.items = [(k + 1, ln.strip()) for k, ln in enumerate(text.splitlines()) if ln.strip()]
        self.pos = 0

    def next(self, what: str) -> tuple[int, str]:
        if self.pos >= len(self.items):
            last = self.items[-1][0] if self.items else 0
            raise fail(self.path, f"ends after line {last}; the {what} line is missing")
        item = self.items[self.pos]
        self.pos += 1
        return item

    def optional(self) -> tuple[int, str] | None:
        return self.next("") if self.pos < len(self.items) else None


def decode(data: bytes) -> str:
    """UTF-8 (2013), else Latin-1 (older recorders): any byte sequence decodes."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def number(path: Path, line: int, name: str, text: str, default: float | None = None) -> float:
    text = text.strip()
    if not text and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise fail(path, f"line {line}, field {name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise fail(path, f"line {line}, field {name}: {text!r} is not a finite number")
    return value


def integer(path: Path, line: int, name: str, text: str, minimum: int = 0) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        raise fail(path, f"line {line}, field {name}: {text!r} is not a whole number") from None
    if value < minimum:
        raise fail(path, f"line {line}, field {name}: {value} is below {minimum}")
    return value


def parse_time(text: str) -> dt.datetime | None:
    """``dd/mm/yyyy,hh:mm:ss.ssssss`` (fractions beyond microseconds dropped), or the 1991 ``mm/dd/yy``."""
    text = text.strip()
    if "." in text:
        head, _, frac = text.rpartition(".")
        text = f"{head}.{frac[:6]}"
    else:
        text += ".0"
    for fmt in ("%d/%m/%Y,%H:%M:%S.%f", "%m/%d/%y,%H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def read_cfg(cfg_path: Path) -> Config:
    try:
        text = decode(cfg_path.read_bytes())
    except OSError as exc:
        raise fail(cfg_path, f"cannot be read: {exc.strerror or exc}") from None
    lines = _Lines(cfg_path, text)
    path = cfg_path
    station, device, rev = _head(path, *lines.next("station_name,rec_dev_id,rev_year"))
    n_a, n_d = _counts(path, lines)
    analogs = [_analog(path, k, *lines.next("analog channel")) for k in range(n_a)]
    digital_names = [_digital(path, k, *lines.next("digital channel")) for k in range(n_d)]
    lf_line, lf_text = lines.next("line frequency (lf)")
    line_hz = number(path, lf_line, "lf", lf_text, 50.0)
    if line_hz < 0:
        raise fail(path, f"line {lf_line}, field lf: {line_hz:g} Hz is negative")
    n, text = lines.next("nrates")
    nrates = integer(path, n, "nrates", text)
    if nrates > MAX_RATES:
        raise fail(path, f"line {n}, field nrates: {nrates} sample rates; at most {MAX_RATES}")
    rates = [_rate(path, *lines.next(f"samp,endsamp (rate {k + 1} of {max(nrates, 1)})"))
             for k in range(max(nrates, 1))]
    rates, notes = _check_rates(path, rates, nrates, line_hz)
    config = Config(path, station, device, rev, analogs, digital_names, line_hz, lf_line, rates, None, None,
                    "ASCII", 1.0, notes)
    config.start = _date(config, *lines.next("start date and time"), "start")
    config.trigger = _date(config, *lines.next("trigger date and time"), "trigger")
    _tail(config, lines)
    return config


def _head(path: Path, n: int, first: str) -> tuple[str, str, int]:
    head = [x.strip() for x in first.split(",")]
    station, device = head[0], head[1] if len(head) > 1 else ""
    rev = integer(path, n, "rev_year", head[2], 1991) if len(head) > 2 and head[2] else 1991
    return station, device, rev


def _counts(path: Path, lines: _Lines) -> tuple[int, int]:
    n, counts_text = lines.next("TT,##A,##D")
    counts = [x.strip().upper() for x in counts_text.split(",")]
    if len(counts) < 3 or not counts[1].endswith("A") or not counts[2].endswith("D"):
        raise fail(path, f"line {n}: {counts_text!r} is not 'TT,##A,##D'")
    total = integer(path, n, "TT", counts[0])
    n_a = integer(path, n, "##A", counts[1][:-1])
    n_d = integer(path, n, "##D", counts[2][:-1])
    if total != n_a + n_d:
        raise fail(path, f"line {n} says {total} channels but {n_a}A + {n_d}D")
    if total > MAX_CHANNELS or len(lines.items) < 2 + total + 5:
        raise fail(path, f"line {n} declares {total} channels; the file has {len(lines.items)} lines, too few "
                         f"for them and the frequency, rate and time lines")
    return n_a, n_d


def _digital(path: Path, k: int, n: int, text: str) -> str:
    f = text.split(",")
    if len(f) < 2:
        raise fail(path, f"line {n} (digital channel {k + 1}): {text!r} is not 'Dn,ch_id,ph,ccbm,y'")
    return f[1].strip()


def _tail(config: Config, lines: _Lines) -> None:
    """The file type and timemult lines (the 2013 time-code lines after them are not needed)."""
    path = config.path
    item = lines.optional()
    if item is None:
        config.warnings.append(f"{path}: no file type line; the .dat is read as ASCII")
        return
    n, text = item
    config.file_type = text.strip().upper()
    if config.file_type not in FILE_TYPES:
        raise fail(path, f"line {n}, field ft: file type {text.strip()!r}; allowed {', '.join(FILE_TYPES)}")
    item = lines.optional()
    if item is not None:
        config.timemult = number(path, item[0], "timemult", item[1], 1.0)
        if config.timed_by_stamps and config.timemult <= 0:
            raise fail(path, f"line {item[0]}, field timemult: {config.timemult:g}; the time stamps are the "
                             "time base and need a positive multiplier")


def _analog(path: Path, k: int, n: int, text: str) -> AnalogChannel:
    f = [x.strip() for x in text.split(",")]
    if len(f) < 10:
        raise fail(path, f"line {n} (analog channel {k + 1}) has {len(f)} fields; at least 10 "
                         "(An,ch_id,ph,ccbm,uu,a,b,skew,min,max)")
    ch = AnalogChannel(
        index=k, name=f[1], phase=f[2], circuit=f[3], unit=f[4], a=number(path, n, "a", f[5]),
        b=number(path, n, "b", f[6], 0.0), skew_us=number(path, n, "skew", f[7], 0.0),
        min=number(path, n, "min", f[8], -32767), max=number(path, n, "max", f[9], 32767),
        primary=number(path, n, "primary", f[10], 1.0) if len(f) > 10 else 1.0,
        secondary=number(path, n, "secondary", f[11], 1.0) if len(f) > 11 else 1.0,
        ps=(f[12] if len(f) > 12 and f[12] else "S").upper(), line=n)
    if ch.ps not in ("P", "S"):
        raise fail(path, f"line {n} (analog channel {k + 1}), field PS: {ch.ps!r}; allowed P or S")
    if ch.primary < 0 or ch.secondary < 0:
        raise fail(path, f"line {n} (analog channel {k + 1}), fields primary/secondary: "
                         f"{ch.primary:g}/{ch.secondary:g}; a ratio is positive")
    return ch


def _rate(path: Path, n: int, text: str) -> Rate:
    f = text.split(",")
    if len(f) < 2:
        raise fail(path, f"line {n}: {text!r} is not 'samp,endsamp'")
    samp = number(path, n, "samp", f[0])
    if samp < 0:
        raise fail(path, f"line {n}, field samp: {samp:g} Hz is negative")
    return Rate(samp, integer(path, n, "endsamp", f[1]), n)


def _check_rates(path: Path, rates: list[Rate], nrates: int, line_hz: float) -> tuple[list[Rate], list[str]]:
    """Sample numbers that grow and rates that carry the line frequency (a run never outlasts the recording).
    A rate whose endsamp repeats the one before holds no sample: it is dropped with a note, as the common
    readers do. Rates too slow for the fundamental are kept (``slow``) when others carry it."""
    previous, kept, notes = 0, [], []
    for r in rates:
        if r.endsamp == previous and previous > 0:
            notes.append(f"{path}: line {r.line}, field endsamp: {r.endsamp} repeats the rate before; this "
                         f"{r.samp:g} Hz rate holds no sample and is skipped")
            continue
        if r.endsamp <= previous:
            raise fail(path, f"line {r.line}, field endsamp: {r.endsamp} does not follow {previous}; "
                             "each rate ends at a later sample")
        previous = r.endsamp
        kept.append(r)
    rates = kept
    zero = [r for r in rates if r.samp == 0]
    if zero and len(zero) != len(rates):
        raise fail(path, f"line {zero[0].line}, field samp: 0 (time stamps) mixed with fixed rates")
    if nrates == 0 and not zero:
        raise fail(path, f"line {rates[0].line}, field samp: {rates[0].samp:g} Hz with nrates 0; "
                         "nrates 0 means the .dat's time stamps are the time base (samp 0)")
    floor = min_rate_hz(line_hz)
    slow = [r for r in rates if 0 < r.samp <= floor]
    if slow and len(slow) == len(rates):
        r = slow[0]
        raise fail(path, f"line {r.line}, field samp: {r.samp:g} Hz does not carry a {max(line_hz, 50):g} Hz "
                         f"fundamental (more than {floor:g} Hz needed)")
    return rates, notes


def carries_fundamental(rate: Rate, line_hz: float) -> bool:
    """A fixed rate fast enough to record the fundamental (time stamps as the time base are checked per step)."""
    return rate.samp == 0 or rate.samp > min_rate_hz(line_hz)


def min_rate_hz(line_hz: float) -> float:
    """Twice the line frequency (50 Hz when the .cfg says less): below it the fundamental is not recorded."""
    return 2.0 * max(line_hz, 50.0)


def _date(config: Config, n: int, text: str, name: str) -> dt.datetime | None:
    when = parse_time(text)
    if when is None:
        config.warnings.append(f"{config.path}: line {n}, field {name}: {text!r} is not "
                               "dd/mm/yyyy,hh:mm:ss.ssssss; times are counted from the first sample")
    return when
