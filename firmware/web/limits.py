"""What one client may cost the meter: requests per second per address, body sizes, body deadlines.

``RateLimiter`` is a token bucket per client address (``[web] rate`` per second, ``burst`` at once) in a table of
bounded size (the address idle longest is forgotten first, which can only make a limit more lenient, never let
the table grow). ``read_body`` reads a request body up to a byte limit within a deadline, and ``stream_body``
streams one to a file under the same bounds; both stop at the first byte past the limit.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, AsyncIterator, Callable

MAX_TRACKED_ADDRESSES = 4096


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class TooSlow(Exception):
    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"request body not complete within {deadline_s:g} s")
        self.deadline_s = deadline_s


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 max_addresses: int = MAX_TRACKED_ADDRESSES) -> None:
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self.clock = clock
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()   # address -> (tokens, at)
        self.refused = 0

    def allow(self, address: str, cost: float = 1.0) -> float:
        """0 when the request may go on, else the seconds until it would be allowed."""
        now = self.clock()
        tokens, at = self._buckets.pop(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
            self.refused += 1
        self._buckets[address] = (tokens, now)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return wait


async def _chunks(receive: Callable[[], Any], deadline_s: float) -> AsyncIterator[bytes]:
    end = time.monotonic() + deadline_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise TooSlow(deadline_s)
        try:
            message = await asyncio.wait_for(receive(), left)
        except asyncio.TimeoutError:
            raise TooSlow(deadline_s) from None
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away during the request body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Callable[[], Any], limit: int, deadline_s: float,
                    declared: int | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``deadline_s``."""
    if declared is not None and declared > limit:
        raise TooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in _chunks(receive, deadline_s):
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


async def stream_body(receive: Callable[[], Any], path: Path, limit: int, deadline_s: float,
                      declared: int | None = None) -> int:
    """Write the body to ``path`` (deleted again on any failure); the number of bytes written."""
    if declared is not None and declared > limit:
        raise TooLarge(limit)
    size = 0
    try:
        with open(path, "wb") as out:
            async for chunk in _chunks(receive, deadline_s):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size
