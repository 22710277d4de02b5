"""Request/response commands over a Unix-domain stream socket, one JSON object per line.

Request:  ``{"cmd": "status", "args": {...}, "user": "name"}``
Reply:    ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "why", "kind": "AccessDenied"}``

``ControlServer`` serves a table of handlers on a background thread (one thread per connection,
bounded); ``ControlClient`` is the synchronous client used by the CLI, the supervisor and tests.

Who asks comes from the kernel (SO_PEERCRED), never from ``user``, which is kept as a note: a ``Gate``
(``firmware.security.peer``) admits the connection and decides each command, and gives the handler the user
label (name, uid, pid) that goes into every audit line. The default gate admits only root and the meter's
own account (service sockets); the supervisor's ``control.sock`` uses ``ControlGate``.

A connection has ``REQUEST_DEADLINE_S`` to deliver each request line, counted from when it connected or got
its last reply; bytes that trickle in do not extend it. ``MAX_CONNECTIONS`` are shared by everyone, and
``RESERVED_CONNECTIONS`` more are kept for root and the meter itself, so idle clients cannot keep
``meter status`` or the supervisor out.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from firmware.security.peer import Gate, PeerCred, peer_credentials
from hal.errors import AccessDenied, IPCError, MeterError

log = logging.getLogger("control")

MAX_REQUEST_BYTES = 1 << 20
MAX_CONNECTIONS = 16
RESERVED_CONNECTIONS = 4          # only for root and the meter's own account
REQUEST_DEADLINE_S = 5.0          # to deliver one request line (a CLI sends it at once)
REPLY_DEADLINE_S = 30.0           # for a client to take its reply (a large log read) before it is dropped
MAX_DRAINING = 8                  # refused connections read out at once (the rest are closed at once)
DRAIN_S = 0.2                     # for a refused client to finish sending its request
UNIX_PATH_MAX_BYTES = 107  # sockaddr_un.sun_path is 108 bytes including the terminating NUL (unix(7))
Handler = Callable[..., Any]


class ControlServer:
    def __init__(self, path: str | Path, handlers: dict[str, Handler] | None = None,
                 fallback: Callable[[str, dict[str, Any], str], Any] | None = None, gate: Gate | None = None,
                 mode: int = 0o600) -> None:
        self.path = Path(path)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.fallback = fallback
        self.gate = gate or Gate()
        self.mode = mode
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._reserve = threading.BoundedSemaphore(RESERVED_CONNECTIONS)
        self._stopping = False
        self.stats = {"refused": 0, "timed_out": 0}
        self._draining = threading.BoundedSemaphore(MAX_DRAINING)

    def register(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def start(self) -> None:
        if len(os.fsencode(self.path)) > UNIX_PATH_MAX_BYTES:
            raise IPCError(f"control socket path {self.path} is {len(os.fsencode(self.path))} bytes, longer than "
                           f"the {UNIX_PATH_MAX_BYTES} a Unix socket allows; choose a shorter [meter] run_dir")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, self.mode)
        sock.listen(MAX_CONNECTIONS)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name=f"control:{self.path.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            try:
                cred = peer_credentials(conn)
            except OSError:
                conn.close()
                continue
            why = self.gate.admit(cred)
            slot = None if why else self._take_slot(cred)
            if slot is None:
                self.stats["refused"] += 1
                with contextlib.suppress(OSError):
                    conn.settimeout(0.5)
                    _send(conn, {"ok": False, "error": why or "too many control connections; try again",
                                 "kind": "AccessDenied" if why else "IPCError"})
                self._close_refused(conn)
                continue
            threading.Thread(target=self._serve, args=(conn, cred, slot), daemon=True).start()

    def _close_refused(self, conn: socket.socket) -> None:
        """Close a refused connection once its client has read the refusal. A Unix socket closed while the
        client's request is still unread resets the client (ECONNRESET), which would then never read why it was
        refused; so the request is read and dropped first, on a short-lived thread (at most ``MAX_DRAINING`` at
        once, each for at most ``DRAIN_S``: beyond that a connection is simply closed)."""
        if not self._draining.acquire(blocking=False):
            conn.close()
            return

        def drain() -> None:
            try:
                conn.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + DRAIN_S
                while (left := deadline - time.monotonic()) > 0:
                    conn.settimeout(left)
                    if not conn.recv(65536):
                        break
            except OSError:
                pass
            finally:
                conn.close()
                self._draining.release()

        threading.Thread(target=drain, name="control:refused", daemon=True).start()

    def _take_slot(self, cred: PeerCred) -> threading.BoundedSemaphore | None:
        if self._slots.acquire(blocking=False):
            return self._slots
        if self.gate.trusted(cred) and self._reserve.acquire(blocking=False):
            return self._reserve
        return None

    def _serve(self, conn: socket.socket, cred: PeerCred, slot: threading.BoundedSemaphore) -> None:
        try:
            pending = bytearray()
            while True:
                line = _read_line(conn, pending, time.monotonic() + REQUEST_DEADLINE_S)
                if line is None:
                    return
                if len(line) > MAX_REQUEST_BYTES:
                    _send(conn, {"ok": False, "error": "request too large", "kind": "IPCError"})
                    return
                reply = self.dispatch_line(line, cred)
                conn.settimeout(REPLY_DEADLINE_S)
                _send(conn, reply)
        except socket.timeout:
            self.stats["timed_out"] += 1
        except OSError:
            return
        finally:
            conn.close()
            slot.release()

    def dispatch_line(self, line: bytes, cred: PeerCred | None = None) -> dict[str, Any]:
        """Run one request line; ``cred`` is the peer (None: this process itself, e.g. a test)."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError("expected an object with a string 'cmd'")
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}", "kind": "IPCError"}
        cmd, args = request["cmd"], request.get("args") or {}
        note = str(request.get("user") or "")
        if not isinstance(args, dict):
            return {"ok": False, "error": "'args' must be an object", "kind": "IPCError"}
        try:
            user = self.gate.check(cred or PeerCred(os.getpid(), os.geteuid(), os.getegid()), cmd, note)
        except AccessDenied as exc:
            return {"ok": False, "error": str(exc), "kind": "AccessDenied"}
        try:
            handler = self.handlers.get(cmd)
            if handler is not None:
                result = handler(user=user, **args)
            elif self.fallback is not None:
                result = self.fallback(cmd, args, user)
            else:
                known = ", ".join(sorted(self.handlers))
                return {"ok": False, "error": f"unknown command {cmd!r}; known: {known}", "kind": "IPCError"}
            return {"ok": True, "result": result}
        except MeterError as exc:
            # A refusal forwarded from a service keeps the kind the service gave it.
            return {"ok": False, "error": str(exc), "kind": getattr(exc, "kind", "") or type(exc).__name__}
        except TypeError as exc:
            return {"ok": False, "error": f"bad arguments for {cmd!r}: {exc}", "kind": "IPCError"}
        except Exception as exc:  # a handler bug must not kill the server
            log.exception("control command %s failed", cmd)
            return {"ok": False, "error": f"{cmd!r} failed: {type(exc).__name__}: {exc}", "kind": "internal"}


def _read_line(conn: socket.socket, pending: bytearray, deadline: float) -> bytes | None:
    """The next request line, None at a clean end; socket.timeout when the deadline passes first."""
    while True:
        end = pending.find(b"\n")
        if end >= 0 or len(pending) > MAX_REQUEST_BYTES:
            cut = end + 1 if end >= 0 else len(pending)
            line = bytes(pending[:cut])
            del pending[:cut]
            return line
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("request deadline passed")
        conn.settimeout(remaining)
        chunk = conn.recv(65536)
        if not chunk:
            return None
        pending += chunk


def _send(conn: socket.socket, reply: dict[str, Any]) -> None:
    conn.sendall((json.dumps(reply, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


class ControlError(IPCError):
    """A command reached its handler and was refused or failed; ``kind`` is the server-side error class."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class ControlClient:
    def __init__(self, path: str | Path, timeout_s: float = 10.0, user: str = "") -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.user = user or os.environ.get("USER", "")

    def call(self, cmd: str, **args: Any) -> Any:
        reply = self.request(cmd, args)
        if not reply.get("ok"):
            raise ControlError(reply.get("error", "command failed"), reply.get("kind", ""))
        return reply.get("result")

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall((json.dumps({"cmd": cmd, "args": args or {}, "user": self.user}) + "\n").encode())
                data = sock.makefile("rb").readline(MAX_REQUEST_BYTES * 64)
        except FileNotFoundError:
            raise IPCError(f"no control socket at {self.path}: is the meter running?") from None
        except ConnectionRefusedError:
            raise IPCError(f"control socket {self.path} refused the connection: the meter is not running") from None
        except socket.timeout:
            raise IPCError(f"control socket {self.path}: no reply to {cmd!r} within {self.timeout_s:g} s") from None
        if not data:
            raise IPCError(f"control socket {self.path} closed without replying to {cmd!r}")
        return json.loads(data)
