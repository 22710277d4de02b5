"""COMTRADE writer (IEEE C37.111-1999/2013): waveform records out, in any of the four data file types."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from hal.comtrade.dat import ASCII_MISSING_1999, BINARY
from hal.errors import ComtradeError

FORMATS = ("ASCII", *BINARY)


def write_comtrade(base: str | Path, names: list[str], units: list[str], phases: list[str], data: np.ndarray,
                   rate_hz: float, *, start: dt.datetime | None = None, trigger: dt.datetime | None = None,
                   station: str = "openmeter", device: str = "meter", rev_year: int = 2013, line_hz: float = 50.0,
                   fmt: str = "BINARY", primary: list[float] | None = None, secondary: list[float] | None = None,
                   ps: str = "S") -> tuple[Path, Path]:
    """Write ``base.cfg`` and ``base.dat``; integer formats scale each channel to use its full range. NaN in
    ``data`` is written as the format's missing value (blank in ASCII, 99999 in a 1999 one, the most negative integer in BINARY and
    BINARY32, NaN in FLOAT32)."""
    if fmt not in FORMATS:
        raise ComtradeError(f"comtrade {base}: format {fmt!r}; allowed {', '.join(FORMATS)}")
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
    # 99999 in an ASCII file (IEEE C37.111-1999) and -32768 in a binary one mean "missing": full scale stays short
    limit = {"ASCII": 99998, "BINARY": 32767, "BINARY32": 2**31 - 1, "FLOAT32": 1}[fmt]
    missing = np.isnan(data)
    peak = np.maximum(np.abs(np.where(missing, 0.0, data)).max(axis=0), 1e-12) if n else np.ones(k)
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
        q = np.rint(np.where(missing, 0.0, data) / a).astype(np.int64)
        blank = "" if rev_year == 2013 else str(ASCII_MISSING_1999)
        rows = [f"{i + 1},{stamps[i]}," + ",".join(blank if gone else str(v) for v, gone in zip(q[i], missing[i]))
                for i in range(n)]
        dat.write_text("\r\n".join(rows) + "\r\n", encoding="latin-1")
    else:
        code, marker = BINARY[fmt]
        rec = np.dtype([("n", "<u4"), ("t", "<u4"), ("a", code, (k,))])
        arr = np.zeros(n, dtype=rec)
        arr["n"] = np.arange(1, n + 1)
        arr["t"] = stamps
        if fmt == "FLOAT32":
            arr["a"] = data                                   # NaN is FLOAT32's missing value
        else:
            arr["a"] = np.where(missing, float(marker or 0), np.rint(np.where(missing, 0.0, data) / a))
        dat.write_bytes(arr.tobytes())
    return cfg, dat
