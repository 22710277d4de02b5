"""PQDIF (IEEE 1159.3) export: a sag's waveform capture, the PQ event and 10-min values, made by the recorder
service on real rings, exported by `meter pq export --format pqdif` and read back by an independent reader
written from the standard's tables (tests/support/pqdif_reader.py, no code shared with the writer)."""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from firmware.recorder.store import AggregateStore
from hal.comtrade import read_comtrade
from hal.sim.signals import VoltageEvent, steady
from tests.support import pqdif_reader as pqdif
from tests.support.recorder_feed import Feeder, start_recorder, wait_for, write_config

UDIN = 230.0
PQ = "[pq]\ncapture_samples_per_cycle = \"128\"\ncapture_pre_cycles = 4\ncapture_post_cycles = 8\n"


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, dtype=np.float64)))))


@pytest.fixture
def recorded(tmp_path, repo, subprocess_env):
    """A recorder that saw a 100 ms dip to 60 % on phase A, and three 10-min values in its store."""
    cfg = write_config(tmp_path, PQ)
    sig = dataclasses.replace(steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, 1.0, 0.1, "A", 0.0),))
    feeder = Feeder(tmp_path / "run", sig)
    proc, client = start_recorder(repo, subprocess_env, cfg, tmp_path / "run", tmp_path / "recorder.out")
    try:
        feeder.feed(3.0)
        wait_for(lambda: any(c.endswith("_sag") for c in client.call("captures")["captures"])
                 and any(e["kind"] == "sag" for e in client.call("events")), 30, "the dip's capture and event")
        events = client.call("events")
        captures = client.call("captures")["captures"]
    finally:
        proc.terminate()
        proc.wait(10)
        feeder.close()
    store = AggregateStore(tmp_path / "var", {"3s": 10, "10min": 10, "2h": 10})
    end = (feeder.t0_ns // 10**9 // 600) * 600.0
    thd = [2.0, 2.5, 3.0] + [math.nan] * 7
    for k in range(3):
        store.append("10min", end - 600.0 * (2 - k), False, False,
                     {"v_ln": [230.0 + k, 229.0, 231.0], "i": [5.0, 5.1, 4.9 + 0.1 * k], "freq": 50.0 + 0.01 * k,
                      "thd": thd})
    store.close()
    return cfg, tmp_path, events, captures, end


def _export(repo, env, cfg, out, *args):
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), "export", "--format",
                          "pqdif", "-o", str(out), *args], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_a_sag_capture_event_and_trends_read_back_by_an_independent_reader(recorded, repo, subprocess_env):
    cfg, tmp, events, captures, end = recorded
    out = tmp / "meter.pqd"
    answer = _export(repo, subprocess_env, cfg, out)
    assert answer["bytes"] == out.stat().st_size > 0
    records = pqdif.read(out)
    assert [r.tag for r in records[:2]] == ["Container", "RecDataSource"]
    assert pqdif.get(records[0].body, "VersionInfo") == [1, 5, 1, 0]
    assert pqdif.get(records[1].body, "DataSourceTypeID") == "ID_DS_TYPE_MEASURE"

    chans = pqdif.channels(records)
    waves = {c["name"]: c for c in chans if c["type"] == "ID_QT_WAVEFORM"}
    assert set(waves) == {f"{n} waveform" for n in ("VA", "VB", "VC", "IA", "IB", "IC", "IN")}
    assert waves["VA waveform"]["phase"] == "AN" and waves["VA waveform"]["quantity"] == "voltage"
    assert waves["VA waveform"]["series"] == [("ID_SERIES_VALUE_TYPE_TIME", "s"), ("ID_SERIES_VALUE_TYPE_VAL", "V")]
    assert waves["IC waveform"]["series"][1] == ("ID_SERIES_VALUE_TYPE_VAL", "A") and waves["IN waveform"]["phase"] == "NG"

    obs = pqdif.observations(records)
    (sag_name,) = [c for c in captures if c.endswith("_sag")]
    (wave,) = [o for o in obs if o["name"] == f"waveform capture {sag_name}"]
    rec = read_comtrade(tmp / "var" / "waveforms" / f"{sag_name}.cfg")
    # the right channels, units and times: the capture's start and trigger, 128 samples a cycle
    assert wave["start"] == pytest.approx(rec.start.replace(tzinfo=datetime.timezone.utc).timestamp(), abs=1e-6)
    (dip,) = [e for e in events if e["kind"] == "sag"]
    assert wave["triggered"] == pytest.approx(dip["ts"], abs=1e-6)          # the dip's start triggered it
    by_name = {chans[i["channel"]]["name"]: i["series"] for i in wave["channels"]}
    assert set(by_name) == set(waves)
    t, va = np.array(by_name["VA waveform"][0]), np.array(by_name["VA waveform"][1])
    assert np.diff(t) == pytest.approx(1 / (128 * 50.0), rel=1e-9) and t[0] == 0.0
    n_pre = int(round((wave["triggered"] - wave["start"]) * 128 * 50))
    cycle = 128
    assert _rms(va[n_pre - 3 * cycle:n_pre - cycle]) == pytest.approx(UDIN, rel=0.002)       # before the dip
    assert _rms(va[n_pre + cycle:n_pre + 3 * cycle]) == pytest.approx(0.6 * UDIN, rel=0.01)   # inside it
    assert _rms(by_name["VB waveform"][1][n_pre + cycle:n_pre + 3 * cycle]) == pytest.approx(UDIN, rel=0.002)
    assert _rms(by_name["IA waveform"][1]) == pytest.approx(5.0, rel=0.002)
    assert wave["trigger"] == 1                                              # ID_TRIGGER_METH_CHANNEL

    (ev,) = [o for o in obs if o["name"].startswith("sag")]
    assert ev["category"] == "ID_DISTURB_1159_SHORTDUR_INSTANT_SAG"
    assert ev["magnitude"] == pytest.approx(dip["detail"]["extreme_pct"]) and ev["start"] == pytest.approx(dip["ts"])
    assert ev["duration"] == pytest.approx(dip["duration_s"]) == pytest.approx(0.1, abs=0.0201)
    (mag,) = ev["channels"]
    assert chans[mag["channel"]]["series"] == [("ID_SERIES_VALUE_TYPE_VAL", "%"), ("ID_SERIES_VALUE_TYPE_DURATION", "s")]
    assert mag["series"] == [[pytest.approx(dip["detail"]["extreme_pct"])], [pytest.approx(dip["duration_s"])]]

    (trend,) = [o for o in obs if o["name"] == "10-min values"]
    series = {chans[i["channel"]]["name"]: i["series"] for i in trend["channels"]}
    assert series["V A-N 10-min"][0] == pytest.approx([end - 1200.0, end - 600.0, end])
    assert series["V A-N 10-min"][1] == pytest.approx([230.0, 231.0, 232.0])
    assert series["I C 10-min"][1] == pytest.approx([4.9, 5.0, 5.1])
    assert series["Frequency 10-min"][1] == pytest.approx([50.0, 50.01, 50.02])
    assert series["THD V B-N 10-min"][1] == pytest.approx([2.5] * 3)
    freq = next(c for c in chans if c["name"] == "Frequency 10-min")
    assert freq["series"] == [("ID_SERIES_VALUE_TYPE_TIME", "timestamp"), ("ID_SERIES_VALUE_TYPE_AVG", "Hz")]


def test_parts_and_range_select_what_goes_in(recorded, repo, subprocess_env):
    cfg, tmp, events, captures, end = recorded
    out = tmp / "events.pqd"
    _export(repo, subprocess_env, cfg, out, "--parts", "events")
    obs = pqdif.observations(pqdif.read(out))
    assert obs and all(not o["name"].startswith(("waveform", "10-min")) for o in obs)
    _export(repo, subprocess_env, cfg, out, "--until", "1000")          # 1970: nothing in range
    assert pqdif.observations(pqdif.read(out)) == []
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), "export", "--format",
                          "pqdif", "-o", str(out), "--parts", "everything"], cwd=repo, env=subprocess_env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "not one of events, captures, trends" in run.stderr
