"""Modbus TCP server: MBAP framing over asyncio, a bounded pool of connections, an idle timeout.

Framing per the Modbus Messaging on TCP/IP Implementation Guide v1.0b §3.1: a 7-byte MBAP header
(transaction id, protocol id 0, length of unit id + PDU, unit id) then the PDU; an ADU is at most 260 bytes.
A frame with another protocol id, or with no PDU (length under 2), is dropped; a length over 254 cannot
be right and leaves no way to find the next frame, so the connection is closed. Requests on one connection are answered
in order; a client may pipeline.

The pool is shared by every client: a connection beyond ``max_connections`` is closed as soon as it is
accepted (ION7400 user manual: eight simultaneous connections), and a connection that sends nothing for
``idle_timeout_s`` is closed (ION "Modbus TCP Timeout").
"""
from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time

from firmware.comms.modbus.handler import Handler

log = logging.getLogger("comms.modbus.tcp")

MBAP = struct.Struct(">HHHB")
MBAP_LEN = 7
MAX_LENGTH_FIELD = 254        # unit id + 253-byte PDU
MAX_PENDING_FRAMES = 32       # pipelined requests held per connection before reading pauses


class _Connection(asyncio.Protocol):
    def __init__(self, server: ModbusTcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.last_active = time.monotonic()
        self.peer = ""
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(self.server.connections) >= self.server.max_connections:
            self.server.stats["refused"] += 1
            log.warning("modbus tcp: refusing %s: all %d connections in use", self.peer,
                        self.server.max_connections)
            transport.abort()
            return
        self.server.connections.add(self)
        self.server.stats["accepted"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        buf = self.buffer
        buf += data
        while len(buf) >= MBAP_LEN:
            tid, pid, length, unit = MBAP.unpack_from(buf)
            if length > MAX_LENGTH_FIELD:
                self.server.stats["bad_frames"] += 1
                assert self.transport is not None
                self.transport.abort()
                return
            if len(buf) < 6 + max(length, 1):
                break
            pdu = bytes(buf[MBAP_LEN:6 + length])
            del buf[:6 + max(length, 1)]
            if pid != 0 or length < 2:
                self.server.stats["bad_frames"] += 1
                continue
            self.pending.append((tid, unit, pdu))
        if self.pending and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())
        if len(self.pending) > MAX_PENDING_FRAMES and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    async def _work(self) -> None:
        transport = self.transport
        assert transport is not None
        handler = self.server.handler
        try:
            while self.pending:
                tid, unit, pdu = self.pending.popleft()
                reply = await handler.handle(pdu, unit)
                if reply is not None and not transport.is_closing():
                    transport.write(MBAP.pack(tid, 0, len(reply) + 1, unit) + reply)
                if self.paused and len(self.pending) <= MAX_PENDING_FRAMES // 2:
                    self.paused = False
                    transport.resume_reading()
        finally:
            self.worker = None


class ModbusTcpServer:
    def __init__(self, handler: Handler, host: str = "0.0.0.0", port: int = 502, max_connections: int = 8,
                 idle_timeout_s: float = 60.0) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.connections: set[_Connection] = set()
        self.stats = collections.Counter({"accepted": 0, "refused": 0, "idle_closed": 0, "bad_frames": 0})
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]     # the port actually bound (port 0 picks a free one)
        self._reaper = loop.create_task(self._close_idle())
        log.info("modbus tcp: listening on %s:%d (%d connections, idle timeout %g s)", self.host, self.port,
                 self.max_connections, self.idle_timeout_s)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _close_idle(self) -> None:
        period = min(1.0, self.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for conn in list(self.connections):
                if now - conn.last_active > self.idle_timeout_s and conn.worker is None and conn.transport:
                    self.stats["idle_closed"] += 1
                    log.info("modbus tcp: closing %s after %g s idle", conn.peer, self.idle_timeout_s)
                    conn.transport.close()
