"""Login sessions with an inactivity timeout (``[security] session_timeout``) and an absolute one
(``session_max_age``), for interfaces that keep a login between requests (web, display). A token is 256 random
bits; a session unused for the timeout, or older than the maximum age however busy, ends. Each session keeps the
stamp of its user's account at login (``UserStore.stamp``): the interface ends it when the stamp is no longer
the account's (user removed, privileges, protocols or password changed)."""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from firmware.security.authorize import Identity

MAX_SESSIONS = 256          # bounded: old sessions are dropped first when a login would exceed it


@dataclass
class Session:
    identity: Identity
    last_used: float
    opened: float
    stamp: str = ""


class Sessions:
    def __init__(self, timeout_s: float, clock: Callable[[], float] | None = None,
                 max_age_s: float = float("inf")) -> None:
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self._clock = clock or time.monotonic
        self._sessions: dict[str, Session] = {}
        self._mutex = threading.Lock()

    def open(self, identity: Identity, stamp: str = "") -> str:
        token = secrets.token_urlsafe(32)
        with self._mutex:
            self._expire()
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda t: self._sessions[t].last_used)
                del self._sessions[oldest]
            now = self._clock()
            self._sessions[token] = Session(identity, now, now, stamp)
        return token

    def get(self, token: str) -> Identity | None:
        """The identity of a live session (and the session's clock restarts), or None."""
        with self._mutex:
            self._expire()
            session = self._sessions.get(token)
            if session is None:
                return None
            session.last_used = self._clock()
            return session.identity

    def peek(self, token: str) -> Session | None:
        """A live session, without counting as use (a live stream asks); None: ended."""
        with self._mutex:
            self._expire()
            return self._sessions.get(token)

    def close(self, token: str) -> None:
        with self._mutex:
            self._sessions.pop(token, None)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items()
                      if now - s.last_used > self.timeout_s or now - s.opened > self.max_age_s]:
            del self._sessions[token]
