"""The web's listening sockets: uvicorn serving HTTPS (and the plain-HTTP redirect) on one asyncio loop.

uvicorn's HTTP/1.1 protocol is used with two limits it does not have: connections at once, in all and per
client address (a connection past either is closed as soon as it is accepted), and a deadline for a request
head (a client that connects and sends nothing, or drips a head byte by byte, is closed after
``[web] header_timeout``). Sockets are bound here, so a port that cannot be had is reported with the option
that sets it, and the servers never install signal handlers: the service's own stop ends them.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections import Counter
from typing import Any, Callable, Iterator

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hal.errors import ConfigError

log = logging.getLogger("web")

GRACEFUL_STOP_S = 1       # open requests (a live stream) get this long when the service stops
KEEP_ALIVE_S = 5          # an idle keep-alive connection is closed after this
MAX_HEAD_BYTES = 16 * 1024  # a request head (line and headers) larger than this is refused (h11 answers 400)


class ConnectionLimits:
    def __init__(self, total: int, per_address: int, head_timeout_s: float) -> None:
        self.total = total
        self.per_address = per_address
        self.head_timeout_s = head_timeout_s
        self.open: Counter[str] = Counter()
        self.held: dict[str, list[GuardedH11Protocol]] = {}    # by address, oldest first
        self.refused = 0
        self.evicted = 0
        self.head_timeouts = 0

    def victim(self, newcomer: str) -> GuardedH11Protocol | None:
        """When every connection is taken: one of an address holding at least two more than ``newcomer``'s,
        so hosts that fill the pool (slow heads, trickled bodies) cannot keep out one that opens a single
        connection; the address holding the most gives its oldest connection with no request in progress, else
        its oldest. None: no address holds that many (the newcomer is refused)."""
        over = [a for a, n in self.open.items() if n >= self.open[newcomer] + 2]
        if not over:
            return None
        conns = self.held.get(max(over, key=lambda a: self.open[a]), [])
        idle = [c for c in conns if c.conn.their_state is h11.IDLE]
        chosen = idle or conns
        return chosen[0] if chosen else None


class GuardedH11Protocol(H11Protocol):
    limits: ConnectionLimits          # set on the subclass guarded_protocol() makes
    _counted: str | None = None
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _head_tail = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        address = self.client[0] if self.client else "?"
        victim = limits.victim(address) if sum(limits.open.values()) >= limits.total else None
        if (sum(limits.open.values()) >= limits.total and victim is None) or limits.open[address] >= limits.per_address:
            limits.refused += 1
            transport.abort()
            return
        if victim is not None:
            limits.evicted += 1
            victim._uncount()
            victim.transport.abort()
        limits.open[address] += 1
        limits.held.setdefault(address, []).append(self)
        self._counted = address
        self._arm()

    def _uncount(self) -> None:
        if self._counted is None:
            return
        open_ = self.limits.open
        open_[self._counted] -= 1
        conns = self.limits.held.get(self._counted, [])
        if self in conns:
            conns.remove(self)
        if open_[self._counted] <= 0:
            del open_[self._counted]
            self.limits.held.pop(self._counted, None)
        self._counted = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout_s, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        self.limits.head_timeouts += 1
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()          # a new request starts: its head must be complete in time
            # h11 bounds only a head that arrives in pieces; one that arrives whole is measured here, up to its
            # blank line (what follows in the same read is the body)
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            head = len(data) if end < 0 else max(0, end + 4 - len(self._head_tail))
            self._head_bytes += head
            self._head_tail = seen[-3:]
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
                                     b"content-length: 0\r\n\r\n")
                self.transport.close()
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()
            self._head_bytes, self._head_tail = 0, b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._uncount()
        super().connection_lost(exc)


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


# How often a server looks at its state when nothing asks it to stop: uvicorn renews the Date header once a
# second, and would wake ten times a second to see whether to exit; here a stop wakes it at once instead.
TICK_S = 1.0


class _Server(uvicorn.Server):
    _exit: asyncio.Event | None = None
    _should_exit = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield        # the service handles SIGTERM; uvicorn must not take it over

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value and self._exit is not None:
            self._exit.set()

    async def main_loop(self) -> None:
        """uvicorn's loop, waking once a second (each tick renews the Date header: the counter is a multiple of
        ten) or at once when ``should_exit`` is set."""
        self._exit = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exit.wait(), TICK_S)


def bind(address: str, port: int, option: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
    # a response written as head and body waits ~40 ms for the client's delayed ACK (measured: 49 ms a request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        hint = {errno.EACCES: "ports below 1024 need the meter's service privileges (CAP_NET_BIND_SERVICE)",
                errno.EADDRINUSE: "another program (or another meter) listens there",
                errno.EADDRNOTAVAIL: "this machine has no such address"}.get(exc.errno or 0, str(exc))
        raise ConfigError(f"web: cannot listen on {address}:{port} ([web] {option}): {hint}; "
                          f"choose another [web] {option} or bind_address") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def make_server(app: Callable[..., Any], sock: socket.socket, limits: ConnectionLimits,
                ssl_context: ssl.SSLContext | None) -> _Server:
    # uvicorn says "Started server process", "Shutting down", "Finished server process" at info level for each
    # server (HTTPS and the redirect: each twice); the web service says once where it listens and when it stops.
    # Its warnings and errors still reach the log.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    # proxy_headers off: no proxy stands before the meter, so X-Forwarded-For from any peer (127.0.0.1 included)
    # must not change the address the limits and the audit see
    config = uvicorn.Config(app, http=guarded_protocol(limits), lifespan="off", log_config=None, proxy_headers=False,
                            access_log=False, server_header=False, timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=GRACEFUL_STOP_S, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
                            ssl_context_factory=(lambda cfg, default: ssl_context) if ssl_context else None)
    server = _Server(config)
    server.sockets_in_use = [sock]  # type: ignore[attr-defined]
    return server


async def serve(server: _Server) -> None:
    await server.serve(sockets=server.sockets_in_use)  # type: ignore[attr-defined]
