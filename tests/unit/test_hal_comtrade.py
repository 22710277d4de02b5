"""COMTRADE: files written by hand here (an independent writer) read with the right scaling and mapping;
the project's writer round-trips; a recording replays through the simulated chip."""
from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest

from hal.ade9000 import ChipSettings
from hal.board import BoardParams, default_channels
from hal.comtrade import ComtradeSource, meter_channels, read_comtrade, write_comtrade
from hal.errors import ComtradeError
from hal.hardware import open_hardware

RATE = 6400.0        # 128 samples per 50 Hz cycle


def wave(n, rms, deg):
    t = np.arange(n) / RATE
    return np.sqrt(2) * rms * np.cos(2 * np.pi * 50 * t + np.deg2rad(deg))


def test_1999_ascii_by_hand_with_primary_values_in_kv(tmp_dir):
    """PS = P: values are primary kV through a 11000/110 VT; the meter needs secondary volts."""
    n = 256
    va_kv = wave(n, 6.351, 0) / 1000 * 1000   # 6.351 kV primary rms
    ia = wave(n, 2.0, -30)
    a_v, a_i = 0.001, 0.0005                   # per count
    cfg = ["SUB1,REL7,1999", "3,3A,0D",
           "1,Ua,,,kV,%g,0,0,-32767,32767,11000,110,P" % a_v,
           "2,Ib,B,,A,%g,0,0,-32767,32767,200,5,S" % a_i,
           "3,Ia,,,A,%g,0,0,-32767,32767,200,5,S" % a_i,
           "50", "1", "%g,%d" % (RATE, n), "01/02/2020,10:00:00.000000", "01/02/2020,10:00:00.010000",
           "ASCII", "1"]
    rows = [f"{k + 1},{int(k / RATE * 1e6)},{round(va_kv[k] / a_v)},{round(-ia[k] / a_i)},{round(ia[k] / a_i)}"
            for k in range(n)]
    d = tmp_dir()
    (d / "rec.cfg").write_text("\n".join(cfg) + "\n")
    (d / "rec.dat").write_text("\n".join(rows) + "\n")
    rec = read_comtrade(d / "rec.cfg")
    assert rec.rev_year == 1999 and rec.sample_rate_hz == RATE and rec.start == dt.datetime(2020, 2, 1, 10)
    x, used = meter_channels(rec)
    assert used[:4] == ["Ia", "Ua", "Ib", ""]
    # 6.351 kV primary -> 63.51 V secondary; scaling within the file's own quantisation
    assert np.sqrt(np.mean(x[:, 1] ** 2)) == pytest.approx(63.51, rel=1e-4)
    assert np.sqrt(np.mean(x[:, 0] ** 2)) == pytest.approx(2.0, rel=1e-3)
    assert np.all(x[:, 6] == 0.0) and used[6] == ""        # no IN recorded: zero, and reported unmapped


def test_2013_binary_by_hand_timestamps_and_missing_samples(tmp_dir):
    n = 100
    vals = np.arange(n, dtype=np.int16) * 10
    vals[5] = -32768                                      # missing sample marker
    d = tmp_dir()
    cfg = ["S,D,2013", "1,1A,0D", "1,VA,A,,V,0.5,1.0,0,-32767,32767,1,1,S", "60", "0", "0,%d" % n,
           "01/01/2021,00:00:00.000000", "01/01/2021,00:00:00.000000", "BINARY", "2", "+1h00,+1h00", "0,0"]
    (d / "b.cfg").write_text("\r\n".join(cfg))
    (d / "b.dat").write_bytes(b"".join(struct.pack("<IIh", k + 1, 250 * k, vals[k]) for k in range(n)))
    rec = read_comtrade(d / "b.dat")
    assert rec.line_hz == 60 and rec.sample_rate_hz == 0.0
    assert rec.times_s[1] == pytest.approx(500e-6)          # timestamp 250 x timemult 2 us
    assert rec.analog[3, 0] == pytest.approx(0.5 * 30 + 1.0) and np.isnan(rec.analog[5, 0])


@pytest.mark.parametrize("fmt,rev", [("ASCII", 1999), ("BINARY", 1999), ("BINARY32", 2013), ("FLOAT32", 2013)])
def test_writer_round_trip(fmt, rev, tmp_dir):
    n = 640
    data = np.stack([wave(n, 5, -20), wave(n, 230, 0), wave(n, 5, -140), wave(n, 230, -120)], axis=1)
    d = tmp_dir()
    write_comtrade(d / "w", ["IA", "VA", "IB", "VB"], ["A", "V", "A", "V"], ["A", "A", "B", "B"], data, RATE,
                   fmt=fmt, rev_year=rev)
    rec = read_comtrade(d / "w")
    tol = {"ASCII": 1 / 99999, "BINARY": 1 / 32767, "BINARY32": 1e-9, "FLOAT32": 1e-7}[fmt]
    assert np.abs(rec.analog - data).max() <= tol * np.abs(data).max() * 0.51 + 1e-12
    assert rec.sample_rate_hz == RATE and rec.rev_year == rev


@pytest.mark.parametrize("fmt,rev", [("ASCII", 1999), ("ASCII", 2013), ("BINARY", 2013), ("BINARY32", 2013),
                                     ("FLOAT32", 2013)])
def test_missing_samples_are_written_as_the_formats_missing_value(fmt, rev, tmp_dir):
    n = 256
    data = np.stack([wave(n, 5, -20), wave(n, 230, 0)], axis=1)
    data[100:120] = np.nan                  # frames lost on both channels
    data[:, 1][200] = np.nan                # one value of one channel
    d = tmp_dir()
    write_comtrade(d / "m", ["IA", "VA"], ["A", "V"], ["A", "A"], data, RATE, fmt=fmt, rev_year=rev)
    rec = read_comtrade(d / "m")
    assert np.array_equal(np.isnan(rec.analog), np.isnan(data))
    ok = ~np.isnan(data)
    assert np.abs(rec.analog[ok] - data[ok]).max() <= 1e-4 * 325


def test_errors_name_the_file_and_the_problem(tmp_dir):
    d = tmp_dir()
    (d / "bad.cfg").write_text("S,D,1999\n2,1A,0D\n1,VA,A,,V,1,0,0,-1,1,1,1,S\n50\n1\n1000,1\nx\nx\nASCII\n1\n")
    with pytest.raises(ComtradeError, match=r"bad.cfg: line 2 says 2 channels but 1A \+ 0D"):
        read_comtrade(d / "bad.cfg")
    (d / "bad.cfg").write_text("S,D,1999\n1,1A,0D\n1,VA,A,,V,1,0,0,-1,1,1,1,S\n50\n1\n1000,1\nx\nx\nHEX\n1\n")
    with pytest.raises(ComtradeError, match="file type 'HEX'"):
        read_comtrade(d / "bad.cfg")
    with pytest.raises(ComtradeError, match="missing.cfg: cannot be read"):
        read_comtrade(d / "missing.cfg")


def test_recording_replays_through_the_simulated_chip_with_its_scaling(tmp_dir):
    n = int(RATE) // 2
    rms = np.array([4.0, 231.0] * 3)
    deg = np.array([-25, 0, -145, -120, 95, 120])
    data = np.stack([wave(n, r, g) for r, g in zip(rms, deg)], axis=1)
    d = tmp_dir()
    # primary kA/kV through 400:5 CTs and 20000:230 VTs; the meter's terminals see the secondary side
    ratio = np.array([400 / 5, 20000 / 230] * 3)
    write_comtrade(d / "r", ["IA", "VA", "IB", "VB", "IC", "VC"], ["kA", "kV"] * 3, list("AABBCC"),
                   data * ratio / 1e3, RATE, ps="P", primary=[400, 20000] * 3, secondary=[5, 230] * 3)
    src = ComtradeSource(read_comtrade(d / "r"))
    board = BoardParams("sim", channels=default_channels(), sim_noise=False)
    hw = open_hardware(board, ChipSettings(default_channels()), source=src, realtime=False)
    hw.chip.bring_up()
    hw.stream.start()
    block = next(hw.stream.blocks(max_blocks=1))
    t = (block.timestamp_ns - hw.clock.epoch_ns) / 1e9 + np.arange(128) / 32000.0
    ideal = np.sqrt(2) * rms * np.cos(2 * np.pi * 50 * t[:, None] + np.deg2rad(deg))
    scale = np.array([ch.scale() for ch in default_channels()])[:6]
    err = np.abs(block.codes[:, :6] * scale - ideal).max(axis=0) / (np.sqrt(2) * rms)
    # int16 file quantisation (1/32767 of peak) + cubic interpolation at 128 samples/cycle + 24-bit quantisation
    assert err.max() < 1e-4, err


@pytest.fixture
def tmp_dir(tmp_path):
    return lambda: tmp_path
