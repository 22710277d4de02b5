"""A Modbus TCP port that cannot be bound: one clear error line, the service stays up, and it binds once the
port is free (no traceback, no restart loop). An upgrade image that is a FIFO is refused at once."""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import pytest

from firmware.comms.modbus import app as modbus_app
from firmware.comms.modbus.app import ModbusApp
from firmware.config import meter_schema
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.upgrade.errors import UpgradeRefused
from tests.integration.modbus_support import VALUES, LoopThread, mbpoll
from tests.integration.upgrade_env import make_env


def test_port_in_use_is_one_error_line_then_bound_when_free(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(modbus_app, "BIND_RETRY_MIN_S", 0.2)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = meter_schema().load({"meter": {"data_dir": str(tmp_path)},
                                  "modbus": {"tcp_port": port, "bind_address": "127.0.0.1"}})
    snapshot = Snapshot.create(f"test-bind-{uuid.uuid4().hex[:8]}", snapshot_layout())
    snapshot.publish(VALUES)
    loop = LoopThread()
    app = ModbusApp(config, snapshot, tmp_path / "control.sock")
    try:
        with caplog.at_level(logging.INFO, logger="comms.modbus"):
            assert loop.run(app.start()) == []
            time.sleep(1.0)                       # several retries while the port is held
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and not errors[0].exc_info
            assert "Address already in use; another program holds the port" in errors[0].getMessage()
            assert "Address already in use" in app.stats()["tcp"]["error"]
            holder.close()
            deadline = time.monotonic() + 5
            while app.stats()["tcp"]["error"] and time.monotonic() < deadline:
                time.sleep(0.1)
        got = mbpoll("-m", "tcp", "-p", str(port), "-t", "4:float", "-B", "-r", "3027", "-c", "1", "127.0.0.1")
        assert float(got[3027]) == pytest.approx(VALUES["v_an"], rel=1e-5)
    finally:
        loop.run(app.stop())
        loop.close()
        snapshot.close()
        snapshot.unlink()


def test_privileged_port_advice():
    exc = PermissionError(13, "Permission denied")
    assert "CAP_NET_BIND_SERVICE" in modbus_app.bind_advice(exc, 502)


def test_upgrade_install_of_a_fifo_is_refused_not_hung(tmp_path):
    env = make_env(tmp_path)
    fifo = tmp_path / "image.fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(UpgradeRefused, match="not a regular file \\(it is a FIFO\\)"):
        env.installer().check(fifo)
    assert time.monotonic() - t0 < 5.0          # an open() of a FIFO with no writer would wait forever
