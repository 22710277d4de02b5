"""``meter replay``: a COMTRADE recording through the pipeline, JSON lines named by the point map."""
import datetime as dt
import json
import math
import subprocess
import sys

import pytest

from firmware.points import points_by_name
from hal.comtrade import write_comtrade
from tests.conformance.signals import balanced

REQUIRED = ["v_an", "v_bn", "v_cn", "v_ab", "v_bc", "v_ca", "i_a", "i_b", "i_c", "i_n", "p_a", "p_b", "p_c", "p_total", "q_a", "q_b", "q_c", "q_total", "s_total", "pf_total", "frequency", "thd_v_an", "thd_i_a", "harmonics_v_an", "harmonics_i_a", "wh_delivered", "wh_received", "varh_delivered", "varh_received", "vah_delivered"]


def meter(*args):
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], capture_output=True, text=True, timeout=120)


def _write_recording(base, with_neutral: bool = True):
    import numpy as np

    sig = balanced(63.5, 2.0, 30.0, f0=60.0, v_harm=[(5, 0.05, 0.0)])
    rate = 7680.0                                  # 128 samples per cycle: resampled to 32 kSPS by replay
    n = int(3.3 * rate)
    idx = np.arange(n) * (32000.0 / rate)
    data = np.zeros((n, 7))
    th = sig.phase(idx)
    for col, name in enumerate(("IA", "VA", "IB", "VB", "IC", "VC", "IN")):
        if name in sig.channels:
            for order, a, deg in sig.channels[name].parts:
                data[:, col] += a * math.sqrt(2) * np.cos(order * th + math.radians(deg))
    names = ["IA", "VA", "IB", "VB", "IC", "VC", "IN"]
    k = 7 if with_neutral else 6
    cfg, _ = write_comtrade(base, names[:k], (["A", "V"] * 3 + ["A"])[:k], ["A", "A", "B", "B", "C", "C", "N"][:k],
                            data[:, :k], rate, start=dt.datetime(2024, 5, 1, 12, 0, 0), line_hz=60.0,
                            fmt="FLOAT32", primary=([400.0, 11000.0] * 3 + [400.0])[:k],
                            secondary=([5.0, 110.0] * 3 + [5.0])[:k])
    return cfg


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return _write_recording(tmp_path_factory.mktemp("rec") / "fault")


def test_a_recording_without_neutral_publishes_no_measured_neutral_current(tmp_path):
    r = meter("replay", str(_write_recording(tmp_path / "no_in", with_neutral=False)))
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["i_n"] is None                           # not measured: not made up from the phases
    assert last["i_a"] == pytest.approx(2.0 * 400 / 5, rel=2e-4)


def test_replay_prints_one_json_object_per_second_with_point_map_keys(recording):
    r = meter("replay", str(recording))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) >= 2
    known = points_by_name()
    for key in REQUIRED:
        assert key in rows[-1], key
    assert all(k in known for k in rows[-1] if k not in ("t", "flagged"))
    last = rows[-1]
    ratio_v, ratio_i = 11000 / 110, 400 / 5
    v = 63.5 * math.sqrt(1 + 0.05 ** 2) * ratio_v
    assert last["v_an"] == pytest.approx(v, rel=2e-4)
    assert last["i_a"] == pytest.approx(2.0 * ratio_i, rel=2e-4)
    p = 3 * 63.5 * 2.0 * math.cos(math.radians(30)) * ratio_v * ratio_i
    assert last["p_total"] == pytest.approx(p, rel=2e-4)
    assert last["harmonics_v_an"][5] == pytest.approx(0.05 * 63.5 * ratio_v, rel=2e-3)
    assert last["thd_v_an"] == pytest.approx(5.0, rel=2e-3)
    assert last["wh_delivered"] > rows[0]["wh_delivered"] > 0
    assert rows[1]["t"] == pytest.approx(rows[0]["t"] + 1.0, abs=1e-6)


def test_replay_ten_twelve_cycle_interval(recording):
    r = meter("replay", str(recording), "--interval", "cycle10")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) >= 12                       # 3.3 s at 60 Hz: 16 windows of 12 cycles
    assert rows[3]["t"] - rows[2]["t"] == pytest.approx(0.2, abs=1e-3)


def test_unreadable_recordings_name_the_file_and_the_problem(tmp_path):
    r = meter("replay", str(tmp_path / "missing.cfg"))
    assert r.returncode == 1 and "missing.cfg" in r.stderr
    bad = tmp_path / "bad.cfg"
    bad.write_text("station,dev,2013\nthis is not a channel line\n")
    r = meter("replay", str(bad))
    assert r.returncode == 1 and "bad.cfg" in r.stderr, r.stderr


# Recordings as other recorders write them (tests/support/comtrade_files.py), run through `meter replay`
# in this process: exit status, stdout rows and stderr (mapping, warnings, refusals; never a traceback).

def _cli(capsys, *args):
    from firmware.cli import main

    code = main(["replay", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, [json.loads(line) for line in out.splitlines()], err


def test_multi_rate_recording_replays_at_its_real_frequency(tmp_path, capsys):
    import numpy as np

    from tests.support.comtrade_files import standard_chans, standard_values, times_of, write

    rates = [(12800.0, 1280), (1600.0, 1280 + 3400)]          # 0.1 s fast around the fault, 2.1 s slow
    t = times_of(rates)
    cfg = write(tmp_path / "mr", standard_chans(), standard_values(t), rates=rates, fmt="BINARY")
    code, rows, err = _cli(capsys, cfg, "--nominal-voltage", "63.5")
    assert code == 0, err
    assert "IA=#4 'IA' (A, by name)" in err
    assert len(rows) == 2
    for row in rows:
        assert row["frequency_cycle"] == pytest.approx(50.0, abs=0.01)
        assert row["v_an"] == pytest.approx(63.5, rel=2e-3)
        assert row["p_total"] == pytest.approx(3 * 63.5 * 1.0 * math.cos(math.radians(30)), rel=3e-3)
    assert not np.isnan(t).any()


def test_uneven_time_stamps_replay_at_the_real_frequency(tmp_path, capsys):
    import numpy as np

    from tests.support.comtrade_files import standard_chans, standard_values, write

    rng = np.random.default_rng(3)
    stamps = np.concatenate([[0.0], np.cumsum(np.rint(rng.uniform(150, 250, 11000)))])
    cfg = write(tmp_path / "ts", standard_chans(), standard_values(stamps * 1e-6, hz=60.0), rates=None,
                stamps_us=stamps, lf=60.0)
    code, rows, err = _cli(capsys, cfg)
    assert code == 0, err
    assert len(rows) == 2
    for row in rows:
        assert row["frequency_cycle"] == pytest.approx(60.0, abs=0.01)
        assert row["v_an"] == pytest.approx(63.5, rel=2e-3)


def test_a_wrong_line_frequency_in_the_cfg_is_said_and_the_signal_followed(tmp_path, capsys):
    import numpy as np

    from tests.support.comtrade_files import standard_chans, standard_values, write

    t = np.arange(int(2.1 * 7680)) / 7680.0
    cfg = write(tmp_path / "lf", standard_chans(), standard_values(t, hz=60.0), rates=[(7680.0, len(t))], lf=50.0)
    code, rows, err = _cli(capsys, cfg)
    assert code == 0, err
    assert "lf.cfg: line 9, field lf says 50 Hz but the signal's fundamental is 60.00 Hz; replayed as 60 Hz" in err
    assert len(rows) == 2 and rows[-1]["frequency_cycle"] == pytest.approx(60.0, abs=0.01)
    assert rows[-1]["v_an"] == pytest.approx(63.5, rel=2e-3)


def test_two_bays_need_a_channel_map_and_it_is_followed(tmp_path, capsys):
    import numpy as np

    from tests.support.comtrade_files import Chan, standard_chans, standard_values, write

    t = np.arange(int(1.2 * 6400)) / 6400.0
    chans = [Chan(f"Bay{b} {c.name}", c.ph, c.unit, c.a * b) for b in (1, 2) for c in standard_chans()]
    vals = np.concatenate([standard_values(t), 2 * standard_values(t)], axis=1)
    cfg = write(tmp_path / "bays", chans, vals, rates=[(6400.0, len(t))])
    code, rows, err = _cli(capsys, cfg)
    assert code == 1 and rows == []
    assert "bays.cfg: IA is ambiguous: #4 'Bay1 IA' (line 6, by name), #10 'Bay2 IA' (line 12, by name)" in err
    cmap = ",".join(f"{k}=Bay2 {k}" for k in ("VA", "VB", "VC", "IA", "IB", "IC"))
    code, rows, err = _cli(capsys, cfg, "--channel-map", cmap, "--nominal-voltage", "127")
    assert code == 0, err
    assert "IA=#10 'Bay2 IA' (A, by map), VA=#7 'Bay2 VA' (V, by map)" in err and "IN=-" in err
    assert rows[-1]["v_an"] == pytest.approx(127.0, rel=2e-3)
    assert rows[-1]["i_a"] == pytest.approx(2.0, rel=2e-3)


@pytest.mark.parametrize("case", ["rate-without-comma", "tiny-rate", "bad-last-stamp", "field-count",
                                  "bad-digital", "non-utf8", "too-short", "bad-map"])
def test_broken_recordings_exit_1_naming_the_file_line_and_field(tmp_path, capsys, case):
    import numpy as np

    from tests.support.comtrade_files import standard_chans, standard_values, write

    n = 2000 if case != "too-short" else 600
    t = np.arange(n) / 4000.0
    kw = {"rates": None, "stamps_us": np.arange(n) * 250.0} if case == "bad-last-stamp" else {"rates": [(4000.0, n)]}
    dig = np.zeros((n, 1), dtype=np.uint8)
    cfg = write(tmp_path / "b", standard_chans(), standard_values(t), digital=dig, digital_names=("TRIP",), **kw)
    dat = cfg.with_suffix(".dat")
    args: list[str] = []
    expect = {
        "rate-without-comma": "b.cfg: line 12: '4000 2000' is not 'samp,endsamp'",
        "tiny-rate": "b.cfg: line 12, field samp: 0.001 Hz does not carry a 50 Hz fundamental",
        "bad-last-stamp": "b.dat: line 2000, field timestamp: 4294000000 is 4293.5 s after the sample before",
        "field-count": "b.dat: line 5 has 10 fields; the .cfg declares 9 (n, timestamp, 6 analog, 1 digital)",
        "bad-digital": "b.dat: line 7, field digital 1 (TRIP): '2'; allowed 0 or 1",
        "non-utf8": "b.dat: line 9, field analog 2 (VB): ",
        "too-short": "the recording (0.150 s) is too short for one 1s interval",
        "bad-map": "b.cfg: channel map IA=Nope: no analog channel of that name",
    }[case]
    rows = dat.read_bytes().split(b"\r\n")
    if case == "rate-without-comma":
        cfg.write_bytes(cfg.read_bytes().replace(b"4000,2000", b"4000 2000"))
    elif case == "tiny-rate":
        cfg.write_bytes(cfg.read_bytes().replace(b"4000,2000", b"0.001,2000"))
    elif case == "bad-last-stamp":
        rows[n - 1] = rows[n - 1].replace(b"1999,499750,", b"1999,4294000000,").replace(b"2000,499750,",
                                                                                         b"2000,4294000000,")
        dat.write_bytes(b"\r\n".join(rows))
    elif case == "field-count":
        rows[4] += b",7"
        dat.write_bytes(b"\r\n".join(rows))
    elif case == "bad-digital":
        rows[6] = rows[6][:-1] + b"2"
        dat.write_bytes(b"\r\n".join(rows))
    elif case == "non-utf8":
        f = rows[8].split(b",")
        f[3] = b"\xe9\xff" + f[3]
        rows[8] = b",".join(f)
        dat.write_bytes(b"\r\n".join(rows))
    elif case == "bad-map":
        args = ["--channel-map", "IA=Nope"]
    code, out, err = _cli(capsys, cfg, *args)
    assert code == 1 and out == []
    assert expect in err, err


def test_a_broken_recording_through_the_real_command(tmp_path):
    """The installed command: exit status 1, one line naming the file, no traceback."""
    import numpy as np

    from tests.support.comtrade_files import standard_chans, standard_values, write

    t = np.arange(400) / 4000.0
    cfg = write(tmp_path / "x", standard_chans(), standard_values(t), rates=[(4000.0, 400)])
    cfg.write_bytes(cfg.read_bytes().replace(b"4000,400", b"4000;400"))
    r = meter("replay", str(cfg))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().endswith("x.cfg: line 11: '4000;400' is not 'samp,endsamp'") and "Traceback" not in r.stderr
