"""Notifications: alarms and PQ events of the meter's event log sent to the configured managers as SNMPv2c or
SNMPv3 traps or informs, from the agent's own socket.

The event log is read after the last record sent (kept in ``data_dir/snmp/notify.json``, so a restart neither
repeats nor skips one); records of the alarm manager (pickup, dropout, acknowledgement) become meterAlarm, the
recorder's PQ events (dips, swells, interruptions, RVCs, transients, their starts) meterPqEvent. A trap is sent
once. An inform waits ``inform_timeout`` for the manager's Response and is sent again up to ``inform_retries``
times; at most ``MAX_PENDING`` wait at once (the oldest is given up). A v3 trap is signed and encrypted with
the user's keys localized to this engine, the authoritative one; a v3 inform's receiver is authoritative, so the
sender first learns its engine ID, boots and time (RFC 3414 4: a Report to an unauthenticated probe, and again
when a Report says the message was not in time) and localizes the keys to that engine.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from firmware import feeds
from firmware.comms.snmp import ber, mib
from firmware.comms.snmp import pdu as P
from firmware.comms.snmp.keystore import SUBDIR
from firmware.comms.snmp.usm import AES_KEY, AUTH_PROTOCOLS, UserKeys, localize, password_to_key
from firmware.storage.atomic import atomic_write

log = logging.getLogger("comms.snmp")

CURSOR_FILE = "notify.json"
POLL_INTERVAL_S = 1.0
FEED_BATCH = 100
MAX_PENDING = 64
ALARM_SOURCE, PQ_SOURCE = "alarms", "pq"          # event-log sources of the alarm manager and the recorder
NOT_NOTIFIED = frozenset({"capture_command"})     # a user's capture is not a PQ event
NOTIFICATIONS = {"meterAlarm": 1, "meterPqEvent": 2}
# meterEventObjects: what a notification carries (arc, descriptor, syntax, description)
EVENT_OBJECTS = (
    (1, "meterEventRecord", "Unsigned32", "Record id of the event in the meter's event log."),
    (2, "meterEventTime", "Unsigned32", "When it happened, seconds since 1970-01-01 UTC."),
    (3, "meterEventPriority", "Unsigned32", "Priority 0-255 (Info 1-63, Low 64-127, Medium 128-191, High 192-255)."),
    (4, "meterEventCause", "DisplayString", "What happened: alarm_pickup, alarm_dropout, alarm_ack, sag, "
                                            "sag_start, swell, interruption, rvc, transient ..."),
    (5, "meterEventEffect", "DisplayString", "The alarm's name, or what the PQ event did."),
)


def notification_oid(enterprise: ber.Oid, name: str) -> ber.Oid:
    return mib.module_oid(enterprise) + (2, 0, NOTIFICATIONS[name])


def event_object_oid(enterprise: ber.Oid, arc: int) -> ber.Oid:
    return mib.objects_root(enterprise) + (mib.EVENT_GROUP, arc)


@dataclass
class Destination:
    address: str
    port: int
    version: str
    kind: str
    community: bytes
    user: str
    keys: UserKeys | None = None            # v3 trap: localized to this engine; v3 inform: to the receiver's
    engine_id: bytes = b""                  # v3 inform: the receiver's engine, once learned
    boots: int = 0
    time_base: float = 0.0                  # receiver's time = now - time_base


@dataclass
class Pending:
    dest: Destination
    request_id: int
    msg_id: int
    varbinds: list[tuple[ber.Oid, bytes]]
    tries: int = 0
    due: float = 0.0
    waiting_discovery: bool = False
    handles: list[asyncio.TimerHandle] = field(default_factory=list)


class Notifier:
    def __init__(self, config: Any, data_dir: str | Path, enterprise: ber.Oid, engine_id: bytes, boots: int,
                 passphrases: Callable[[str], tuple[str, str]], community: bytes,
                 uptime: Callable[[], int], engine_time: Callable[[], int]) -> None:
        s = config["snmp"]
        self.s = s
        self.enterprise = enterprise
        self.engine_id = engine_id
        self.boots = boots
        self.uptime = uptime
        self.engine_time = engine_time
        self.passphrases = passphrases
        users = {u.name: u for u in s.user}
        self.destinations: list[Destination] = []
        for d in s.destination:
            dest = Destination(d.address, d.port, d.version, d.type, (d.community or "").encode() or community,
                               d.user)
            if d.version == "v3":
                if d.user not in users:
                    log.error("snmp: destination %s names no [[snmp.user]] %r; not sent to", d.address, d.user)
                    continue
                if d.type == "trap":
                    auth, priv = passphrases(d.user)
                    dest.keys = UserKeys.make(d.user, AUTH_PROTOCOLS[users[d.user].auth], auth, priv, engine_id)
            self.destinations.append(dest)
        self.users = users
        self.feed = feeds.event_log(data_dir)
        self.cursor_path = Path(data_dir) / SUBDIR / CURSOR_FILE
        self.cursor = self._load_cursor()
        self.pending: OrderedDict[int, Pending] = OrderedDict()     # by msgID (v3) or request-id (v2c)
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = {"sent": 0, "acknowledged": 0, "retries": 0, "given_up": 0}
        self._ku: dict[str, tuple[bytes, bytes]] = {}

    # ------------------------------------------------------------------ event log

    def _load_cursor(self) -> int:
        try:
            return int(json.loads(self.cursor_path.read_text())["after"])
        except (OSError, ValueError, KeyError, TypeError):
            newest = self.feed.read_range(limit=1, newest_first=True)
            return int(newest[0]["id"]) if newest else 0

    def _save_cursor(self) -> None:
        atomic_write(self.cursor_path, json.dumps({"after": self.cursor}).encode(), sync=False)

    def kind(self, record: dict[str, Any]) -> str | None:
        if int(record["priority"]) < self.s.notify_priority or record["cause"] in NOT_NOTIFIED:
            return None
        if record["source"] == ALARM_SOURCE and self.s.notify_alarms:
            return "meterAlarm"
        if record["source"] == PQ_SOURCE and self.s.notify_pq_events:
            return "meterPqEvent"
        return None

    def poll(self) -> int:
        """Send what the event log holds after the cursor; the number of notifications made."""
        made = 0
        records = self.feed.read(self.cursor, FEED_BATCH)
        for record in records:
            self.cursor = int(record["id"])
            name = self.kind(record)
            if name is not None and self.destinations:
                self.notify(name, record)
                made += 1
        if records:
            self._save_cursor()
        return made

    def varbinds(self, name: str, record: dict[str, Any]) -> list[tuple[ber.Oid, bytes]]:
        values = (ber.encode_unsigned(int(record["id"]) & 0xFFFFFFFF, ber.GAUGE32),
                  ber.encode_unsigned(int(record["ts"]), ber.GAUGE32),
                  ber.encode_unsigned(int(record["priority"]), ber.GAUGE32),
                  mib.text(str(record["cause"])), mib.text(str(record["effect"] or "")))
        return [(mib.SYS_UPTIME, ber.encode_unsigned(self.uptime(), ber.TIMETICKS)),
                (mib.SNMP_TRAP_OID, ber.encode_oid(notification_oid(self.enterprise, name)))] + \
            [(event_object_oid(self.enterprise, arc) + (0,), value)
             for (arc, *_), value in zip(EVENT_OBJECTS, values)]

    # ------------------------------------------------------------------ sending

    def notify(self, name: str, record: dict[str, Any]) -> None:
        binds = self.varbinds(name, record)
        for dest in self.destinations:
            if dest.kind == "trap":
                self._send(dest, self._message(dest, P.TRAP, random.getrandbits(31), random.getrandbits(31), binds))
                continue
            pending = Pending(dest, random.getrandbits(31), random.getrandbits(31), binds)
            self._track(pending)
            if dest.version == "v3" and not dest.engine_id:
                self._discover(pending)
            else:
                self._attempt(pending)

    def _track(self, pending: Pending) -> None:
        while len(self.pending) >= MAX_PENDING:
            _, oldest = self.pending.popitem(last=False)
            self._cancel(oldest)
            self.stats["given_up"] += 1
        self.pending[pending.msg_id if pending.dest.version == "v3" else pending.request_id] = pending

    def _cancel(self, pending: Pending) -> None:
        for handle in pending.handles:
            handle.cancel()
        pending.handles.clear()

    def _send(self, dest: Destination, message: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(message, (dest.address, dest.port))
            self.stats["sent"] += 1

    def _message(self, dest: Destination, tag: int, request_id: int, msg_id: int,
                 binds: list[tuple[ber.Oid, bytes]]) -> bytes:
        pdu = P.Pdu(tag, request_id, 0, 0, binds)
        if dest.version == "v2c":
            return P.encode_community(P.V2C, dest.community, pdu)
        keys = dest.keys
        assert keys is not None
        if tag == P.TRAP:
            engine_id, boots, engine_time = self.engine_id, self.boots, self.engine_time()
        else:
            engine_id, boots, engine_time = dest.engine_id, dest.boots, int(time.monotonic() - dest.time_base)
        scoped, salt = keys.encrypt(P.encode_scoped(engine_id, b"", pdu), boots, engine_time)
        flags = P.FLAG_AUTH | P.FLAG_PRIV | (P.FLAG_REPORTABLE if tag == P.INFORM else 0)
        params = P.UsmParameters(engine_id, boots, engine_time, keys.name, bytes(keys.auth.mac_len), salt)
        message, offset = P.encode_v3(msg_id, 1472, flags, params, scoped, True)
        mac = keys.sign(message)
        return message[:offset] + mac + message[offset + len(mac):]

    def _attempt(self, pending: Pending) -> None:
        key = pending.msg_id if pending.dest.version == "v3" else pending.request_id
        if key not in self.pending:
            return
        if pending.tries > self.s.inform_retries:
            del self.pending[key]
            self.stats["given_up"] += 1
            log.info("snmp: inform to %s not acknowledged after %d tries", pending.dest.address, pending.tries)
            return
        if pending.tries:
            self.stats["retries"] += 1
        pending.tries += 1
        self._send(pending.dest, self._message(pending.dest, P.INFORM, pending.request_id, pending.msg_id,
                                               pending.varbinds))
        loop = asyncio.get_running_loop()
        pending.handles = [loop.call_later(self.s.inform_timeout, self._attempt, pending)]

    def _discover(self, pending: Pending) -> None:
        """An unauthenticated, reportable probe: the receiver's Report names its engine, boots and time."""
        pending.waiting_discovery = True
        probe = P.encode_scoped(b"", b"", P.Pdu(P.GET, pending.request_id, 0, 0, []))
        message, _ = P.encode_v3(pending.msg_id, 1472, P.FLAG_REPORTABLE,
                                 P.UsmParameters(b"", 0, 0, b"", b"", b""), probe, False)
        pending.tries += 1
        self._send(pending.dest, message)
        loop = asyncio.get_running_loop()
        pending.handles = [loop.call_later(self.s.inform_timeout, self._retry_discovery, pending)]

    def _retry_discovery(self, pending: Pending) -> None:
        if pending.msg_id not in self.pending:
            return
        if pending.tries > self.s.inform_retries:
            del self.pending[pending.msg_id]
            self.stats["given_up"] += 1
            return
        self.stats["retries"] += 1
        self._discover(pending)

    # ------------------------------------------------------------------ answers (from the agent's socket)

    def on_message(self, data: bytes, message: Any, addr: Any) -> bool:
        """True when ``message`` answered one of the pending informs (the agent then does nothing more)."""
        if isinstance(message, P.CommunityMessage):
            return self._v2c_answer(message, addr)
        pending = self.pending.get(message.msg_id)
        if pending is None or pending.dest.version != "v3" or not self._from(pending, addr):
            return False
        if pending.waiting_discovery:
            self._discovered(pending, message)
            return True
        answer = self._v3_answer(pending, data, message)
        if answer is None:
            return True                         # not from the receiver: ignored, the retries go on
        if answer.tag == P.REPORT:              # not in time: take the receiver's boots and time, send again
            pending.dest.boots, pending.dest.time_base = message.usm.boots, time.monotonic() - message.usm.time
            self._cancel(pending)
            self._attempt(pending)
        elif answer.tag == P.RESPONSE:
            self._done(message.msg_id, pending)
        return True

    def _v2c_answer(self, message: P.CommunityMessage, addr: Any) -> bool:
        pending = self.pending.get(message.pdu.request_id)
        if pending is None or pending.dest.version != "v2c" or not self._from(pending, addr) or \
                not hmac.compare_digest(message.community, pending.dest.community):
            return False
        if message.pdu.tag == P.RESPONSE:
            self._done(message.pdu.request_id, pending)
        return True

    def _discovered(self, pending: Pending, message: P.V3Message) -> None:
        usm = message.usm
        if not usm.engine_id or message.flags & P.FLAG_AUTH:
            return
        self._learn(pending.dest, usm.engine_id, usm.boots, usm.time)
        pending.waiting_discovery = False
        self._cancel(pending)
        pending.tries = 0
        self._attempt(pending)

    def _v3_answer(self, pending: Pending, data: bytes, message: P.V3Message) -> P.Pdu | None:
        """The PDU of an authenticated answer from the receiver's engine, else None."""
        keys, usm = pending.dest.keys, message.usm
        if keys is None or usm.engine_id != pending.dest.engine_id or not message.flags & P.FLAG_AUTH or \
                not keys.verify(data, message.auth_offset, usm.auth):
            return None
        try:
            if message.flags & P.FLAG_PRIV:
                plain = keys.decrypt(message.data, usm.boots, usm.time, usm.priv)
                return P.decode_scoped(plain[:ber.Reader(plain).header()[2]])[2]
            return P.decode_scoped(message.data)[2]
        except (ber.BerError, ValueError):
            return None

    def _from(self, pending: Pending, addr: Any) -> bool:
        return str(addr[0]) == pending.dest.address and int(addr[1]) == pending.dest.port

    def _learn(self, dest: Destination, engine_id: bytes, boots: int, engine_time: int) -> None:
        user = self.users[dest.user]
        protocol = AUTH_PROTOCOLS[user.auth]
        if dest.user not in self._ku:
            auth, priv = self.passphrases(dest.user)
            self._ku[dest.user] = (password_to_key(auth.encode(), protocol), password_to_key(priv.encode(), protocol))
        ku_auth, ku_priv = self._ku[dest.user]
        dest.keys = UserKeys(dest.user.encode(), protocol, localize(ku_auth, engine_id, protocol),
                             localize(ku_priv, engine_id, protocol)[:AES_KEY])
        dest.engine_id, dest.boots, dest.time_base = engine_id, boots, time.monotonic() - engine_time

    def _done(self, key: int, pending: Pending) -> None:
        self._cancel(pending)
        self.pending.pop(key, None)
        self.stats["acknowledged"] += 1

    async def run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:   # noqa: BLE001 - a fault reading the log must not end notifications for good
                log.exception("snmp: event log not read")
            await asyncio.sleep(POLL_INTERVAL_S)

    def close(self) -> None:
        for pending in self.pending.values():
            self._cancel(pending)
        self.pending.clear()
        self.feed.close()
