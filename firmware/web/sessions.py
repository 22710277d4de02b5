"""Web sessions: who is logged in, until when, and the session's CSRF token.

A session is a random 256-bit token in a cookie (``__Host-`` prefix: Secure, Path=/, no Domain; HttpOnly;
SameSite=Strict). It ends after ``[web] session_timeout`` without a request, on logout, or when the table is
full and a new login needs its place (the session idle longest goes). The CSRF token is a second random value
of the session, given to the page at login and by ``GET /api/session``; every state-changing request must carry
it in the ``X-CSRF-Token`` header. Sessions live in the web process only: a restart of the web service logs
everyone out.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

COOKIE = "__Host-meter_session"
CSRF_HEADER = "x-csrf-token"
TOKEN_BYTES = 32


@dataclass
class Session:
    token: str
    user: str
    privileges: frozenset[str]
    address: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(TOKEN_BYTES))
    created: float = 0.0
    last_seen: float = 0.0

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), str(presented).encode())


class Sessions:
    def __init__(self, timeout_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.ended = {"timeout": 0, "logout": 0, "evicted": 0}

    def create(self, user: str, privileges: frozenset[str], address: str) -> Session:
        now = self.clock()
        with self._lock:
            self._expire(now)
            while len(self._by_token) >= self.max_sessions:
                idle = min(self._by_token.values(), key=lambda s: s.last_seen)
                del self._by_token[idle.token]
                self.ended["evicted"] += 1
            session = Session(secrets.token_urlsafe(TOKEN_BYTES), user, privileges, address,
                              created=now, last_seen=now)
            self._by_token[session.token] = session
            return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (its idle time restarts), or None."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.timeout_s:
                del self._by_token[token]
                self.ended["timeout"] += 1
                return None
            session.last_seen = now
            return session

    def peek(self, token: str) -> bool:
        """Whether the session is still live, without counting this as activity (a live stream is not)."""
        with self._lock:
            session = self._by_token.get(token)
            return session is not None and self.clock() - session.last_seen <= self.timeout_s

    def end(self, token: str) -> None:
        with self._lock:
            if self._by_token.pop(token, None) is not None:
                self.ended["logout"] += 1

    def end_user(self, user: str) -> int:
        """End every session of a user (its account was changed or locked out)."""
        with self._lock:
            tokens = [t for t, s in self._by_token.items() if s.user == user]
            for token in tokens:
                del self._by_token[token]
            return len(tokens)

    def _expire(self, now: float) -> None:
        stale = [t for t, s in self._by_token.items() if now - s.last_seen > self.timeout_s]
        for token in stale:
            del self._by_token[token]
        self.ended["timeout"] += len(stale)

    def __len__(self) -> int:
        return len(self._by_token)
