"""Confirmed requests the device cannot carry out as encoded, answered as ASHRAE 135 says (Clause 5.4.5,
Clause 18.8 reject reasons, Clause 18.9 abort reasons) instead of being dropped.

``screen`` looks at one incoming APDU before the stack decodes it and returns what to answer, or None when the
request goes on to the services:

- a segmented request: Abort SEGMENTATION_NOT_SUPPORTED (the device accepts no segmentation);
- a service this device does not execute: Reject UNRECOGNIZED_SERVICE;
- a tag whose length runs past the end of the APDU, or opening and closing tags that do not pair: Reject
  INVALID_TAG;
- a service parameter missing (ReadProperty without a property identifier): Reject MISSING_REQUIRED_PARAMETER;
- a parameter of the wrong type (a ReadRange count that is not a signed integer): Reject
  INVALID_PARAMETER_DATA_TYPE;
- an APDU too short to carry an invoke ID is dropped: there is no request to answer.

Only parsing here, no I/O: the application sends the answer (``app.MeterServiceAccessPoint``).
"""
from __future__ import annotations

from dataclasses import dataclass

from bacpypes3.apdu import APCISequence, APDU, ConfirmedServiceChoice
from bacpypes3.errors import RejectException
from bacpypes3.pdu import PDU

from firmware.comms.bacnet.objects import SERVICES_SUPPORTED

# BACnetRejectReason (Clause 21) and the BACnetAbortReason the device sends.
REJECT_OTHER = 0
REJECT_INVALID_PARAMETER_DATA_TYPE = 3
REJECT_INVALID_TAG = 4
REJECT_MISSING_REQUIRED_PARAMETER = 5
REJECT_UNRECOGNIZED_SERVICE = 9
ABORT_SEGMENTATION_NOT_SUPPORTED = 4
# bacpypes3's reject exceptions, by their reason name, as the standard's numbers
_REJECT_OF_EXCEPTION = {"other": REJECT_OTHER, "bufferOverflow": 1, "inconsistentParameters": 2,
                        "invalidParameterDatatype": REJECT_INVALID_PARAMETER_DATA_TYPE,
                        "invalidTag": REJECT_INVALID_TAG, "missingRequiredParameter": REJECT_MISSING_REQUIRED_PARAMETER,
                        "parameterOutOfRange": 6, "tooManyArguments": 7, "undefinedEnumeration": 8,
                        "unrecognizedService": REJECT_UNRECOGNIZED_SERVICE}

CONFIRMED_REQUEST = 0
SEGMENTED = 0x08
HEADER = 4                       # type and flags, max segments and APDU, invoke ID, service choice


def _confirmed(name: str) -> int | None:
    try:
        return int(ConfirmedServiceChoice(name))
    except (ValueError, KeyError, TypeError):
        return None                      # an unconfirmed service


# The confirmed service choices the device executes (the others in SERVICES_SUPPORTED are unconfirmed).
EXECUTED = frozenset(c for c in (_confirmed(name) for name in SERVICES_SUPPORTED) if c is not None)


@dataclass(frozen=True)
class Answer:
    """What to send back: a Reject, or an Abort when ``abort``, with ``reason``, for ``invoke_id``; an
    ``invoke_id`` of -1: nothing (the request is dropped)."""

    invoke_id: int
    reason: int
    abort: bool = False


DROP = Answer(-1, REJECT_OTHER)


def screen(data: bytes) -> Answer | None:
    """What to answer to the APDU ``data`` instead of executing it, or None to let the services have it."""
    if not data or data[0] >> 4 != CONFIRMED_REQUEST:
        return None
    if len(data) < 3:
        return DROP
    invoke_id = data[2]
    if data[0] & SEGMENTED:
        return Answer(invoke_id, ABORT_SEGMENTATION_NOT_SUPPORTED, abort=True)
    if len(data) < HEADER:
        return Answer(invoke_id, REJECT_MISSING_REQUIRED_PARAMETER)
    if data[3] not in EXECUTED:
        return Answer(invoke_id, REJECT_UNRECOGNIZED_SERVICE)
    if not tags_well_formed(data, HEADER):
        return Answer(invoke_id, REJECT_INVALID_TAG)
    try:
        APCISequence.decode(APDU.decode(PDU(bytes(data))))
    except RejectException as exc:
        return Answer(invoke_id, _REJECT_OF_EXCEPTION.get(str(exc.rejectReason), REJECT_OTHER))
    except AttributeError as exc:
        # bacpypes3's sequence decoder: "X is an application tagged required element" when a tag of another
        # type stands where X is; "X is a required element" (or "context tagged") when X is not there
        wrong_type = "application tagged" in str(exc)
        return Answer(invoke_id, REJECT_INVALID_PARAMETER_DATA_TYPE if wrong_type
                      else REJECT_MISSING_REQUIRED_PARAMETER)
    except Exception:   # noqa: BLE001 - any other decoding failure is still a malformed request
        return Answer(invoke_id, REJECT_OTHER)
    return None


def tags_well_formed(data: bytes, offset: int) -> bool:
    """Every tag from ``offset`` fits in ``data`` and opening and closing tags pair (Clause 20.2.1)."""
    open_tags: list[int] = []
    pos, end = offset, len(data)
    while pos < end:
        first = data[pos]
        number, context, lvt = first >> 4, bool(first & 0x08), first & 0x07
        pos += 1
        if number == 15:                  # extended tag number in the next octet
            if pos >= end:
                return False
            number, pos = data[pos], pos + 1
        if context and lvt in (6, 7):     # opening, closing
            if lvt == 6:
                open_tags.append(number)
            elif not open_tags or open_tags.pop() != number:
                return False
            continue
        if not context and number == 1:
            continue                      # application Boolean: the value is in the tag
        pos = _content_end(data, pos, lvt)
        if pos > end:
            return False
    return not open_tags


def _content_end(data: bytes, pos: int, lvt: int) -> int:
    """Where a tag's content ends, from just after its tag octets (past the end of ``data`` if it does not
    fit)."""
    if lvt < 5:
        return pos + lvt
    if pos >= len(data):
        return len(data) + 1
    length, pos = data[pos], pos + 1
    if length in (254, 255):              # extended length in the next 2 or 4 octets
        size = 2 if length == 254 else 4
        if pos + size > len(data):
            return len(data) + 1
        length, pos = int.from_bytes(data[pos:pos + size], "big"), pos + size
    return pos + length
