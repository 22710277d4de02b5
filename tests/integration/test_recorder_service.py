"""The recorder service process on real rings: PQ events into the event log with the [pq] priorities, waveform
captures as COMTRADE 2013 read back by the PyPI ``comtrade`` package and by ``meter replay``, high-speed RMS
bursts, 3-s aggregates in recorder.db (``read_aggregates``), data recorders, and a SIGKILL that loses nothing."""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import comtrade
import numpy as np
import pytest

from firmware.control import ControlClient
from firmware.ipc.names import TOKEN_FILE
from firmware.recorder.store import read_aggregates
from firmware.storage.eventlog import EventLog
from hal.comtrade import read_comtrade
from hal.sim.signals import VoltageEvent, steady
from tests.support.recorder_feed import Feeder, start_recorder, wait_for, write_config

UDIN = 230.0
PQ = "[pq]\ncapture_samples_per_cycle = \"128\"\ncapture_pre_cycles = 4\ncapture_post_cycles = 60\n"


@pytest.fixture
def rig(tmp_path, repo, subprocess_env):
    cfg = write_config(tmp_path, PQ)
    sig = dataclasses.replace(steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, 4.0, 0.1, "A", 0.0),))
    feeder = Feeder(tmp_path / "run", sig)
    procs = []

    def start():
        proc, client = start_recorder(repo, subprocess_env, cfg, tmp_path / "run", tmp_path / "recorder.out")
        procs.append(proc)
        return proc, client

    yield feeder, start, tmp_path
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    feeder.close()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def test_dip_reaches_event_log_capture_bursts_and_aggregates(rig, repo, subprocess_env):
    feeder, start, tmp = rig
    proc, client = start()
    feeder.feed(7.0)
    wait_for(lambda: client.call("info")["captures"] >= 1 and client.call("info")["bursts"] >= 1, 30,
             "the dip's capture and burst")
    # event log: the dip's start and end, priority 255 (ION7400 Sag/Swell alarm: High); its edges, a 40 % step
    # that stays, are no transient
    log = EventLog(tmp / "var")
    rows = log.read(min_priority=0)
    causes = [r["cause"] for r in rows if r["source"] == "pq"]
    assert causes == ["sag_start", "sag"], rows
    end = [r for r in rows if r["cause"] == "sag"][0]
    assert end["priority"] == 255 and "residual 60.0" in end["effect"]
    log.close()
    (ev,) = [e for e in client.call("events") if e["kind"] == "sag"]
    # IEC 61000-4-30 Class A: duration within one cycle, residual within 0.2 % of Udin
    assert ev["duration_s"] == pytest.approx(0.1, abs=0.0201)
    assert ev["detail"]["extreme_pct"] == pytest.approx(60.0, abs=0.2)
    # its statistics (metrology.evstats), stored in pq_events: VA down to the residual and phase B untouched
    # (Urms(1/2), Class A 0.2 % of Udin), the 5 A load (Irms(1/2), 1 %), 50 Hz (Class A 10 mHz)
    st = ev["detail"]["stats"]
    assert st["v"]["min"][:2] == pytest.approx([0.6 * UDIN, UDIN], abs=0.002 * UDIN)
    assert st["i"]["avg"] == pytest.approx([5.0] * 3, rel=0.01) and st["f"]["min"] == pytest.approx(50.0, abs=0.01)
    assert (st["v"]["source"], st["pf"]["source"]) == ("half-cycle", "cycle")
    # the capture: 4 cycles before the dip's start and 60 after, 128 samples per cycle, read by the PyPI package
    name = [c for c in client.call("captures")["captures"] if c.endswith("_sag")][0]
    rec = comtrade.load(str(tmp / "var" / "waveforms" / f"{name}.cfg"), str(tmp / "var" / "waveforms" / f"{name}.dat"))
    assert rec.analog_count == 7 and rec.cfg.sample_rates[0][0] == pytest.approx(6400.0)
    assert len(rec.time) == pytest.approx(64 * 128, abs=2)
    va = np.asarray(rec.analog[rec.analog_channel_ids.index("VA")])
    vb = np.asarray(rec.analog[rec.analog_channel_ids.index("VB")])
    # int16 BINARY: the quantisation step is 1/32767 of the peak, far below the 0.2 % asked of RMS here
    assert _rms(va[:2 * 128]) == pytest.approx(UDIN, rel=0.002)                 # before the dip
    assert _rms(va[5 * 128:7 * 128]) == pytest.approx(0.6 * UDIN, rel=0.002)      # inside it
    assert _rms(vb[5 * 128:7 * 128]) == pytest.approx(UDIN, rel=0.002)            # phase B untouched
    trigger = rec.trigger_timestamp - rec.start_timestamp
    assert trigger.total_seconds() == pytest.approx(4 / 50.0, abs=1 / 6400.0)
    # high-speed RMS burst: half-cycle values 0.5 s before to 1 s after the start, the dip among them
    (burst,) = client.call("hsrms")
    d = burst["detail"]
    assert d["t"][0] == pytest.approx(-0.5, abs=0.011) and d["t"][-1] == pytest.approx(1.0, abs=0.011)
    assert min(d["va"]) == pytest.approx(0.6 * UDIN, abs=0.002 * UDIN) and min(d["vb"]) > 0.99 * UDIN
    # 3-s aggregates, the one holding the dip flagged (IEC 61000-4-30 4.7)
    aggs = read_aggregates(tmp / "var", "3s")
    assert len(aggs) >= 1 and all(set(a) == {"ts", "kind", "flagged", "gap", "values"} for a in aggs)
    # the dip (4.0-4.1 s) lies in the 3-6 s interval: that aggregate, and only it, is flagged
    flagged = [a for a in aggs if a["flagged"]]
    assert len(flagged) == 1 and flagged[0]["ts"] - aggs[0]["ts"] == pytest.approx(3.0), aggs
    assert aggs[0]["values"]["v_ln"][1] == pytest.approx(UDIN, rel=1e-3)
    # the Sag/Swell data recorder (5) took the dip's duration and residual
    rows = client.call("read", recorder=5)
    assert len(rows) == 1 and rows[0]["data"]["event.extreme_pct"] == pytest.approx(60.0, abs=0.2)
    assert proc.poll() is None


def test_a_capture_across_lost_frames_keeps_both_sides_and_marks_the_gap_missing(tmp_path, repo, subprocess_env):
    """Frames lost 120-152 ms after the dip started (inside the capture's window): the capture still spans its
    4 + 60 cycles, the lost stretch (and the resampler's reach around it) is COMTRADE's missing value, and the
    samples either side are the signal's."""
    cfg = write_config(tmp_path, PQ)
    sig = dataclasses.replace(steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, 2.0, 0.1, "A", 0.0),))
    feeder = Feeder(tmp_path / "run", sig, lose=(2.12, 2.15))
    proc, client = start_recorder(repo, subprocess_env, cfg, tmp_path / "run", tmp_path / "recorder.out")
    try:
        feeder.feed(4.0)
        wait_for(lambda: client.call("info")["captures"] >= 1, 30, "the dip's capture")
        info = client.call("info")
        assert info["captures_partial"] >= 1, info
        name = [c for c in client.call("captures")["captures"] if c.endswith("_sag")][0]
        rec = read_comtrade(tmp_path / "var" / "waveforms" / f"{name}.cfg")
        va = rec.analog[:, [a.name for a in rec.analogs].index("VA")]
        assert len(va) == pytest.approx(64 * 128, abs=2)
        gone = np.flatnonzero(np.isnan(va))
        # the dip starts 4 cycles (512 samples) in; the lost frames 120 to 152 ms later, within one block
        # either side (the feeder loses whole 1,024-frame blocks), plus the anti-alias filter's reach
        lost_from, lost_to = 512 + 0.120 * 6400, 512 + 0.152 * 6400
        assert len(gone) and gone[0] >= lost_from - 32 * 6.4 - 20 and gone[-1] <= lost_to + 32 * 6.4 + 20
        assert np.all(np.diff(gone) == 1)                                 # one stretch
        assert _rms(va[:2 * 128]) == pytest.approx(UDIN, rel=0.002)      # before the dip
        after = va[gone[-1] + 1:]
        assert len(after) > 40 * 128 and _rms(after[-20 * 128:]) == pytest.approx(UDIN, rel=0.002)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        feeder.close()


def test_command_capture_round_trip_through_meter_replay(rig, repo, subprocess_env):
    feeder, start, tmp = rig
    proc, client = start()
    feeder.feed(1.0)
    answer = client.call("capture", ascii=True)
    feeder.feed(2.0)
    wait_for(lambda: (tmp / "var" / "waveforms" / f"{answer['name']}.cfg").exists(), 20, "the command capture")
    cfg = tmp / "var" / "waveforms" / f"{answer['name']}.cfg"
    assert "ASCII" in cfg.read_text()
    rec = comtrade.load(str(cfg), str(cfg.with_suffix(".dat")))
    va = np.asarray(rec.analog[rec.analog_channel_ids.index("VA")])
    ia = np.asarray(rec.analog[rec.analog_channel_ids.index("IA")])
    assert _rms(va) == pytest.approx(UDIN, rel=0.001) and _rms(ia) == pytest.approx(5.0, rel=0.001)
    run = subprocess.run([sys.executable, "-m", "firmware.cli", "replay", str(cfg), "--interval", "cycle10",
                          "--nominal-voltage", "230"], capture_output=True, text=True, cwd=repo, env=subprocess_env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert lines, run.stderr
    # the same 230 V / 5 A / 20° load the feeder generated, through the capture and the metrology pipeline
    assert lines[-1]["v_an"] == pytest.approx(UDIN, rel=0.002)
    assert lines[-1]["p_a"] == pytest.approx(UDIN * 5.0 * math.cos(math.radians(20.0)), rel=0.005)


def _outcome(client, name: str, timeout_s: float = 30.0) -> dict:
    """The capture's outcome once it is no longer pending (the feeder must go on feeding meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.call("capture_status", name=name)
        if state["status"] != "pending":
            return state
        time.sleep(0.1)
    raise AssertionError(f"capture {name} still pending after {timeout_s} s")


def test_captures_go_on_after_acquisition_restarts_its_count(rig, repo, subprocess_env):
    """A restarted acquisition counts samples from 0 again on the same ring: the recorder follows, so a command
    capture and an event's capture after it are written, without restarting the recorder; a capture still
    waiting for samples of the old count is reported failed, not silently dropped."""
    feeder, start, tmp = rig
    proc, client = start()
    feeder.feed(1.0)
    before = client.call("capture")
    feeder.feed(1.5)
    assert _outcome(client, before["name"])["status"] == "written"
    stranded = client.call("capture")           # its post-trigger samples will never come
    assert stranded["status"] == "pending" and stranded["wait_s"] > 0
    dip_at = 2.0
    feeder.restart_acquisition(dataclasses.replace(
        steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, dip_at, 0.1, "A", 0.0),)))
    feeder.feed(1.0)
    state = _outcome(client, stranded["name"])
    assert state["status"] == "failed" and "no longer held" in state["reason"], state
    assert not (tmp / "var" / "waveforms" / f"{stranded['name']}.cfg").exists()
    after = client.call("capture")
    feeder.feed(2.5)
    state = _outcome(client, after["name"])
    assert state["status"] == "written" and (tmp / "var" / "waveforms" / f"{after['name']}.cfg").exists(), state
    wait_for(lambda: any(c.endswith("_sag") for c in client.call("captures")["captures"]), 20, "the dip's capture")
    sag = next(c for c in client.call("captures")["captures"] if c.endswith("_sag"))
    rec = read_comtrade(tmp / "var" / "waveforms" / f"{sag}.cfg")
    va = rec.analog[:, [a.name for a in rec.analogs].index("VA")]
    pre = va[: 2 * 128]                     # 2 cycles well before the dip, at 128 samples a cycle: the new count's
    assert not np.isnan(pre).any() and _rms(pre) == pytest.approx(UDIN, rel=0.002)
    info = client.call("info")
    assert info["acquisition_restarts"] == 1 and info["captures_failed"] == 1, info
    assert client.call("capture_status", name="20000101T000000000000000Z_command")["status"] == "unknown"


def test_a_delayed_capture_in_two_channel_groups(tmp_path, repo, subprocess_env):
    """[pq] capture_mode delayed and capture_groups voltages, currents: the dip writes one file per group, each
    with its channels, the record 5 cycles later than a standard one (the trigger stamp still the dip's start)."""
    cfg = write_config(tmp_path, PQ.replace("capture_post_cycles = 60", "capture_post_cycles = 8")
                       + 'capture_mode = "delayed"\ncapture_delay_cycles = 5\ncapture_groups = ["voltages", "currents"]\n')
    sig = dataclasses.replace(steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, 1.0, 0.1, "A", 0.0),))
    feeder = Feeder(tmp_path / "run", sig)
    proc, client = start_recorder(repo, subprocess_env, cfg, tmp_path / "run", tmp_path / "recorder.out")
    try:
        feeder.feed(3.0)
        wait_for(lambda: len([c for c in client.call("captures")["captures"] if c.endswith("_sag")]) == 2, 30,
                 "the dip's two captures")
        names = sorted(c for c in client.call("captures")["captures"] if c.endswith("_sag"))
        assert [n.rpartition("Z_")[2] for n in names] == ["currents_sag", "voltages_sag"]
        for name, channels in zip(names, (["IA", "IB", "IC", "IN"], ["VA", "VB", "VC"])):
            path = tmp_path / "var" / "waveforms" / f"{name}.cfg"
            rec = comtrade.load(str(path), str(path.with_suffix(".dat")))
            assert rec.analog_channel_ids == channels
            assert abs(len(rec.time) - 12 * 128) <= 1              # 4 + 8 cycles at 128 samples (whole samples)
            # the record starts 4 - 5 = -1 cycles before the trigger: one cycle after it
            assert (rec.trigger_timestamp - rec.start_timestamp).total_seconds() == pytest.approx(-0.02, abs=1 / 6400)
        (ev,) = [e for e in client.call("events") if e["kind"] == "sag"]
        assert rec.trigger_timestamp.replace(tzinfo=datetime.timezone.utc).timestamp() == pytest.approx(ev["ts"],
                                                                                                         abs=1e-5)
        va = np.asarray(comtrade.load(str(tmp_path / "var" / "waveforms" / f"{names[1]}.cfg"),
                                      str(tmp_path / "var" / "waveforms" / f"{names[1]}.dat")).analog[0])
        assert _rms(va[:256]) == pytest.approx(0.6 * UDIN, rel=0.01)   # inside the dip: it started 1 cycle before
    finally:
        proc.terminate()
        proc.wait(10)
        feeder.close()


def test_sigkill_loses_nothing_and_corrupts_nothing(rig, repo, subprocess_env):
    feeder, start, tmp = rig
    proc, client = start()
    feeder.feed(4.5)
    wait_for(lambda: client.call("info")["aggregates"] >= 1, 20, "a first aggregate")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    feeder.feed(5.0)               # written while no recorder runs
    proc, client = start()
    feeder.feed(3.0)
    expected = sum(len(r.three_s) for r in feeder.results)
    wait_for(lambda: len(read_aggregates(tmp / "var", "3s")) >= expected, 30, f"{expected} 3-s aggregates")
    aggs = read_aggregates(tmp / "var", "3s")
    ts = [a["ts"] for a in aggs]
    assert len(ts) == expected == len(set(ts)), ts          # every interval once: none lost, none twice
    events = [e for e in client.call("events") if e["kind"] == "sag"]
    assert len(events) == 1
    for db in ("recorder.db", "events.db"):
        con = sqlite3.connect(tmp / "var" / db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()


def test_meter_pq_cli_through_the_supervisor(tmp_path, repo, subprocess_env):
    """`meter run` supervises the recorder; `meter pq ...` reaches it through the control socket."""
    cfg = write_config(tmp_path, PQ)
    sig = dataclasses.replace(steady(UDIN, 5.0, 20.0), events=(VoltageEvent("sag", 0.6, 2.0, 0.1, "A", 0.0),))
    out = open(tmp_path / "meter.out", "w+")  # noqa: SIM115 - the meter writes it while the test runs
    meter = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(cfg), "--board",
                              str(repo / "boards" / "sim.toml"), "--only", "recorder"], cwd=repo, env=subprocess_env,
                             stdout=out, stderr=subprocess.STDOUT)
    feeder = None

    def cli(*args: str) -> object:
        run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), *args], cwd=repo,
                             env=subprocess_env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(run.stdout)

    try:
        # the rings are named by the token the supervisor draws as it starts: fed once it has written it
        wait_for(lambda: (tmp_path / "run" / TOKEN_FILE).exists(), 90, "the supervisor's shared-memory token")
        feeder = Feeder(tmp_path / "run", sig)
        wait_for(lambda: (tmp_path / "run" / "recorder.sock").exists(), 90, "the recorder's socket")
        time.sleep(1.0)
        feeder.feed(4.0)
        wait_for(lambda: any(e["kind"] == "sag" for e in cli("events")), 30, "the dip through `meter pq events`")
        (dip,) = [e for e in cli("events") if e["kind"] == "sag"]
        assert dip["detail"]["stats"]["v"]["min"][0] == pytest.approx(0.6 * UDIN, abs=0.002 * UDIN)   # Class A
        recorders = cli("recorders")
        assert len(recorders) == 12 and recorders[4]["name"] == "Sag/Swell Log"
        rows = cli("read", "5", "--since", "2000-01-01")
        assert len(rows) == 1 and rows[0]["data"]["event.duration_s"] == pytest.approx(0.1, abs=0.0201)
        assert cli("read", "5", "--until", "2000-01-01") == []
        assert any(c.endswith("_sag") for c in cli("captures")["captures"])
        # `meter pq capture` returns once its file is there
        feeding = threading.Thread(target=feeder.feed, args=(3.0,))
        feeding.start()
        try:
            got = cli("capture")
        finally:
            feeding.join()
        assert got["status"] == "written" and Path(got["cfg"]).is_file() and got["cfg"].endswith(got["name"] + ".cfg")
        # one whose samples never come (acquisition restarted its count meanwhile) fails, says why, and exits 1
        waiting = subprocess.Popen([sys.executable, "-m", "firmware.cli", "pq", "--config", str(cfg), "capture"],
                                   cwd=repo, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        recorder = ControlClient(tmp_path / "run" / "recorder.sock", timeout_s=10)
        try:
            wait_for(lambda: recorder.call("info")["pending_captures"] >= 1, 60, "the capture asked")
            feeder.restart_acquisition()
            feeder.feed(1.5)
            out_text, err_text = waiting.communicate(timeout=60)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
        assert waiting.returncode == 1, out_text + err_text
        assert "failed: its samples are no longer held" in err_text, err_text
    finally:
        meter.send_signal(signal.SIGTERM)
        try:
            meter.wait(30)
        except subprocess.TimeoutExpired:
            meter.kill()
        out.close()
        if feeder is not None:
            feeder.close()
