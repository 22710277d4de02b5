"""DLMS/COSEM server options: the TCP wrapper, HDLC on a serial port, the management client's LLS (docs/dlms.md;
JEMStar II manual Appendix D for the link parameters)."""
from __future__ import annotations

from firmware.config.schema import Bool, Duration, Enum, Int, IPAddress, Option, Section, Str
from firmware.config.sections.modbus import BAUD_RATES, FRAMINGS, IntChoice

SECTIONS = [
    Section("dlms", [
        Option("enabled", Bool(), False, "Serve DLMS/COSEM (IEC 62056) to head-end systems."),
        Option("access", Enum("read-only", "read-write"), "read-write",
               "What the authenticated management client may do besides reading: read-write sets the clock "
               "(by [time] priority, source protocol) and runs the catalogue's DLMS scripts (demand and "
               "billing-period reset, which still obey the revenue lock); read-only refuses both.",
               privilege="security"),
        Option("tcp_enabled", Bool(), True, "Serve DLMS over the TCP wrapper (IEC 62056-47)."),
        Option("tcp_port", Int(1, 65535), 4059, "TCP port (the IANA DLMS/COSEM port is 4059)."),
        Option("bind_address", IPAddress(), "0.0.0.0",
               "Address the TCP server listens on (0.0.0.0: every interface; 127.0.0.1: this host only)."),
        Option("max_connections", Int(1, 32), 4,
               "Simultaneous TCP connections; one more is closed as soon as it is accepted."),
        Option("max_connections_per_address", Int(1, 32), 2,
               "Simultaneous TCP connections from one IP address; more are closed as soon as they are accepted."),
        Option("inactivity_timeout", Duration(5, 3600), 120.0,
               "A connection (TCP) or an HDLC link that carries no frame for this long is closed.", "s"),
        Option("frame_timeout", Duration(0.1, 60), 2.0,
               "A TCP wrapper frame must be complete this long after its first byte, or the connection is "
               "closed.", "s"),
        Option("command_timeout", Duration(0.1, 60), 5.0,
               "Longest wait for the owning service to set the clock or run a script.", "s"),
        Option("lls", Bool(), False,
               "Also accept Low Level Security (a password, sent in clear) from the management client; "
               "HLS-GMAC is always accepted. `meter dlms keys` shows the password and the keys.",
               privilege="security"),
    ], "DLMS/COSEM server (docs/dlms.md lists the objects)."),
    Section("dlms.hdlc", [
        Option("enabled", Bool(), False, "Serve DLMS over HDLC (IEC 62056-46) on the serial port."),
        Option("port", Str(255), "/dev/ttyAMA0", "Serial device (RS-485 transceiver or optical head).",
               local=True),
        Option("baud", IntChoice(BAUD_RATES), 9600, "Baud rate.", "bit/s"),
        Option("framing", Enum(*FRAMINGS), "8N1", "Data bits, parity (None, Even, Odd) and stop bits."),
        Option("physical_address", Int(16, 0x3FFD), 16,
               "The meter's HDLC physical address (lower server address; the JEMStar's Unit ID)."),
        Option("inter_frame_timeout", Duration(0.05, 10), 1.0,
               "A frame must be complete this long after its first byte, or its bytes are discarded.", "s"),
        Option("rs485", Bool(), True, "Let the kernel drive the transceiver's direction (RTS) for RS-485."),
    ], "DLMS/COSEM over HDLC on a serial line."),
]
