"""The meter's listening ports and serial lines, checked as a whole (``meter config set|validate``, and a save
from any interface): two protocols on one TCP or UDP port of overlapping addresses, or two on one serial line,
would leave one of them dead at start, and a configuration that closes every network path (Modbus TCP, the
web, BACnet/IP) would leave a meter nobody can reach to undo it; the ION7400 keeps one open. Both are refused
with the reason and what to change.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from firmware.config.schema import Config
from hal.errors import ConfigError

ANY = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Listener:
    what: str            # "Modbus TCP", "HTTPS" ...
    options: str         # the options that set it, for the message
    transport: str       # "tcp", "udp" or "serial"
    address: str         # bind address ("" for a serial line)
    port: int | str      # port number, or the serial device


def listeners(config: Config) -> list[Listener]:
    """Every port and serial line the configuration opens."""
    out = []
    mb, web, bac, dlms = config["modbus"], config["web"], config["bacnet"], config["dlms"]
    if mb.tcp_enabled:
        out.append(Listener("Modbus TCP", "[modbus] tcp_port", "tcp", mb.bind_address, mb.tcp_port))
    if web.mode != "disabled":
        out.append(Listener("HTTPS", "[web] https_port", "tcp", web.bind_address, web.https_port))
    if web.mode == "https-redirect":
        out.append(Listener("HTTP redirect", "[web] http_port", "tcp", web.bind_address, web.http_port))
    if bac.enabled and bac.ip_enabled:
        out.append(Listener("BACnet/IP", "[bacnet] ip_port", "udp", bac.bind_address, bac.ip_port))
    snmp = config["snmp"]
    if snmp.enabled:
        out.append(Listener("SNMP", "[snmp] port", "udp", snmp.bind_address, snmp.port))
    if config["modbus.rtu"].enabled:
        out.append(Listener("Modbus RTU", "[modbus.rtu] port", "serial", "", config["modbus.rtu"].port))
    if bac.enabled and bac.mstp_enabled:
        out.append(Listener("BACnet MS/TP", "[bacnet] mstp_port", "serial", "", bac.mstp_port))
    if dlms.enabled and dlms.tcp_enabled:
        out.append(Listener("DLMS/COSEM TCP", "[dlms] tcp_port", "tcp", dlms.bind_address, dlms.tcp_port))
    if dlms.enabled and config["dlms.hdlc"].enabled:
        out.append(Listener("DLMS/COSEM HDLC", "[dlms.hdlc] port", "serial", "", config["dlms.hdlc"].port))
    dnp = config["dnp3"]
    if dnp.enabled and dnp.tcp_enabled:
        out.append(Listener("DNP3 TCP", "[dnp3] tcp_port", "tcp", dnp.bind_address, dnp.tcp_port))
    if dnp.enabled and dnp.serial_enabled:
        out.append(Listener("DNP3 serial", "[dnp3] serial_port", "serial", "", dnp.serial_port))
    return out


def _overlap(a: str, b: str) -> bool:
    """Two bind addresses that a port cannot be bound on twice: the same one, or either is every interface."""
    if a in ANY or b in ANY:
        return True
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def check_ports(config: Config) -> None:
    """Refuse two protocols on one port or serial line (ConfigError naming both and what to change)."""
    opened = listeners(config)
    for k, a in enumerate(opened):
        for b in opened[k + 1:]:
            if a.transport != b.transport or a.port != b.port:
                continue
            if a.transport == "serial":
                raise ConfigError(f"config: {a.what} and {b.what} both use the serial line {a.port} ({a.options}, "
                                  f"{b.options}); one line carries one protocol: give one another port or turn "
                                  "it off")
            if _overlap(a.address, b.address):
                raise ConfigError(f"config: {a.what} and {b.what} both listen on {a.transport.upper()} port {a.port} "
                                  f"({a.options} on {a.address}, {b.options} on {b.address}); give one another "
                                  "port or bind them to different addresses")


def check_network_path(config: Config) -> None:
    """Refuse a configuration that leaves no network path into the meter."""
    mb, web, bac = config["modbus"], config["web"], config["bacnet"]
    if mb.tcp_enabled and mb.access != "none":
        return
    if web.mode != "disabled" or (bac.enabled and bac.ip_enabled):
        return
    raise ConfigError("config: this would close every network path into the meter (Modbus TCP off or access none, "
                      "[web] mode disabled, BACnet/IP off); nobody could reach it to undo the change. Keep one "
                      "open: [web] mode, [modbus] tcp_enabled and access, or [bacnet] enabled and ip_enabled")


def check(config: Config) -> None:
    check_ports(config)
    check_network_path(config)
