"""Modbus RTU server on a serial port (RS-485 on the device), driven by the asyncio loop.

Addressing per Modbus over Serial Line v1.02 §2.2 and the ION7400 user manual ("Modbus commands"): the meter
answers its own unit id (1–247) and 248 (the one-to-one address of a line with a single device); unit 0 is a
broadcast, of which only FC 16 is carried out and none is answered; every other unit id is another device's
business, so the meter stays silent and does not act on it.

The port is opened with pyserial (termios, and the kernel's RS-485 direction control when ``rs485`` is set)
and read without blocking through the loop's reader callback; each chunk is stamped on arrival so frame
edges come from the line's silences (``rtu.RtuFramer``).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Any

from firmware.comms.modbus.handler import FC_WRITE_REGISTERS, Access, Handler
from firmware.comms.modbus.rtu import RtuFramer, crc_ok, silent_interval_s, with_crc
from hal.errors import BusError

log = logging.getLogger("comms.modbus.rtu")

BROADCAST_UNIT = 0
SINGLE_DEVICE_UNIT = 248
BAUD_RATES = (2400, 4800, 9600, 19200, 38400, 57600, 115200)
FRAMINGS = ("8N1", "8N2", "8E1", "8E2", "8O1", "8O2")


def serial_settings(framing: str) -> dict[str, Any]:
    """pyserial keyword arguments for "8E1" and the like."""
    import serial

    if framing not in FRAMINGS:
        raise ValueError(f"framing {framing!r} not supported; allowed {', '.join(FRAMINGS)}")
    parity = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}[framing[1]]
    stop = serial.STOPBITS_ONE if framing[2] == "1" else serial.STOPBITS_TWO
    return {"bytesize": serial.EIGHTBITS, "parity": parity, "stopbits": stop}


def bits_per_char(framing: str) -> int:
    return 1 + 8 + (framing[1] != "N") + int(framing[2])


class ModbusRtuServer:
    def __init__(self, handler: Handler, port: str, baud: int = 19200, framing: str = "8N1", unit: int = 1,
                 rs485: bool = False, silent_interval: float | None = None, access: Access | None = None) -> None:
        """``silent_interval`` (s) overrides t3.5, for converters or links that stretch gaps inside a frame;
        ``access`` is this port's access mode (None: the handler's)."""
        if not 1 <= unit <= 247:
            raise ValueError(f"unit id {unit} outside 1..247")
        self.handler = handler
        self.access = access
        self.port, self.baud, self.framing, self.unit, self.rs485 = port, baud, framing, unit, rs485
        self.framer = RtuFramer(silent_interval or silent_interval_s(baud, bits_per_char(framing)))
        self.stats = collections.Counter({"frames": 0, "answered": 0, "other_units": 0, "broadcasts": 0,
                                          "bad_crc": 0})
        self._serial: Any = None
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None
        self._out = bytearray()
        self._queue: asyncio.Queue[bytes] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        import serial

        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=0,
                                         **serial_settings(self.framing))
        except (serial.SerialException, OSError) as exc:
            raise BusError(f"modbus rtu: cannot open serial port {self.port}: {exc}; check [modbus.rtu] port "
                           f"and that no other program uses it") from None
        if self.rs485:
            import serial.rs485

            self._serial.rs485_mode = serial.rs485.RS485Settings()
        self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._worker = self._loop.create_task(self._work())
        self._loop.add_reader(self._fd, self._on_readable)
        log.info("modbus rtu: unit %d on %s at %d baud %s (t3.5 = %.2f ms)", self.unit, self.port, self.baud,
                 self.framing, self.framer.t35_s * 1e3)

    async def stop(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._timer is not None:
            self._timer.cancel()
        if self._worker is not None:
            self._worker.cancel()
        if self._serial is not None:
            self._serial.close()
        self._fd = -1

    # ------------------------------------------------------------------ receive

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("modbus rtu: read from %s failed: %s", self.port, exc)
            return
        if not data:
            return
        self._frames(self.framer.feed(data, time.monotonic()))
        self._arm()

    def _arm(self) -> None:
        deadline = self.framer.deadline()
        if deadline is None or self._timer is not None:
            return
        assert self._loop is not None
        delay = max(0.0, deadline - time.monotonic())
        self._timer = self._loop.call_later(delay, self._on_silence)

    def _on_silence(self) -> None:
        self._timer = None
        self._frames(self.framer.flush(time.monotonic()))
        self._arm()        # bytes came meanwhile: wait for their silence

    def _frames(self, frames: list[bytes]) -> None:
        assert self._queue is not None
        for frame in frames:
            self._queue.put_nowait(frame)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            frame = await self._queue.get()
            try:
                await self._serve(frame)
            except Exception:
                log.exception("modbus rtu: frame %s", frame.hex())

    async def _serve(self, frame: bytes) -> None:
        self.stats["frames"] += 1
        if not crc_ok(frame):
            self.stats["bad_crc"] += 1
            return
        unit, pdu = frame[0], frame[1:-2]
        if unit == BROADCAST_UNIT:
            if pdu[:1] == bytes((FC_WRITE_REGISTERS,)):
                self.stats["broadcasts"] += 1
                await self.handler.handle(pdu, self.unit, self.access)
            return
        if unit not in (self.unit, SINGLE_DEVICE_UNIT):
            self.stats["other_units"] += 1
            return
        reply = await self.handler.handle(pdu, self.unit, self.access)
        if reply is not None:
            self.stats["answered"] += 1
            self._send(with_crc(bytes((unit,)) + reply))

    # ------------------------------------------------------------------ transmit

    def _send(self, adu: bytes) -> None:
        self._out += adu
        self._flush_out()

    def _flush_out(self) -> None:
        assert self._loop is not None
        while self._out:
            try:
                n = os.write(self._fd, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("modbus rtu: write to %s failed: %s", self.port, exc)
                self._out.clear()
                break
            del self._out[:n]
        if self._out:
            self._loop.add_writer(self._fd, self._flush_out)
        else:
            self._loop.remove_writer(self._fd)
