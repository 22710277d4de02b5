"""The meter's identity over Modbus: FC 43/14 Read Device Identification and FC 17 Report Server ID.

Object ids and categories follow the Modbus Application Protocol v1.1b3 §6.21: basic 0x00–0x02, regular
0x03–0x06, extended 0x80–0xFF (private). Stream reads (codes 1–3) start at the requested object, or at the
first object of the category when the requested one does not exist; a response that would exceed the PDU
says "more follows" and names the next object.
"""
from __future__ import annotations

from dataclasses import dataclass

FC_REPORT_SERVER_ID = 0x11
FC_MEI = 0x2B
MEI_READ_DEVICE_ID = 0x0E
CONFORMITY = 0x83            # basic + regular + extended identification, stream and individual access
MAX_PDU_BYTES = 253          # Modbus Application Protocol §4.1
RUN_INDICATOR_ON = 0xFF

BASIC_IDS = (0x00, 0x01, 0x02)
REGULAR_IDS = BASIC_IDS + (0x03, 0x04, 0x05, 0x06)


@dataclass(frozen=True)
class Identity:
    vendor_name: str
    product_code: str
    revision: str
    vendor_url: str
    product_name: str
    model_name: str
    user_application_name: str      # the configured device name
    serial_number: str

    def objects(self) -> dict[int, bytes]:
        """Object id -> value, for FC 43/14 (0x80 = serial number, private)."""
        texts = {
            0x00: self.vendor_name, 0x01: self.product_code, 0x02: self.revision, 0x03: self.vendor_url,
            0x04: self.product_name, 0x05: self.model_name, 0x06: self.user_application_name,
            0x80: self.serial_number,
        }
        # An object's length is one byte; keep every value short enough that a lone object fits a PDU.
        return {k: v.encode("ascii", "replace")[:200] for k, v in texts.items()}

    def register_values(self) -> dict[str, str]:
        """The identity points of the register map (firmware/points/modbus.toml)."""
        return {
            "meter_name": self.user_application_name, "meter_model": self.model_name,
            "manufacturer": self.vendor_name, "serial_number": self.serial_number,
            "firmware_version": self.revision,
        }


def read_device_identification(identity: Identity, read_code: int, object_id: int) -> bytes | int:
    """Response PDU for FC 43/14, or the exception code (03 bad read code, 02 unknown individual object)."""
    objects = identity.objects()
    if read_code == 4:
        if object_id not in objects:
            return 0x02
        ids = [object_id]
    elif read_code in (1, 2, 3):
        category = {1: list(BASIC_IDS), 2: list(REGULAR_IDS),
                    3: list(REGULAR_IDS) + sorted(k for k in objects if k >= 0x80)}[read_code]
        ids = category[category.index(object_id):] if object_id in category else category
    else:
        return 0x03
    header_len = 7        # FC, MEI type, read code, conformity, more follows, next object id, count
    body = bytearray()
    sent = 0
    more, next_id = 0x00, 0x00
    for oid in ids:
        value = objects[oid]
        if header_len + len(body) + 2 + len(value) > MAX_PDU_BYTES:
            more, next_id = 0xFF, oid
            break
        body += bytes((oid, len(value))) + value
        sent += 1
    return bytes((FC_MEI, MEI_READ_DEVICE_ID, read_code, CONFORMITY, more, next_id, sent)) + bytes(body)


def report_server_id(identity: Identity, server_id: int) -> bytes:
    """Response PDU for FC 17: server id, run indicator (on), then the identity as text."""
    text = f"{identity.product_name} {identity.revision} {identity.serial_number}".encode("ascii", "replace")
    data = bytes((server_id & 0xFF, RUN_INDICATOR_ON)) + text[:240]
    return bytes((FC_REPORT_SERVER_ID, len(data))) + data
