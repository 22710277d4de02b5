"""Per-channel calibration (gain, phase, offset) from a calibration file, and the chip registers it sets.

The file is TOML with one table per channel, all keys optional::

    # calibration.toml, written by the calibration tool
    [IA]
    gain = 1.00213        # multiplies the channel's ideal scale
    phase_deg = 0.082     # advance applied at the nominal frequency
    offset = 0.0012       # terminal units (A), subtracted by metrology
    [VA]
    gain = 0.99871

Gain and phase go to the chip (xIGAIN/xVGAIN, xPHCAL0) for its own energy path, and to the sample
stream (scale of each channel; phase and offset are published with the samples' calibration for
metrology, since the 32 kSPS sinc4 samples leave the chip before its DSP applies calibration).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from hal.board import CHANNELS, ChannelParams
from hal.errors import ConfigError

GAIN_ONE = 1 << 27
GAIN_LIMITS = (0.5, 1.5)          # xGAIN register range is -1..+1 (2^27 scale); a meter outside +-50 % is broken
PHASE_LIMIT_DEG = 5.0
_KEYS = {"gain", "phase_deg", "offset"}


@dataclass(frozen=True)
class ChannelCal:
    gain: float = 1.0
    phase_deg: float = 0.0
    offset: float = 0.0


def load_calibration(path: str | Path) -> dict[str, ChannelCal]:
    """Read a calibration file; every problem is a ConfigError naming the file, channel and key."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"calibration {p}: file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"calibration {p}: cannot be read: {exc}") from None
    out: dict[str, ChannelCal] = {}
    for name, table in doc.items():
        if name not in CHANNELS or not isinstance(table, dict):
            raise ConfigError(f"calibration {p}: [{name}] is not a channel; allowed {', '.join(CHANNELS)}")
        for key, value in table.items():
            if key not in _KEYS:
                raise ConfigError(f"calibration {p}: [{name}] option '{key}' is not valid; "
                                  f"valid options: {', '.join(sorted(_KEYS))}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"calibration {p}: [{name}] option '{key}': {value!r} is not a number")
        cal = ChannelCal(float(table.get("gain", 1.0)), float(table.get("phase_deg", 0.0)),
                         float(table.get("offset", 0.0)))
        if not GAIN_LIMITS[0] <= cal.gain <= GAIN_LIMITS[1]:
            raise ConfigError(f"calibration {p}: [{name}] option 'gain': {cal.gain} is out of range; "
                              f"allowed {GAIN_LIMITS[0]}..{GAIN_LIMITS[1]}")
        if abs(cal.phase_deg) > PHASE_LIMIT_DEG:
            raise ConfigError(f"calibration {p}: [{name}] option 'phase_deg': {cal.phase_deg} is out of range; "
                              f"allowed -{PHASE_LIMIT_DEG}..{PHASE_LIMIT_DEG}")
        out[name] = cal
    return out


def apply_calibration(channels: tuple[ChannelParams, ...], cal: dict[str, ChannelCal]) -> tuple[ChannelParams, ...]:
    """Channels with the file's calibration replacing the board's defaults."""
    return tuple(replace(ch, cal_gain=cal[ch.name].gain, cal_phase_deg=cal[ch.name].phase_deg,
                         cal_offset=cal[ch.name].offset) if ch.name in cal else ch for ch in channels)


def gain_register(gain: float) -> int:
    """xIGAIN/xVGAIN value for a gain: gain = 1 + reg / 2^27 (TRM 'Current Channel Gain')."""
    return int(round((gain - 1.0) * GAIN_ONE))


def phase_register(phase_deg: float, line_hz: float, dsp_hz: float) -> int:
    """xPHCAL0 for a phase correction at the line frequency (TRM 'Phase Compensation'):

    xPHCAL0 = (sin(phi - w) + sin(w)) / sin(2w - phi) * 2^27, w = 2*pi*f_line/f_DSP.
    """
    w = 2 * math.pi * line_hz / dsp_hz
    phi = math.radians(phase_deg)
    return int(round((math.sin(phi - w) + math.sin(w)) / math.sin(2 * w - phi) * GAIN_ONE))
