"""Modbus TCP server: MBAP framing over asyncio, a bounded pool of connections, deadlines, back-pressure.

Framing per the Modbus Messaging on TCP/IP Implementation Guide v1.0b §3.1: a 7-byte MBAP header
(transaction id, protocol id 0, length of unit id + PDU, unit id) then the PDU; an ADU is at most 260 bytes.
A frame with another protocol id, or with no PDU (length under 2), is dropped; a length over 254 cannot
be right and leaves no way to find the next frame, so the connection stops reading, answers the requests
that came before it, and closes. Requests on one connection are answered in order; a client may pipeline.

Every connection is hostile until it behaves (SPEC §7 pool of 8; ION "Modbus TCP Timeout"):

- the pool is shared fairly between addresses: beyond ``max_connections`` a connection makes room for the
  newcomer, taken from an address that holds at least two more than the newcomer's (its client not taking its
  replies first, then its oldest that has not completed a request, then its least recently active), else, as
  before, from the address holding the most, a connection quiet for ``EVICT_AFTER_S``; if none qualifies the
  newcomer is closed at once. So hosts that open many connections, busy or not, cannot keep out one that
  polls now and then, and an address holding one connection is never the one to lose it to another address.
  At most ``max_per_address`` connections come from one address;
- a frame must be complete ``frame_deadline_s`` after its first byte (bytes that trickle in do not extend it),
  and only a complete request resets the idle timer (``idle_timeout_s``);
- replies are written under back-pressure: once a client's unsent replies pass ``WRITE_HIGH_BYTES`` the
  server stops reading from it, and a client that takes none of them for ``write_stall_s`` is closed, so a
  client that pipelines requests and never reads its replies costs a bounded amount of memory.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
import time

from firmware.comms.modbus.handler import Access, Handler

log = logging.getLogger("comms.modbus.tcp")

MBAP = struct.Struct(">HHHB")
MBAP_LEN = 7
MAX_LENGTH_FIELD = 254        # unit id + 253-byte PDU
MAX_PENDING_FRAMES = 32       # pipelined requests held per connection before reading pauses
WRITE_HIGH_BYTES = 64 * 1024  # unsent reply bytes per connection at which reading from it stops
WRITE_LOW_BYTES = 16 * 1024
KERNEL_SEND_BUFFER_BYTES = 64 * 1024
EVICT_AFTER_S = 1.0           # a connection quiet this long may be closed to make room for a new one
REAPER_PERIOD_S = 0.25


class _Connection(asyncio.Protocol):
    def __init__(self, server: ModbusTcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self.worker: asyncio.Task[None] | None = None
        self.connected = self.last_active = time.monotonic()   # last complete request (or the connect)
        self.requests = 0
        self.frame_started: float | None = None  # first byte of the frame still incomplete
        self.write_stalled: float | None = None  # when the client stopped taking replies
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.address = ""
        self.peer = ""
        self.reading_paused = False
        self.doomed = False                      # stop reading, answer what came before, close

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        why = self.server.admit(self)
        if why:
            self.server.stats["refused"] += 1
            log.warning("modbus tcp: refusing %s: %s", self.peer, why)
            transport.abort()
            return
        transport.set_write_buffer_limits(high=WRITE_HIGH_BYTES, low=WRITE_LOW_BYTES)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A small kernel send buffer too, so a client that reads nothing is found stalled after a few
            # hundred replies, not after the megabytes a loopback or LAN socket would otherwise take.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER_BYTES)
        self.server.connections.add(self)
        self.server.stats["accepted"] += 1
        self.server.client_came.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.can_write.set()
        if self.worker is not None:
            self.worker.cancel()

    def pause_writing(self) -> None:
        self.can_write.clear()
        self.write_stalled = time.monotonic()
        self._update_reading()

    def resume_writing(self) -> None:
        self.can_write.set()
        self.write_stalled = None
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.doomed:
            return
        if not self.buffer:
            self.frame_started = time.monotonic()
        self.buffer += data
        self._parse()
        if self.pending and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())
        self._update_reading()

    # ------------------------------------------------------------------ framing and work

    def _parse(self) -> None:
        buf = self.buffer
        consumed = False
        while len(buf) >= MBAP_LEN and len(self.pending) <= MAX_PENDING_FRAMES:
            tid, pid, length, unit = MBAP.unpack_from(buf)
            if length > MAX_LENGTH_FIELD:
                # No way to find the next frame: answer what came before, then close.
                self.server.stats["bad_frames"] += 1
                self.doomed = True
                buf.clear()
                if not self.pending and self.worker is None and self.transport is not None:
                    self.transport.close()
                return
            if len(buf) < 6 + max(length, 1):
                break
            pdu = bytes(buf[MBAP_LEN:6 + length])
            del buf[:6 + max(length, 1)]
            consumed = True
            if pid != 0 or length < 2:
                # dropped; it neither proves the client nor keeps its connection alive
                self.server.stats["bad_frames"] += 1
                continue
            self.requests += 1
            self.last_active = time.monotonic()
            self.pending.append((tid, unit, pdu))
        # What is left is the start of the next frame. Its deadline runs from when a frame last completed
        # (it arrived after that), else from the first byte of the frame still incomplete.
        if not buf:
            self.frame_started = None
        elif consumed or self.frame_started is None:
            self.frame_started = time.monotonic()

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        stop = self.doomed or len(self.pending) > MAX_PENDING_FRAMES or not self.can_write.is_set()
        if stop and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not stop and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
            if self.buffer and not self.doomed:
                self._parse()          # frames that waited in the buffer while reading was paused

    async def _work(self) -> None:
        transport = self.transport
        assert transport is not None
        handler, access = self.server.handler, self.server.access
        try:
            while self.pending:
                await self.can_write.wait()
                if transport.is_closing():
                    return
                tid, unit, pdu = self.pending.popleft()
                reply = await handler.handle(pdu, unit, access)
                if reply is not None and not transport.is_closing():
                    transport.write(MBAP.pack(tid, 0, len(reply) + 1, unit) + reply)
                if not self.pending and self.buffer and not self.doomed:
                    self._parse()
                self._update_reading()
                # A read never awaits anything: without this a client that pipelines would keep the loop to
                # itself, and every other client, the reaper and the heartbeat would wait for it.
                await asyncio.sleep(0)
        finally:
            self.worker = None
            if self.doomed and not transport.is_closing():
                transport.close()          # close() sends the replies already written first


class ModbusTcpServer:
    def __init__(self, handler: Handler, host: str = "0.0.0.0", port: int = 502, max_connections: int = 8,
                 idle_timeout_s: float = 60.0, max_per_address: int | None = None, frame_deadline_s: float = 2.0,
                 write_stall_s: float = 10.0, access: Access | None = None) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.max_per_address = max_per_address or max_connections
        self.idle_timeout_s = idle_timeout_s
        self.frame_deadline_s = frame_deadline_s
        self.write_stall_s = write_stall_s
        self.access = access                 # this port's access (None: the handler's)
        self.connections: set[_Connection] = set()
        self.stats = collections.Counter({"accepted": 0, "refused": 0, "idle_closed": 0, "bad_frames": 0,
                                          "evicted": 0, "frame_timeouts": 0, "write_stalls": 0})
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.client_came = asyncio.Event()        # wakes the reaper, which sleeps while no client is connected

    def admit(self, conn: _Connection) -> str:
        """"" to take ``conn``, else why not; may close a quiet connection to make room."""
        same = sum(1 for c in self.connections if c.address == conn.address)
        if same >= self.max_per_address:
            return f"{same} connections from {conn.address} already (limit {self.max_per_address} per address)"
        if len(self.connections) < self.max_connections:
            return ""
        now = time.monotonic()
        victim = self._victim(now, conn.address)
        if victim is None:
            return f"all {self.max_connections} connections in use"
        self.stats["evicted"] += 1
        log.info("modbus tcp: closing %s (quiet %.1f s) to make room for %s", victim.peer,
                 now - victim.last_active, conn.peer)
        self.connections.discard(victim)
        if victim.transport is not None:
            victim.transport.abort()
        return ""

    def _victim(self, now: float, newcomer: str) -> _Connection | None:
        """The connection to close for a newcomer from address ``newcomer`` when the pool is full, or None.

        First fairness: an address holding at least two connections more than the newcomer's loses one, busy
        or not (the newcomer's address then holds at most as many), so several hosts polling fast cannot keep
        out one polling slowly. Else, as a pool of idle connections is reused: a connection of the address
        holding the most that has been quiet for ``EVICT_AFTER_S`` or has not completed a request. Within the
        address: a client that has taken none of its replies for ``EVICT_AFTER_S`` (pipelining without
        reading: its worker waits on back-pressure, which must not shield it), then the oldest that has not
        completed a request (a client sends its request as soon as it connects, so a newcomer is the last of
        these to go), then the least recently active. A connection whose reply is being written to a client
        that reads is never closed."""
        held = collections.Counter(c.address for c in self.connections)

        def stalled(c: _Connection) -> bool:
            return c.write_stalled is not None and now - c.write_stalled >= EVICT_AFTER_S

        open_ = [c for c in self.connections if c.worker is None or stalled(c)]
        fair = [c for c in open_ if held[c.address] >= held[newcomer] + 2]
        candidates = fair or [c for c in open_ if stalled(c) or not c.requests
                              or now - c.last_active >= EVICT_AFTER_S]
        if not candidates:
            return None
        most = max(held[c.address] for c in candidates)
        mine = [c for c in candidates if held[c.address] == most]
        return min(mine, key=lambda c: (not stalled(c), bool(c.requests),
                                        c.connected if not c.requests else c.last_active))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]     # the port actually bound (port 0 picks a free one)
        self._reaper = loop.create_task(self._reap())
        log.info("modbus tcp: listening on %s:%d (%d connections, %d per address, idle timeout %g s)", self.host,
                 self.port, self.max_connections, self.max_per_address, self.idle_timeout_s)

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

    def _why_close(self, conn: _Connection, now: float) -> str:
        if conn.write_stalled is not None and now - conn.write_stalled > self.write_stall_s:
            return "write_stalls"
        if (conn.frame_started is not None and not conn.reading_paused
                and now - conn.frame_started > self.frame_deadline_s):
            return "frame_timeouts"     # (a frame waiting while the server does not read is not the client's)
        if now - conn.last_active > self.idle_timeout_s and conn.worker is None and not conn.buffer:
            return "idle_closed"
        return ""

    async def _reap(self) -> None:
        while True:
            if not self.connections:
                # nothing to close: no timer at all until a client connects
                self.client_came.clear()
                await self.client_came.wait()
            await asyncio.sleep(min(REAPER_PERIOD_S, self.idle_timeout_s / 4))
            now = time.monotonic()
            for conn in list(self.connections):
                why = self._why_close(conn, now)
                if why and conn.transport is not None:
                    self.stats[why] += 1
                    log.info("modbus tcp: closing %s (%s)", conn.peer, why.replace("_", " "))
                    self.connections.discard(conn)
                    conn.transport.abort()
