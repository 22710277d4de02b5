"""DLMS/COSEM over TCP: the wrapper (IEC 62056-47 §7): an 8-byte header (version 1, source and destination
wPort, length) before each APDU.

Each connection is one client; its session is created by the first frame's wPorts (the client and server SAPs),
and a frame with other wPorts starts a new one. Hostile input is bounded: a frame's header must be version 1
and announce at most ``MAX_APDU`` bytes, a frame must be complete within ``frame_timeout`` of its first byte,
a connection that sends nothing for ``idle_timeout`` is closed, and the connections, in all and from one
address, are limited (one more is closed at once).
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from firmware.comms.dlms.session import Session

log = logging.getLogger("comms.dlms")

VERSION = 1
HEADER = struct.Struct(">HHHH")
MAX_APDU = 4096


@dataclass(frozen=True)
class Limits:
    max_connections: int = 8
    max_per_address: int = 4
    idle_timeout_s: float = 120.0
    frame_timeout_s: float = 2.0


def frame(source: int, destination: int, apdu: bytes) -> bytes:
    return HEADER.pack(VERSION, source, destination, len(apdu)) + apdu


class WrapperServer:
    def __init__(self, new_session: Callable[[int, int, str], Session], host: str, port: int,
                 limits: Limits) -> None:
        self.new_session = new_session
        self.host, self.port = host, port
        self.limits = limits
        self.server: asyncio.Server | None = None
        self.open: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, self.host, self.port, limit=MAX_APDU * 2)
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.server.wait_closed()
            self.server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if sum(self.open.values()) >= self.limits.max_connections or \
                self.open[address] >= self.limits.max_per_address:
            self.counters["refused"] += 1
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.open[address] += 1
        self.counters["connections"] += 1
        try:
            await self._serve(reader, writer, address)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]
            if task is not None:
                self.tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        session: Session | None = None
        limits = self.limits
        while True:
            first = await asyncio.wait_for(reader.readexactly(1), limits.idle_timeout_s)
            rest = await asyncio.wait_for(reader.readexactly(HEADER.size - 1), limits.frame_timeout_s)
            version, source, destination, size = HEADER.unpack(first + rest)
            if version != VERSION or size > MAX_APDU:
                self.counters["malformed"] += 1
                return
            apdu = await asyncio.wait_for(reader.readexactly(size), limits.frame_timeout_s)
            self.counters["requests"] += 1
            if session is None or (session.client_sap, session.server_sap) != (source, destination):
                session = self.new_session(source, destination, address)
            reply = await asyncio.to_thread(session.handle, apdu)
            if reply:
                writer.write(frame(destination, source, reply))
                await asyncio.wait_for(writer.drain(), limits.idle_timeout_s)

    def stats(self) -> dict[str, int]:
        return {**self.counters, "open": sum(self.open.values())}
