"""COMTRADE as other recorders write it (files built by tests/support/comtrade_files.py, not by the meter's
writer): the four data types with digital channels, several sample rates and uneven time stamps on the
real time axis, vendor channel names, two bays, sample counts that disagree with the .dat, and each broken
form refused with a ComtradeError naming the file, line and field (never another exception)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.comtrade import ComtradeSource, meter_channels, parse_channel_map, read_comtrade, resolve
from hal.errors import ComtradeError
from tests.conftest import iterations
from tests.support.comtrade_files import Chan, sine, standard_chans, standard_values, times_of, write


@pytest.mark.parametrize("fmt,rev", [("ASCII", 1991), ("ASCII", 2013), ("BINARY", 1999), ("BINARY32", 2013),
                                     ("FLOAT32", 2013)])
def test_each_data_type_with_digital_channels(tmp_path, fmt, rev):
    n = 400
    t = np.arange(n) / 4000.0
    vals = standard_values(t)
    chans = standard_chans()
    if fmt == "FLOAT32":
        chans = [Chan(c.name, c.ph, c.unit) for c in chans]
    dig = (np.arange(n)[:, None] >> np.arange(18)[None, :] & 1).astype(np.uint8)   # 18 channels: two words
    cfg = write(tmp_path / "r", chans, vals, rates=[(4000.0, n)], fmt=fmt, rev=rev, digital=dig,
                digital_names=tuple(f"TRIP{j}" for j in range(18)))
    rec = read_comtrade(cfg)
    assert rec.sample_rate_hz == 4000.0 and rec.digital_names[17] == "TRIP17"
    tol = 1e-7 * np.abs(vals).max(axis=0) if fmt == "FLOAT32" else 0.51 * np.array([c.a for c in chans])
    assert np.all(np.abs(rec.analog - vals) <= tol)
    assert np.array_equal(rec.digital, dig)


def _accuracy(src: ComtradeSource, t: np.ndarray, hz: float = 50.0) -> float:
    got = src.sample(t)
    va = sine(t, 63.5, 0, hz)
    return float(np.abs(got[:, 1] - va).max() / (63.5 * np.sqrt(2)))


def test_multi_rate_is_interpolated_on_its_real_time_axis(tmp_path):
    """0.1 s at 12.8 kHz around the fault, then 1 s at 1.6 kHz: 50 Hz stays 50 Hz (not 6.55 Hz)."""
    rates = [(12800.0, 1280), (1600.0, 1280 + 1600)]
    t = times_of(rates)
    cfg = write(tmp_path / "mr", standard_chans(), standard_values(t), rates=rates, fmt="BINARY")
    rec = read_comtrade(cfg)
    assert rec.sample_rate_hz == 0.0 and rec.times_s == pytest.approx(t, abs=1e-9)
    src = ComtradeSource(rec)
    q = np.arange(0, int(1.09 * 32000)) / 32000.0
    # int16 quantisation (1e-4 of peak here) and 32 samples per cycle in the slow segment
    assert _accuracy(src, q) < 2e-3
    assert src.duration_s == pytest.approx(t[-1])


def test_uneven_time_stamps_are_the_time_base(tmp_path):
    rng = np.random.default_rng(7)
    steps = rng.uniform(100, 300, 4000)                    # microseconds, jittered recorder clock
    stamps = np.concatenate([[0.0], np.cumsum(np.rint(steps))])
    t = stamps * 1e-6
    cfg = write(tmp_path / "ts", standard_chans(), standard_values(t), rates=None, stamps_us=stamps, timemult=1.0)
    rec = read_comtrade(cfg)
    assert rec.times_s == pytest.approx(t)
    src = ComtradeSource(rec)
    q = np.arange(0, int(t[-1] * 32000)) / 32000.0
    assert _accuracy(src, q) < 2e-3


def test_timemult_scales_the_time_stamps(tmp_path):
    t = np.arange(500) / 5000.0
    cfg = write(tmp_path / "tm", standard_chans(), standard_values(t), rates=None, stamps_us=np.arange(500) * 20,
                timemult=10.0)
    assert read_comtrade(cfg).times_s[1] == pytest.approx(200e-6)


def test_channel_skew_is_applied(tmp_path):
    """VA sampled 500 us after the time stamp: read back at the right instant."""
    t = np.arange(2000) / 8000.0
    vals = standard_values(t)
    vals[:, 0] = sine(t + 500e-6, 63.5, 0)
    chans = standard_chans()
    chans[0].skew_us = 500.0
    src = ComtradeSource(read_comtrade(write(tmp_path / "sk", chans, vals, rates=[(8000.0, 2000)])))
    q = np.arange(100, 6000) / 32000.0
    assert _accuracy(src, q) < 2e-3
    assert not src.uniform


def test_vendor_names_with_prefixes_and_line_codes(tmp_path):
    t = np.arange(800) / 4000.0
    vals = standard_values(t)
    names = [("HV UR", "", "kV"), ("HV US", "", "kV"), ("HV UT", "", "kV"), ("ILA", "", "A"), ("ILB", "", "A"),
             ("IL3", "", "A")]
    chans = [Chan(nm, ph, u, 1e-5 if u == "kV" else 1e-3) for nm, ph, u in names]
    vals[:, :3] /= 1000.0
    rec = read_comtrade(write(tmp_path / "vn", chans, vals, rates=[(4000.0, 800)]))
    x, used = meter_channels(rec)
    assert used == ["ILA", "HV UR", "ILB", "HV US", "IL3", "HV UT", ""]
    assert np.abs(x[:, 1] - sine(t, 63.5, 0)).max() < 0.01


def test_unrecognised_names_are_refused_until_mapped(tmp_path):
    t = np.arange(800) / 4000.0
    vals = standard_values(t)
    names = ["Bus volt 1", "Bus volt 2", "Bus volt 3", "Feeder amp 1", "Feeder amp 2", "Feeder amp 3"]
    chans = [Chan(nm, "", c.unit, c.a) for nm, c in zip(names, standard_chans())]
    rec = read_comtrade(write(tmp_path / "un", chans, vals, rates=[(4000.0, 800)]))
    with pytest.raises(ComtradeError, match=r"no phase voltage or current channel recognised.*#1 Bus volt 1"):
        resolve(rec)
    cmap = parse_channel_map("VA=Bus volt 1,VB=2,vc=Bus volt 3,IA=Feeder amp 1,IB=5,IC=6")
    x, used = meter_channels(rec, cmap)
    assert used == ["Feeder amp 1", "Bus volt 1", "Feeder amp 2", "Bus volt 2", "Feeder amp 3", "Bus volt 3", ""]
    assert np.abs(x[:, 0] - rec.analog[:, 3]).max() < 1e-12
    assert resolve(rec, cmap).describe(rec).startswith("IA=#4 'Feeder amp 1' (A, by map), VA=#1 'Bus volt 1'")


def _two_bays(tmp_path):
    t = np.arange(800) / 4000.0
    b1, b2 = standard_values(t), 2 * standard_values(t)
    chans = [Chan(f"Bay{b} {c.name}", c.ph, c.unit, c.a * b) for b in (1, 2) for c in standard_chans()]
    chans.append(Chan("U32", "1", "V", 0.01))            # line to line, with a misleading phase code
    chans.append(Chan("IN", "N", "A", 0.0005))
    chans.append(Chan("3I0", "N", "A", 0.0005))          # residual current of bay 2: a second neutral candidate
    vals = np.concatenate([b1, b2, (b1[:, 2] - b1[:, 1])[:, None], np.zeros((800, 2))], axis=1)
    return read_comtrade(write(tmp_path / "bays", chans, vals, rates=[(4000.0, 800)])), vals


def test_two_bays_are_refused_with_the_candidates_listed(tmp_path):
    rec, _ = _two_bays(tmp_path)
    with pytest.raises(ComtradeError) as exc:
        resolve(rec)
    msg = str(exc.value)
    assert "bays.cfg" in msg and "IA is ambiguous" in msg
    assert "#4 'Bay1 IA' (line 6, by name)" in msg and "#10 'Bay2 IA' (line 12, by name)" in msg
    assert "--channel-map IA=" in msg


def test_a_channel_map_chooses_the_bay_and_the_neutral(tmp_path):
    rec, vals = _two_bays(tmp_path)
    cmap = parse_channel_map("VA=Bay2 VA,VB=Bay2 VB,VC=Bay2 VC,IA=Bay2 IA,IB=Bay2 IB,IC=Bay2 IC")
    with pytest.raises(ComtradeError, match=r"IN is ambiguous: #14 'IN' .*#15 '3I0'"):
        resolve(rec, cmap)
    cmap["IN"] = "-"
    mapping = resolve(rec, cmap)
    x, used = meter_channels(rec, cmap)
    assert used == ["Bay2 IA", "Bay2 VA", "Bay2 IB", "Bay2 VB", "Bay2 IC", "Bay2 VC", ""]
    assert np.abs(x[:, 1] - rec.analog[:, 6]).max() < 1e-12 and np.abs(x[:, 1] - vals[:, 6]).max() < 0.011
    assert "U32" not in mapping.describe(rec)


def test_line_to_line_names_are_never_phase_inputs(tmp_path):
    t = np.arange(400) / 4000.0
    chans = [Chan("U32", "1", "V", 0.01), Chan("VAB", "A", "V", 0.01), Chan("UL1L2", "A", "V", 0.01),
             Chan("IA", "1", "A", 0.001)]
    vals = np.stack([sine(t, 110, 0)] * 3 + [sine(t, 1, 0)], axis=1)
    _, used = meter_channels(read_comtrade(write(tmp_path / "ll", chans, vals, rates=[(4000.0, 400)])))
    assert used == ["IA", "", "", "", "", "", ""]


@pytest.mark.parametrize("text,match", [
    ("VX=1", r"'VX=1' is not INPUT=CHANNEL"), ("VA", "is not INPUT=CHANNEL"), ("VA=1,va=2", "VA given twice"),
])
def test_channel_map_syntax(text, match):
    with pytest.raises(ComtradeError, match=match):
        parse_channel_map(text)


@pytest.mark.parametrize("text,match", [
    ("VA=9", "analog channels 1 to 6"), ("VA=Nope", "no analog channel of that name; there are 'VA'"),
    ("IA=VA", r"channel #1 'VA' is in V; IA is a current input"),
    ("VA=1,VB=1", "channel #1 'VA' given for both VA and VB"),
])
def test_channel_map_choices_are_checked(tmp_path, text, match):
    t = np.arange(400) / 4000.0
    rec = read_comtrade(write(tmp_path / "m", standard_chans(), standard_values(t), rates=[(4000.0, 400)]))
    with pytest.raises(ComtradeError, match=match):
        resolve(rec, parse_channel_map(text))


def test_declared_channels_fewer_than_the_dat_holds(tmp_path):
    """5 analog channels declared over a 6-channel .dat: refused, not read as garbage."""
    t = np.arange(450) / 4500.0
    vals = standard_values(t)
    write(tmp_path / "bin", standard_chans(), vals, rates=[(4500.0, 450)], fmt="BINARY")
    write(tmp_path / "bin5", standard_chans(), vals, rates=[(4500.0, 450)], fmt="BINARY", declare_analog=5)
    (tmp_path / "bin5.dat").write_bytes((tmp_path / "bin.dat").read_bytes())   # 450 x 20 = 500 x 18 bytes
    with pytest.raises(ComtradeError, match=r"bin5.dat: 9000 bytes = 500 records of 18 bytes, but the .cfg "
                                            r"\(line 10, field endsamp\) declares 450 samples .* and the sample "
                                            r"numbers do not count up"):
        read_comtrade(tmp_path / "bin5.cfg")
    write(tmp_path / "asc5", standard_chans(), vals, rates=[(4500.0, 450)], declare_analog=5)
    write(tmp_path / "asc", standard_chans(), vals, rates=[(4500.0, 450)])
    (tmp_path / "asc5.dat").write_bytes((tmp_path / "asc.dat").read_bytes())
    with pytest.raises(ComtradeError, match=r"asc5.dat: line 1 has 8 fields; the .cfg declares 7"):
        read_comtrade(tmp_path / "asc5.cfg")


@pytest.mark.parametrize("fmt", ["ASCII", "BINARY32"])
def test_fewer_records_than_endsamp_are_read_with_a_warning(tmp_path, fmt):
    t = np.arange(300) / 3000.0
    write(tmp_path / "c", standard_chans(), standard_values(t), rates=[(3000.0, 310)], fmt=fmt)
    rec = read_comtrade(tmp_path / "c.cfg")
    assert len(rec.times_s) == 300
    found = "300 lines" if fmt == "ASCII" else "300 records of 32 bytes"
    assert any(f"c.dat: {found}, but the .cfg (line 11, field endsamp) declares 310 samples; 300 read" in w
               for w in rec.warnings), rec.warnings


def _good(tmp_path, fmt="ASCII", rates=((3000.0, 300),), stamps=None):
    t = np.arange(300) / 3000.0
    return write(tmp_path / "g", standard_chans(), standard_values(t), rates=list(rates) if rates else None,
                 fmt=fmt, stamps_us=stamps)


def _edit(path, old: bytes, new: bytes, count: int = 1):
    data = path.read_bytes()
    assert old in data, (old, data[:400])
    path.write_bytes(data.replace(old, new, count))


BROKEN_CFG = [
    # (old, new, message)
    (b"3000,300", b"3000 300", r"g.cfg: line 11: '3000 300' is not 'samp,endsamp'"),
    (b"3000,300", b"0.001,300", r"g.cfg: line 11, field samp: 0.001 Hz does not carry a 50 Hz fundamental"),
    (b"3000,300", b"3000,abc", r"g.cfg: line 11, field endsamp: 'abc' is not a whole number"),
    (b"\r\n1\r\n3000", b"\r\n99999\r\n3000", r"g.cfg: line 10, field nrates: 99999 sample rates"),
    (b"\r\n1\r\n3000", b"\r\n2\r\n3000", r"g.cfg: line 12, field samp: '11/03/2019' is not a number"),
    (b"6,6A,0D", b"900000,900000A,0D", r"g.cfg: line 2 declares 900000 channels"),
    (b"6,6A,0D", b"6,6,0D", r"g.cfg: line 2: '6,6,0D' is not 'TT,##A,##D'"),
    (b"1,VA,A,,V,0.01", b"1,VA,A,,V,zero", r"g.cfg: line 3, field a: 'zero' is not a number"),
    (b"1,VA,A,,V,0.01", b"1,VA,A,,V,inf", r"g.cfg: line 3, field a: 'inf' is not a finite number"),
    (b",1,1,S\r\n2,VB", b",1,1,X\r\n2,VB", r"g.cfg: line 3 \(analog channel 1\), field PS: 'X'"),
    (b"\r\n50\r\n", b"\r\nfifty\r\n", r"g.cfg: line 9, field lf: 'fifty' is not a number"),
    (b"ASCII", b"EBCDIC", r"g.cfg: line 14, field ft: file type 'EBCDIC'"),
    (b"DFR-3000,1999", b"DFR-3000,19x9", r"g.cfg: line 1, field rev_year: '19x9' is not a whole number"),
]


@pytest.mark.parametrize("old,new,message", BROKEN_CFG, ids=[m[1].decode("latin-1") for m in BROKEN_CFG])
def test_broken_cfg_lines_are_named(tmp_path, old, new, message):
    cfg = _good(tmp_path)
    _edit(cfg, old, new)
    with pytest.raises(ComtradeError, match=message):
        read_comtrade(cfg)


def test_broken_ascii_dat_fields_are_named(tmp_path):
    cfg = _good(tmp_path)
    dat = cfg.with_suffix(".dat")
    good = dat.read_bytes()
    rows = good.split(b"\r\n")
    cases = [
        (41, rows[41] + b",1", r"g.dat: line 42 has 9 fields"),
        (7, rows[7].replace(b",", b",\xff\xfe", 3), r"g.dat: line 8, field (timestamp|analog 1 \(VA\)): "),
        (12, b"13,4000,1,2,3,4,5,6x", r"g.dat: line 13, field analog 6 \(IC\): '6x' is not a number"),
        (20, b"twenty,6666,1,2,3,4,5,6", r"g.dat: line 21, field n: 'twenty' is not a whole number"),
        (20, b"3,6666,1,2,3,4,5,6", r"g.dat: line 21, field n: sample number 3 after 20"),
    ]
    _each_refused(cfg, rows, cases)


def _each_refused(cfg, rows: list[bytes], cases) -> None:
    """Each (line index, replacement line, message): the .dat with that one line replaced is refused so."""
    dat = cfg.with_suffix(".dat")
    for k, row, message in cases:
        broken = rows.copy()
        broken[k] = row
        dat.write_bytes(b"\r\n".join(broken))
        with pytest.raises(ComtradeError, match=message):
            read_comtrade(cfg)


def test_a_bad_digital_field_is_named(tmp_path):
    t = np.arange(300) / 3000.0
    dig = np.zeros((300, 2), dtype=np.uint8)
    cfg = write(tmp_path / "d", standard_chans(), standard_values(t), rates=[(3000.0, 300)], digital=dig,
                digital_names=("TRIP", "CLOSE"))
    dat = cfg.with_suffix(".dat")
    rows = dat.read_bytes().split(b"\r\n")
    rows[99] = rows[99][:-1] + b"x"
    dat.write_bytes(b"\r\n".join(rows))
    with pytest.raises(ComtradeError, match=r"d.dat: line 100, field digital 2 \(CLOSE\): 'x'; allowed 0 or 1"):
        read_comtrade(cfg)


def test_time_stamps_as_the_time_base_are_checked(tmp_path):
    stamps = np.arange(300) * 333.0
    cfg = _good(tmp_path, rates=None, stamps=stamps)
    dat = cfg.with_suffix(".dat")
    rows = dat.read_bytes().split(b"\r\n")
    cases = [
        (299, b"300,4000000000,1,2,3,4,5,6", r"g.dat: line 300, field timestamp: 4000000000 is 3999.9 s after"),
        (150, b"151,3000,1,2,3,4,5,6", r"g.dat: line 151, field timestamp: 3000 after 49617; time stamps must"),
        (150, b"151,,1,2,3,4,5,6", r"g.dat: line 151, field timestamp: missing"),
        (150, b"151,49950.5e,1,2,3,4,5,6", r"g.dat: line 151, field timestamp: '49950.5e' is not a number"),
    ]
    _each_refused(cfg, rows, cases)


def test_binary_records_out_of_order_hint_at_the_record_size(tmp_path):
    cfg = _good(tmp_path, fmt="BINARY")
    dat = cfg.with_suffix(".dat")
    data = bytearray(dat.read_bytes())
    data[20 * 50:20 * 50 + 4] = (7).to_bytes(4, "little")
    dat.write_bytes(bytes(data))
    with pytest.raises(ComtradeError, match=r"g.dat: record 51, field n: sample number 7 after 50; are the "
                                            r"records 20 bytes"):
        read_comtrade(cfg)


def test_missing_dat_and_unreadable_cfg(tmp_path):
    cfg = _good(tmp_path)
    cfg.with_suffix(".dat").unlink()
    with pytest.raises(ComtradeError, match=r"g.dat: cannot be read"):
        read_comtrade(cfg)
    cfg.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ComtradeError, match=r"g.cfg: ends after line 1"):
        read_comtrade(cfg)


def test_non_utf8_names_are_read_as_latin1(tmp_path):
    cfg = _good(tmp_path)
    _edit(cfg, b"RELAY 7", b"Umspannwerk S\xfcd")
    assert read_comtrade(cfg).station == "Umspannwerk S\u00fcd"


@settings(max_examples=iterations(60, 200, 5000), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["cfg", "dat"]), fmt=st.sampled_from(["ASCII", "BINARY", "FLOAT32"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255), st.integers(0, 3)),
                      min_size=1, max_size=4))
def test_mutated_files_give_a_comtrade_error_or_a_recording(tmp_path, which, fmt, edits):
    """Random byte edits, insertions and deletions: the reader and the mapping never fail another way."""
    cfg = _good(tmp_path, fmt=fmt)
    path = cfg if which == "cfg" else cfg.with_suffix(".dat")
    data = bytearray(path.read_bytes())
    for where, byte, op in edits:
        k = int(where * len(data))
        if op == 0:
            data[k] = byte
        elif op == 1:
            data.insert(k, byte)
        elif op == 2:
            del data[k]
        else:
            data[k:k] = b","
    path.write_bytes(bytes(data))
    try:
        rec = read_comtrade(cfg)
        src = ComtradeSource(rec)
        src.sample(np.arange(64) / 32000.0)
    except ComtradeError as exc:
        assert "comtrade " in str(exc) and ("g.cfg" in str(exc) or "g.dat" in str(exc))
