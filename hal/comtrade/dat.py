"""The COMTRADE data file (.dat): ASCII, BINARY (int16), BINARY32 (int32) and FLOAT32.

A record is ``n, timestamp, A1..Ak, D1..Dm``: in ASCII one comma-separated line, in binary little-endian
uint32 n, uint32 timestamp, the analog values (int16, int32 or float32) and the digital channels packed 16 to
a uint16 word. Missing values are blank (ASCII; 99999 in a 1999 file), -32768 / -2^31 (BINARY / BINARY32) or NaN (FLOAT32); a
missing time stamp is blank or 0xFFFFFFFF.

Checked against the .cfg: the record size (binary: the file a whole number of records) or the number of
fields (ASCII), sample numbers that increase, digital values of 0 or 1, and (when the time stamps are the time
base) time stamps that are present and increase. A refusal names the file, the line (ASCII) or record
(binary) and the field. More or fewer records than the .cfg declares (the last ``endsamp``) are read to the
shorter of the two with a warning, as the common COMTRADE readers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hal.comtrade.cfg import Config, fail

ASCII_MISSING_1999 = 99999       # the 1999 revision's missing value in an ASCII file (2013: a blank field)
BINARY = {"BINARY": ("<i2", -32768), "BINARY32": ("<i4", -(2**31)), "FLOAT32": ("<f4", None)}


@dataclass
class Data:
    numbers: np.ndarray      # (n,) sample numbers
    stamps: np.ndarray       # (n,) float, NaN where missing
    raw: np.ndarray          # (n, n_analog) float, NaN where missing
    digital: np.ndarray      # (n, n_digital) uint8


def record_size(config: Config) -> int:
    n_a, n_d = len(config.analogs), len(config.digital_names)
    return 8 + n_a * np.dtype(BINARY[config.file_type][0]).itemsize + 2 * ((n_d + 15) // 16)


def read_dat(config: Config, dat_path: Path) -> Data:
    try:
        data = dat_path.read_bytes()
    except OSError as exc:
        raise fail(dat_path, f"cannot be read: {exc.strerror or exc}") from None
    out = _ascii(config, dat_path, data) if config.file_type == "ASCII" else _binary(config, dat_path, data)
    _check_numbers(config, dat_path, out.numbers)
    return out


def _where(config: Config, k: int) -> str:
    return f"line {k + 1}" if config.file_type == "ASCII" else f"record {k + 1}"


def _check_numbers(config: Config, path: Path, numbers: np.ndarray) -> None:
    if len(numbers) > 1:
        bad = np.flatnonzero(np.diff(numbers) <= 0)
        if len(bad):
            k = int(bad[0]) + 1
            hint = "" if config.file_type == "ASCII" else (
                f"; are the records {record_size(config)} bytes (the channel counts of the .cfg)?")
            raise fail(path, f"{_where(config, k)}, field n: sample number {int(numbers[k])} after "
                             f"{int(numbers[k - 1])}{hint}")


def _ascii(config: Config, path: Path, data: bytes) -> Data:
    n_a, n_d = len(config.analogs), len(config.digital_names)
    width = 2 + n_a + n_d
    rows = data.decode("latin-1").splitlines()
    while rows and not rows[-1].strip():
        rows.pop()
    if len(rows) != config.n_samples:
        _count_note(config, path, f"{len(rows)} lines", len(rows))
        rows = rows[:config.n_samples]
    fields = []
    for k, row in enumerate(rows):
        f = row.split(",")
        if len(f) == width + 1 and not f[-1].strip():
            f.pop()                     # a trailing comma
        if len(f) != width:
            raise fail(path, f"line {k + 1} has {len(f)} fields; the .cfg declares {width} "
                             f"(n, timestamp, {n_a} analog, {n_d} digital)")
        fields.append(f)
    table = np.array(fields, dtype=object).reshape(len(rows), width)
    numbers = _column(path, table[:, 0], "n", integral=True, missing_ok=False)
    stamps = _column(path, table[:, 1], "timestamp", integral=False, missing_ok=True)
    raw = np.empty((len(rows), n_a))
    for j in range(n_a):
        raw[:, j] = _column(path, table[:, 2 + j], f"analog {j + 1} ({config.analogs[j].name})",
                            integral=False, missing_ok=True)
    if config.rev_year < 2013:
        raw[raw == ASCII_MISSING_1999] = np.nan
    dig = np.zeros((len(rows), n_d), dtype=np.uint8)
    for j in range(n_d):
        col = np.char.strip(table[:, 2 + n_a + j].astype(str))
        ok = (col == "0") | (col == "1")
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise fail(path, f"line {k + 1}, field digital {j + 1} ({config.digital_names[j]}): {str(col[k])!r}; "
                             "allowed 0 or 1")
        dig[:, j] = col == "1"
    return Data(numbers, stamps, raw, dig)


def _count_note(config: Config, path: Path, found: str, n: int) -> None:
    """More or fewer records than the .cfg declares: read the shorter, as the common COMTRADE readers do."""
    config.warnings.append(f"{path}: {found}, but the .cfg (line {config.rates[-1].line}, field endsamp) declares "
                           f"{config.n_samples} samples; {min(n, config.n_samples)} read")


def _column(path: Path, col: np.ndarray, name: str, *, integral: bool, missing_ok: bool) -> np.ndarray:
    """One field of every line as float (NaN where blank and allowed); the first bad line named."""
    text = np.char.strip(col.astype(str))
    blank = text == ""
    try:
        values = np.where(blank, "nan", text).astype(np.float64)
    except ValueError:
        values = None
    if values is not None and not (blank.any() and not missing_ok):
        bad = ~blank & ~np.isfinite(values)
        if integral:
            bad |= ~blank & np.isfinite(values) & (values != np.round(values))
        if not bad.any():
            return values
    out = np.full(len(text), np.nan)
    for k, s in enumerate(text):
        if not s and missing_ok:
            continue
        try:
            v = float(s)
            if not np.isfinite(v) or (integral and v != round(v)):
                raise ValueError
        except ValueError:
            kind = "a whole number" if integral else "a number"
            raise fail(path, f"line {k + 1}, field {name}: {str(s)!r} is not {kind}") from None
        out[k] = v
    return out


def _binary(config: Config, path: Path, data: bytes) -> Data:
    n_a, n_d = len(config.analogs), len(config.digital_names)
    code, missing = BINARY[config.file_type]
    n_words = (n_d + 15) // 16
    rec = np.dtype([("n", "<u4"), ("t", "<u4"), ("a", code, (n_a,)), ("d", "<u2", (n_words,))])
    size = rec.itemsize
    declared = config.n_samples
    if len(data) % size:
        # records of another size than the .cfg's channels make: nothing in the file can be trusted
        raise fail(path, f"{len(data)} bytes are not a whole number of {size}-byte records ({len(data) % size} bytes "
                         f"over): the .cfg declares {n_a} analog x {np.dtype(code).itemsize} bytes and {n_d} digital "
                         "per record; is it this .dat's .cfg?")
    arr = np.frombuffer(data[:min(len(data), declared * size)], dtype=rec)
    if len(data) != declared * size:
        found = f"{len(data) // size} records of {size} bytes"
        if len(arr) > 1 and not (np.diff(arr["n"].astype(np.int64)) == 1).all():
            # another count and sample numbers that do not run 1 by 1: records of another size than the
            # .cfg's channels make (5 channels declared over 6 can still divide); nothing can be trusted
            raise fail(path, f"{len(data)} bytes = {found}, but the .cfg (line {config.rates[-1].line}, field "
                             f"endsamp) declares {declared} samples of {n_a} analog x {np.dtype(code).itemsize} "
                             f"bytes and {n_d} digital, and the sample numbers do not count up: is it this .dat's "
                             ".cfg?")
        _count_note(config, path, found, len(data) // size)
    raw = arr["a"].astype(np.float64).reshape(len(arr), n_a)
    if missing is not None:
        raw[arr["a"].reshape(len(arr), n_a) == missing] = np.nan
    else:
        inf = np.isinf(raw)
        if inf.any():
            k, j = (int(v[0]) for v in np.nonzero(inf))
            raise fail(path, f"record {k + 1}, field analog {j + 1} ({config.analogs[j].name}): infinite value")
    stamps = arr["t"].astype(np.float64)
    stamps[arr["t"] == 0xFFFFFFFF] = np.nan
    numbers = arr["n"].astype(np.float64)
    if n_d == 0:
        return Data(numbers, stamps, raw, np.zeros((len(arr), 0), dtype=np.uint8))
    bits = np.unpackbits(np.ascontiguousarray(arr["d"]).view(np.uint8).reshape(len(arr), -1), axis=1,
                         bitorder="little")
    return Data(numbers, stamps, raw, bits[:, :n_d].astype(np.uint8))
