"""The Modbus side of the comms service: the register map, the handler and the TCP/RTU servers, built from
the configuration, fed from the measurement snapshot, sending commands to their owning service."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path
from typing import Any

from firmware.comms.modbus.blocks import Command
from firmware.comms.modbus.feed import SnapshotFeed
from firmware.comms.modbus.handler import Access, Handler
from firmware.comms.modbus.ident import Identity
from firmware.comms.modbus.regmap import build_map
from firmware.comms.modbus.rtu_server import ModbusRtuServer
from firmware.comms.modbus.tcp import ModbusTcpServer
from firmware.config import Config
from firmware.control import ControlClient, ControlError
from firmware.ipc.snapshot import Snapshot
from firmware.security.authorize import Identity as User
from firmware.security.protocol_user import protocol_user
from hal.errors import AccessDenied

log = logging.getLogger("comms.modbus")

VENDOR = "OpenMeter"
PRODUCT_CODE = "OM-CM4"
PRODUCT_NAME = "OpenMeter revenue and power-quality meter"
MODEL_NAME = "OM-CM4-ADE9000"
VENDOR_URL = "https://openmeter.invalid"
COMMAND_USER = "modbus"


def identity_from_config(config: Config) -> Identity:
    from firmware import __version__

    return Identity(VENDOR, PRODUCT_CODE, __version__, VENDOR_URL, PRODUCT_NAME, MODEL_NAME,
                    config["meter"].name, config["meter"].serial_number)


class ControlCommands:
    """Runs a Modbus command in its owning service through the meter's control socket."""

    def __init__(self, control_socket: Path, timeout_s: float) -> None:
        self.client = ControlClient(control_socket, timeout_s=timeout_s, user=COMMAND_USER)

    async def __call__(self, command: Command, args: dict[str, Any]) -> Any:
        try:
            return await asyncio.to_thread(self.client.call, command.control, **args)
        except ControlError as exc:
            if exc.kind == "AccessDenied":
                raise AccessDenied(str(exc)) from None
            raise


BIND_RETRY_MIN_S = 2.0
BIND_RETRY_MAX_S = 60.0


def bind_advice(exc: OSError, port: int) -> str:
    if exc.errno == errno.EACCES and port < 1024:
        return ("ports below 1024 need CAP_NET_BIND_SERVICE (firmware/systemd/meter.service grants it), or set "
                "[modbus] tcp_port to 1024 or above")
    if exc.errno == errno.EADDRINUSE:
        return "another program holds the port; stop it or choose another [modbus] tcp_port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no interface has that address; fix [modbus] bind_address"
    return "check [modbus] bind_address and tcp_port"


def port_access(port_setting: str, modbus_access: str) -> Access:
    """A port's access: its own [security] setting, or [modbus] access when that says ``modbus``."""
    return Access(modbus_access if port_setting == "modbus" else port_setting)


def command_user(config: Config) -> User | None:
    """Whom Modbus commands run as (``firmware.security.protocol_user``)."""
    return protocol_user(config, "modbus")


class ModbusApp:
    def __init__(self, config: Config, snapshot: Snapshot, control_socket: Path) -> None:
        section, rtu = config["modbus"], config["modbus.rtu"]
        self.identity = identity_from_config(config)
        self.regmap = build_map(user_map=section.user_map)
        self.feed = SnapshotFeed(snapshot, self.identity.register_values())
        self.handler = Handler(self.regmap, self.feed.poll, self.identity, Access(section.access),
                               ControlCommands(control_socket, section.command_timeout),
                               command_user=command_user(config),
                               resets_when_locked=config["revenue"].demand_reset_when_locked)
        security = config["security"]
        self.tcp = (ModbusTcpServer(self.handler, section.bind_address, section.tcp_port, section.max_connections,
                                    section.idle_timeout, section.max_connections_per_address,
                                    section.frame_timeout, section.write_timeout,
                                    port_access(security.modbus_tcp_access, section.access))
                    if section.tcp_enabled else None)
        self.tcp_error = ""
        self._retry: asyncio.Task[None] | None = None
        self.rtu = (ModbusRtuServer(self.handler, rtu.port, rtu.baud, rtu.framing, rtu.unit, rtu.rs485,
                                    access=port_access(security.modbus_rtu_access, section.access))
                    if rtu.enabled else None)

    async def start(self) -> list[str]:
        """Start the servers; returns their endpoints. A TCP port that cannot be bound is retried with backoff
        (the service stays up for RTU and the heartbeat, and the error is one log line, not a restart loop)."""
        endpoints = []
        if self.tcp is not None:
            if await self._bind_tcp(first=True):
                endpoints.append(f"modbus-tcp:{self.tcp.host}:{self.tcp.port}")
            else:
                self._retry = asyncio.get_running_loop().create_task(self._bind_later())
        if self.rtu is not None:
            await self.rtu.start()
            endpoints.append(f"modbus-rtu:{self.rtu.port}@{self.rtu.baud}/{self.rtu.framing}/unit{self.rtu.unit}")
        return endpoints

    async def _bind_tcp(self, first: bool) -> bool:
        assert self.tcp is not None
        try:
            await self.tcp.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            self.tcp_error = (f"cannot listen on {self.tcp.host}:{self.tcp.port}: {reason}; "
                              + bind_advice(exc, self.tcp.port))
            if first:
                log.error("modbus tcp: %s; retrying every %g-%g s", self.tcp_error, BIND_RETRY_MIN_S,
                          BIND_RETRY_MAX_S)
            return False
        if not first:
            log.info("modbus tcp: listening on %s:%d after all", self.tcp.host, self.tcp.port)
        self.tcp_error = ""
        return True

    async def _bind_later(self) -> None:
        delay = BIND_RETRY_MIN_S
        while True:
            await asyncio.sleep(delay)
            if await self._bind_tcp(first=False):
                return
            delay = min(BIND_RETRY_MAX_S, delay * 2)

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        for server in (self.tcp, self.rtu):
            if server is not None:
                await server.stop()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": dict(self.handler.counters), "access": self.handler.access.value}
        if self.tcp is not None:
            out["tcp"] = {**self.tcp.stats, "connections": len(self.tcp.connections), "error": self.tcp_error}
        if self.rtu is not None:
            out["rtu"] = {**self.rtu.stats, "damaged_runs": self.rtu.framer.bad_frames}
        return out
