"""DLMS/COSEM over HDLC on a serial port (RS-485 or the optical port's converter), driven by the asyncio loop:
the port is read without blocking, each chunk goes through the link (``hdlc.HdlcLink``) on a worker thread in
arrival order, and its frames are written back. The queue of chunks is bounded; a line that floods it loses
the excess (the link's frame checks drop what is left incomplete)."""
from __future__ import annotations

import asyncio
import collections
import logging
import os
from typing import Any, Callable

from firmware.comms.dlms.hdlc import HdlcLink
from firmware.comms.dlms.session import Session
from firmware.comms.modbus.rtu_server import serial_settings
from hal.errors import BusError

log = logging.getLogger("comms.dlms")

MAX_QUEUED = 256


class HdlcSerialServer:
    def __init__(self, new_session: Callable[[int, int, str], Session], port: str, baud: int, framing: str,
                 physical_address: int, inactivity_timeout_s: float, inter_frame_timeout_s: float,
                 rs485: bool = False) -> None:
        self.port, self.baud, self.framing, self.rs485 = port, baud, framing, rs485
        self.link = HdlcLink(new_session, physical_address, inactivity_timeout_s, inter_frame_timeout_s)
        self.dropped = 0
        self._serial: Any = None
        self._fd = -1
        self._queue: asyncio.Queue[bytes] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = collections.deque[bytes]()

    async def start(self) -> None:
        import serial

        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=0,
                                         **serial_settings(self.framing))
        except (serial.SerialException, OSError) as exc:
            raise BusError(f"dlms hdlc: cannot open serial port {self.port}: {exc}; check [dlms.hdlc] port and "
                           "that no other program uses it") from None
        if self.rs485:
            import serial.rs485

            self._serial.rs485_mode = serial.rs485.RS485Settings()
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(MAX_QUEUED)
        self._worker = self._loop.create_task(self._work())
        self._loop.add_reader(self._fd, self._on_readable)
        log.info("dlms hdlc: physical address %d on %s at %d baud %s", self.link.physical, self.port, self.baud,
                 self.framing)

    async def stop(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._serial is not None:
            self._serial.close()
        self._fd = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("dlms hdlc: read from %s failed: %s", self.port, exc)
            return
        if data and self._queue is not None:
            try:
                self._queue.put_nowait(data)
            except asyncio.QueueFull:
                self.dropped += 1

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            data = await self._queue.get()
            try:
                frames = await asyncio.to_thread(self.link.feed, data)
            except Exception:  # noqa: BLE001 - a frame that breaks the link is logged; the line goes on
                log.exception("dlms hdlc: input %s", data[:64].hex())
                continue
            for frame in frames:
                await self._write(frame)

    async def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            except OSError as exc:
                log.warning("dlms hdlc: write to %s failed: %s", self.port, exc)
                return
            view = view[n:]

    def stats(self) -> dict[str, int]:
        return {**self.link.counters, "dropped": self.dropped}
