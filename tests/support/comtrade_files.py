"""COMTRADE files as other recorders write them, built here byte by byte (not with hal.comtrade's writer):
several sample rates, time stamps as the time base, names and phase codes of other vendors, digital
channels, and every broken form the reader must refuse."""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BINARY_CODES = {"BINARY": ("h", 2), "BINARY32": ("i", 4), "FLOAT32": ("f", 4)}


@dataclass
class Chan:
    name: str
    ph: str
    unit: str
    a: float = 1.0
    b: float = 0.0
    skew_us: float = 0.0
    primary: float = 1.0
    secondary: float = 1.0
    ps: str = "S"


def sine(t: np.ndarray, rms: float, deg: float, hz: float = 50.0) -> np.ndarray:
    return math.sqrt(2) * rms * np.cos(2 * math.pi * hz * t + math.radians(deg))


def times_of(rates: list[tuple[float, int]]) -> np.ndarray:
    """The sample times a multi-rate recorder means: 1/samp apart inside a segment, and the first sample of
    the next segment one step of the previous segment after its last sample."""
    out, t, prev = [], 0.0, 0
    for samp, end in rates:
        for _ in range(end - prev):
            out.append(t)
            t += 1.0 / samp
        prev = end
    return np.array(out)


def write(base: Path, chans: list[Chan], values: np.ndarray, *, rates: list[tuple[float, int]] | None = None,
          stamps_us: np.ndarray | None = None, fmt: str = "ASCII", rev: int = 1999, lf: float = 50.0,
          digital: np.ndarray | None = None, digital_names: tuple[str, ...] = (), timemult: float = 1.0,
          station: str = "RELAY 7", declare_analog: int | None = None, endsamp: int | None = None) -> Path:
    """``base.cfg`` + ``base.dat``. ``rates`` None: nrates 0 and ``stamps_us`` are the time base."""
    n, k = values.shape
    digital = np.zeros((n, 0), dtype=np.uint8) if digital is None else digital
    n_d = digital.shape[1]
    n_a = k if declare_analog is None else declare_analog
    lines = [f"{station},DFR-3000,{rev}" if rev != 1991 else f"{station},DFR-3000", f"{n_a + n_d},{n_a}A,{n_d}D"]
    for j, c in enumerate(chans[:n_a]):
        line = f"{j + 1},{c.name},{c.ph},,{c.unit},{c.a:.12g},{c.b:.12g},{c.skew_us:g},-32767,32767"
        if rev != 1991:
            line += f",{c.primary:g},{c.secondary:g},{c.ps}"
        lines.append(line)
    for j, name in enumerate(digital_names):
        lines.append(f"{j + 1},{name},,,0")
    lines.append(f"{lf:g}")
    if rates is None:
        lines += ["0", f"0,{endsamp or n}"]
    else:
        lines.append(str(len(rates)))
        lines += [f"{samp:g},{end}" for samp, end in rates]
    lines += ["11/03/2019,08:15:30.250000", "11/03/2019,08:15:30.350000", fmt, f"{timemult:g}"]
    if rev == 2013:
        lines += ["+1h00,+1h00", "0,0"]
    cfg = base.with_suffix(".cfg")
    cfg.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    if stamps_us is None:
        t = times_of(rates) if rates else np.arange(n) * 1e-4
        stamps_us = np.rint(t * 1e6)
    a = np.array([c.a for c in chans])
    b = np.array([c.b for c in chans])
    raw = (values - b) / a
    dat = base.with_suffix(".dat")
    if fmt == "ASCII":
        rows = []
        for i in range(n):
            ana = ",".join(str(int(round(v))) for v in raw[i])
            dig = "".join(f",{int(x)}" for x in digital[i])
            rows.append(f"{i + 1},{int(stamps_us[i])},{ana}{dig}")
        dat.write_bytes(("\r\n".join(rows) + "\r\n").encode("latin-1"))
    else:
        code, _ = BINARY_CODES[fmt]
        words = (n_d + 15) // 16
        out = bytearray()
        for i in range(n):
            ana = [float(v) for v in raw[i]] if fmt == "FLOAT32" else [int(round(v)) for v in raw[i]]
            packed = [0] * words
            for j in range(n_d):
                packed[j // 16] |= int(digital[i, j]) << (j % 16)
            out += struct.pack(f"<II{k}{code}{words}H", i + 1, int(stamps_us[i]), *ana, *packed)
        dat.write_bytes(bytes(out))
    return cfg


def three_phase(t: np.ndarray, v: float = 63.5, i: float = 1.0, hz: float = 50.0, lag: float = 30.0) -> dict:
    """Secondary values of a balanced system, by meter input."""
    return {"VA": sine(t, v, 0, hz), "VB": sine(t, v, -120, hz), "VC": sine(t, v, 120, hz),
            "IA": sine(t, i, -lag, hz), "IB": sine(t, i, -120 - lag, hz), "IC": sine(t, i, 120 - lag, hz)}


def standard_chans(a_v: float = 0.01, a_i: float = 0.0005) -> list[Chan]:
    return [Chan("VA", "A", "V", a_v), Chan("VB", "B", "V", a_v), Chan("VC", "C", "V", a_v),
            Chan("IA", "A", "A", a_i), Chan("IB", "B", "A", a_i), Chan("IC", "C", "A", a_i)]


def standard_values(t: np.ndarray, hz: float = 50.0) -> np.ndarray:
    w = three_phase(t, hz=hz)
    return np.stack([w[k] for k in ("VA", "VB", "VC", "IA", "IB", "IC")], axis=1)
