"""One association's xDLMS services (IEC 62056-5-3 §6): AARQ/RLRQ, GET (normal, next block, with list), SET,
ACTION, and general-glo-ciphering once an HLS-GMAC association is established.

``Session.handle`` takes one APDU and returns the reply APDU (b"" for none). Malformed APDUs are answered with
an exception response (or a refused association), never an exception out of ``handle``; a ciphered APDU that
fails its checks ends the association.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from firmware.comms.dlms import acse, axdr, security
from firmware.comms.dlms.axdr import DecodeError, Reader, Typed
from firmware.comms.dlms.classes import read_plain, run_script, write_clock
from firmware.comms.dlms.keys import InvocationCounter, Keys
from firmware.comms.dlms.model import MANAGEMENT_SAP, PUBLIC_SAP, SERVER_SAP
from firmware.comms.dlms.objects import (
    ACTION_DENIED,
    ACTION_OTHER,
    ASSOCIATION_LN,
    CLOCK,
    CURRENT_ASSOCIATION_LN,
    HARDWARE_FAULT,
    MANAGEMENT_ASSOCIATION_LN,
    NO_LONG_GET,
    PROFILE_GENERIC,
    PUBLIC_ASSOCIATION_LN,
    READ_WRITE_DENIED,
    SCRIPT_TABLE,
    UNDEFINED_OBJECT,
    AccessError,
    Context,
    CosemObject,
    ln_bytes,
)
from firmware.comms.dlms.profiles import Profile

log = logging.getLogger("comms.dlms")

GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, ACTION_RESPONSE, EXCEPTION_RESPONSE = 0xC4, 0xC5, 0xC7, 0xD8
NORMAL, NEXT, WITH_LIST = 1, 2, 3
SERVER_MAX_PDU = 1024
MIN_PDU = 64
MAX_LIST = 32                      # attributes one GET-with-list may name
# exception-response: state-error service-not-allowed / service-unknown; service-error operation-not-possible
STATE_NOT_ALLOWED, STATE_UNKNOWN, SERVICE_NOT_POSSIBLE, SERVICE_NOT_SUPPORTED = 1, 2, 1, 2
NO_ACCESS, READ, WRITE = 0, 1, 2


@dataclass
class Server:
    """What every session of the server shares: the objects, the profiles, the keys and the counter."""
    objects: dict[tuple[int, bytes], CosemObject]
    profiles: dict[str, Profile]
    ctx: Context
    keys: Keys
    counter: InvocationCounter
    lls: bool
    demand_period_s: Callable[[], int]
    refused: Callable[[str, str], None] = lambda peer, why: None    # a failed authentication: the security audit


class Session:
    def __init__(self, server: Server, client_sap: int, server_sap: int = SERVER_SAP, peer: str = "") -> None:
        self.server = server
        self.client_sap = client_sap
        self.server_sap = server_sap
        self.peer = peer
        self.reset()

    def reset(self) -> None:
        self.association: str = ""             # "", "public" or "management"
        self.pending_hls = False
        self.ciphered = False
        self.mechanism = acse.MECH_NONE
        self.client_title = b""
        self.client_ic = -1
        self.ctos = b""
        self.stoc = b""
        self.max_pdu = SERVER_MAX_PDU
        self.conformance = 0
        self.blocks: list[bytes] = []
        self.block_number = 0
        self.block_invoke = 0

    # ------------------------------------------------------------------ entry point

    def handle(self, apdu: bytes) -> bytes:
        if not apdu:
            return b""
        tag = apdu[0]
        try:
            if tag == acse.AARQ:
                return self._aarq(apdu)
            if tag == acse.RLRQ:
                self.reset()
                return acse.rlre()
            if not self.association:
                return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)
            if tag == security.GENERAL_GLO:
                return self._ciphered(apdu)
            if self.ciphered:
                # a ciphered association takes only ciphered requests
                return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)
            return self._xdlms(apdu)
        except security.SecurityError as exc:
            log.info("dlms: client SAP %d: %s; association ended", self.client_sap, exc)
            self.reset()
            return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)
        except DecodeError:
            return _exception(STATE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        except Exception:  # noqa: BLE001 - whatever an APDU causes, the server answers and goes on serving
            log.exception("dlms: client SAP %d: APDU %s", self.client_sap, apdu[:64].hex())
            self.reset()
            return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)

    # ------------------------------------------------------------------ association

    def _refuse(self, context: int, diagnostic: int) -> bytes:
        self.reset()
        return acse.aare(context or acse.CONTEXT_LN, False, diagnostic)

    def _aarq(self, apdu: bytes) -> bytes:
        self.reset()
        try:
            aarq = acse.parse_aarq(apdu)
        except DecodeError:
            return self._refuse(0, acse.DIAG_NO_REASON)
        if aarq.context not in (acse.CONTEXT_LN, acse.CONTEXT_LN_CIPHERED):
            return self._refuse(acse.CONTEXT_LN, acse.DIAG_CONTEXT)
        if self.server_sap != SERVER_SAP:
            return self._refuse(aarq.context, acse.DIAG_NO_REASON)
        keys = self.server.keys
        if self.client_sap == PUBLIC_SAP:
            if aarq.mechanism != acse.MECH_NONE or aarq.context != acse.CONTEXT_LN:
                return self._refuse(aarq.context, acse.DIAG_MECH_NOT_RECOGNISED)
            return self._accept(aarq, "public", aarq.user_information, acse.DIAG_NONE)
        if self.client_sap != MANAGEMENT_SAP:
            return self._refuse(aarq.context, acse.DIAG_NO_REASON)
        if aarq.mechanism == acse.MECH_LLS and self.server.lls and aarq.context == acse.CONTEXT_LN:
            if not secrets.compare_digest(aarq.auth_value, keys.lls_password):
                self.server.refused(self.peer, "LLS password wrong")
                return self._refuse(aarq.context, acse.DIAG_AUTH_FAILURE)
            return self._accept(aarq, "management", aarq.user_information, acse.DIAG_NONE)
        if aarq.mechanism != acse.MECH_HLS_GMAC:
            return self._refuse(aarq.context, acse.DIAG_MECH_NOT_RECOGNISED)
        if aarq.context != acse.CONTEXT_LN_CIPHERED or len(aarq.calling_title) != 8 \
                or not 8 <= len(aarq.auth_value) <= 64:
            return self._refuse(aarq.context, acse.DIAG_AUTH_FAILURE)
        try:
            sc, ic, sealed = security.parse_glo_initiate(aarq.user_information)
            initiate = security.open_sealed(sc, aarq.calling_title, ic, keys.ek, keys.ak, sealed)
        except security.SecurityError:
            self.server.refused(self.peer, "HLS-GMAC association refused: the keys do not verify")
            return self._refuse(aarq.context, acse.DIAG_AUTH_FAILURE)
        self.client_title, self.client_ic, self.ctos = aarq.calling_title, ic, aarq.auth_value
        self.stoc = secrets.token_bytes(32)
        return self._accept(aarq, "management", initiate, acse.DIAG_AUTH_REQUIRED, ciphered=True)

    def _accept(self, aarq: acse.Aarq, association: str, initiate_raw: bytes, diagnostic: int,
                ciphered: bool = False) -> bytes:
        try:
            initiate = acse.parse_initiate(initiate_raw)
        except DecodeError:
            self.reset()
            return acse.aare(aarq.context, False, acse.DIAG_NO_REASON, user_information=acse.initiate_error())
        conformance = initiate.conformance & acse.OFFERED
        if not conformance & acse.CONF_GET or initiate.max_pdu and initiate.max_pdu < MIN_PDU \
                or initiate.dedicated_key:
            self.reset()
            return acse.aare(aarq.context, False, acse.DIAG_NO_REASON, user_information=acse.initiate_error())
        if ciphered:
            conformance |= initiate.conformance & acse.CONF_GENERAL_PROTECTION
        self.association, self.ciphered, self.mechanism = association, ciphered, aarq.mechanism
        self.pending_hls = ciphered
        self.conformance = conformance
        self.max_pdu = min(SERVER_MAX_PDU, initiate.max_pdu or 0xFFFF)
        response = acse.initiate_response(conformance, SERVER_MAX_PDU)
        keys = self.server.keys
        if ciphered:
            response = security.glo_initiate_response(keys.system_title, self.server.counter.next(), keys.ek,
                                                      keys.ak, response)
        return acse.aare(aarq.context, True, diagnostic, aarq.mechanism,
                         keys.system_title if ciphered else b"", self.stoc, response)

    def _ciphered(self, apdu: bytes) -> bytes:
        if not self.ciphered:
            return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)
        keys = self.server.keys
        title, sc, ic, sealed = security.parse_general_glo(apdu)
        if title != self.client_title:
            raise security.SecurityError("system title differs from the association's")
        if ic <= self.client_ic:
            raise security.SecurityError("invocation counter replayed")
        plain = security.open_sealed(sc, title, ic, keys.ek, keys.ak, sealed)
        self.client_ic = ic
        reply = self._xdlms(plain)
        if not reply:
            return b""
        return security.general_glo(keys.system_title, self.server.counter.next(), keys.ek, keys.ak, reply)

    # ------------------------------------------------------------------ xDLMS

    def _xdlms(self, apdu: bytes) -> bytes:
        if len(apdu) < 3:
            return _exception(STATE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        tag, kind, invoke = apdu[0], apdu[1], apdu[2]
        r = Reader(apdu, 3)
        if self.pending_hls and not (tag == ACTION_REQUEST and kind == NORMAL):
            return _exception(STATE_NOT_ALLOWED, SERVICE_NOT_POSSIBLE)
        if tag == GET_REQUEST:
            if kind == NORMAL:
                return self._get_normal(invoke, r)
            if kind == NEXT:
                return self._get_next(invoke, r)
            if kind == WITH_LIST:
                return self._get_list(invoke, r)
        elif tag == SET_REQUEST and kind == NORMAL:
            return self._set(invoke, r)
        elif tag == ACTION_REQUEST and kind == NORMAL:
            return self._action(invoke, r)
        return _exception(STATE_UNKNOWN, SERVICE_NOT_SUPPORTED)

    def _descriptor(self, r: Reader) -> tuple[int, bytes, int]:
        class_id = int.from_bytes(r.take(2), "big")
        ln = r.take(6)
        member = int.from_bytes(r.take(1), "big", signed=True)
        return class_id, ln, member

    def _selection(self, r: Reader) -> tuple[int, Typed | None]:
        if r.byte() == 0:
            return 0, None
        selector = r.byte()
        return selector, axdr.decode(r)

    def _find(self, class_id: int, ln: bytes) -> CosemObject:
        if ln == ln_bytes(CURRENT_ASSOCIATION_LN) and class_id == ASSOCIATION_LN:
            ln = ln_bytes(PUBLIC_ASSOCIATION_LN if self.association == "public" else MANAGEMENT_ASSOCIATION_LN)
        obj = self.server.objects.get((class_id, ln))
        if obj is None or not self.visible(obj):
            raise AccessError(UNDEFINED_OBJECT)
        return obj

    def visible(self, obj: CosemObject) -> bool:
        return self.association == "management" or obj.public

    def attribute_access(self, obj: CosemObject, attr: int) -> int:
        if self.association == "management" and attr in obj.writable:
            return READ | WRITE
        if obj.class_id == ASSOCIATION_LN and attr == 7:
            return NO_ACCESS
        return READ

    def method_access(self, obj: CosemObject, method: int) -> bool:
        if obj.class_id == ASSOCIATION_LN:
            return method == 1 and self.mechanism == acse.MECH_HLS_GMAC
        return self.association == "management" and obj.class_id == SCRIPT_TABLE and method == 1

    def read(self, class_id: int, ln: bytes, attr: int, selector: int, params: Typed | None) -> Typed:
        obj = self._find(class_id, ln)
        if attr == 1:
            return Typed(axdr.OCTET_STRING, obj.ln_raw)
        if attr < 1 or not self.attribute_access(obj, attr) & READ:
            raise AccessError(READ_WRITE_DENIED)
        if obj.class_id == PROFILE_GENERIC:
            profile = self.server.profiles.get(obj.ln)
            if profile is None:
                raise AccessError(UNDEFINED_OBJECT)
            return profile.attribute(attr, selector, params)
        if selector:
            raise AccessError(READ_WRITE_DENIED)
        if obj.class_id == ASSOCIATION_LN:
            from firmware.comms.dlms.association import read_association
            return read_association(self, obj, attr)
        return read_plain(obj, attr, self.server.ctx, self.server.demand_period_s())

    def _result(self, class_id: int, ln: bytes, attr: int, selector: int, params: Typed | None) -> bytes:
        """0x00 + data, or 0x01 + data-access-result."""
        try:
            return b"\x00" + axdr.encode(self.read(class_id, ln, attr, selector, params))
        except AccessError as exc:
            return bytes([1, exc.code & 0xFF])
        except Exception:  # noqa: BLE001 - a failing read answers hardware-fault, the session goes on
            log.exception("dlms: reading %s/%d failed", ".".join(map(str, ln)), attr)
            return bytes([1, HARDWARE_FAULT])

    def _get_normal(self, invoke: int, r: Reader) -> bytes:
        class_id, ln, attr = self._descriptor(r)
        selector, params = self._selection(r)
        result = self._result(class_id, ln, attr, selector, params)
        whole = bytes([GET_RESPONSE, NORMAL, invoke]) + result
        if len(whole) <= self._room():
            return whole
        data = result[1:]
        size = self._room() - 16
        self.blocks = [data[i:i + size] for i in range(0, len(data), size)]
        self.block_number = 0
        self.block_invoke = invoke
        return self._next_block()

    def _room(self) -> int:
        """Largest plain APDU that, ciphered if it must be, fits the client's PDU size."""
        return self.max_pdu - (40 if self.ciphered else 0)

    def _next_block(self) -> bytes:
        block = self.blocks.pop(0)
        self.block_number += 1
        last = not self.blocks
        return (bytes([GET_RESPONSE, 2, self.block_invoke, 1 if last else 0]) + self.block_number.to_bytes(4, "big")
                + b"\x00" + axdr.length(len(block)) + block)

    def _get_next(self, invoke: int, r: Reader) -> bytes:
        number = int.from_bytes(r.take(4), "big")
        if not self.blocks or number != self.block_number:
            self.blocks = []
            return bytes([GET_RESPONSE, 2, invoke, 1]) + number.to_bytes(4, "big") + bytes([1, NO_LONG_GET])
        return self._next_block()

    def _get_list(self, invoke: int, r: Reader) -> bytes:
        n = r.length()
        if not 1 <= n <= MAX_LIST:
            return _exception(STATE_UNKNOWN, SERVICE_NOT_SUPPORTED)
        items = []
        for _ in range(n):
            class_id, ln, attr = self._descriptor(r)
            selector, params = self._selection(r)
            items.append((class_id, ln, attr, selector, params))
        out = bytes([GET_RESPONSE, WITH_LIST, invoke]) + axdr.length(n) + b"".join(
            self._result(*item) for item in items)
        if len(out) > self._room():
            return bytes([GET_RESPONSE, WITH_LIST, invoke]) + axdr.length(n) + bytes([1, 250]) * n
        return out

    def _set(self, invoke: int, r: Reader) -> bytes:
        class_id, ln, attr = self._descriptor(r)
        selector, _ = self._selection(r)
        value = axdr.decode(r)
        code = 0
        try:
            obj = self._find(class_id, ln)
            if selector or not self.attribute_access(obj, attr) & WRITE or obj.class_id != CLOCK:
                raise AccessError(READ_WRITE_DENIED)
            write_clock(attr, value, self.server.ctx)
        except AccessError as exc:
            code = exc.code
        except Exception:  # noqa: BLE001 - a failing write answers hardware-fault, the session goes on
            log.exception("dlms: set failed")
            code = HARDWARE_FAULT
        return bytes([SET_RESPONSE, NORMAL, invoke, code & 0xFF])

    def _action(self, invoke: int, r: Reader) -> bytes:
        class_id = int.from_bytes(r.take(2), "big")
        ln = r.take(6)
        method = r.byte()
        params = axdr.decode(r) if r.byte() else None
        try:
            obj = self._find(class_id, ln)
            if not self.method_access(obj, method):
                raise AccessError(ACTION_DENIED)
            if obj.class_id == ASSOCIATION_LN:
                reply = self._hls_reply(params)
                return bytes([ACTION_RESPONSE, NORMAL, invoke, 0, 1, 0]) + axdr.encode(reply)
            if self.pending_hls:
                raise AccessError(ACTION_DENIED)
            run_script(obj, method, params, self.server.ctx)
            code = 0
        except AccessError as exc:
            code = exc.code
        except Exception as exc:  # noqa: BLE001 - a failing command answers other-reason, the session goes on
            log.warning("dlms: action failed: %s", exc)
            code = ACTION_OTHER
        return bytes([ACTION_RESPONSE, NORMAL, invoke, code & 0xFF, 0])

    def _hls_reply(self, params: Typed | None) -> Typed:
        if not self.pending_hls or params is None or params.tag != axdr.OCTET_STRING:
            raise AccessError(ACTION_DENIED)
        keys = self.server.keys
        try:
            ic = security.hls_check(bytes(params.value), self.client_title, keys.ek, keys.ak, self.stoc)
        except security.SecurityError:
            self.server.refused(self.peer, "HLS-GMAC challenge reply does not verify")
            self.reset()
            raise AccessError(ACTION_DENIED) from None
        self.client_ic = max(self.client_ic, ic)
        self.pending_hls = False
        return Typed(axdr.OCTET_STRING, security.hls_reply(keys.system_title, self.server.counter.next(), keys.ek,
                                                           keys.ak, self.ctos))

    def status(self) -> dict[str, Any]:
        return {"association": self.association, "ciphered": self.ciphered}


def _exception(state: int, service: int) -> bytes:
    return bytes([EXCEPTION_RESPONSE, state, service])
