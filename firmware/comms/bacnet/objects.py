"""The bacpypes3 objects of the BACnet device, built from the object model (``model.py``).

Each object holds its Present_Value, Reliability and Status_Flags as ordinary attributes that the device
refreshes from the measurement snapshot once a second (so ReadProperty, ReadPropertyMultiple and COV all
answer from the same copy). No property is writable by bacpypes3's default rules: every write is handed to
the device (``device.BacnetDevice.write``), which refuses, checks the range, authorizes and applies it.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from bacpypes3.basetypes import (
    EngineeringUnits,
    EventState,
    LoggingType,
    ObjectTypesSupported,
    Polarity,
    Segmentation,
    ServicesSupported,
)
from bacpypes3.errors import ExecutionError
from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.object import TrendLogObject

from firmware.comms.bacnet.model import AnalogInput, AnalogValue, BinaryInput, TrendLog

# Vendor identifier: this project has no ASHRAE-assigned identifier; 999 is the one bacpypes3 uses for local
# objects, and what Vendor_Identifier reports.
VENDOR_IDENTIFIER = 999
_vendor_id = VENDOR_IDENTIFIER
# The S4100's COV increment is not published (it has no COV); 0 notifies every change of a published value.
DEFAULT_COV_INCREMENT = 0.0
TREND_LOG_BUFFER_SIZE = 5760                 # S4100: "each buffer holds 5760 time-stamped 32-bit entries"

# What the device executes (docs/bacnet.md): bacpypes3 would otherwise report every service its classes
# have a handler for, some of which this device does not offer.
SERVICES_SUPPORTED = ("read-property", "read-property-multiple", "write-property", "subscribe-cov",
                      "device-communication-control", "reinitialize-device", "read-range", "who-is", "i-am",
                      "who-has", "i-have", "time-synchronization", "utc-time-synchronization")
OBJECT_TYPES_SUPPORTED = ("device", "analog-input", "analog-value", "binary-input", "trend-log")

WriteHook = Callable[[Any, str, Any, Optional[int], Optional[int]], Any]


class _Routed:
    """Hands every WriteProperty to the device instead of storing the value."""

    _write_hook: WriteHook | None = None

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


def analog_input(ai: AnalogInput) -> MeterAnalogInput:
    return MeterAnalogInput(
        objectIdentifier=("analog-input", ai.instance), objectName=ai.name, description=ai.description,
        presentValue=0.0, statusFlags=[0, 0, 0, 0], eventState=EventState.normal, outOfService=False,
        units=_units(ai.units), reliability="no-fault-detected", covIncrement=DEFAULT_COV_INCREMENT)


def analog_value(av: AnalogValue, value: float) -> MeterAnalogValue:
    return MeterAnalogValue(
        objectIdentifier=("analog-value", av.instance), objectName=av.name, description=av.description,
        presentValue=value, statusFlags=[0, 0, 0, 0], eventState=EventState.normal, outOfService=False,
        units=_units(av.units), reliability="no-fault-detected", covIncrement=DEFAULT_COV_INCREMENT)


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
