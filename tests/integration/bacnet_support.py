"""Shared pieces of the BACnet tests: the meter's BACnet device on loopback with a real snapshot and a real
control socket (whose handlers stand for the owning services and record what they were asked), and a
bacpypes3 client application."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import tomli_w
from bacpypes3.app import Application
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address

from firmware.comms.bacnet.app import BacnetApp
from firmware.config.store import load_file
from firmware.control import ControlServer
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from hal.errors import AccessDenied
from tests.integration.modbus_support import VALUES, free_port

DEVICE_INSTANCE = 4321
# A complete record for the S4100 objects: the Modbus tests' values plus per-phase energies, demand, status.
BACNET_VALUES = {
    **VALUES, "pf_a": 0.989, "pf_b": 0.988, "pf_c": 0.990, "varh_q1": 9_000_000.0, "varh_q2": 876_543.0,
    "varh_q3": 10.0, "varh_q4": 2.0, "wh_delivered_a": 41_000_000.0, "wh_delivered_b": 40_000_000.0,
    "wh_delivered_c": 42_456_789.4, "wh_received_a": 400.0, "wh_received_b": 434.0, "wh_received_c": 400.0,
    "vah_delivered_a": 41_500_000.0, "vah_delivered_b": 40_500_000.0, "vah_delivered_c": 43_000_000.0,
    "vah_received_a": 430.0, "vah_received_b": 440.0, "vah_received_c": 430.0,
    "p_demand_delivered": 8_100.0, "q_demand_delivered": 1_200.0, "s_demand": 8_200.0,
    "p_demand_delivered_peak": 9_500.0, "q_demand_delivered_peak": 1_500.0, "s_demand_peak": 9_700.0,
    "p_demand_received_peak": 120.0, "q_demand_received_peak": 30.0, "time_synced": 1.0,
    "s_demand_received_peak": 140.0, "energy_reset_count": 2.0,
    **{f"varh_q{n}_{ph}": 1000.0 * n + k for n in range(1, 5) for k, ph in enumerate("abc")},
    "di_count": [1234.0, 56.0] + [float("nan")] * 14, "power_up_count": 9.0,
}


@dataclass
class Rig:
    app: BacnetApp
    client: Application
    target: Address
    snapshot: Snapshot
    config_path: Path
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    locked: dict[str, bool] = field(default_factory=lambda: {"on": False})

    def publish(self, **values: float) -> None:
        self.snapshot.publish(values)
        self.app._poll()


def caller(user: str) -> str:
    """The name a request gave, without the uid and pid the control socket adds for the audit."""
    return user.split(" (uid ")[0]


def _control(run_dir: Path, rig_calls: list[tuple[str, str, dict[str, Any]]],
             locked: dict[str, bool]) -> ControlServer:
    def handler(name: str, revenue: bool):
        def run(user: str = "", **args: Any) -> str:
            if revenue and locked["on"]:
                raise AccessDenied("the meter is revenue-locked")
            rig_calls.append((name, caller(user), args))
            return "done"
        return run

    handlers = {f"metrology.{c}": handler(f"metrology.{c}", c != "demand_sync")
                for c in ("demand_reset", "energy_reset", "billing_reset", "demand_sync")}
    handlers["time.set"] = handler("time.set", False)
    handlers["io.reset_counts"] = handler("io.reset_counts", False)
    handlers["restart"] = handler("restart", False)
    server = ControlServer(run_dir / "control.sock", handlers)
    server.start()
    return server


async def client_app(port: int | None = None) -> tuple[Application, int]:
    port = port or free_port()
    dev = DeviceObject(objectIdentifier=("device", 999_001), objectName="test client", vendorIdentifier=999)
    client = Application.from_object_list([dev])
    address = IPv4Address(f"127.0.0.1/32:{port}")
    link = NormalLinkLayer(address)
    client.link_layers[dev.objectIdentifier] = link
    client.nsap.bind(link, address=address)
    return client, port


@contextlib.asynccontextmanager
async def bacnet_rig(tmp_path: Path, sections: dict[str, dict[str, Any]] | None = None,
                     **bacnet: Any) -> AsyncIterator[Rig]:
    """The device on a free loopback port; ``bacnet`` are [bacnet] options, ``sections`` any other ones."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    port = free_port()
    config_path = tmp_path / "meter.toml"
    config_path.write_text(tomli_w.dumps({
        "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(run_dir), "serial_number": "SIM-424242"},
        "log": {"file": False},
        "metrology": {"ct_primary": 100.0},
        "upgrade": {"revenue_lock_file": str(tmp_path / "revenue_lock")},
        **(sections or {}),
        "bacnet": {"enabled": True, "ip_port": port, "bind_address": "127.0.0.1", "ip_prefix": 32,
                   "device_instance": DEVICE_INSTANCE, **bacnet},
    }))
    snapshot = Snapshot.create(f"bt{uuid.uuid4().hex[:10]}.measurements", snapshot_layout())
    snapshot.publish(BACNET_VALUES)
    calls: list[tuple[str, str, dict[str, Any]]] = []
    locked = {"on": False}
    control = _control(run_dir, calls, locked)
    app = BacnetApp(load_file(config_path), config_path, snapshot, run_dir / "control.sock", tmp_path / "data")
    await app.start()
    client, _ = await client_app()

    async def metrology_publishing() -> None:
        # the metrology service publishes every second; a snapshot left alone turns stale after 5 s
        while True:
            await asyncio.sleep(0.5)
            snapshot.publish({})

    publisher = asyncio.get_running_loop().create_task(metrology_publishing())
    await asyncio.sleep(0.1)          # both UDP endpoints bound
    try:
        yield Rig(app, client, Address(f"127.0.0.1:{port}"), snapshot, config_path, calls, locked)
    finally:
        publisher.cancel()
        client.close()
        await app.stop()
        control.stop()
        snapshot.close()
        snapshot.unlink()
