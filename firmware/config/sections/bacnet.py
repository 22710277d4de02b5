"""BACnet device options: identity, BACnet/IP, MS/TP (ASHRAE 135 Clause 9), the S4100 alert thresholds and the
trend logs (seed 003 "BACnet Default Settings" and PICS; SPEC §7)."""
from __future__ import annotations

from firmware.config.schema import Bool, Enum, Float, Int, IPAddress, ListOf, Option, Section, Str, Table
from firmware.config.sections.modbus import IntChoice

# MS/TP baud rates of the S4100 PICS ("baud rate(s): 9600, 19200, 38400, 76800, 115200") plus 57600, which
# Clause 9.2.1 also allows.
MSTP_BAUD_RATES = (9600, 19200, 38400, 57600, 76800, 115200)
# Device instances the S4100 accepts for its Object_Identifier (PICS: "1 to 4,193,999"); 0 derives one.
MAX_DEVICE_INSTANCE = 4_193_999
TREND_LOGS = 3
# A COV_Increment written by a client: the object ("AI1".."AI83", "AV1".."AV11") and the increment.
COV_INCREMENT = (
    Option("object", Str(4, r"A[IV][1-9][0-9]?", "AI or AV and an instance, e.g. AI16"), "AI1",
           "Analog input or value."),
    Option("increment", Float(0.0, 1e9), 0.0, "COV_Increment, in the object's units."),
)

SECTIONS = [
    Section("bacnet", [
        Option("enabled", Bool(), False, "Run the BACnet device (the Leviton S4100 object model, docs/bacnet.md)."),
        Option("device_instance", Int(0, MAX_DEVICE_INSTANCE), 0,
               "Device object instance, 1 to 4,193,999; 0 derives one from the serial number in 1,000,000 to "
               "3,097,151 (the S4100's factory range), so that meters on one network differ by default."),
        Option("device_name", Str(64), "", "Device Object_Name; empty: \"<[meter] name> - S/N: <serial>\"."),
        Option("location", Str(64), "Installed location not yet identified", "Device Location (writable "
               "over BACnet, up to 64 characters)."),
        Option("access", Enum("read-only", "read-write"), "read-write",
               "read-write (the S4100's behaviour): WriteProperty, AV1 commands, DeviceCommunicationControl, "
               "ReinitializeDevice and time synchronisation are carried out, subject to the revenue lock; "
               "read-only: every one of them is refused (WRITE_ACCESS_DENIED, SERVICE_REQUEST_DENIED).",
               privilege="security"),
        Option("ip_enabled", Bool(), True, "Serve BACnet/IP (Annex J) on UDP."),
        Option("ip_port", Int(1, 65535), 47808, "UDP port of BACnet/IP (47808 = 0xBAC0; `make run` uses 47809)."),
        Option("bind_address", IPAddress(), "0.0.0.0",
               "Address the BACnet/IP port binds (0.0.0.0: every interface)."),
        Option("ip_prefix", Int(0, 32), 24, "Network prefix length of bind_address, for the local broadcast "
               "address that I-Am and I-Have go to (none when bound to 0.0.0.0: answers go to the asker).",
               "bits"),
        Option("mstp_enabled", Bool(), False, "Run an MS/TP master node on the RS-485 port."),
        Option("mstp_port", Str(255), "/dev/ttyAMA1", "Serial device of the MS/TP RS-485 transceiver.", local=True),
        Option("mstp_mac", Int(0, 127), 1, "MS/TP MAC address of this node (master nodes 0-127)."),
        Option("mstp_baud", IntChoice(MSTP_BAUD_RATES), 76800, "MS/TP baud rate.", "bit/s"),
        Option("mstp_rs485", Bool(), True, "Let the kernel drive the transceiver's direction (RTS) for RS-485."),
        Option("max_master", Int(1, 127), 127, "Highest MAC address polled for masters (Device Max_Master; "
               "writable over BACnet, 1 to 127)."),
        Option("max_info_frames", Int(1, 255), 1, "Frames this node may send each time it holds the token."),
        Option("phase_loss_voltage", Int(1, 99), 10, "Phase-loss alert (BI9-BI11) below this share of the "
               "nominal voltage (AV8).", "%"),
        Option("phase_loss_imbalance", Int(1, 99), 25, "Phase-loss alert when a phase is this far below the "
               "highest phase (AV9).", "%"),
        Option("trend_log_inputs", ListOf(Int(1, 75), TREND_LOGS, TREND_LOGS), (2, 11, 19),
               "Analog input logged by TL1, TL2, TL3 (AI1 to AI75; Log_DeviceObjectProperty)."),
        Option("trend_log_enabled", ListOf(Bool(), TREND_LOGS, TREND_LOGS), (True, True, True),
               "Log_Enable of TL1, TL2, TL3."),
        Option("trend_log_stop_when_full", ListOf(Bool(), TREND_LOGS, TREND_LOGS), (False, False, False),
               "Stop_When_Full of TL1, TL2, TL3 (false: the oldest record is overwritten)."),
        Option("cov_increment", Table(COV_INCREMENT, 94), (),
               "COV_Increment written over BACnet ([[bacnet.cov_increment]] object, increment); objects not "
               "listed have their units' default (docs/bacnet.md)."),
        Option("password", Str(20), "", "Password that DeviceCommunicationControl and ReinitializeDevice "
               "must carry; empty: both are refused. Wrong passwords are held to one a second and lock both "
               "services out after [security] lockout_attempts in a row, for lockout_duration.",
               privilege="security", secret=True),
        Option("revenue_commands", Bool(), False, "Let AV1 run the commands that change revenue data: 30078 "
               "(clear the energy registers) and 21212 (peak demand reset). Off: both are refused "
               "(WRITE_ACCESS_DENIED); on: still refused while revenue-locked.", privilege="security",
               locked=True),
        Option("time_sync", Bool(), True, "Pass TimeSynchronization and UTCTimeSynchronization to the time "
               "service (which applies them by [time] priority, source \"protocol\")."),
    ], "BACnet device: BACnet/IP and MS/TP, the S4100 object model (docs/bacnet.md)."),
]
