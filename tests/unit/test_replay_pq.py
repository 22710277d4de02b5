"""`meter replay` for a PQ engineer: the PQ events of a recording as JSON lines (--events); a multi-rate relay
record whose slow segments cannot carry the fundamental replayed with those segments as gaps; a .dat with more
or fewer records than the .cfg declares, or a rate whose endsamp repeats, read to the shorter with a warning;
what cannot be read safely still refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.comtrade_files import standard_chans, standard_values, times_of, write

UDIN = 63.5          # standard_values: 63.5 V L-N secondary, 1 A at 30 degrees lagging, 50 Hz


def _cli(capsys, *args):
    from firmware.cli import main

    code = main(["replay", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, [json.loads(line) for line in out.splitlines()], err


def _dip(t: np.ndarray, start: float, cycles: int, residual: float) -> np.ndarray:
    values = standard_values(t)
    inside = (t >= start) & (t < start + cycles / 50.0)
    values[inside, 0] *= residual                        # VA
    return values


def test_events_prints_the_dip_with_its_class_and_direction(tmp_path, capsys):
    t = np.arange(int(3.0 * 6400)) / 6400.0
    cfg = write(tmp_path / "dip", standard_chans(), _dip(t, 1.0, 5, 0.4), rates=[(6400.0, len(t))], fmt="FLOAT32")
    code, rows, err = _cli(capsys, cfg, "--events", "--nominal-voltage", str(UDIN))
    assert code == 0, err
    sags = [r for r in rows if r["kind"] == "sag"]
    assert len(sags) == 1, rows
    (sag,) = sags
    # IEC 61000-4-30 Class A: start and duration within one cycle (Urms(1/2) refreshed every half cycle)
    assert sag["t"] == pytest.approx(1.0, abs=0.0201) and sag["duration_s"] == pytest.approx(0.1, abs=0.0201)
    assert sag["phases"] == ["va"] and sag["initiator"] == "va"
    assert sag["residual_pct"] == pytest.approx(40.0, abs=0.5)
    assert sag["start"].startswith("2019-03-11T08:15:3")          # the .cfg's start date, in UTC
    assert sag["itic"] and sag["semi_f47"] and "direction" in sag
    # the statistics during the dip (metrology.evstats): VA's Urms(1/2) goes down to the residual (Class A: 0.2 % of
    # Udin), the currents stay at 1 A (1 %), the frequency at 50 Hz (Class A: 10 mHz); PF is cos 30° in the cycles
    # wholly in the dip, the cycles holding a step pull it either way
    st = sag["stats"]
    assert st["v"]["min"][0] == pytest.approx(0.4 * UDIN, abs=0.002 * UDIN) and st["v"]["source"] == "half-cycle"
    assert st["i"]["avg"] == pytest.approx([1.0] * 3, rel=0.01) and st["i"]["source"] == "half-cycle"
    assert st["pf"]["min"] <= np.cos(np.radians(30.0)) <= st["pf"]["max"] and st["pf"]["source"] == "cycle"
    assert [st["f"]["min"], st["f"]["max"]] == pytest.approx([50.0] * 2, abs=0.01) and st["f"]["source"] == "cycle"
    assert st["thd_v"]["source"] == "cycle" and len(st["thd_v"]["avg"]) == 3
    assert "PQ event(s) in 3.000 s" in err


def test_multi_rate_slow_segments_are_gaps_said_on_stderr(tmp_path, capsys):
    # a relay record: 0.6 s at 6400 Hz, 2 s at 50 Hz (no fundamental), 1.6 s at 6400 Hz
    rates = [(6400.0, 3840), (50.0, 3840 + 100), (6400.0, 3940 + 10240)]
    t = times_of(rates)
    cfg = write(tmp_path / "relay", standard_chans(), standard_values(t), rates=rates, fmt="BINARY")
    code, rows, err = _cli(capsys, cfg, "--nominal-voltage", str(UDIN), "--interval", "cycle10")
    assert code == 0, err
    assert "samples 3841-3940 at 50 Hz (line 12) cannot carry the 50 Hz fundamental: 2.000 s from 0.600 s " \
           "treated as a gap" in err
    assert rows and all(r["v_an"] == pytest.approx(UDIN, rel=2e-3) for r in rows)
    starts = [r["t"] for r in rows]
    assert not any(0.6 < s < 2.6 for s in starts)                  # no window from inside the gap
    assert any(s < 0.6 for s in starts) and any(s > 2.6 for s in starts)
    code, events, err = _cli(capsys, cfg, "--events", "--nominal-voltage", str(UDIN))
    assert code == 0 and not [e for e in events if e["kind"] in ("sag", "interruption")], events


def test_all_rates_too_slow_is_still_refused(tmp_path, capsys):
    rates = [(50.0, 100), (60.0, 200)]
    cfg = write(tmp_path / "slow", standard_chans(), standard_values(times_of(rates)), rates=rates)
    code, rows, err = _cli(capsys, cfg)
    assert code == 1 and "field samp: 50 Hz does not carry a 50 Hz fundamental" in err


@pytest.mark.parametrize("fmt,extra", [("ASCII", -1), ("ASCII", +1), ("FLOAT32", -1), ("FLOAT32", +3)])
def test_more_or_fewer_records_than_declared_are_read_to_the_shorter(tmp_path, capsys, fmt, extra):
    n = int(1.5 * 4000)
    written = n + max(extra, 0)
    t = np.arange(written) / 4000.0
    cfg = write(tmp_path / "c", standard_chans(), standard_values(t), rates=[(4000.0, written)], fmt=fmt)
    cfg.write_bytes(cfg.read_bytes().replace(f"4000,{written}".encode(), f"4000,{n}".encode()))   # declares n
    dat = cfg.with_suffix(".dat")
    if extra < 0:                                       # the .dat ends one record early
        data = dat.read_bytes()
        if fmt == "ASCII":
            dat.write_bytes(b"\r\n".join(data.split(b"\r\n")[:n - 1]) + b"\r\n")
        else:
            dat.write_bytes(data[:len(data) * (n - 1) // n])
    code, rows, err = _cli(capsys, cfg, "--nominal-voltage", str(UDIN))
    assert code == 0, err
    kept = min(n, n + extra)
    found = f"{n + extra} lines" if fmt == "ASCII" else f"{n + extra} records of"
    assert found in err and f"declares {n} samples; {kept} read" in err, err
    assert rows and rows[0]["v_an"] == pytest.approx(UDIN, rel=2e-3)


def test_a_repeated_endsamp_is_an_empty_rate_skipped(tmp_path, capsys):
    rates = [(4000.0, 3000), (4000.0, 6000)]
    t = times_of(rates)
    cfg = write(tmp_path / "r", standard_chans(), standard_values(t), rates=rates)
    cfg.write_bytes(cfg.read_bytes().replace(b"2\r\n4000,3000\r\n4000,6000\r\n",
                                             b"3\r\n4000,3000\r\n2000,3000\r\n4000,6000\r\n"))
    code, rows, err = _cli(capsys, cfg, "--nominal-voltage", str(UDIN))
    assert code == 0, err
    assert "line 12, field endsamp: 3000 repeats the rate before; this 2000 Hz rate holds no sample" in err
    assert rows[-1]["v_an"] == pytest.approx(UDIN, rel=2e-3)


def test_a_record_size_that_does_not_divide_is_still_refused(tmp_path, capsys):
    t = np.arange(6000) / 4000.0
    cfg = write(tmp_path / "w", standard_chans(), standard_values(t), rates=[(4000.0, 6000)], fmt="BINARY")
    dat = cfg.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes() + b"\x00\x01\x02")
    code, rows, err = _cli(capsys, cfg)
    assert code == 1 and rows == []
    assert "w.dat: 120003 bytes are not a whole number of 20-byte records (3 bytes over)" in err, err


def test_signalling_voltage_of_a_ripple_control_tone(tmp_path, capsys):
    # IEC 61000-4-30 5.10: a 3 % tone at 316.67 Hz on VA, measured within Class A's 5 % of reading (tone >= 3 % Udin)
    rate = 6400.0
    t = np.arange(int(4.0 * rate)) / rate
    values = standard_values(t)
    tone_rms = 0.03 * UDIN
    values[:, 0] += np.sqrt(2) * tone_rms * np.sin(2 * np.pi * 316.67 * t)
    cfg = write(tmp_path / "ripple", standard_chans(), values, rates=[(rate, len(t))], fmt="FLOAT32")
    code, rows, err = _cli(capsys, cfg, "--interval", "3s", "--nominal-voltage", str(UDIN), "--secondary",
                           "--signalling-frequencies", "316.67")
    assert code == 0, err
    (row,) = [r for r in rows if r.get("msv_a_3s") is not None][:1]
    assert row["msv_a_3s"][0] == pytest.approx(tone_rms, rel=0.05)
    assert row["msv_b_3s"][0] < 0.001 * UDIN                          # VB carries no tone
    code, rows, err = _cli(capsys, cfg, "--signalling-frequencies", "5000")
    assert code == 1 and "--signalling-frequencies: signalling frequency 5000 Hz is outside" in err
