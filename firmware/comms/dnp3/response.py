"""Building a response: object headers and their objects packed into application fragments of bounded size,
with a header's range split across fragments where it does not fit, and the events each fragment carries (they
leave the session's buffer only when that fragment is confirmed)."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from firmware.comms.dnp3.objects import Q_INDEX_8, Q_INDEX_16, Q_START_STOP_8, Q_START_STOP_16, packed

APP_HEADER = 4                                  # AC, FC, IIN1, IIN2


class TooSmall(ValueError):
    """One object does not fit an empty fragment."""


@dataclass
class Fragment:
    body: bytearray = field(default_factory=bytearray)
    events: list[int] = field(default_factory=list)


class ResponseWriter:
    def __init__(self, max_fragment: int) -> None:
        self.limit = max_fragment - APP_HEADER
        self.fragments: list[Fragment] = [Fragment()]

    @property
    def _room(self) -> int:
        return self.limit - len(self.fragments[-1].body)

    def _next(self) -> None:
        if not self.fragments[-1].body:
            raise TooSmall("an object does not fit one fragment")
        self.fragments.append(Fragment())

    def raw(self, data: bytes) -> None:
        """A header with its objects that is never split (time, time delay)."""
        if len(data) > self._room:
            self._next()
        if len(data) > self._room:
            raise TooSmall("an object does not fit one fragment")
        self.fragments[-1].body += data

    def ranged(self, group: int, variation: int, start: int, items: list[bytes]) -> None:
        """Objects of consecutive indexes from ``start``, under start-stop headers."""
        k = 0
        while k < len(items):
            wide = start + len(items) - 1 > 255
            head = 3 + (4 if wide else 2)
            size = len(items[k])
            n = min(len(items) - k, max(0, (self._room - head) // size))
            if n == 0:
                self._next()
                continue
            first, last = start + k, start + k + n - 1
            frag = self.fragments[-1].body
            frag += bytes((group, variation, Q_START_STOP_16 if wide else Q_START_STOP_8))
            frag += struct.pack("<HH", first, last) if wide else bytes((first, last))
            for item in items[k:k + n]:
                frag += item
            k += n

    def bits(self, group: int, variation: int, start: int, states: list[bool]) -> None:
        """Packed single bits of consecutive indexes (group 1 variation 1, group 10 variation 1)."""
        k = 0
        while k < len(states):
            wide = start + len(states) - 1 > 255
            head = 3 + (4 if wide else 2)
            n = min(len(states) - k, max(0, (self._room - head) * 8))
            if n == 0:
                self._next()
                continue
            first, last = start + k, start + k + n - 1
            frag = self.fragments[-1].body
            frag += bytes((group, variation, Q_START_STOP_16 if wide else Q_START_STOP_8))
            frag += struct.pack("<HH", first, last) if wide else bytes((first, last))
            frag += packed(states[k:k + n])
            k += n

    def indexed(self, group: int, variation: int, items: list[tuple[int, bytes]], events: list[int] | None = None,
                narrow: bool = False) -> None:
        """Objects each prefixed by its index (qualifier 0x28, or 0x17 when ``narrow`` and every index < 256);
        ``events``: the event id of each item."""
        narrow = narrow and all(i < 256 for i, _ in items)
        width = 1 if narrow else 2
        k = 0
        while k < len(items):
            head = 3 + width
            n = 0
            used = head
            while k + n < len(items) and used + width + len(items[k + n][1]) <= self._room:
                used += width + len(items[k + n][1])
                n += 1
                if n == (255 if narrow else 65535):
                    break
            if n == 0:
                self._next()
                continue
            frag = self.fragments[-1]
            frag.body += bytes((group, variation, Q_INDEX_8 if narrow else Q_INDEX_16))
            frag.body += bytes((n,)) if narrow else struct.pack("<H", n)
            for index, item in items[k:k + n]:
                frag.body += bytes((index,)) if narrow else struct.pack("<H", index)
                frag.body += item
            if events is not None:
                frag.events += events[k:k + n]
            k += n
