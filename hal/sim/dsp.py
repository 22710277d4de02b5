"""The simulated ADE9000's sample engine: ADC frames, waveform buffer pages, RMS, power, period, energy.

Everything is driven by frame counts at 32 kSPS since RUN, so the same code serves real time
(frames due by the wall clock) and virtual time (frames due by the virtual clock). Registers are
written through the callbacks of ``SimAde9000``; this module holds only numbers.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from hal.board import SAMPLE_FULL_SCALE_CODES, ChannelParams
from hal.regmap import regmap
from hal.sim import adc

_RM = regmap()
WAVEFORM_RATE_HZ = int(_RM.const("WAVEFORM_RATE_HZ"))
FRAME_NS = 1_000_000_000 // WAVEFORM_RATE_HZ            # 31,250 ns exactly at 32 kSPS
FRAMES_PER_DSP_SAMPLE = WAVEFORM_RATE_HZ // int(_RM.const("DSP_RATE_HZ"))  # 4
WFB = _RM.waveform_buffer
WORDS_PER_FRAME = int(WFB["words_per_frame"])
BUFFER_FRAMES = int(WFB["words"]) // WORDS_PER_FRAME   # 256
PAGE_FRAMES = int(WFB["page_words"]) // WORDS_PER_FRAME  # 16
N_PAGES = int(WFB["pages"])
RMS_FS = float(_RM.const("RMS_FULL_SCALE_CODES"))
WATT_FS = float(_RM.const("WATT_FULL_SCALE_CODES"))
PERIOD_SCALE = float(_RM.const("PERIOD_SCALE"))
MEASURE_FRAMES = 3200       # RMS/power/period registers refresh every 0.1 s (5 cycles at 50 Hz, 6 at 60 Hz)
CACHE_FRAMES = 4096         # frames generated in one numpy call (the chip's own process uses smaller chunks)
MAX_CHUNKS = 8              # cached chunks kept before those behind the present are dropped
GAIN_ONE = 1 << 27          # xIGAIN/xVGAIN/xPGAIN: gain = 1 + reg / 2^27


class Source(Protocol):
    def sample(self, t: np.ndarray) -> np.ndarray: ...


class FrameSource:
    """Terminal signal -> ADC codes for global frame numbers, generated ahead in chunks and cached."""

    def __init__(self, source: Source, channels: tuple[ChannelParams, ...], noise: bool, seed: int,
                 nominal_hz: float) -> None:
        self.source = source
        self.channels = channels
        self.noise = noise
        self.seed = seed
        self.lags = adc.lags_s(channels, nominal_hz)
        self.t0_ns = 0             # clock time of frame 0 (RUN)
        self.chunk_frames = CACHE_FRAMES
        self._chunks: dict[tuple[int, int], np.ndarray] = {}

    def restart(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns
        self._chunks = {}

    def frame_time_s(self, n: np.ndarray | int) -> np.ndarray | float:
        return (self.t0_ns + np.asarray(n, dtype=np.int64) * FRAME_NS) / 1e9

    def _chunk(self, k: int) -> np.ndarray:
        """Codes of frames [k * chunk_frames, (k + 1) * chunk_frames): a pure function of the frame numbers (and of
        the time of frame 0), so the same frames come out however the calls are cut."""
        key = (self.t0_ns, k)
        chunk = self._chunks.get(key)
        if chunk is None:
            a, n = k * self.chunk_frames, self.chunk_frames
            t = np.asarray(self.frame_time_s(np.arange(a, a + n)))
            phys = self.source.sample(t[:, None] - self.lags[None, :])
            extra = getattr(self.source, "noise", None)
            if callable(extra):
                phys = phys + extra(a, n)
            rng = np.random.default_rng([self.seed, a])
            chunk = adc.quantise(phys, self.channels, noise=self.noise, rng=rng)
            self._chunks[key] = chunk
            if len(self._chunks) > MAX_CHUNKS:
                for old in list(self._chunks):
                    if old[0] != self.t0_ns or old[1] < k - 1:
                        self._chunks.pop(old, None)
        return chunk

    def prefetch(self, frame: int) -> bool:
        """Compute the chunk that holds ``frame`` now, ahead of the moment it is needed; False when it was
        already there."""
        k = max(frame, 0) // self.chunk_frames
        if (self.t0_ns, k) in self._chunks:
            return False
        self._chunk(k)
        return True

    def codes(self, a: int, b: int) -> np.ndarray:
        k0, k1 = a // self.chunk_frames, (b - 1) // self.chunk_frames
        if k1 <= k0:
            return self._chunk(k0)[a - k0 * self.chunk_frames:b - k0 * self.chunk_frames]
        whole = np.concatenate([self._chunk(k) for k in range(k0, k1 + 1)])
        return whole[a - k0 * self.chunk_frames:b - k0 * self.chunk_frames]


class Measurements:
    """Windowed RMS, power and period of the three phases, and the 45-bit energy accumulators."""

    def __init__(self, nominal_hz: float) -> None:
        self.nominal_hz = nominal_hz
        self.reset()

    def reset(self) -> None:
        self._win: list[np.ndarray] = []
        self._win_frames = 0
        self._hist = np.zeros((0, 3))          # recent voltages for the quarter-cycle shift (reactive power)
        self.rms = np.zeros(7)                 # normalised (1.0 = full-scale peak) rms per channel
        self.watt = np.zeros(3)
        self.var = np.zeros(3)
        self.period = np.full(3, np.nan)
        self.energy = np.zeros((3, 3))         # [phase, (watt, var, va)] in accumulator LSBs, this EGY interval
        self._nl_window = np.zeros((3, 3))     # energy of the no-load period under way, not yet accumulated
        self._nl_frames = 0

    def _accumulate(self, e: np.ndarray, levels: np.ndarray, period_frames: int) -> None:
        """Per-frame energies ``e`` (m, 3 phases, 3 kinds) into the accumulators through the no-load gate: each
        NOLOAD_TMR period's energy of one phase and kind counts only if its magnitude reaches that kind's
        xNL_LVL (TRM "No-Load Detection"); ``period_frames`` 0: no-load detection off."""
        if period_frames <= 0:
            self.energy += e.sum(axis=0)
            return
        k = 0
        while k < len(e):
            take = min(period_frames - self._nl_frames, len(e) - k)
            self._nl_window += e[k:k + take].sum(axis=0)
            self._nl_frames += take
            k += take
            if self._nl_frames >= period_frames:
                self.energy += np.where(np.abs(self._nl_window) >= levels[None, :], self._nl_window, 0.0)
                self._nl_window[:] = 0.0
                self._nl_frames = 0

    def add(self, x: np.ndarray, vgain: np.ndarray, igain: np.ndarray, pgain: np.ndarray,
            accumulate: bool, nl_levels: np.ndarray | None = None, nl_period_frames: int = 0,
            vconsel: int = 0) -> bool:
        """Feed normalised frames (m, 7); returns True when a measurement window completed. ``nl_levels``:
        ACT, REACT, APP_NL_LVL; ``nl_period_frames``: the no-load period in frames (0: no gate); ``vconsel``:
        ACCMODE.VCONSEL, the phase voltages the chip computes from its inputs (``phase_voltages``)."""
        v = phase_voltages(x[:, 1::2][:, :3], vconsel) * vgain
        i = x[:, 0:6:2] * igain
        quarter = self.nominal_hz and WAVEFORM_RATE_HZ / self.nominal_hz / 4.0
        hist = np.concatenate([self._hist, v])
        pos = np.arange(len(self._hist), len(hist)) - quarter
        vq = np.stack([np.interp(pos, np.arange(len(hist)), hist[:, p], left=0.0) for p in range(3)], axis=1)
        self._hist = hist[-int(quarter) - 2:]
        if accumulate:
            k = 0.5 * WATT_FS * pgain           # per 32k frame: xWATT/4, xWATT = 2*WATT_FS*<v*i>
            e = np.empty((len(x), 3, 3))
            e[:, :, 0] = k * v * i
            e[:, :, 1] = k * vq * i
            e[:, :, 2] = k * self.rms[1:6:2][:3] * self.rms[0:6:2]
            self._accumulate(e, nl_levels if nl_levels is not None else np.zeros(3), nl_period_frames)
        self._win.append(np.concatenate([x, v, i, vq], axis=1))
        self._win_frames += len(x)
        if self._win_frames < MEASURE_FRAMES:
            return False
        w = np.concatenate(self._win)
        self._win, self._win_frames = [], 0
        xw, vw, iw, qw = w[:, :7], w[:, 7:10], w[:, 10:13], w[:, 13:16]
        self.rms = np.sqrt(np.mean(xw**2, axis=0))
        self.rms[1:6:2] = np.sqrt(np.mean(vw**2, axis=0))
        self.rms[0:6:2] = np.sqrt(np.mean(iw**2, axis=0))
        self.watt = 2 * np.mean(vw * iw, axis=0)
        self.var = 2 * np.mean(qw * iw, axis=0)
        self.period = np.array([_period_frames(vw[:, p]) for p in range(3)])
        return True

    def registers(self, pgain: np.ndarray) -> dict[str, int]:
        out: dict[str, int] = {}
        for p, ph in enumerate("ABC"):
            out[f"{ph}IRMS"] = int(round(self.rms[2 * p] * np.sqrt(2) * RMS_FS))
            out[f"{ph}VRMS"] = int(round(self.rms[2 * p + 1] * np.sqrt(2) * RMS_FS))
            out[f"{ph}WATT"] = int(round(self.watt[p] * pgain[p] * WATT_FS))
            out[f"{ph}VAR"] = int(round(self.var[p] * pgain[p] * WATT_FS))
            out[f"{ph}VA"] = int(round(2 * self.rms[2 * p] * self.rms[2 * p + 1] * pgain[p] * WATT_FS))
            if np.isfinite(self.period[p]):
                hz = WAVEFORM_RATE_HZ / self.period[p]
                out[f"{ph}PERIOD"] = int(round(PERIOD_SCALE / hz - 1))
        out["NIRMS"] = int(round(self.rms[6] * np.sqrt(2) * RMS_FS))
        return out

    def take_energy(self) -> np.ndarray:
        """Integer accumulator values for the interval just ended (45-bit two's complement), then restart."""
        out = np.floor(self.energy).astype(np.int64)
        self.energy = np.zeros((3, 3))
        return out


def phase_voltages(v: np.ndarray, vconsel: int) -> np.ndarray:
    """The three phase voltages the chip meters, from the VA, VB, VC inputs (m, 3), as ACCMODE.VCONSEL selects
    (TRM UG-1098, "Applying the ADE9000 to ..." services): 0 4-wire wye, as measured; 1 3-wire delta, VB = VA - VC
    (only phases A and C add up to the system's power); 2 4-wire wye non-Blondel, VB = -VA - VC; 3 4-wire delta
    non-Blondel, VB = -VA; 4 3-wire delta with VB as reference: VA - VB, VA - VC, VC - VB."""
    va, vb, vc = v[:, 0], v[:, 1], v[:, 2]
    if vconsel == 1:
        return np.stack((va, va - vc, vc), axis=1)
    if vconsel == 2:
        return np.stack((va, -va - vc, vc), axis=1)
    if vconsel == 3:
        return np.stack((va, -va, vc), axis=1)
    if vconsel == 4:
        return np.stack((va - vb, va - vc, vc - vb), axis=1)
    return v


def _period_frames(v: np.ndarray) -> float:
    """Mean period in frames from interpolated rising zero crossings; NaN with fewer than two."""
    s = np.signbit(v)
    idx = np.nonzero(s[:-1] & ~s[1:])[0]
    if len(idx) < 2:
        return float("nan")
    frac = v[idx] / (v[idx] - v[idx + 1])
    crossings = idx + frac
    return float((crossings[-1] - crossings[0]) / (len(crossings) - 1))


def normalise(codes: np.ndarray) -> np.ndarray:
    """24-bit codes -> fraction of the +-1 V peak full scale."""
    return codes.astype(np.float64) / SAMPLE_FULL_SCALE_CODES


