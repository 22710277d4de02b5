"""The DNP3 side of the comms service: the outstation's database fed from the measurement snapshot, the TCP and
serial channels, and what a master may make the meter do, through the one authorization point
(``firmware.security.authorize``) and then the catalogue's command in its owning service (control socket).

Controls are the catalogue's commands that carry a DNP3 control index (``dnp3`` in
``firmware/catalogue/table.py``); freezes run the catalogue's ``freeze`` (and ``energy_reset`` for
freeze-and-clear); a time set runs ``time_set`` with the command's protocol arguments, and the time service ranks
it by ``[time] priority``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from firmware.catalogue import command, commands
from firmware.comms.dnp3.channel import LinkSettings
from firmware.comms.dnp3.database import Database
from firmware.comms.dnp3.outstation import Settings
from firmware.comms.dnp3.server import SerialPort, TcpServer
from firmware.comms.modbus.feed import SnapshotFeed
from firmware.config import Config
from firmware.control import ControlClient, ControlError
from firmware.ipc.snapshot import Snapshot
from firmware.security.authorize import Access, decide
from firmware.security.protocol_user import protocol_user

log = logging.getLogger("comms.dnp3")

INTERFACE = "dnp3"
TIME_SET = "time_set"
# Points the outstation reads besides its point list: the revenue lock (for the authorization point) and whether
# the clock is synchronised by a better source (need time).
REVENUE_LOCKED, TIME_SYNCED = "revenue_locked", "time_synced"


def control_indexes() -> dict[int, str]:
    """DNP3 control index -> catalogue command (the commands whose ``dnp3`` slot is set)."""
    return {c.dnp3: c.name for c in commands() if c.dnp3 is not None}


class Dnp3App:
    def __init__(self, config: Config, snapshot: Snapshot, control_socket: Path) -> None:
        section = config["dnp3"]
        self.section = section
        self.db = Database()
        self.feed = SnapshotFeed(snapshot)
        self.values: dict[str, Any] = {}
        self.controls = control_indexes()
        self.user = protocol_user(config, INTERFACE)
        self.access = Access(section.access)
        self.resets_when_locked = config["revenue"].demand_reset_when_locked
        self.client = ControlClient(control_socket, timeout_s=section.command_timeout, user=INTERFACE)
        self.last_time_set = 0.0
        self.settings = Settings(section.address, section.max_fragment, section.confirm_timeout,
                                 section.unsolicited, tuple(section.unsolicited_classes),
                                 section.unsolicited_retries, section.unsolicited_retry_delay,
                                 select_timeout=section.select_timeout, event_buffer=section.event_buffer)
        link = LinkSettings(section.address, tuple(section.masters), section.frame_timeout, section.idle_timeout)
        self.tcp = (TcpServer(self, self.settings, link, section.bind_address, section.tcp_port, section.sessions,
                              section.sessions_per_address, tuple(section.allowed_hosts))
                    if section.tcp_enabled else None)
        self.serial = (SerialPort(self, self.settings, link, section.serial_port, section.serial_baud,
                                  section.serial_framing, section.serial_rs485)
                       if section.serial_enabled else None)
        self._scan: asyncio.Task[None] | None = None
        self.refresh()

    # ------------------------------------------------------------------ Meter, as sessions see it

    def refresh(self) -> None:
        values = self.feed.poll()
        if values is not None:
            self.values = dict(values)
            self.db.update(values)

    def revenue_locked(self) -> bool:
        v = self.values.get(REVENUE_LOCKED)
        return v is not None and v == v and bool(v)

    def need_time(self) -> bool:
        synced = self.values.get(TIME_SYNCED)
        if synced is not None and synced == synced and synced:
            return False
        return not self.last_time_set or time.monotonic() - self.last_time_set > self.section.need_time_interval

    def control_index(self, index: int) -> str | None:
        return self.controls.get(index)

    def refusal(self, name: str) -> str:
        if self.user is None:
            return "security is enabled and no DNP3 user is configured ([security] dnp3_user)"
        self.refresh()
        return decide(self.user, command(name).op, INTERFACE, revenue_locked=self.revenue_locked(),
                      resets_when_locked=self.resets_when_locked, access=self.access).reason

    async def run(self, name: str, args: dict[str, Any]) -> None:
        cmd = command(name)
        control, checked = cmd.bind({**dict(cmd.protocol_args), **args})
        try:
            await asyncio.to_thread(self.client.call, control, **checked)
        except ControlError as exc:
            if exc.kind == "AccessDenied":
                raise PermissionError(str(exc)) from None
            raise

    async def set_time(self, utc_s: float) -> str:
        """"" when the time service took the time set, else why not."""
        if not self.section.time_sync:
            return "[dnp3] time_sync is off"
        if self.user is None:
            return "security is enabled and no DNP3 user is configured ([security] dnp3_user)"
        cmd = command(TIME_SET)
        self.refresh()
        why = decide(self.user, cmd.op, INTERFACE, revenue_locked=self.revenue_locked(),
                     resets_when_locked=self.resets_when_locked).reason
        if why:
            return why
        try:
            await self.run(TIME_SET, {cmd.value_arg: utc_s})
        except Exception as exc:  # noqa: BLE001 - any refusal or failure is reported to the master
            return str(exc)
        self.last_time_set = time.monotonic()
        return ""

    # ------------------------------------------------------------------ service

    async def start(self) -> list[str]:
        endpoints = []
        if self.tcp is not None:
            await self.tcp.start()
            endpoints.append(f"dnp3-tcp:{self.tcp.host}:{self.tcp.port}")
        if self.serial is not None:
            await self.serial.start()
            endpoints.append(f"dnp3-serial:{self.serial.port}@{self.serial.baud}/{self.serial.framing}")
        self._scan = asyncio.get_running_loop().create_task(self._scanner())
        return endpoints

    async def _scanner(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a bad snapshot read never stops the outstation
                log.exception("dnp3: snapshot read failed")
            await asyncio.sleep(self.section.scan_interval)

    async def stop(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
        for server in (self.tcp, self.serial):
            if server is not None:
                await server.stop()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tcp is not None:
            out["tcp"] = {**self.tcp.stats, "sessions": len(self.tcp.connections)}
        if self.serial is not None:
            out["serial"] = dict(self.serial.stats)
        return out
