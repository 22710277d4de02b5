"""One DNP3 session's application layer (IEEE 1815-2012 clause 4): requests in, responses out, application
confirmations, unsolicited responses with retries, and the internal indications.

A session is one master on one channel (a TCP connection or the serial line). Requests are handled one at a time
by the session's own task; a confirmation is taken as it arrives. What a request does to the meter (a control, a
freeze, a time set) goes through ``Meter``, which asks the one authorization point and runs the catalogue's
command in its owning service.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from firmware.comms.dnp3 import objects as o
from firmware.comms.dnp3 import reads
from firmware.comms.dnp3.database import Database, Event, EventBuffer
from firmware.comms.dnp3.response import ResponseWriter, TooSmall

log = logging.getLogger("comms.dnp3")

# Freeze functions and the catalogue commands they run, in order: a freeze is the revenue freeze (a snapshot of
# the billing registers); freeze-and-clear clears the energy registers after it, so the revenue lock refuses it.
FREEZE_COMMANDS = {o.IMMED_FREEZE: ("freeze",), o.IMMED_FREEZE_NR: ("freeze",),
                   o.FREEZE_CLEAR: ("freeze", "energy_reset"), o.FREEZE_CLEAR_NR: ("freeze", "energy_reset")}
NO_RESPONSE = (o.DIRECT_OPERATE_NR, o.IMMED_FREEZE_NR, o.FREEZE_CLEAR_NR)
RESTART_DELAY_MS = 1000
PENDING_REQUESTS = 2                  # requests queued while one is handled; a master waits for each answer


class Meter(Protocol):
    """What a session asks of the meter."""

    db: Database

    def refresh(self) -> None: ...

    def need_time(self) -> bool: ...

    def control_index(self, index: int) -> str | None: ...

    def refusal(self, command: str) -> str: ...

    async def run(self, command: str, args: dict[str, Any]) -> None: ...

    async def set_time(self, utc_s: float) -> str: ...


@dataclass(frozen=True)
class Settings:
    address: int = 1
    max_fragment: int = 2048
    confirm_timeout: float = 5.0
    unsolicited: bool = False
    unsolicited_classes: tuple[int, ...] = (1, 2, 3)
    unsolicited_retries: int = 3
    unsolicited_retry_delay: float = 30.0
    unsolicited_holdoff: float = 0.2
    select_timeout: float = 10.0
    event_buffer: int = 200


class Session:
    def __init__(self, meter: Meter, settings: Settings, send: Callable[[bytes], Awaitable[None]],
                 label: str = "") -> None:
        self.meter = meter
        self.settings = settings
        self.send = send
        self.label = label
        self.events = EventBuffer(settings.event_buffer)
        self.restart = True                         # IIN1.7 until the master clears it
        self.unsol_enabled: set[int] = set()
        self.unsol_seq = 0
        self.unsol_initial_done = not settings.unsolicited
        self._unsol_wait: tuple[int, list[int]] | None = None      # (seq, event ids) awaiting confirmation
        self._unsol_tries = 0
        self._unsol_next = 0.0
        self._confirm: asyncio.Future[bool] | None = None
        self._confirm_seq = -1
        self._queue: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue(PENDING_REQUESTS)
        self._wake = asyncio.Event()
        self._last: tuple[bytes, list[bytes]] | None = None        # last request and its response fragments
        self._select: tuple[int, bytes, float] | None = None
        self._recorded_ms: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.counters = {"requests": 0, "responses": 0, "unsolicited": 0, "confirm_timeouts": 0, "dropped": 0,
                         "controls": 0, "refused": 0}
        meter.db.listeners.append(self._on_events)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._on_events in self.meter.db.listeners:
            self.meter.db.listeners.remove(self._on_events)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # the session is going away
                await self._task

    def _on_events(self, events: list[Event]) -> None:
        self.events.add(events)
        if self.unsol_enabled:
            self._wake.set()

    # ------------------------------------------------------------------ input

    def receive(self, fragment: bytes) -> None:
        """An application fragment from the master (called by the channel, never blocks)."""
        if len(fragment) < 2:
            self.counters["dropped"] += 1
            return
        ac, fc = fragment[0], fragment[1]
        if not (ac & o.AC_FIR and ac & o.AC_FIN):
            self.counters["dropped"] += 1     # a request is one fragment
            return
        seq = ac & 0x0F
        if fc == o.CONFIRM:
            if ac & o.AC_UNS:
                if self._unsol_wait is not None and self._unsol_wait[0] == seq:
                    self.events.confirm(self._unsol_wait[1])
                    self._unsol_wait = None
                    self._unsol_tries = 0
                    self.unsol_initial_done = True
                    self._wake.set()
            elif self._confirm is not None and not self._confirm.done() and seq == self._confirm_seq:
                self._confirm.set_result(True)
            return
        if self._confirm is not None and not self._confirm.done():
            self._confirm.set_result(False)   # a new request ends the wait for a confirmation
        if self._queue.full():
            self.counters["dropped"] += 1
            return
        self._queue.put_nowait((ac, fc, fragment[2:]))
        self._wake.set()

    # ------------------------------------------------------------------ the session's task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._queue.empty():
                self._wake.clear()
                delay = self._unsol_due(loop.time())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
            if not self._queue.empty():
                ac, fc, body = self._queue.get_nowait()
                try:
                    await self._request(ac, fc, body)
                except ConnectionError as exc:
                    log.info("dnp3 %s: %s", self.label, exc)
                except Exception:  # noqa: BLE001 - one bad request never ends the session
                    log.exception("dnp3 %s: request failed", self.label)
                continue
            try:
                await self._unsolicited(loop.time())
            except ConnectionError as exc:
                log.info("dnp3 %s: unsolicited response not sent: %s", self.label, exc)

    def _unsol_due(self, now: float) -> float | None:
        if not self.settings.unsolicited:
            return None
        if self._unsol_wait is not None or not self.unsol_initial_done:
            return max(0.0, self._unsol_next - now)
        if any(self.events.pending(k) for k in self.unsol_enabled):
            return max(self.settings.unsolicited_holdoff, self._unsol_next - now)
        return None

    async def _unsolicited(self, now: float) -> None:
        if not self.settings.unsolicited or now < self._unsol_next:
            return
        if self._unsol_wait is not None:
            if self._unsol_tries > self.settings.unsolicited_retries:
                # give up for now: the events stay and are offered again after the retry delay
                self.events.release()
                self._unsol_wait = None
                self._unsol_tries = 0
                self._unsol_next = now + self.settings.unsolicited_retry_delay
                return
            await self._send_unsol(self._unsol_wait[1], resend=True)
            return
        if not self.unsol_initial_done:
            await self._send_unsol([], resend=False)
            return
        if not self.unsol_enabled:
            return
        self.meter.refresh()
        events = self.events.select(self.unsol_enabled, None, None)
        if events:
            await self._send_unsol([e.id for e in events], resend=False, chosen=events)

    async def _send_unsol(self, ids: list[int], resend: bool, chosen: list[Event] | None = None) -> None:
        if not resend:
            self.unsol_seq = (self.unsol_seq + 1) & 0x0F
        writer = ResponseWriter(self.settings.max_fragment)
        if chosen is None and ids:
            wanted = set(ids)
            chosen = [e for q in self.events.classes.values() for e in q if e.id in wanted]
        if chosen:
            reads.write_events(writer, chosen)
        fragment = writer.fragments[0]
        if len(writer.fragments) > 1:
            # what does not fit waits for the next unsolicited response
            kept = set(fragment.events)
            self.events.selected -= {i for i in ids if i not in kept}
            ids = list(kept)
        ac = o.AC_FIR | o.AC_FIN | o.AC_CON | o.AC_UNS | self.unsol_seq
        self._unsol_wait = (self.unsol_seq, ids)
        self._unsol_tries += 1
        self._unsol_next = asyncio.get_running_loop().time() + self.settings.confirm_timeout
        self.counters["unsolicited"] += 1
        await self.send(bytes((ac, o.UNSOLICITED_RESPONSE)) + self._iin().to_bytes(2, "little") + fragment.body)

    # ------------------------------------------------------------------ requests

    def _iin(self, extra: int = 0) -> int:
        iin = extra
        for k in (1, 2, 3):
            if self.events.pending(k) > 0:
                iin |= o.CLASS_IIN[k]
        if self.restart:
            iin |= o.IIN_RESTART
        if self.meter.need_time():
            iin |= o.IIN_NEED_TIME
        if self.events.overflow:
            iin |= o.IIN_EVENT_OVERFLOW
        return iin

    async def _request(self, ac: int, fc: int, body: bytes) -> None:
        self.counters["requests"] += 1
        seq = ac & 0x0F
        whole = bytes((seq, fc)) + body
        if self._last is not None and self._last[0] == whole and fc != o.READ:
            for fragment in self._last[1]:     # a repeated request: the same answer, nothing done twice
                await self.send(fragment)
            return
        self.events.release()
        writer = ResponseWriter(self.settings.max_fragment)
        try:
            iin = await self._handle(fc, seq, body, writer)
        except o.ParseError as exc:
            log.debug("dnp3 %s: %s", self.label, exc)
            writer = ResponseWriter(self.settings.max_fragment)
            iin = o.IIN_PARAMETER_ERROR
        except TooSmall:
            writer = ResponseWriter(self.settings.max_fragment)
            iin = o.IIN_PARAMETER_ERROR
        if fc in NO_RESPONSE:
            self._last = None
            return
        await self._respond(seq, writer, iin, whole)

    async def _respond(self, seq: int, writer: ResponseWriter, iin: int, whole: bytes) -> None:
        sent: list[bytes] = []
        frags = writer.fragments
        for k, frag in enumerate(frags):
            last = k == len(frags) - 1
            con = not last or bool(frag.events)
            ac = (o.AC_FIR if k == 0 else 0) | (o.AC_FIN if last else 0) | (o.AC_CON if con else 0) | seq
            data = bytes((ac, o.RESPONSE)) + self._iin(iin).to_bytes(2, "little") + bytes(frag.body)
            sent.append(data)
            self.counters["responses"] += 1
            if not con:
                await self.send(data)
                break
            confirmed = await self._await_confirm(seq, data)
            if not confirmed:
                self.counters["confirm_timeouts"] += 1
                self.events.release()
                break
            self.events.confirm(frag.events)
            seq = (seq + 1) & 0x0F
        self._last = (whole, sent) if len(sent) == 1 else None

    async def _await_confirm(self, seq: int, data: bytes) -> bool:
        self._confirm = asyncio.get_running_loop().create_future()
        self._confirm_seq = seq
        await self.send(data)
        try:
            return await asyncio.wait_for(self._confirm, self.settings.confirm_timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._confirm = None

    async def _handle(self, fc: int, seq: int, body: bytes, w: ResponseWriter) -> int:
        if fc == o.READ:
            self.meter.refresh()
            return reads.read(self.meter.db, self.events, o.parse_headers(body, write_like=False), w)
        if fc == o.WRITE:
            return await self._write(o.parse_headers(body, write_like=True))
        if fc in (o.SELECT, o.OPERATE, o.DIRECT_OPERATE, o.DIRECT_OPERATE_NR):
            return await self._controls(fc, seq, body, w)
        if fc in FREEZE_COMMANDS:
            return await self._freeze(fc, o.parse_headers(body, write_like=False))
        if fc in (o.COLD_RESTART, o.WARM_RESTART):
            if body:
                raise o.ParseError("a restart request carries no objects")
            if fc == o.COLD_RESTART:
                w.raw(bytes((52, 1, o.Q_COUNT_8, 1)) + (RESTART_DELAY_MS // 1000).to_bytes(2, "little"))
            else:
                w.raw(bytes((52, 2, o.Q_COUNT_8, 1)) + RESTART_DELAY_MS.to_bytes(2, "little"))
            self._restart()
            return 0
        if fc in (o.ENABLE_UNSOLICITED, o.DISABLE_UNSOLICITED):
            return self._unsol_classes(fc, o.parse_headers(body, write_like=False))
        if fc == o.DELAY_MEASURE:
            w.raw(bytes((52, 2, o.Q_COUNT_8, 1)) + b"\x00\x00")
            return 0
        if fc == o.RECORD_CURRENT_TIME:
            self._recorded_ms = int(time.time() * 1000)
            return 0
        return o.IIN_NO_FUNC

    def _restart(self) -> None:
        """Restart of the DNP3 process (the meter itself is not restarted, as on the JEMStar II)."""
        self.restart = True
        self.unsol_enabled.clear()
        self._select = None
        self._unsol_wait = None
        self.unsol_initial_done = not self.settings.unsolicited

    # ------------------------------------------------------------------ WRITE

    async def _write(self, headers: list[o.Header]) -> int:
        iin = 0
        for h in headers:
            if (h.group, h.variation) == (80, 1):
                for index, bit in h.objects:
                    if index == 7 and bit == b"\x00":
                        self.restart = False
                    else:
                        iin |= o.IIN_PARAMETER_ERROR
            elif (h.group, h.variation) == (50, 1) and len(h.objects) == 1:
                iin |= await self._set_time(o.read_time48(h.objects[0][1]) / 1000.0)
            elif (h.group, h.variation) == (50, 3) and len(h.objects) == 1:
                if self._recorded_ms is None:
                    iin |= o.IIN_PARAMETER_ERROR
                    continue
                elapsed = int(time.time() * 1000) - self._recorded_ms
                self._recorded_ms = None
                iin |= await self._set_time((o.read_time48(h.objects[0][1]) + elapsed) / 1000.0)
            else:
                iin |= o.IIN_PARAMETER_ERROR
        return iin

    async def _set_time(self, utc_s: float) -> int:
        why = await self.meter.set_time(utc_s)
        if why:
            log.info("dnp3 %s: time set refused: %s", self.label, why)
            return o.IIN_PARAMETER_ERROR
        return 0

    # ------------------------------------------------------------------ controls, freeze

    async def _controls(self, fc: int, seq: int, body: bytes, w: ResponseWriter) -> int:
        headers = o.parse_headers(body, write_like=True)
        if not headers or any((h.group, h.variation) != (12, 1) or h.qualifier not in (o.Q_INDEX_8, o.Q_INDEX_16)
                              for h in headers):
            raise o.ParseError("controls are g12v1 with qualifier 17 or 28")
        now = time.monotonic()
        statuses: list[list[int]] = []
        first = True
        for h in headers:
            row = []
            for index, crob in h.objects:
                row.append(self._check_crob(index, crob) if first else o.ST_TOO_MANY_OBJS)
                first = False
            statuses.append(row)
        if fc == o.SELECT:
            self._select = (seq, body, now) if all(s == o.ST_SUCCESS for r in statuses for s in r) else None
        elif fc == o.OPERATE:
            sel = self._select
            self._select = None
            if sel is None or sel[1] != body or sel[0] != (seq - 1) & 0x0F or now - sel[2] > \
                    self.settings.select_timeout:
                statuses = [[o.ST_NO_SELECT if s == o.ST_SUCCESS else s for s in r] for r in statuses]
        if fc != o.SELECT:
            for h, row in zip(headers, statuses):
                for k, (index, crob) in enumerate(h.objects):
                    if row[k] == o.ST_SUCCESS and crob[1] > 0:
                        row[k] = await self._operate(index)
        self._echo(headers, statuses, body, w)
        return 0

    @staticmethod
    def _echo(headers: list[o.Header], statuses: list[list[int]], body: bytes, w: ResponseWriter) -> None:
        """The response to a control request: the request's objects, each with its status."""
        pos = 0
        for h, row in zip(headers, statuses):
            width = 1 if h.qualifier == o.Q_INDEX_8 else 2
            out = bytearray(body[pos:pos + 3 + width])
            pos += 3 + width
            for k, (index, crob) in enumerate(h.objects):
                out += body[pos:pos + width + o.CROB_SIZE - 1] + bytes((row[k],))
                pos += width + o.CROB_SIZE
            w.raw(bytes(out))

    def _check_crob(self, index: int, crob: bytes) -> int:
        code = crob[0]
        command = self.meter.control_index(index)
        if command is None:
            return o.ST_NOT_SUPPORTED
        if code & 0x0F not in o.CROB_RUNS or code >> 6 == 2 or code & 0x30:
            return o.ST_NOT_SUPPORTED           # only pulse on or latch on, not trip, no queue or clear
        refusal = self.meter.refusal(command)
        if refusal:
            self.counters["refused"] += 1
            log.info("dnp3 %s: control %d (%s) refused: %s", self.label, index, command, refusal)
            return o.ST_NOT_AUTHORIZED
        return o.ST_SUCCESS

    async def _operate(self, index: int) -> int:
        command = self.meter.control_index(index)
        assert command is not None
        try:
            await self.meter.run(command, {})
        except PermissionError as exc:
            log.info("dnp3 %s: %s refused: %s", self.label, command, exc)
            return o.ST_NOT_AUTHORIZED
        except Exception as exc:  # noqa: BLE001 - a failed command is a status, never a dead session
            log.warning("dnp3 %s: %s failed: %s", self.label, command, exc)
            return o.ST_HARDWARE_ERROR
        self.counters["controls"] += 1
        return o.ST_SUCCESS

    async def _freeze(self, fc: int, headers: list[o.Header]) -> int:
        if not headers or any(h.group != 20 or h.variation not in (0, 1, 2, 5, 6) for h in headers):
            return o.IIN_OBJECT_UNKNOWN
        names = FREEZE_COMMANDS[fc]
        for name in names:
            refusal = self.meter.refusal(name)
            if refusal:
                self.counters["refused"] += 1
                log.info("dnp3 %s: freeze refused: %s", self.label, refusal)
                return o.IIN_PARAMETER_ERROR
        for name in names:
            try:
                await self.meter.run(name, {})
            except Exception as exc:  # noqa: BLE001 - reported to the master, never a dead session
                log.info("dnp3 %s: %s did not run: %s", self.label, name, exc)
                return o.IIN_PARAMETER_ERROR
        self.counters["controls"] += 1
        return 0

    def _unsol_classes(self, fc: int, headers: list[o.Header]) -> int:
        classes = set()
        for h in headers:
            if h.group != 60 or h.variation not in (2, 3, 4) or not h.all:
                return o.IIN_PARAMETER_ERROR
            classes.add(h.variation - 1)
        if not self.settings.unsolicited:
            return o.IIN_NO_FUNC
        allowed = classes & set(self.settings.unsolicited_classes)
        if fc == o.ENABLE_UNSOLICITED:
            self.unsol_enabled |= allowed
            self._wake.set()
        else:
            self.unsol_enabled -= classes
        return 0 if allowed == classes else o.IIN_PARAMETER_ERROR
