"""The bacpypes3 objects of the BACnet device, built from the object model (``model.py``).

Each object holds its Present_Value, Reliability and Status_Flags as ordinary attributes that the device
brings up to the measurement snapshot before each read (the read hook, ``live.py``), and once a second while a
client is subscribed to it (so ReadProperty, ReadPropertyMultiple and COV all answer from the same copy). No
property is writable by bacpypes3's default rules: every write is handed to
the device (``device.BacnetDevice.write``), which refuses, checks the range, authorizes and applies it.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from bacpypes3.basetypes import (
    EngineeringUnits,
    EventState,
    LoggingType,
    ObjectTypesSupported,
    Polarity,
    PropertyIdentifier,
    Segmentation,
    ServicesSupported,
)
from bacpypes3.constructeddata import ArrayOf
from bacpypes3.errors import ExecutionError
from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.object import TrendLogObject

from firmware.comms.bacnet.model import AnalogInput, AnalogValue, BinaryInput, TrendLog
from firmware.config import Config

# Vendor identifier: this project has no ASHRAE-assigned identifier; 999 is the one bacpypes3 uses for local
# objects, and what Vendor_Identifier reports.
VENDOR_IDENTIFIER = 999
_vendor_id = VENDOR_IDENTIFIER
# COV_Increment of the analog values (settings, which change only when written): every change notifies. The
# analog inputs' defaults are by units, in objects.toml.
DEFAULT_COV_INCREMENT = 0.0
FIRST_DERIVED_INSTANCE, DERIVED_INSTANCES = 1_000_000, 2_097_152   # S4100 factory range 1,000,000-3,097,151
TREND_LOG_BUFFER_SIZE = 5760                 # S4100: "each buffer holds 5760 time-stamped 32-bit entries"

# What the device executes (docs/bacnet.md): bacpypes3 would otherwise report every service its classes
# have a handler for, some of which this device does not offer.
SERVICES_SUPPORTED = ("read-property", "read-property-multiple", "write-property", "subscribe-cov",
                      "device-communication-control", "reinitialize-device", "read-range", "who-is", "i-am",
                      "who-has", "i-have", "time-synchronization", "utc-time-synchronization")
OBJECT_TYPES_SUPPORTED = ("device", "analog-input", "analog-value", "binary-input", "trend-log")

# Clause 12.1.1.4.1: Property_List lists the object's properties except these four, which every object has.
NOT_IN_PROPERTY_LIST = frozenset(("objectIdentifier", "objectName", "objectType", "propertyList"))

def refuse(code: str, klass: str = "property") -> ExecutionError:
    return ExecutionError(errorClass=klass, errorCode=code)


def device_instance(config: Config) -> int:
    """[bacnet] device_instance, or one derived from the serial number in the S4100's factory range."""
    configured = int(config["bacnet"].device_instance)
    if configured:
        return configured
    digest = hashlib.sha256(config["meter"].serial_number.encode()).digest()
    return FIRST_DERIVED_INSTANCE + int.from_bytes(digest[:4], "big") % DERIVED_INSTANCES


def device_name(config: Config) -> str:
    return config["bacnet"].device_name or f"{config['meter'].name} - S/N: {config['meter'].serial_number}"


WriteHook = Callable[[Any, str, Any, Optional[int], Optional[int]], Any]


class _Routed:
    """Hands every WriteProperty to the device instead of storing the value, and lets the device bring the
    object up to date before every read."""

    _write_hook: WriteHook | None = None
    _read_hook: Callable[[Any], None] | None = None

    async def read_property(self, attr: int | str, index: int | None = None) -> Any:
        hook = self._read_hook
        if hook is not None:
            hook(self)
        return await super().read_property(attr, index)  # type: ignore[misc]

    async def write_property(self, attr: int | str, value: Any, index: int | None = None,
                             priority: int | None = None) -> None:
        name = self._property_identifier_class(attr).attr if isinstance(attr, int) else attr  # type: ignore[attr-defined]
        hook = self._write_hook
        if hook is None:
            raise ExecutionError(errorClass="property", errorCode="writeAccessDenied")
        await hook(self, name, value, index, priority)

    def store(self, attr: str, value: Any) -> None:
        """Set a property from the device (bypassing the write route)."""
        setattr(self, attr, value)

    @property
    def propertyList(self) -> Any:
        """The properties this object has a value for (Clause 12.1.1.4.1), in the class's order."""
        names = [name for name in self._elements  # type: ignore[attr-defined]
                 if name not in NOT_IN_PROPERTY_LIST and inspect.getattr_static(self, name, None) is not None]
        return ArrayOf(PropertyIdentifier)([PropertyIdentifier(n) for n in names])

    @propertyList.setter
    def propertyList(self, value: Any) -> None:
        """Derived from the object's properties."""


class MeterDevice(_Routed, DeviceObject):
    vendorName = "OpenMeter"
    vendorIdentifier = VENDOR_IDENTIFIER
    segmentationSupported = Segmentation.noSegmentation
    maxApduLengthAccepted = 480
    protocolVersion = 1
    protocolRevision = 14
    databaseRevision = 0

    @property
    def protocolServicesSupported(self) -> ServicesSupported:  # type: ignore[override]
        return ServicesSupported(list(SERVICES_SUPPORTED))

    @protocolServicesSupported.setter
    def protocolServicesSupported(self, value: Any) -> None:
        """Fixed by what the device executes; a write is refused before it gets here."""

    @property
    def protocolObjectTypesSupported(self) -> ObjectTypesSupported:  # type: ignore[override]
        return ObjectTypesSupported(list(OBJECT_TYPES_SUPPORTED))

    @protocolObjectTypesSupported.setter
    def protocolObjectTypesSupported(self, value: Any) -> None:
        """Fixed by the object model."""


class MeterAnalogInput(_Routed, AnalogInputObject):
    pass


class MeterAnalogValue(_Routed, AnalogValueObject):
    pass


class MeterBinaryInput(_Routed, BinaryInputObject):
    pass


class MeterTrendLog(_Routed, TrendLogObject):
    async def read_property(self, attr: int | str, index: int | None = None) -> Any:  # type: ignore[override]
        name = self._property_identifier_class(attr).attr if isinstance(attr, int) else attr
        if name == "logBuffer":
            # Clause 12.25.16: the buffer is read with ReadRange only
            raise ExecutionError(errorClass="property", errorCode="readAccessDenied")
        return await super().read_property(attr, index)


def _units(name: str) -> EngineeringUnits:
    return EngineeringUnits(name)


def analog_input(ai: AnalogInput, cov_increment: float) -> MeterAnalogInput:
    return MeterAnalogInput(
        objectIdentifier=("analog-input", ai.instance), objectName=ai.name, description=ai.description,
        presentValue=0.0, statusFlags=[0, 0, 0, 0], eventState=EventState.normal, outOfService=False,
        units=_units(ai.units), reliability="no-fault-detected", covIncrement=cov_increment)


def analog_value(av: AnalogValue, value: float, cov_increment: float) -> MeterAnalogValue:
    return MeterAnalogValue(
        objectIdentifier=("analog-value", av.instance), objectName=av.name, description=av.description,
        presentValue=value, statusFlags=[0, 0, 0, 0], eventState=EventState.normal, outOfService=False,
        units=_units(av.units), reliability="no-fault-detected", covIncrement=cov_increment)


def binary_input(bi: BinaryInput) -> MeterBinaryInput:
    return MeterBinaryInput(
        objectIdentifier=("binary-input", bi.instance), objectName=bi.name, description=bi.description,
        presentValue="inactive", statusFlags=[0, 0, 0, 0], eventState=EventState.normal, outOfService=False,
        polarity=Polarity.normal, reliability="no-fault-detected")


def trend_log(tl: TrendLog, device_instance: int, input_instance: int, interval_cs: int, enabled: bool,
              stop_when_full: bool) -> MeterTrendLog:
    return MeterTrendLog(
        objectIdentifier=("trend-log", tl.instance), objectName=tl.name, description=tl.description,
        enable=enabled, stopWhenFull=stop_when_full, bufferSize=TREND_LOG_BUFFER_SIZE, logBuffer=[],
        recordCount=0, totalRecordCount=0, loggingType=LoggingType.polled, logInterval=interval_cs,
        logDeviceObjectProperty=log_reference(device_instance, input_instance),
        statusFlags=[0, 0, 0, 0], eventState=EventState.normal, reliability="no-fault-detected")


def log_reference(device_instance: int, input_instance: int) -> dict[str, Any]:
    return {"objectIdentifier": ("analog-input", input_instance), "propertyIdentifier": "present-value",
            "deviceIdentifier": ("device", device_instance)}


@dataclass
class ObjectSet:
    """The objects one application (one link) serves."""

    device: MeterDevice
    analog_inputs: dict[int, MeterAnalogInput]
    analog_values: dict[int, MeterAnalogValue]
    binary_inputs: dict[int, MeterBinaryInput]
    trend_logs: dict[int, MeterTrendLog]
    all: list[Any] = field(default_factory=list)


def set_reading(obj: Any, value: Any, reliability: str) -> None:
    """Store a reading where it changed. What was stored last is kept beside the object: reading a property
    back through bacpypes3 costs far more than comparing (its attribute access inspects the class each time)."""
    last = obj.__dict__.get("_last_reading")
    same_value = last is not None and (last[0] == value or (isinstance(value, float) and math.isnan(value)
                                                            and isinstance(last[0], float) and math.isnan(last[0])))
    if not same_value:
        obj.store("presentValue", value)
    if last is None or last[1] != reliability:
        obj.store("reliability", reliability)
        obj.store("statusFlags", [0, int(reliability != "no-fault-detected"), 0, 0])
    obj.__dict__["_last_reading"] = (value, reliability)


def as_real(value: float) -> float:
    """``value`` as a BACnet REAL (IEEE-754 single) carries it."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def plain(value: Any) -> Any:
    """A configuration value as plain data (tuples as lists, table entries as dicts), to compare."""
    if hasattr(value, "to_dict"):
        return {k: plain(v) for k, v in value.to_dict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
