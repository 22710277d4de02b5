"""The services the supervisor starts, in start order. Each is a module runnable with ``python -m``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from firmware.config import Config


def _always(config: Config) -> bool:
    return True


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    description: str
    enabled: Callable[[Config], bool] = _always
    # A service whose loss stops metering; the meter is unhealthy while it is not running.
    essential: bool = False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("acquisition", "firmware.services.acquisition", "ADE9000 streaming to the samples ring",
                essential=True),
    ServiceSpec("metrology", "firmware.services.metrology", "measurements, energy and the measurement snapshot",
                essential=True),
    ServiceSpec("recorder", "firmware.services.recorder",
                "PQ event log entries, waveform captures (COMTRADE), PQ aggregates and data recorders"),
    ServiceSpec("io", "firmware.services.io", "digital inputs and outputs, energy pulsing, alarms",
                enabled=lambda c: c["io"].enabled),
    ServiceSpec("display", "firmware.services.display", "front-panel screens (framebuffer or PNG) and buttons",
                enabled=lambda c: c["display"].enabled),
    ServiceSpec("comms", "firmware.services.comms", "Modbus TCP/RTU servers, BACnet/IP and MS/TP device, DNP3 outstation"),
    ServiceSpec("upgrade", "firmware.services.upgrade", "signed firmware upgrade (A/B slots)"),
    ServiceSpec("time", "firmware.services.timesync", "time quality from chrony, time events, time sets",
                enabled=lambda c: c["time"].enabled),
    ServiceSpec("mqtt", "firmware.services.mqtt", "MQTT publishing with store-and-forward",
                enabled=lambda c: c["mqtt"].enabled),
    ServiceSpec("email", "firmware.services.email", "e-mail alerts and scheduled log mails",
                enabled=lambda c: c["email"].enabled),
    ServiceSpec("web", "firmware.services.web", "HTTPS pages and JSON API",
                enabled=lambda c: c["web"].mode != "disabled"),
)


def enabled_services(config: Config) -> list[ServiceSpec]:
    return [s for s in SERVICES if s.enabled(config)]
