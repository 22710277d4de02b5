"""The io service sleeps until its next deadline: once it has a measurement second, it does not look at the
measurement snapshot again until the next one is due, and with no pulse owed and no input settling it waits on
the lines until then (or its heartbeat), not for a fixed 50 ms. Counted by snapshot reads, never timed."""
from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config import meter_schema
from firmware.ipc.names import MEASUREMENTS, instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.service import HEARTBEAT_INTERVAL_S, ServiceContext
from firmware.services.io import IDLE_S, IoService


@pytest.fixture
def io(tmp_path):
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")}})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = ServiceContext("io", config, Path("none.toml"), Path("boards/sim.toml"), run_dir, tmp_path / "data",
                         instance_name(run_dir))
    measurements = Snapshot.create(ctx.shm_name(MEASUREMENTS), snapshot_layout())
    svc = IoService(ctx)
    svc.setup()
    yield svc, measurements
    svc.teardown()
    svc.snapshot.unlink()
    measurements.close()
    measurements.unlink()


def test_a_new_second_is_not_looked_for_again_until_the_next_is_due(io):
    svc, measurements = io
    measurements.publish({"v_an": 230.0})           # a second just published
    reads = [0]
    snap = svc._measurements()
    assert snap is not None
    read = snap.read_array

    def counted():
        reads[0] += 1
        return read()

    snap.read_array = counted  # type: ignore[method-assign]
    for _ in range(20):
        svc._second()
    assert reads[0] == 1 and svc.counters["seconds"] == 1
    svc._persist_and_publish()
    # nothing owed, nothing settling: the next deadline is the next second or the heartbeat, not IDLE_S
    assert svc._wait_s() > IDLE_S           # about 0.5 s; only a stall of the whole host near 1 s could shorten it
    assert svc._wait_s() <= HEARTBEAT_INTERVAL_S
