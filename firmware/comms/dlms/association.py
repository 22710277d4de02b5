"""Association LN (class 15, version 1) attributes: the object list a client sees with its access rights."""
from __future__ import annotations

from typing import Any, Protocol

from firmware.comms.dlms import acse, axdr
from firmware.comms.dlms.axdr import Typed
from firmware.comms.dlms.model import MANAGEMENT_SAP, PUBLIC_SAP, SERVER_SAP
from firmware.comms.dlms.objects import (
    ATTRIBUTE_COUNTS,
    PUBLIC_ASSOCIATION_LN,
    UNAVAILABLE,
    AccessError,
    CosemObject,
)



class Session(Protocol):
    """What the attributes read of the session asking (``firmware.comms.dlms.session.Session``)."""

    server: Any
    association: str
    conformance: int
    max_pdu: int
    pending_hls: bool

    def attribute_access(self, obj: CosemObject, attr: int) -> int: ...
    def method_access(self, obj: CosemObject, method: int) -> Any: ...
    def visible(self, obj: CosemObject) -> bool: ...

METHOD_COUNTS = {15: 1, 9: 1}
NON_ASSOCIATED, ASSOCIATION_PENDING, ASSOCIATED = 0, 1, 2


def _rights(session: Session, obj: CosemObject) -> Typed:
    attrs = [Typed(axdr.STRUCTURE, [Typed(axdr.INTEGER, a), Typed(axdr.ENUM, session.attribute_access(obj, a)),
                                    Typed(axdr.NULL, None)])
             for a in range(1, ATTRIBUTE_COUNTS[obj.class_id] + 1)]
    methods = [Typed(axdr.STRUCTURE, [Typed(axdr.INTEGER, m), Typed(axdr.ENUM, int(session.method_access(obj, m)))])
               for m in range(1, METHOD_COUNTS.get(obj.class_id, 0) + 1)]
    return Typed(axdr.STRUCTURE, [Typed(axdr.ARRAY, attrs), Typed(axdr.ARRAY, methods)])


def object_list(session: Session) -> Typed:
    items = []
    for obj in session.server.objects.values():
        if session.visible(obj):
            items.append(Typed(axdr.STRUCTURE, [Typed(axdr.LONG_UNSIGNED, obj.class_id),
                                                Typed(axdr.UNSIGNED, obj.version),
                                                Typed(axdr.OCTET_STRING, obj.ln_raw), _rights(session, obj)]))
    return Typed(axdr.ARRAY, items)


def read_association(session: Session, obj: CosemObject, attr: int) -> Typed:
    public = obj.ln == PUBLIC_ASSOCIATION_LN
    current = public == (session.association == "public")
    if attr == 2:
        return object_list(session)
    if attr == 3:
        return Typed(axdr.STRUCTURE, [Typed(axdr.INTEGER, PUBLIC_SAP if public else MANAGEMENT_SAP),
                                      Typed(axdr.LONG_UNSIGNED, SERVER_SAP)])
    if attr == 4:
        context = acse.CONTEXT_LN if public else acse.CONTEXT_LN_CIPHERED
        return Typed(axdr.OCTET_STRING, bytes([0x60, 0x85, 0x74, 0x05, 0x08, 0x01, context]))
    if attr == 5:
        conformance = session.conformance if current else acse.OFFERED
        return Typed(axdr.STRUCTURE, [Typed(axdr.BIT_STRING, (24, conformance.to_bytes(3, "big"))),
                                      Typed(axdr.LONG_UNSIGNED, session.max_pdu),
                                      Typed(axdr.LONG_UNSIGNED, session.max_pdu),
                                      Typed(axdr.UNSIGNED, acse.DLMS_VERSION), Typed(axdr.INTEGER, 0),
                                      Typed(axdr.OCTET_STRING, b"")])
    if attr == 6:
        mechanism = acse.MECH_NONE if public else acse.MECH_HLS_GMAC
        return Typed(axdr.OCTET_STRING, bytes([0x60, 0x85, 0x74, 0x05, 0x08, 0x02, mechanism]))
    if attr == 8:
        if not current:
            return Typed(axdr.ENUM, NON_ASSOCIATED)
        return Typed(axdr.ENUM, ASSOCIATION_PENDING if session.pending_hls else ASSOCIATED)
    raise AccessError(UNAVAILABLE)
