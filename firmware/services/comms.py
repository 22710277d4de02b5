"""The comms service: owns the Modbus TCP and RTU servers, the BACnet device (BACnet/IP, MS/TP), the SNMP agent,
the DLMS/COSEM server (TCP wrapper, HDLC) and the DNP3 outstation (TCP, serial).

Values come only from the measurement snapshot that the metrology service publishes, so a request never
waits on the metrology; commands (demand reset, energy reset, billing-period reset, demand sync) go to their
owning service through the control socket, which checks the revenue lock again and answers for itself.
The servers run on one asyncio loop in the main thread; a periodic task on that loop sends the heartbeats,
so a stuck loop stops them and the supervisor restarts the service.
"""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from firmware.comms.bacnet.app import BacnetApp
from firmware.comms.dlms.app import DlmsApp
from firmware.comms.dnp3.app import Dnp3App
from firmware.comms.modbus.app import ModbusApp
from firmware.comms.snmp.app import SnmpApp
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.service import HEARTBEAT_INTERVAL_S, Service, command, main

SNAPSHOT_ATTACH_TIMEOUT_S = 30.0


class CommsService(Service):
    name = "comms"

    def setup(self) -> None:
        self.snapshot = Snapshot.attach(self.ctx.shm_name(names.MEASUREMENTS), timeout_s=SNAPSHOT_ATTACH_TIMEOUT_S)
        self.modbus = ModbusApp(self.config, self.snapshot, self.ctx.control_socket)
        self.loop = asyncio.new_event_loop()
        self.endpoints = self.loop.run_until_complete(self.modbus.start())
        self.bacnet: BacnetApp | None = None
        if self.config["bacnet"].enabled:
            self.bacnet = BacnetApp(self.config, self.ctx.config_path, self.snapshot, self.ctx.control_socket,
                                    self.ctx.data_dir, self.config["modbus"].command_timeout)
            self.endpoints += self.loop.run_until_complete(self.bacnet.start())
        self.snmp: SnmpApp | None = None
        if self.config["snmp"].enabled:
            self.snmp = SnmpApp.from_snapshot(self.config, self.ctx.data_dir, self.snapshot)
            self.endpoints += self.loop.run_until_complete(self.snmp.start())
        self.dlms: DlmsApp | None = None
        if self.config["dlms"].enabled:
            self.dlms = DlmsApp(self.config, self.snapshot, self.ctx.control_socket, self.ctx.data_dir)
            self.endpoints += self.loop.run_until_complete(self.dlms.start())
        self.dnp3: Dnp3App | None = None
        if self.config["dnp3"].enabled:
            self.dnp3 = Dnp3App(self.config, self.snapshot, self.ctx.control_socket)
            self.endpoints += self.loop.run_until_complete(self.dnp3.start())

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        while not self.stopping.is_set():
            # the servers' own tasks answer requests; this one only wakes to send the heartbeat
            self.heartbeat(True, modbus=self.modbus.stats(), **self._others())
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.run_until_complete(self.modbus.stop())
            bacnet = getattr(self, "bacnet", None)
            if bacnet is not None:
                self.loop.run_until_complete(bacnet.stop())
            snmp = getattr(self, "snmp", None)
            if snmp is not None:
                self.loop.run_until_complete(snmp.stop())
            dlms = getattr(self, "dlms", None)
            if dlms is not None:
                self.loop.run_until_complete(dlms.stop())
            dnp3 = getattr(self, "dnp3", None)
            if dnp3 is not None:
                self.loop.run_until_complete(dnp3.stop())
            self.loop.close()
        if hasattr(self, "snapshot"):
            self.snapshot.close()

    def dump_config(self) -> dict[str, Any]:
        section = self.config["modbus"]
        bacnet = self.config["bacnet"]
        return {"access": section.access, "tcp_port": section.tcp_port, "rtu": self.config["modbus.rtu"].enabled,
                "bacnet": bacnet.enabled and {"ip_port": bacnet.ip_port if bacnet.ip_enabled else None,
                                              "mstp": bacnet.mstp_port if bacnet.mstp_enabled else None},
                "snmp": self.config["snmp"].enabled and {"port": self.config["snmp"].port},
                "dlms": self.config["dlms"].enabled and {
                    "tcp_port": self.config["dlms"].tcp_port if self.config["dlms"].tcp_enabled else None,
                    "hdlc": self.config["dlms.hdlc"].port if self.config["dlms.hdlc"].enabled else None},
                "dnp3": self.config["dnp3"].enabled and {
                    "tcp_port": self.config["dnp3"].tcp_port if self.config["dnp3"].tcp_enabled else None,
                    "serial": self.config["dnp3"].serial_port if self.config["dnp3"].serial_enabled else None}}

    def _others(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bacnet is not None:
            out["bacnet"] = self.bacnet.stats()
        if self.snmp is not None:
            out["snmp"] = self.snmp.stats()
        if self.dlms is not None:
            out["dlms"] = self.dlms.stats()
        if self.dnp3 is not None:
            out["dnp3"] = self.dnp3.stats()
        return out

    @command("stats")
    def stats(self, user: str = "") -> dict[str, Any]:
        return {**self.modbus.stats(), **self._others()}


if __name__ == "__main__":
    sys.exit(main(CommsService))
