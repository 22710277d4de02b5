"""The time service against chronyd on loopback: sources written and reloaded, time quality and
``time_synced`` from chrony's tracking, a step of the served time logged as a step and clearing
``time_synced``, a return to the right time restoring it, and protocol time sets by priority."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from firmware.comms.modbus.app import ModbusApp
from firmware.config import meter_schema
from firmware.control import ControlServer
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.service import ServiceContext, instance_name
from firmware.services.timesync import TimeService
from firmware.timesync import SNAPSHOT_NAME
from firmware.timesync.reader import TimeSynced
from hal.errors import MeterError
from tests.integration.modbus_support import LoopThread, free_port, mbpoll_raw
from tests.support.chrony import MeterChronyd, SteppableServer, require_chrony
from tests.support.shm_sweep import sweep_instance

POLL_S = 0.2
DEADLINE_S = 20.0


@pytest.fixture
def chrony(tmp_path: Path):
    require_chrony()
    server = SteppableServer(tmp_path / "server")
    meter = None
    try:
        meter = MeterChronyd(tmp_path / "meter")
        yield server, meter
    finally:
        if meter is not None:
            meter.stop()
        server.stop()


@pytest.fixture(autouse=True)
def no_shared_memory_left(tmp_path):
    yield
    sweep_instance(tmp_path / "run")


def make_service(tmp_path: Path, server: SteppableServer, meter: MeterChronyd, **time_opts) -> TimeService:
    options = {"ntp_servers": [f"127.0.0.1:{server.port}"], "minpoll": -4, "maxpoll": -4, "poll": POLL_S,
               "chrony_sources_file": str(meter.sources_dir / "openmeter.sources"), "chrony_socket": meter.socket,
               "max_offset": 0.05, "step_threshold": 1.0, "log_threshold": 0.01, **time_opts}
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")},
                                  "time": options})
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    ctx = ServiceContext("time", config, Path("none.toml"), Path("boards/sim.toml"), run_dir, tmp_path / "data",
                         instance_name(run_dir))
    svc = TimeService(ctx)
    svc.setup()
    return svc


def poll_until(svc: TimeService, cond, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if svc._sources_due is not None:
            svc._write_sources()
        svc.poll()
        if cond():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"{what} not within {DEADLINE_S} s; tracking {svc.tracking}, events "
                         f"{[e['event'] for e in svc.events.read()]}")


def events(svc: TimeService) -> list[dict]:
    return svc.events.read()


def test_sync_step_and_recovery(tmp_path, chrony):
    server, meter = chrony
    svc = make_service(tmp_path, server, meter)
    try:
        sources = (meter.sources_dir / "openmeter.sources").read_text()
        assert f"server 127.0.0.1 port {server.port} iburst minpoll -4 maxpoll -4" in sources
        reader = TimeSynced(svc.ctx.shm_name(SNAPSHOT_NAME))
        poll_until(svc, lambda: svc.quality == 2, "first synchronisation")
        snap = Snapshot.attach(svc.ctx.shm_name(SNAPSHOT_NAME)).read()
        assert snap["time_synced"] == 1.0 and snap["time_stratum"] == 2.0 and snap["time_leap"] == 0.0
        assert abs(snap["time_offset"]) < 0.05
        assert reader.value() == 1.0
        assert [e["event"] for e in events(svc)][-1] == "sync"

        server.step(5.0)                       # the served time jumps 5 s ahead
        poll_until(svc, lambda: svc.quality != 2, "loss of time quality after the step")
        poll_until(svc, lambda: any(e["event"] == "step" for e in events(svc)), "the step event")
        step = next(e for e in events(svc) if e["event"] == "step")
        # chrony's sign: negative offset = the clock is behind the reference, which is now 5 s ahead
        assert -6.0 < step["offset"] <= -1.0
        assert step["info"]["source"] == "127.0.0.1"
        assert reader.value() == 0.0
        snapshot = Snapshot.attach(svc.ctx.shm_name(SNAPSHOT_NAME))
        poll_until(svc, lambda: abs(snapshot.read()["time_offset"] + 5.0) < 0.05, "the offset settling at -5 s")
        assert svc.quality != 2 and reader.value() == 0.0
        assert sum(e["event"] == "step" for e in events(svc)) == 1, "one step event per step, not one per update"

        server.step(0.0)                       # served time right again (chronyd -x never stepped the clock)
        poll_until(svc, lambda: svc.quality == 2, "synchronisation after the served time returned")
        kinds = [e["event"] for e in events(svc)]
        assert kinds.count("step") == 1
        assert kinds[-1] == "sync" and "degraded" in kinds
        assert reader.value() == 1.0
        reader.close()
    finally:
        svc.teardown()


def test_protocol_time_set_priority(tmp_path, chrony):
    server, meter = chrony
    svc = make_service(tmp_path, server, meter, priority=["ntp", "protocol"])
    try:
        poll_until(svc, lambda: svc.quality == 2, "first synchronisation")
        with pytest.raises(MeterError, match="synchronised by ntp"):
            svc.cmd_set(user="modbus", utc=time.time() + 30, source="protocol")
        with pytest.raises(MeterError, match="not in"):
            svc.cmd_set(user="op", utc=time.time() + 30, source="manual")
        with pytest.raises(MeterError, match="between 2000 and 2200"):
            svc.cmd_set(user="modbus", utc="soon", source="protocol")
        assert [e["event"] for e in events(svc)].count("time_set_refused") == 2
        # protocol first: the set goes to chrony's manual reference
        svc.cfg = meter_schema().load({"time": {**svc.cfg.to_dict(), "priority": ["protocol", "ntp"]}})["time"]
        answer = svc.cmd_set(user="modbus", utc=time.time() + 30, source="protocol")
        assert answer["applied"] and answer["offset"] == pytest.approx(30, abs=1.5)
        assert "Clock was" in answer["chrony"]
        manual = svc.chrony.run("manual", "list")
        assert "n_samples = 1" in manual
        assert events(svc)[-1]["event"] == "time_set"
        # a set within protocol_set_min_step of the clock is acknowledged without touching it
        assert svc.cmd_set(user="modbus", utc=time.time(), source="protocol")["applied"] is False
    finally:
        svc.teardown()


def test_chrony_unreachable_reads_unsynchronised(tmp_path):
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path / "data")},
                                  "time": {"chrony_socket": str(tmp_path / "nothing.sock"), "poll": 0.2}})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    svc = TimeService(ServiceContext("time", config, Path("none.toml"), Path("boards/sim.toml"), run_dir,
                                     tmp_path / "data", instance_name(run_dir)))
    svc.setup()
    try:
        svc.poll()
        snap = Snapshot.attach(svc.ctx.shm_name(SNAPSHOT_NAME)).read()
        assert snap["time_synced"] == 0.0 and snap["time_quality"] == 0.0
        assert svc.chrony_error and svc.counters["chrony_errors"] == 1
    finally:
        svc.teardown()


def test_modbus_time_set_reaches_chrony(tmp_path, chrony):
    """End to end: mbpoll writes UTC seconds to the time-set register (5004) of the real Modbus server, which
    sends time.set over a real control socket to the time service, which sets chrony's manual reference."""
    server, meter = chrony
    svc = make_service(tmp_path, server, meter, priority=["protocol", "ntp"])
    control = ControlServer(tmp_path / "run" / "control.sock", {"time.set": svc.cmd_set})
    control.start()
    config = meter_schema().load({"modbus": {"tcp_port": free_port(), "bind_address": "127.0.0.1",
                                             "access": "read-write"}})
    snapshot = Snapshot.create(f"test-time-set-{uuid.uuid4().hex[:12]}", snapshot_layout())
    loop = LoopThread()
    app = ModbusApp(config, snapshot, tmp_path / "run" / "control.sock")
    try:
        loop.run(app.start())
        utc = int(time.time()) + 40
        proc = mbpoll_raw("-m", "tcp", "-p", str(config["modbus"].tcp_port), "-t", "4:int", "-B", "-r", "5004",
                          "127.0.0.1", str(utc))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (event,) = [e for e in events(svc) if e["event"] == "time_set"]
        assert event["info"]["source"] == "protocol" and event["info"]["utc"] == utc
        assert event["info"]["user"].startswith("modbus")      # with the caller's uid and pid
        assert event["offset"] == pytest.approx(40, abs=1.5)
        assert "n_samples = 1" in svc.chrony.run("manual", "list")
        # refused by priority: the Modbus client gets an exception reply, and the refusal is logged
        svc.cfg = meter_schema().load({"time": {**svc.cfg.to_dict(), "priority": ["ntp"]}})["time"]
        refused = mbpoll_raw("-m", "tcp", "-p", str(config["modbus"].tcp_port), "-t", "4:int", "-B", "-r",
                             "5004", "127.0.0.1", str(utc + 60))
        assert refused.returncode != 0
        assert events(svc)[-1]["event"] == "time_set_refused"
    finally:
        loop.run(app.stop())
        loop.close()
        control.stop()
        snapshot.close()
        snapshot.unlink()
        svc.teardown()
