"""The SNMP agent: one UDP socket, read-only, SNMPv2c with the community and SNMPv3 with USM users (authPriv).

Every datagram is hostile until proven otherwise: larger than ``MAX_REQUEST`` or not strict BER, it is counted
and dropped; each source address is held to ``[snmp] rate``/``burst`` messages (a message that fails the
community or authentication costs ``AUTH_FAILURE_COST``), so neither a flood nor a password guesser from one
address takes the agent from the others, and an answer (GetBulk can be many times its request) never goes
out more than that to an address anyone can forge. Answers are at most ``MAX_RESPONSE`` bytes (no IP
fragments), GetBulk at most ``MAX_REPETITIONS`` rows. The agent keeps no state per manager beyond the rate
table, whose size is bounded. v3 refusals are counted in the USM statistics and reported as RFC 3414 says.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import Any, Callable

from firmware.comms.snmp import ber, mib
from firmware.comms.snmp import pdu as P
from firmware.comms.snmp.ber import BerError, Oid
from firmware.comms.snmp.usm import UserKeys, in_time_window
from firmware.web.limits import RateLimiter

log = logging.getLogger("comms.snmp")

MAX_REQUEST = 4096                 # bytes; a manager's requests are far smaller
MAX_RESPONSE = 1472                # bytes: one Ethernet frame's UDP payload
MAX_REPETITIONS = 64
AUTH_FAILURE_COST = 20.0           # rate-limit tokens a wrong community or key costs its address
V3_OVERHEAD = 160                  # bytes of a v3 answer around its PDU (header, USM block, scoped PDU)
V2C_OVERHEAD = 40


class Agent(asyncio.DatagramProtocol):
    def __init__(self, tree: mib.Tree, counters: dict[str, int], engine_id: bytes, boots: int,
                 community: bytes | None, users: dict[bytes, UserKeys], limiter: RateLimiter,
                 refresh: Callable[[], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.tree = tree
        self.counters = counters
        self.engine_id = engine_id
        self.boots = boots
        self.community = community
        self.users = users
        self.limiter = limiter
        self.refresh = refresh
        self.clock = clock
        self.started = clock()
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = {"answered": 0, "rate_dropped": 0, "oversize": 0, "faults": 0}
        # notifications' answers (Response to an inform, Report during discovery) arrive on this socket
        self.notifier_input: Callable[[bytes, Any, Any], bool] | None = None

    # ------------------------------------------------------------------ plumbing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def engine_time(self) -> int:
        return int(self.clock() - self.started)

    def uptime_ticks(self) -> int:
        return int((self.clock() - self.started) * 100) & 0xFFFFFFFF

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        source = str(addr[0])
        if self.limiter.allow(source):
            self.stats["rate_dropped"] += 1
            return
        try:
            answer = self.handle(data, addr)
        except Exception:   # noqa: BLE001 - one message must never take the agent down; it is counted and logged
            self.stats["faults"] += 1
            if self.stats["faults"] <= 10:
                log.exception("snmp: message from %s not handled", source)
            return
        if answer is not None and self.transport is not None:
            self.stats["answered"] += 1
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("snmp: %s", exc)

    def _penalize(self, addr: Any) -> None:
        self.limiter.allow(str(addr[0]), AUTH_FAILURE_COST)

    # ------------------------------------------------------------------ messages

    def handle(self, data: bytes, addr: Any) -> bytes | None:
        self._count("snmpInPkts")
        if len(data) > MAX_REQUEST:
            self.stats["oversize"] += 1
            self._count("snmpInASNParseErrs")
            return None
        try:
            message, version = P.peek_version(data)
            if version == P.V2C:
                return self._v2c(P.decode_community(message, version), addr)
            if version == P.V3:
                return self._v3(P.decode_v3(message), data, addr)
        except BerError:
            self._count("snmpInASNParseErrs")
            return None
        self._count("snmpInBadVersions")
        return None

    def _v2c(self, msg: P.CommunityMessage, addr: Any) -> bytes | None:
        if self.community is None:
            self._count("snmpInBadVersions")
            return None
        if msg.pdu.tag in (P.RESPONSE, P.TRAP, P.REPORT):
            if self.notifier_input is not None and self.notifier_input(b"", msg, addr):
                return None
            self._count("snmpSilentDrops")
            return None
        if not hmac.compare_digest(msg.community, self.community):
            self._count("snmpInBadCommunityNames")
            self._penalize(addr)
            return None
        if msg.pdu.tag == P.INFORM:
            self._count("snmpInBadCommunityUses")
            return None
        answer = self.answer(msg.pdu, MAX_RESPONSE - V2C_OVERHEAD - len(msg.community))
        return P.encode_community(P.V2C, msg.community, answer)

    # ------------------------------------------------------------------ v3 (RFC 3412 7.2, RFC 3414 3.2)

    def _v3(self, m: P.V3Message, data: bytes, addr: Any) -> bytes | None:
        auth, priv, reportable = m.flags & P.FLAG_AUTH, m.flags & P.FLAG_PRIV, m.flags & P.FLAG_REPORTABLE
        if priv and not auth:
            self._count("snmpInvalidMsgs")
            return None
        if not reportable and self.notifier_input is not None and self.notifier_input(data, m, addr):
            return None
        usm = m.usm
        if usm.engine_id != self.engine_id:
            self._count("usmStatsUnknownEngineIDs")
            return self._report(m, "usmStatsUnknownEngineIDs") if reportable else None
        user = self.users.get(usm.user)
        if user is None:
            self._count("usmStatsUnknownUserNames")
            self._penalize(addr)
            return self._report(m, "usmStatsUnknownUserNames") if reportable else None
        if not (auth and priv):
            self._count("usmStatsUnsupportedSecLevels")
            return self._report(m, "usmStatsUnsupportedSecLevels") if reportable else None
        if not user.verify(data, m.auth_offset, usm.auth):
            self._count("usmStatsWrongDigests")
            self._penalize(addr)
            return self._report(m, "usmStatsWrongDigests") if reportable else None
        if not in_time_window(usm.boots, usm.time, self.boots, self.engine_time()):
            self._count("usmStatsNotInTimeWindows")
            return self._report(m, "usmStatsNotInTimeWindows", user) if reportable else None
        try:
            if m.data_tag != ber.OCTET_STRING:
                raise BerError("authPriv message with a plaintext scoped PDU")
            plain = user.decrypt(m.data, usm.boots, usm.time, usm.priv)
            context_engine, context, request = P.decode_scoped(_strip_padding(plain))
        except (BerError, ValueError):
            self._count("usmStatsDecryptionErrors")
            return self._report(m, "usmStatsDecryptionErrors") if reportable else None
        # one context, the default ("") of this engine (RFC 3411 3.3): anything else is not served
        refused = "snmpUnknownPDUHandlers" if context_engine not in (b"", self.engine_id) else \
            "snmpUnknownContexts" if context else None
        if refused is not None:
            self._count(refused)
            return self._report(m, refused, user, request.request_id, encrypt=True) if reportable else None
        if request.tag not in (P.GET, P.GET_NEXT, P.GET_BULK, P.SET):
            self._count("snmpUnknownPDUHandlers")
            return None
        budget = min(m.max_size, MAX_RESPONSE) - V3_OVERHEAD
        answer = self.answer(request, budget)
        return self._send_v3(m.msg_id, user, P.encode_scoped(self.engine_id, b"", answer), usm.user)

    def _send_v3(self, msg_id: int, user: UserKeys | None, scoped: bytes, user_name: bytes,
                 encrypt: bool = True) -> bytes:
        engine_time = self.engine_time()
        flags = (P.FLAG_AUTH | (P.FLAG_PRIV if encrypt else 0)) if user is not None else 0
        salt = b""
        if user is not None and encrypt:
            scoped, salt = user.encrypt(scoped, self.boots, engine_time)
        params = P.UsmParameters(self.engine_id, self.boots, engine_time, user_name,
                                 bytes(user.auth.mac_len) if user is not None else b"", salt)
        message, offset = P.encode_v3(msg_id, MAX_RESPONSE, flags, params, scoped, bool(salt))
        if user is None:
            return message
        mac = user.sign(message)
        return message[:offset] + mac + message[offset + len(mac):]

    def _report(self, m: P.V3Message, counter: str, user: UserKeys | None = None, request_id: int = 0,
                encrypt: bool = False) -> bytes:
        """A Report PDU with the counter that refused the message: noAuthNoPriv, or authenticated as ``user``
        (and encrypted with ``encrypt``)."""
        if m.data_tag == ber.SEQUENCE:
            with contextlib.suppress(BerError):
                request_id = P.decode_scoped(m.data)[2].request_id
        value = ber.encode_unsigned(self.counters[counter] & 0xFFFFFFFF, ber.COUNTER32)
        report = P.Pdu(P.REPORT, request_id, 0, 0, [(mib.COUNTERS[counter], value)])
        return self._send_v3(m.msg_id, user, P.encode_scoped(self.engine_id, b"", report), m.usm.user, encrypt)

    # ------------------------------------------------------------------ PDUs

    def answer(self, request: P.Pdu, budget: int) -> P.Pdu:
        self.refresh()
        tag = request.tag
        if tag == P.SET:
            status = P.NO_ACCESS if request.varbinds else P.NO_ERROR
            return P.Pdu(P.RESPONSE, request.request_id, status, 1 if request.varbinds else 0, request.varbinds)
        binds: list[tuple[Oid, bytes]] = []
        if tag == P.GET:
            for name, _ in request.varbinds:
                exception, value = self.tree.get(name)
                binds.append((name, value if not exception else bytes((exception, 0))))
        elif tag == P.GET_NEXT:
            binds = [self._next(name) for name, _ in request.varbinds]
        else:
            return self._bulk(request, budget)
        if sum(_bind_size(bind) for bind in binds) > budget:
            return P.Pdu(P.RESPONSE, request.request_id, P.TOO_BIG, 0, [])
        return P.Pdu(P.RESPONSE, request.request_id, 0, 0, binds)

    def _next(self, name: Oid) -> tuple[Oid, bytes]:
        found = self.tree.next(name)
        return found if found is not None else (name, bytes((ber.END_OF_MIB_VIEW, 0)))

    def _bulk(self, request: P.Pdu, budget: int) -> P.Pdu:
        names = [name for name, _ in request.varbinds]
        non_repeaters = min(max(request.error_status, 0), len(names))
        repetitions = min(max(request.error_index, 0), MAX_REPETITIONS)
        binds: list[tuple[Oid, bytes]] = []
        size = 0

        def add(bind: tuple[Oid, bytes]) -> bool:
            nonlocal size
            cost = _bind_size(bind)
            if size + cost > budget:
                return False
            binds.append(bind)
            size += cost
            return True

        for name in names[:non_repeaters]:
            if not add(self._next(name)):
                return P.Pdu(P.RESPONSE, request.request_id, P.TOO_BIG, 0, [])
        cursors = names[non_repeaters:]
        for _ in range(repetitions if cursors else 0):
            row = [self._next(name) for name in cursors]
            if not all(add(bind) for bind in row):
                break
            cursors = [name for name, _ in row]
            if all(value[0] == ber.END_OF_MIB_VIEW for _, value in row):
                break
        return P.Pdu(P.RESPONSE, request.request_id, 0, 0, binds)


def _bind_size(bind: tuple[Oid, bytes]) -> int:
    """Encoded size of one variable binding."""
    inner = len(ber.encode_oid(bind[0])) + len(bind[1])
    return inner + (2 if inner < 0x80 else 3 if inner < 0x100 else 4)


def _strip_padding(plain: bytes) -> bytes:
    """The scoped PDU's own TLV out of the decrypted octets (CFB adds none, other senders may pad)."""
    reader = ber.Reader(plain)
    reader.header()
    return plain[:reader.pos]
