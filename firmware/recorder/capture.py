"""Waveform captures: the recorder's own copy of the last seconds of samples, cut around a trigger and written as
COMTRADE 2013 (``hal.comtrade.write_comtrade``) in a bounded directory.

The recorder reads the acquisition's samples ring as a reader of its own: a ring never waits for its readers, so
capturing costs metering nothing, and metrology sends only the trigger (the sample index where an event
started). The 32 kSPS samples are brought to ``samples_per_cycle`` times the nominal frequency (a polyphase
anti-alias resampler) and written at the input terminals (secondary) with the PT/CT ratios in the .cfg, so
``meter replay`` and any COMTRADE reader get primary values. The directory keeps ``depth`` captures; the oldest
pair is deleted when a new one would exceed it, and ``overwritten`` counts them. Samples the acquisition lost
inside a capture's window are written as COMTRADE's missing values, with the recorded samples either side.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from firmware.recorder.polyphase import resample_poly
from hal.board import CHANNELS
from hal.comtrade import write_comtrade

PHASES = ("A", "A", "B", "B", "C", "C", "N")
# ION7400 waveform capture modes (user guide, "Waveform capture"): standard, a record around the trigger (the
# trigger position: pre cycles before it, post cycles after); delayed, that record moved delay cycles later;
# extended, pre records and post records of the same length either side of the trigger's record
CAPTURE_MODES = ("standard", "delayed", "extended")
MAX_CAPTURE_CYCLES = 660    # the longest capture (before + after the trigger): about 12 MB of samples held
# channel groups: each writes its own file per trigger (the ION7400 records voltages and currents separately)
CHANNEL_GROUPS = {"all": CHANNELS, "voltages": ("VA", "VB", "VC"), "currents": ("IA", "IB", "IC", "IN")}
UNITS = tuple("V" if name.startswith("V") else "A" for name in CHANNELS)
WAVEFORMS_DIR = "waveforms"     # under data_dir: the recorder writes there, the web service reads
PAD_CYCLES = 1          # samples beyond each end of the window, so the resampler's filter has settled there


class SampleHistory:
    """The last ``seconds`` of samples (n, 7) by absolute sample index.

    Frames the acquisition lost (a block that starts beyond the newest sample held) are held as missing, so a
    capture across a gap keeps the samples on both sides of it; a block that starts before the newest sample
    (acquisition restarted its count) or a gap longer than the history starts it over."""

    def __init__(self, seconds: float, sample_rate_hz: float) -> None:
        self.size = int(seconds * sample_rate_hz)
        self.buf = np.zeros((self.size, len(CHANNELS)), dtype=np.float32)
        self.end = 0            # index after the newest sample held
        self.count = 0          # samples held (up to size), missing ones included
        self.restarts = 0
        self.missing = 0        # frames lost between blocks, held as missing

    def add(self, first_index: int, x: np.ndarray) -> None:
        if self.count and first_index != self.end:
            lost = first_index - self.end
            if 0 < lost < self.size:
                self.missing += lost
                self._put(self.end, None, lost)
            else:
                self.restarts += 1
                self.count = 0
        n = x.shape[0]
        if n >= self.size:
            x, first_index, n = x[-self.size:], first_index + n - self.size, self.size
        self._put(first_index, x, n)

    def _put(self, first_index: int, x: np.ndarray | None, n: int) -> None:
        at = first_index % self.size
        k = min(n, self.size - at)
        for lo, hi, part in ((at, at + k, slice(0, k)), (0, n - k, slice(k, n))):
            self.buf[lo:hi] = np.nan if x is None else x[part]      # NaN: a lost frame
        self.end = first_index + n
        self.count = min(self.count + n, self.size)

    @property
    def start(self) -> int:
        return self.end - self.count

    def window(self, lo: int, hi: int) -> np.ndarray | None:
        """Samples lo..hi-1, clipped to the span held, NaN where frames were lost (all NaN when every frame of it
        was); None when the span held does not reach it."""
        lo, hi = max(lo, self.start), min(hi, self.end)
        if hi <= lo:
            return None
        idx = np.arange(lo, hi) % self.size
        return self.buf[idx].astype(np.float64)


def resample_with_gaps(raw: np.ndarray, up: int, down: int) -> np.ndarray:
    """``resample_poly(raw, up, down)`` along axis 0, where rows of NaN (lost frames) come out as NaN rows
    over the whole reach of the anti-alias filter, and the samples around them as if the gap were zero."""
    missing = np.isnan(raw).any(axis=1)
    if not missing.any():
        return resample_poly(raw, up, down)
    y = resample_poly(np.where(missing[:, None], 0.0, raw), up, down)
    # the filter has 10 * max(up, down) taps each side at the up-sampled rate (firmware.recorder.polyphase):
    # reach / up input samples
    reach = int(np.ceil(10 * max(up, down) / up)) + 1
    near = np.convolve(missing.astype(np.int32), np.ones(2 * reach + 1, dtype=np.int32), mode="same") > 0
    centre = np.clip(np.rint(np.arange(y.shape[0]) * down / up).astype(np.int64), 0, len(near) - 1)
    y[near[centre]] = np.nan
    return y


@dataclass(frozen=True)
class CaptureFormat:
    samples_per_cycle: int
    pre_cycles: int
    post_cycles: int
    nominal_hz: float
    sample_rate_hz: float
    data_format: str = "BINARY"         # COMTRADE data file type
    pt_ratio: tuple[float, float] = (1.0, 1.0)      # primary, secondary
    ct_ratio: tuple[float, float] = (1.0, 1.0)
    mode: str = "standard"              # CAPTURE_MODES
    delay_cycles: int = 0               # delayed: the record starts this much later
    pre_records: int = 0                # extended: records before and after the trigger's record
    post_records: int = 0

    def __post_init__(self) -> None:
        if self.mode not in CAPTURE_MODES:
            raise ValueError(f"capture mode {self.mode!r} is not one of {', '.join(CAPTURE_MODES)}")

    @property
    def cycle_samples(self) -> float:
        return self.sample_rate_hz / self.nominal_hz

    @property
    def cycles(self) -> tuple[int, int]:
        """(cycles before the trigger, cycles after it) the capture holds; before is negative when a delayed
        record starts after the trigger."""
        if self.mode == "delayed":
            return self.pre_cycles - self.delay_cycles, self.post_cycles + self.delay_cycles
        if self.mode == "extended":
            record = self.pre_cycles + self.post_cycles
            return self.pre_cycles + self.pre_records * record, self.post_cycles + self.post_records * record
        return self.pre_cycles, self.post_cycles

    def span(self, trigger_index: float) -> tuple[int, int]:
        """The raw sample range a capture needs (with the resampler's padding)."""
        n = self.cycle_samples
        before, after = self.cycles
        return (int(np.floor(trigger_index - (before + PAD_CYCLES) * n)),
                int(np.ceil(trigger_index + (after + PAD_CYCLES) * n)))

    def check(self) -> None:
        """ValueError when the capture would be longer than MAX_CAPTURE_CYCLES."""
        before, after = self.cycles
        if before + after > MAX_CAPTURE_CYCLES:
            raise ValueError(f"a {self.mode} capture of {before + after} cycles is longer than the "
                             f"{MAX_CAPTURE_CYCLES} a capture may hold")

    @property
    def span_s(self) -> float:
        """The longest stretch of samples a capture needs, padding included."""
        before, after = self.cycles
        return (before + after + 2 * PAD_CYCLES) / self.nominal_hz


class CaptureDirectory:
    def __init__(self, directory: str | Path, depth: int) -> None:
        self.dir = Path(directory)
        self.tmp = self.dir / ".partial"      # a capture is written here, then renamed into the directory
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.depth = depth
        self.overwritten = 0
        self.written = 0
        self._kept = sorted(self.dir.glob("*.cfg"))     # read once; this process is the directory's only writer

    def list(self) -> list[Path]:
        """The .cfg of every capture, oldest first (names start with the UTC time of the trigger)."""
        return list(self._kept)

    def write(self, name: str, fmt: CaptureFormat, raw: np.ndarray, raw_first: int, trigger_index: float,
              trigger_ns: int, ascii_: bool = False, group: str = "all") -> Path:
        """Resample ``raw`` (samples from index ``raw_first``) and write ``name``.cfg/.dat with the channels of
        ``group`` (CHANNEL_GROUPS); returns the .cfg."""
        cols = [CHANNELS.index(c) for c in CHANNEL_GROUPS[group]]
        raw = raw[:, cols]
        rate = fmt.samples_per_cycle * fmt.nominal_hz
        ratio = Fraction(rate / fmt.sample_rate_hz).limit_denominator(10000)
        y = resample_with_gaps(raw, ratio.numerator, ratio.denominator)
        # cut the padding: whole output samples from (trigger - pre cycles) to (trigger + post cycles)
        t_first = raw_first / fmt.sample_rate_hz
        before, after = fmt.cycles
        t_lo = (trigger_index - before * fmt.cycle_samples) / fmt.sample_rate_hz
        t_hi = (trigger_index + after * fmt.cycle_samples) / fmt.sample_rate_hz
        k_lo = max(int(np.ceil((t_lo - t_first) * rate - 1e-9)), 0)
        k_hi = min(int(np.floor((t_hi - t_first) * rate + 1e-9)), y.shape[0])
        data = y[k_lo:k_hi]
        start_s = t_first + k_lo / rate
        trigger_s = trigger_index / fmt.sample_rate_hz
        trigger_time = dt.datetime.fromtimestamp(trigger_ns / 1e9, dt.timezone.utc).replace(tzinfo=None)
        start_time = trigger_time - dt.timedelta(seconds=trigger_s - start_s)
        units = [UNITS[k] for k in cols]
        primary = [fmt.pt_ratio[0] if u == "V" else fmt.ct_ratio[0] for u in units]
        secondary = [fmt.pt_ratio[1] if u == "V" else fmt.ct_ratio[1] for u in units]
        self._make_room()
        tmp = self.tmp / name
        cfg, dat = write_comtrade(tmp, list(CHANNEL_GROUPS[group]), units, [PHASES[k] for k in cols], data, rate,
                                  start=start_time,
                                  trigger=trigger_time, station="openmeter", device="recorder", rev_year=2013,
                                  line_hz=fmt.nominal_hz, fmt="ASCII" if ascii_ else fmt.data_format,
                                  primary=primary, secondary=secondary, ps="S")
        # the .dat first, then the .cfg: a capture is listed (by its .cfg) only when both are complete
        for part in (dat, cfg):
            with open(part, "rb") as f:
                os.fsync(f.fileno())
        os.replace(dat, self.dir / f"{name}.dat")
        os.replace(cfg, self.dir / f"{name}.cfg")
        self.written += 1
        final = self.dir / f"{name}.cfg"
        self._kept.append(final)
        self._kept.sort()            # a trigger can be older than the last capture's (an RVC reported at its end)
        return final

    def _make_room(self) -> None:
        while len(self._kept) >= self.depth:
            cfg = self._kept.pop(0)
            cfg.unlink(missing_ok=True)
            cfg.with_suffix(".dat").unlink(missing_ok=True)
            self.overwritten += 1


def capture_names(directory: str | Path) -> list[str]:
    """The names of the complete captures in ``directory`` (a .cfg written last, with its .dat), oldest first:
    the list a reader checks a requested name against."""
    d = Path(directory)
    return sorted(p.stem for p in d.glob("*.cfg") if p.with_suffix(".dat").is_file())


def capture_name(trigger_ns: int, kind: str, group: str = "all") -> str:
    """``YYYYMMDDTHHMMSS<ns>Z_kind``, or ``..Z_group_kind`` for a group other than all: the kind stays last."""
    t = dt.datetime.fromtimestamp(trigger_ns / 1e9, dt.timezone.utc)
    middle = "" if group == "all" else f"{group}_"
    return f"{t:%Y%m%dT%H%M%S}{trigger_ns % 1_000_000_000:09d}Z_{middle}{kind}"
