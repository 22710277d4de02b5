"""DNP3 channels: the data link layer of one TCP connection or of the serial line, feeding one session.

Every octet from the network is hostile: a channel holds at most one frame and one application fragment
(``link.FrameParser``, ``link.Reassembler``), drops frames not addressed to this outstation or not from an allowed
master address, and is closed (TCP) or reset (serial) when a frame stays incomplete past ``frame_timeout`` or
``MAX_BAD_FRAMES`` damaged frames arrive in a row.
"""
from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from firmware.comms.dnp3 import link
from firmware.comms.dnp3.outstation import Meter, Session, Settings

log = logging.getLogger("comms.dnp3")

MAX_BAD_FRAMES = 32


@dataclass(frozen=True)
class LinkSettings:
    address: int = 1
    masters: tuple[int, ...] = ()              # allowed master link addresses; empty: any
    frame_timeout: float = 2.0
    idle_timeout: float = 120.0


class Channel:
    def __init__(self, meter: Meter, settings: Settings, link_settings: LinkSettings,
                 write: Callable[[bytes], Awaitable[None]], label: str,
                 stats: collections.Counter[str]) -> None:
        self.link = link_settings
        self.write = write
        self.label = label
        self.stats = stats
        self.parser = link.FrameParser()
        self.reassembler = link.Reassembler(settings.max_fragment)
        # where answers go: the master that sent the last frame; before any, the first configured master
        self.master: int | None = link_settings.masters[0] if link_settings.masters else None
        self.fcb: bool | None = None
        self.bad_in_row = 0
        self.session = Session(meter, settings, self._send_fragment, label)
        self._tx_seq = 0

    def start(self) -> None:
        self.session.start()

    async def close(self) -> None:
        await self.session.close()

    @property
    def too_many_bad(self) -> bool:
        return self.bad_in_row >= MAX_BAD_FRAMES

    async def data_received(self, data: bytes) -> bool:
        """Take octets from the line; False when at least one good frame for this outstation arrived."""
        before = self.parser.bad
        frames = self.parser.feed(data)
        bad = self.parser.bad - before
        self.stats["bad_frames"] += bad
        self.bad_in_row += bad
        good = False
        for frame in frames:
            if await self._frame(frame):
                good = True
                self.bad_in_row = 0
        return good

    async def _frame(self, frame: link.Frame) -> bool:
        self.stats["frames"] += 1
        if not frame.from_master or not frame.primary:
            self.stats["ignored"] += 1
            return False
        if frame.dest != self.link.address:
            self.stats["other_address" if frame.dest < link.BROADCAST_MIN else "broadcast"] += 1
            return False
        if self.link.masters and frame.src not in self.link.masters:
            self.stats["master_refused"] += 1
            return False
        self.master = frame.src
        fn = frame.function
        if fn == link.RESET_LINK_STATES:
            self.fcb = True
            await self._secondary(link.ACK)
        elif fn == link.REQUEST_LINK_STATUS:
            await self._secondary(link.LINK_STATUS)
        elif fn == link.TEST_LINK_STATES:
            await self._secondary(link.ACK)
        elif fn == link.CONFIRMED_USER_DATA:
            await self._secondary(link.ACK)
            fcb = bool(frame.control & link.FCB)
            if self.fcb is not None and fcb != self.fcb:
                return True                    # a repeat of a frame already taken
            self.fcb = not fcb
            self._segment(frame.data)
        elif fn == link.UNCONFIRMED_USER_DATA:
            self._segment(frame.data)
        else:
            await self._secondary(link.NOT_SUPPORTED)
        return True

    def _segment(self, data: bytes) -> None:
        fragment = self.reassembler.feed(data)
        if fragment is not None:
            self.session.receive(fragment)

    async def _secondary(self, function: int) -> None:
        assert self.master is not None
        await self.write(link.encode(function, self.master, self.link.address))

    async def _send_fragment(self, fragment: bytes) -> None:
        if self.master is None:
            return                             # nobody to send an unsolicited response to yet
        segs, self._tx_seq = link.segments(fragment, self._tx_seq)
        out = b"".join(link.encode(link.PRM | link.UNCONFIRMED_USER_DATA, self.master, self.link.address, s)
                       for s in segs)
        await self.write(out)
