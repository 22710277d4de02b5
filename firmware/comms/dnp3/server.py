"""DNP3 over TCP (IEEE 1815-2012 Annex: the outstation listens, each connection is one session) and over the
RS-485 serial line (one session).

TCP sessions are limited in number (``sessions``, the ION7400's three by default) and per client address
(``sessions_per_address``): a new connection from an address at its limit closes that address's oldest one (a
master that reconnects after a broken link replaces its dead session, as the DNP3 TCP guidance asks), and a new
connection while every session is taken by other addresses is closed at once. Client addresses may be limited to
``allowed_hosts``; a session without a valid frame for ``idle_timeout`` is closed; replies are written under a
deadline so a master that reads nothing cannot hold the loop.
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import os
import time
from typing import Any

from firmware.comms.dnp3.channel import Channel, LinkSettings
from firmware.comms.dnp3.outstation import Meter, Settings
from hal.errors import BusError

log = logging.getLogger("comms.dnp3")

READ_CHUNK = 1024
WRITE_TIMEOUT_S = 10.0


class _Connection:
    def __init__(self, server: TcpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.opened = time.monotonic()
        self.channel = Channel(server.meter, server.settings, server.link, self._write, self.peer, server.stats)

    async def _write(self, data: bytes) -> None:
        """Send under a deadline: a master that takes no answers for WRITE_TIMEOUT_S loses its session."""
        if self.writer.is_closing():
            raise ConnectionResetError("the session is closed")
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.server.stats["write_timeouts"] += 1
            self.writer.transport.abort()
            raise ConnectionResetError("the master takes no answers") from None

    async def serve(self) -> None:
        link = self.server.link
        self.channel.start()
        last_good = time.monotonic()
        frame_started: float | None = None
        try:
            while True:
                now = time.monotonic()
                wait = link.idle_timeout - (now - last_good)
                if self.channel.parser.partial:
                    frame_started = frame_started or now
                    wait = min(wait, link.frame_timeout - (now - frame_started))
                else:
                    frame_started = None
                if wait <= 0:
                    self.server.stats["frame_timeouts" if frame_started else "idle_closed"] += 1
                    return
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_CHUNK), wait)
                except asyncio.TimeoutError:
                    if self.channel.parser.partial and time.monotonic() - last_good < link.idle_timeout:
                        self.server.stats["frame_timeouts"] += 1
                    else:
                        self.server.stats["idle_closed"] += 1
                    return
                if not data:
                    return
                if await self.channel.data_received(data):
                    last_good = time.monotonic()
                if self.channel.too_many_bad:
                    self.server.stats["closed_bad_frames"] += 1
                    return
        except (ConnectionError, asyncio.TimeoutError, OSError):
            return
        finally:
            await self.close()

    async def close(self) -> None:
        self.server.connections.discard(self)
        await self.channel.close()
        self.writer.close()


class TcpServer:
    def __init__(self, meter: Meter, settings: Settings, link: LinkSettings, host: str, port: int, sessions: int,
                 sessions_per_address: int, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.meter, self.settings, self.link = meter, settings, link
        self.host, self.port = host, port
        self.sessions = sessions
        self.per_address = sessions_per_address
        self.allowed = tuple(ipaddress.ip_address(a) for a in allowed_hosts)
        self.connections: set[_Connection] = set()
        self.stats: collections.Counter[str] = collections.Counter()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=READ_CHUNK * 4)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.writer.close()
            await conn.channel.close()
        self.connections.clear()
        if self._server is not None:
            await self._server.wait_closed()

    def _allowed(self, address: str) -> bool:
        if not self.allowed:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip in self.allowed

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        if not self._allowed(conn.address):
            self.stats["refused_host"] += 1
            log.warning("dnp3 tcp: refusing %s: not in [dnp3] allowed_hosts", conn.peer)
            writer.close()
            return
        same = sorted((c for c in self.connections if c.address == conn.address), key=lambda c: c.opened)
        if len(same) >= self.per_address:
            self.stats["replaced"] += 1
            log.info("dnp3 tcp: %s replaces its address's oldest session %s", conn.peer, same[0].peer)
            await same[0].close()
        elif len(self.connections) >= self.sessions:
            self.stats["refused_full"] += 1
            log.warning("dnp3 tcp: refusing %s: all %d sessions are in use", conn.peer, self.sessions)
            writer.close()
            return
        self.connections.add(conn)
        self.stats["accepted"] += 1
        await conn.serve()


class SerialPort:
    """The outstation on the RS-485 line: one session, read through the loop's reader callback."""

    def __init__(self, meter: Meter, settings: Settings, link: LinkSettings, port: str, baud: int, framing: str,
                 rs485: bool) -> None:
        self.port, self.baud, self.framing, self.rs485 = port, baud, framing, rs485
        self.stats: collections.Counter[str] = collections.Counter()
        self.channel = Channel(meter, settings, link, self._write, f"serial {port}", self.stats)
        self._serial: Any = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(64)
        self._worker: asyncio.Task[None] | None = None
        self._frame_started: float | None = None

    async def start(self) -> None:
        import serial

        from firmware.comms.modbus.rtu_server import serial_settings

        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=0,
                                         **serial_settings(self.framing))
        except (serial.SerialException, OSError) as exc:
            raise BusError(f"dnp3 serial: cannot open {self.port}: {exc}; check [dnp3] serial_port and that no "
                           f"other program uses it") from None
        if self.rs485:
            import serial.rs485

            try:
                self._serial.rs485_mode = serial.rs485.RS485Settings()
            except (ValueError, OSError) as exc:
                log.warning("dnp3 serial: %s: kernel RS-485 direction control not available (%s)", self.port, exc)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._serial.fileno(), self._readable)
        self.channel.start()
        self._worker = loop.create_task(self._work())

    def _readable(self) -> None:
        try:
            data = os.read(self._serial.fileno(), READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("dnp3 serial: read from %s failed: %s", self.port, exc)
            return
        if data and not self._queue.full():
            self._queue.put_nowait(data)
        elif data:
            self.stats["overrun"] += 1

    async def _work(self) -> None:
        while True:
            try:
                data = await asyncio.wait_for(self._queue.get(), self.channel.link.frame_timeout)
            except asyncio.TimeoutError:
                if self.channel.parser.partial:
                    self.stats["frame_timeouts"] += 1
                    self.channel.parser.clear()
                continue
            await self.channel.data_received(data)
            if self.channel.too_many_bad:
                self.channel.parser.clear()
                self.channel.bad_in_row = 0

    async def _write(self, data: bytes) -> None:
        fd = self._serial.fileno()
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            view = view[n:]
            if view:
                if time.monotonic() > deadline:
                    raise TimeoutError("dnp3 serial: the line takes no output")
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        await self.channel.close()
        if self._serial is not None:
            asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
