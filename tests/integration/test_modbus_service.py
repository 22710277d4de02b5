"""The comms service as the supervisor runs it: its own process, values from the metrology's snapshot,
commands through the control socket to the owning service, which may refuse them (revenue lock)."""
import os
import subprocess
import sys
import time

import pytest
import tomli_w
from pymodbus.client import ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from firmware.control import ControlClient, ControlServer
from firmware.ipc.names import instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from hal.errors import AccessDenied
from tests.integration.modbus_support import VALUES, free_port, mbpoll

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def service(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port = free_port()
    config = tmp_path / "meter.toml"
    config.write_text(tomli_w.dumps({
        "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(run_dir), "serial_number": "SIM-123456"},
        "log": {"file": False},
        "modbus": {"tcp_port": port, "bind_address": "127.0.0.1", "access": "read-write"},
    }))
    snapshot = Snapshot.create(f"{instance_name(run_dir)}.measurements", snapshot_layout())
    snapshot.publish(VALUES)
    ran = []
    locked = {"on": False}

    def owning_service(name):
        def handler(user=""):
            if locked["on"]:
                raise AccessDenied("the meter is revenue-locked")
            ran.append((name, user))
            return "done"
        return handler

    control = ControlServer(run_dir / "control.sock", {
        f"metrology.{c}": owning_service(c) for c in ("demand_reset", "energy_reset", "billing_reset",
                                                        "demand_sync")})
    control.start()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.services.comms", "--config", str(config),
                             "--board", os.path.join(ROOT, "boards", "sim.toml"), "--run-dir", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (run_dir / "comms.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"comms service did not start: {proc.stdout.read().decode()}")
        time.sleep(0.05)
    yield {"port": port, "snapshot": snapshot, "ran": ran, "locked": locked, "run_dir": run_dir}
    proc.terminate()
    try:
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        control.stop()
        snapshot.close()
        snapshot.unlink()


def test_service_serves_the_snapshot_and_runs_commands(service):
    got = mbpoll("-m", "tcp", "-p", str(service["port"]), "-t", "4:float", "-B", "-r", "3027", "-c", "3",
                 "127.0.0.1")
    assert float(got[3027]) == pytest.approx(VALUES["v_an"], rel=1e-5)
    service["snapshot"].publish({"v_an": 99.5})
    client = ModbusTcpClient("127.0.0.1", port=service["port"], timeout=3, retries=0)
    assert client.connect()
    rr = client.read_holding_registers(3027, count=2)
    assert client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32) == 99.5
    rr = client.read_holding_registers(89, count=10)
    assert client.convert_from_registers(rr.registers, client.DATATYPE.STRING) == "SIM-123456"
    assert not client.write_register(5000, 1).isError()
    # the audit name is what the comms service says it acts for, beside the uid and pid the kernel gives
    assert [(cmd, user.partition(" (uid ")[0]) for cmd, user in service["ran"]] == [("demand_reset", "modbus")]
    assert f"(uid {os.geteuid()}, pid " in service["ran"][0][1]
    service["locked"]["on"] = True                       # the owning service refuses: exception 02
    rr = client.write_register(5002, 1)
    assert isinstance(rr, ExceptionResponse) and rr.exception_code == 2
    client.close()
    stats = ControlClient(service["run_dir"] / "comms.sock").call("stats")
    assert stats["requests"]["commands"] == 1 and stats["tcp"]["accepted"] >= 2
