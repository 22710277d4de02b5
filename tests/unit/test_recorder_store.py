"""The recorder's stores: pq_aggregates (per-kind depth, read back by read_aggregates) and the data recorders."""
from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.config import meter_schema
from firmware.recorder.datarec import DataRecorders
from firmware.recorder.store import AggregateStore, read_aggregates
from hal.errors import ConfigError, StorageError


def test_aggregates_per_kind_depth_duplicates_and_time_range(tmp_path):
    store = AggregateStore(tmp_path, {"3s": 3, "10min": 2, "2h": 2})
    values = {"v_ln": np.array([230.0, 231.5, math.nan]), "freq": np.array([50.01]),
              "h_mag": np.arange(6.0).reshape(2, 3), "h_angle": np.zeros((2, 3)), "h_inter": np.ones((2, 3))}
    for k in range(5):
        assert store.append("3s", 1000.0 + 3 * k, k == 2, False, values)
    assert store.append("10min", 1200.0, True, True, values)
    assert not store.append("3s", 1012.0, False, False, values)      # the same interval again: stored once
    store.close()
    rows = read_aggregates(tmp_path, "3s")
    assert [r["ts"] for r in rows] == [1006.0, 1009.0, 1012.0]           # depth 3: the oldest two overwritten
    assert [r["flagged"] for r in rows] == [True, False, False]
    v = rows[0]["values"]
    assert v["v_ln"][:2] == [230.0, 231.5] and math.isnan(v["v_ln"][2])
    assert v["h_mag"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and "h_angle" not in v and "h_inter" not in v
    (ten,) = read_aggregates(tmp_path, "10min")
    assert ten["flagged"] and ten["gap"] and ten["values"]["h_inter"] == [[1.0] * 3] * 2
    assert [r["ts"] for r in read_aggregates(tmp_path, "3s", since_ts=1007.0, until_ts=1010.0)] == [1009.0]
    assert read_aggregates(tmp_path / "nothing", "2h") == []
    with pytest.raises(StorageError, match="'1h' is not one of"):
        read_aggregates(tmp_path, "1h")


def _recorders(tmp_path, recorders):
    config = meter_schema().load({"recorders": {"recorder": recorders}})
    return DataRecorders(tmp_path, config["recorders"])


def test_interval_recorder_keeps_mean_high_low_per_clock_aligned_interval(tmp_path):
    recs = _recorders(tmp_path, [
        {"name": "mean", "channels": ["v_an", "harmonics_v_an[3]"], "interval": 10, "stat": "mean"},
        {"name": "high", "channels": ["v_an"], "interval": 10, "stat": "high"},
        {"name": "low", "channels": ["v_an"], "interval": 10, "stat": "low"}])
    harm = np.zeros(64)
    for k, t in enumerate(range(100, 121)):                  # 1-s readings from 100 s to 120 s
        harm[3] = k
        recs.poll(float(t), lambda k=k: {"v_an": 230.0 + k, "harmonics_v_an": harm.copy()})
    (mean, *_), (high, *_), (low, *_) = (recs.read(n, None, None, 100) for n in (1, 2, 3))
    assert mean["ts"] == 110.0 and mean["data"]["v_an"] == pytest.approx(234.5)
    assert mean["data"]["harmonics_v_an[3]"] == pytest.approx(4.5)
    assert high["data"]["v_an"] == 239.0 and low["data"]["v_an"] == 230.0
    assert len(recs.read(1, None, None, 100)) == 2                 # 100-109 and 110-119; 120 still open
    assert recs.read(1, 115.0, None, 100)[0]["ts"] == 120.0


def test_triggered_recorder_and_configuration_change_clears(tmp_path):
    spec = [{"name": "dips", "trigger": "disturbance", "channels": ["event.duration_s", "event.extreme_v[0]", "v_bn"]}]
    recs = _recorders(tmp_path, spec)
    meta = {"kind": "sag", "end_ns": 5_000_000_000, "duration_s": 0.11, "extreme_v": [138.0, 230.0, 230.0]}
    recs.on_event(meta, {"v_bn": 229.0})
    recs.on_event({**meta, "kind": "transient"}, {})
    (row,) = recs.read(1, None, None, 10)
    assert row["ts"] == 5.0 and row["data"] == {"event.duration_s": 0.11, "event.extreme_v[0]": 138.0,
                                               "v_bn": 229.0}
    recs.close()
    assert len(_recorders(tmp_path, spec).read(1, None, None, 10)) == 1      # same configuration: kept
    spec[0]["depth"] = 50
    assert _recorders(tmp_path, spec).read(1, None, None, 10) == []          # changed: starts empty (SPEC §5)


def test_bad_channels_are_refused_with_the_recorder_named(tmp_path):
    with pytest.raises(ConfigError, match=r"recorder\]\] 1 \(x\): channel 'v_xx' is not a point"):
        _recorders(tmp_path, [{"name": "x", "channels": ["v_xx"]}])
    with pytest.raises(ConfigError, match="an array of 64; name one element"):
        _recorders(tmp_path, [{"name": "x", "channels": ["harmonics_v_an"]}])
    with pytest.raises(ConfigError, match="is an event field but the recorder's trigger is 'interval'"):
        _recorders(tmp_path, [{"name": "x", "channels": ["event.duration_s"]}])


def test_default_recorders_are_the_ion_logs(tmp_path):
    recs = _recorders(tmp_path, meter_schema().defaults()["recorders"].to_dict()["recorder"])
    names = [r["name"] for r in recs.describe()]
    assert names == ["Revenue Log", "Hist Mean Log", "Hist High Log", "Hist Low Log", "Sag/Swell Log",
                     "Harm Mean Log", "Harm High Log", "EgyDmd Log", "PQ 10-min Log", "Harmonics Va Log", "RVC Log",
                     "Loss Log"]
    assert all(len(r["channels"]) <= 16 for r in recs.describe()) and len(names) <= 16
