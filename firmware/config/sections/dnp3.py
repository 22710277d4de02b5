"""DNP3 outstation options: TCP and the RS-485 line, addresses, sessions, events, unsolicited responses, time
(IEEE 1815-2012; ION7400 manual "Distributed Network Protocol (DNP)"; JEMStar II Appendix G)."""
from __future__ import annotations

from firmware.config.schema import Bool, Duration, Enum, Int, IPAddress, ListOf, Option, Section, Str
from firmware.config.sections.modbus import BAUD_RATES, FRAMINGS, IntChoice

MAX_LINK_ADDRESS = 65519                       # 0xFFF0 and above are reserved (broadcast, self address)

SECTIONS = [
    Section("dnp3", [
        Option("enabled", Bool(), False, "Run the DNP3 outstation (docs/dnp3.md)."),
        Option("access", Enum("read-only", "read-write"), "read-only",
               "read-only: reads, class polls and time synchronisation (time_sync); read-write: also the controls "
               "(group 12) and freezes that run the catalogue's commands, each still decided by the authorization "
               "point and the revenue lock.", privilege="security"),
        Option("tcp_enabled", Bool(), True, "Serve DNP3 over TCP."),
        Option("tcp_port", Int(1, 65535), 20000, "TCP port (the ION7400's 20000)."),
        Option("bind_address", IPAddress(), "0.0.0.0",
               "Address the TCP port listens on (0.0.0.0: every interface; 127.0.0.1: this host only)."),
        Option("sessions", Int(1, 8), 3, "Simultaneous TCP sessions (masters); one more is closed at once."),
        Option("sessions_per_address", Int(1, 8), 1,
               "TCP sessions from one client address; a new connection from an address at its limit replaces "
               "that address's oldest session (a master reconnecting after a broken link)."),
        Option("allowed_hosts", ListOf(IPAddress(), 0, 32), (),
               "Client IP addresses allowed to connect over TCP; empty: any."),
        Option("address", Int(0, MAX_LINK_ADDRESS), 1, "This outstation's link address."),
        Option("masters", ListOf(Int(0, MAX_LINK_ADDRESS), 0, 16), (),
               "Master link addresses answered; frames from others are dropped. Empty: any. The first is where "
               "unsolicited responses go before a master has sent anything."),
        Option("serial_enabled", Bool(), False,
               "Serve DNP3 on the RS-485 port (refused while Modbus RTU or BACnet MS/TP uses the same line)."),
        Option("serial_port", Str(255), "/dev/ttyAMA0", "Serial device of the RS-485 transceiver.", local=True),
        Option("serial_baud", IntChoice(BAUD_RATES), 9600, "Baud rate.", "bit/s"),
        Option("serial_framing", Enum(*FRAMINGS), "8N1", "Data bits, parity and stop bits."),
        Option("serial_rs485", Bool(), True, "Let the kernel drive the transceiver's direction (RTS) for RS-485."),
        Option("max_fragment", Int(249, 2048), 2048, "Largest application fragment sent; longer responses are "
               "sent in several fragments, each confirmed.", "octets"),
        Option("confirm_timeout", Duration(0.1, 60), 5.0,
               "How long an application confirmation is awaited.", "s"),
        Option("event_buffer", Int(10, 10000), 200,
               "Events kept per class and session; past it the oldest is dropped and IIN2.3 (overflow) is set."),
        Option("unsolicited", Bool(), False,
               "Send unsolicited responses (after the initial null response, for the classes a master "
               "enables with function 20)."),
        Option("unsolicited_classes", ListOf(Int(1, 3), 0, 3), (1, 2, 3),
               "Event classes a master may enable for unsolicited responses."),
        Option("unsolicited_retries", Int(0, 255), 3,
               "Repeats of an unconfirmed unsolicited response before waiting unsolicited_retry_delay."),
        Option("unsolicited_retry_delay", Duration(1, 3600), 30.0,
               "Pause after the retries of an unsolicited response went unconfirmed.", "s"),
        Option("select_timeout", Duration(1, 60), 10.0, "An OPERATE must follow its SELECT within this.", "s"),
        Option("need_time_interval", Duration(60, 7 * 86400), 1800.0,
               "With the clock not synchronised by a better source, IIN1.4 (need time) is set this long after "
               "the last DNP3 time set (JEMStar II \"Write Time Interval\").", "s"),
        Option("time_sync", Bool(), True, "Pass DNP3 time sets (g50v1, g50v3) to the time service, which applies "
               "them by [time] priority as source \"protocol\"."),
        Option("idle_timeout", Duration(10, 86400), 120.0,
               "A TCP session with no valid frame for this long is closed (JEMStar II inactivity timeout).", "s"),
        Option("frame_timeout", Duration(0.1, 60), 2.0,
               "A frame must be complete this long after its first octet (TCP: the session is closed; serial: the "
               "octets are dropped).", "s"),
        Option("scan_interval", Duration(0.1, 60), 1.0, "How often values are taken from the measurement "
               "snapshot to find events.", "s"),
        Option("command_timeout", Duration(0.1, 60), 5.0, "How long a control or freeze waits for its owning "
               "service.", "s"),
    ], "DNP3 outstation over TCP and RS-485 (docs/dnp3.md lists the points)."),
]
