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

REQUIRED = ("v_an v_bn v_cn v_ab v_bc v_ca i_a i_b i_c i_n p_a p_b p_c p_total q_a q_b q_c q_total s_total pf_total "
            "frequency thd_v_an thd_i_a harmonics_v_an harmonics_i_a wh_delivered wh_received varh_delivered "
            "varh_received vah_delivered").split()


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
