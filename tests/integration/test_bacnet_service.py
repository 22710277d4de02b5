"""The comms service as the supervisor runs it, with the BACnet device on: values from the metrology's snapshot,
AV1 commands to their owning service through the control socket, a clean stop."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
import tomli_w
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import ObjectIdentifier

from firmware.control import ControlServer
from firmware.ipc.names import instance_name
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from tests.integration.bacnet_support import BACNET_VALUES, caller, client_app
from tests.integration.modbus_support import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_REL = 1e-6               # BACnet REAL is single precision


def test_comms_service_serves_bacnet_ip(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port, modbus_port = free_port(), free_port()
    config = tmp_path / "meter.toml"
    config.write_text(tomli_w.dumps({
        "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(run_dir), "serial_number": "SIM-777"},
        "log": {"file": False},
        "modbus": {"tcp_port": modbus_port, "bind_address": "127.0.0.1"},
        "upgrade": {"revenue_lock_file": str(tmp_path / "revenue_lock")},
        "bacnet": {"enabled": True, "ip_port": port, "bind_address": "127.0.0.1", "ip_prefix": 32,
                   "device_instance": 77, "revenue_commands": True},
    }))
    snapshot = Snapshot.create(f"{instance_name(run_dir)}.measurements", snapshot_layout())
    snapshot.publish(BACNET_VALUES)
    ran = []
    control = ControlServer(run_dir / "control.sock", {
        "metrology.energy_reset": lambda user="": ran.append(("energy_reset", caller(user))) or "done"})
    control.start()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.services.comms", "--config", str(config),
                             "--board", os.path.join(ROOT, "boards", "sim.toml"), "--run-dir", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "comms.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"comms service did not start: {proc.stdout.read().decode()}")
            time.sleep(0.05)

        async def body() -> None:
            client, _ = await client_app()
            target = Address(f"127.0.0.1:{port}")
            try:
                v = await client.read_property(target, ObjectIdentifier("analog-input,16"), "present-value")
                assert v == pytest.approx(BACNET_VALUES["v_ln_avg"], rel=REAL_REL)
                snapshot.publish({"v_ln_avg": 233.25})
                for _ in range(40):          # the device refreshes once a second
                    v = await client.read_property(target, ObjectIdentifier("analog-input,16"), "present-value")
                    if v == pytest.approx(233.25, rel=REAL_REL):
                        break
                    await asyncio.sleep(0.1)
                assert v == pytest.approx(233.25, rel=REAL_REL)
                await client.write_property(target, ObjectIdentifier("analog-value,1"), "present-value", 30078.0)
                assert ran == [("energy_reset", "bacnet")]
            finally:
                client.close()

        asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            control.stop()
            snapshot.close()
            snapshot.unlink()


def test_reinitialize_device_keeps_modbus_serving(tmp_path):
    """ReinitializeDevice re-initialises the BACnet device inside comms: mbpoll keeps its answers throughout."""
    from bacpypes3.apdu import ReinitializeDeviceRequest

    from tests.integration.modbus_support import mbpoll_raw

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    port, modbus_port = free_port(), free_port()
    config = tmp_path / "meter.toml"
    config.write_text(tomli_w.dumps({
        "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(run_dir)},
        "log": {"file": False},
        "modbus": {"tcp_port": modbus_port, "bind_address": "127.0.0.1"},
        "bacnet": {"enabled": True, "ip_port": port, "bind_address": "127.0.0.1", "ip_prefix": 32,
                   "device_instance": 78, "password": "rd-pass"},
    }))
    snapshot = Snapshot.create(f"{instance_name(run_dir)}.measurements", snapshot_layout())
    snapshot.publish(BACNET_VALUES)
    restarts = []
    control = ControlServer(run_dir / "control.sock", {"restart": lambda user="", **a: restarts.append(a) or "done"})
    control.start()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.services.comms", "--config", str(config),
                             "--board", os.path.join(ROOT, "boards", "sim.toml"), "--run-dir", str(run_dir)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "comms.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "comms service did not start"
            time.sleep(0.05)

        async def reinitialize() -> None:
            client, _ = await client_app()
            try:
                await client.request(ReinitializeDeviceRequest(reinitializedStateOfDevice="warmstart",
                                                               password="rd-pass",
                                                               destination=Address(f"127.0.0.1:{port}")))
            finally:
                client.close()

        answered = 0
        for i in range(20):
            if i % 5 == 0:
                asyncio.run(asyncio.wait_for(reinitialize(), 30))
            out = mbpoll_raw("-m", "tcp", "-p", str(modbus_port), "-o", "1", "-t", "4:float", "-B", "-r", "3027",
                             "-c", "1", "127.0.0.1")
            answered += out.returncode == 0 and "[3027]:" in out.stdout
            time.sleep(0.1)
        print(f"\n4 ReinitializeDevice during 20 Modbus polls: {answered} answered")
        assert answered == 20 and restarts == [] and proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            control.stop()
            snapshot.close()
            snapshot.unlink()
