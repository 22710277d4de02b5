"""The display draws a screen again only when what it shows changed: the screen, the mode, the clock's minute,
or a point that screen reads. Counted by the display service's renders, never timed."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware.config import meter_schema
from firmware.ipc.names import MEASUREMENTS, instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.service import ServiceContext
from firmware.services.display import DisplayService
from tests.support.display_values import sample_values

SHOWN = {"v_an": 230.12, "v_bn": 229.87, "v_cn": 231.02, "i_a": 5.001, "i_b": 4.998, "i_c": 12.5}


@pytest.fixture
def display(tmp_path, monkeypatch):
    monkeypatch.setattr("firmware.services.display.time.strftime", lambda fmt: "12:00")
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")},
                                  "display": {"screens": ["vip"], "output": "png"}})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ctx = ServiceContext("display", config, Path("none.toml"), Path("boards/sim.toml"), run_dir, tmp_path / "data",
                         instance_name(run_dir))
    snap = Snapshot.create(ctx.shm_name(MEASUREMENTS), snapshot_layout())
    svc = DisplayService(ctx)
    svc.setup()
    yield svc, snap
    svc.teardown()
    snap.close()
    snap.unlink()


def test_an_unchanged_screen_is_not_drawn_again(display):
    svc, snap = display
    values = {k: v for k, v in sample_values().items() if k in snap.layout.offsets}
    snap.publish(values)
    for _ in range(3):
        svc.draw(time.monotonic())
    assert svc.counters["renders"] == 1 and svc.counters["unchanged"] == 2
    snap.publish({**values, "wh_delivered": values["wh_delivered"] + 1.0})     # not on the V, I, P screen
    svc.draw(time.monotonic())
    assert svc.counters["renders"] == 1
    snap.publish({**values, "v_an": SHOWN["v_an"] + 0.5})
    svc.draw(time.monotonic())
    assert svc.counters["renders"] == 2
    png = svc.ctx.data_dir / svc.cfg.png_dir / "display.png"
    assert png.exists()


def test_the_clock_minute_draws_the_screen_again(display, monkeypatch):
    svc, snap = display
    snap.publish({k: v for k, v in sample_values().items() if k in snap.layout.offsets})
    svc.draw(time.monotonic())
    monkeypatch.setattr("firmware.services.display.time.strftime", lambda fmt: "12:01")
    svc.draw(time.monotonic())
    assert svc.counters["renders"] == 2
