"""The MS/TP datalink under bacpypes3's network layer: an RS-485 port (pyserial, ``hal/serialport.py``), the
frame receiver and the master node state machine, driven from the asyncio loop.

Bytes are read when the port's descriptor is readable (no polling thread); the node's timers run every
``TICK_S``. NPDUs come down from the network layer with a MAC address and go up with the sender's, exactly
as bacpypes3's BACnet/IP link does with IP addresses, so the same APDUs travel on both links.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Callable

from bacpypes3.comm import Server
from bacpypes3.pdu import PDU, Address, LocalBroadcast, LocalStation

from firmware.comms.bacnet.mstp.frame import BROADCAST, Frame, Receiver, frame_abort_s
from firmware.comms.bacnet.mstp.master import MasterNode, State
from hal.serialport import open_serial

log = logging.getLogger("comms.bacnet.mstp")

TICK_S = 0.005                       # the node's timers are 10 ms and up (Tslot)
TURNAROUND_BITS = 40                 # Clause 9.5.5.1: Tturnaround, the wait after the last octet received
NPDU_EXPECTING_REPLY = 0x04          # NPDU control octet, Clause 6.2.2
MAX_QUEUED = 64                      # NPDUs waiting for the token; more are dropped (the network layer retries)
READ_CHUNK = 4096

Tap = Callable[[bytes, float], None]


class MstpLinkLayer(Server[PDU]):
    def __init__(self, port: str, baud: int, mac: int, max_master: int, max_info_frames: int,
                 tap: Tap | None = None, rs485: bool = True) -> None:
        self.port_name, self.baud, self.rs485 = port, baud, rs485
        self.turnaround_s = TURNAROUND_BITS / baud
        self._tx: list[bytes] = []
        self._tx_scheduled = False
        self.node = MasterNode(mac, max_master, max_info_frames)
        self.receiver = Receiver(frame_abort_s(baud))
        self.address = LocalStation(bytes((mac,)))
        self.tap = tap
        self.serial: Any = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def start(self) -> None:
        self.serial = open_serial(self.port_name, self.baud, "8N1", rs485=self.rs485)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.serial.fileno(), self._readable)
        self._task = loop.create_task(self._ticks())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.serial is not None:
            with contextlib.suppress(RuntimeError):     # no running loop: nothing to remove
                asyncio.get_running_loop().remove_reader(self.serial.fileno())
            self.serial.close()
            self.serial = None

    # ------------------------------------------------------------------ down: NPDUs to frames

    async def indication(self, pdu: PDU) -> None:
        dest = pdu.pduDestination
        data = bytes(pdu.pduData)
        if isinstance(dest, LocalBroadcast) or dest.addrType == Address.localBroadcastAddr:
            mac = BROADCAST
        else:
            mac = dest.addrAddr[0]
        expecting = len(data) > 1 and bool(data[1] & NPDU_EXPECTING_REPLY)
        node = self.node
        if node.state is State.ANSWER_DATA_REQUEST and node.pending_request is not None \
                and node.pending_request.source == mac and not expecting:
            node.reply(mac, data)
        elif len(node.queue) >= MAX_QUEUED:
            self.dropped += 1
        else:
            node.send(mac, data, expecting)
        self._write(node.timer(time.monotonic()))

    # ------------------------------------------------------------------ up: bytes to NPDUs

    def _readable(self) -> None:
        try:
            data = os.read(self.serial.fileno(), READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("MS/TP %s: read failed: %s", self.port_name, exc)
            return
        now = time.monotonic()
        out: list[Frame] = []
        for frame in self.receiver.feed(data, now):
            if self.tap is not None:
                self.tap(frame.encode(), time.time())
            out += self.node.received(frame, now)
        self._write(out)
        self._deliver()

    def _deliver(self) -> None:
        while self.node.delivered:
            source, npdu, _ = self.node.delivered.popleft()
            pdu = PDU(npdu, source=LocalStation(bytes((source,))), destination=self.address)
            asyncio.get_running_loop().create_task(self.response(pdu))

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._write(self.node.timer(time.monotonic()))
            except Exception:   # noqa: BLE001 - one bad step must not silence the node for good
                log.exception("MS/TP %s: timer step failed", self.port_name)

    def _write(self, frames: list[Frame]) -> None:
        if not frames or self.serial is None:
            return
        self._tx += [f.encode() for f in frames]
        if not self._tx_scheduled:
            self._flush()

    def _flush(self) -> None:
        """Send what is queued once Tturnaround has passed since the last octet received (the other node's
        driver may still be on for that long)."""
        self._tx_scheduled = False
        if self.serial is None:
            return
        wait = self.turnaround_s - (time.monotonic() - self.receiver.last_byte_s)
        if wait > 0:
            self._tx_scheduled = True
            asyncio.get_running_loop().call_later(wait, self._flush)
            return
        for raw in self._tx:
            if self.tap is not None:
                self.tap(raw, time.time())
            self.serial.write(raw)
        self._tx.clear()

    def set_max_master(self, max_master: int) -> None:
        """A new Max_Master (Device property write): polls from now on stop there."""
        self.node.max_master = max_master

    def stats(self) -> dict[str, Any]:
        return {**self.node.counters, **self.receiver.counters, "dropped": self.dropped,
                "state": self.node.state.value}
