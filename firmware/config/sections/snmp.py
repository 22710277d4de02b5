"""SNMP agent options: v2c community, v3 users, the MIB-2 system group, the enterprise OID, notification
destinations (docs/snmp.md)."""
from __future__ import annotations

from firmware.config.schema import Bool, Config, Duration, Enum, Int, IPAddress, Option, Section, Str, Table
from hal.errors import ConfigError

AUTH_PROTOCOLS = ("SHA-256", "SHA-384", "SHA-512")
PRIV_PROTOCOLS = ("AES",)
MAX_USERS = 8
MAX_DESTINATIONS = 8
# RFC 5612: the enterprise number set aside for documentation; a manufacturer sets its own IANA number.
DEFAULT_ENTERPRISE_OID = "1.3.6.1.4.1.32473"
ENTERPRISE_OID = Str(128, r"1\.3\.6\.1\.4\.1\.[0-9]{1,10}(\.[0-9]{1,10}){0,8}",
                     "1.3.6.1.4.1.NUMBER, optionally followed by further arcs")
USER_NAME = Str(32, r"[A-Za-z0-9_.-]{1,32}", "1 to 32 letters, digits, _ . -")

USER = (
    Option("name", USER_NAME, "monitor", "User name (msgUserName)."),
    Option("auth", Enum(*AUTH_PROTOCOLS), "SHA-256",
           "Authentication protocol: HMAC-SHA-2 (RFC 7860; SHA-256 is usmHMAC192SHA256AuthProtocol)."),
    Option("priv", Enum(*PRIV_PROTOCOLS), "AES", "Privacy protocol: AES-128 in CFB mode (RFC 3826)."),
)

DESTINATION = (
    Option("address", IPAddress(), "127.0.0.1", "Manager that receives the notifications."),
    Option("port", Int(1, 65535), 162, "Its UDP port."),
    Option("version", Enum("v2c", "v3"), "v3", "v2c (with the community) or v3 (authPriv, as user)."),
    Option("type", Enum("trap", "inform"), "trap",
           "trap: sent once; inform: acknowledged by the manager, sent again until it is ([snmp] inform_timeout, "
           "inform_retries)."),
    Option("community", Str(32), "", "v2c: the community sent; empty: [snmp] community."),
    Option("user", Str(32), "", "v3: the [[snmp.user]] whose keys sign and encrypt the notifications."),
)

SECTIONS = [
    Section("snmp", [
        Option("enabled", Bool(), False, "Run the SNMP agent (read-only; docs/snmp.md)."),
        Option("port", Int(1, 65535), 161, "UDP port of the agent; `make run` uses 1161."),
        Option("bind_address", IPAddress(), "0.0.0.0", "Address the agent binds (0.0.0.0: every interface)."),
        Option("v2c", Bool(), True, "Answer SNMPv2c requests that carry the community (read-only). Off: SNMPv3 "
               "only."),
        Option("community", Str(32), "", "The v2c community; empty: a random one drawn at the first start and "
               "kept on this meter (`meter snmp secrets` shows it).", privilege="security", secret=True),
        Option("user", Table(USER, MAX_USERS), (),
               "SNMPv3 users ([[snmp.user]]), all authPriv and read-only; their passphrases are this meter's own "
               "(drawn at random when first needed; `meter snmp secrets` shows, `meter snmp set` replaces them).",
               privilege="security"),
        Option("enterprise_oid", ENTERPRISE_OID, DEFAULT_ENTERPRISE_OID,
               "Enterprise OID under which the meter's MIB sits (openMeterMIB is ENTERPRISE.1); the default is "
               "RFC 5612's documentation number: set the manufacturer's own IANA enterprise number."),
        Option("sys_contact", Str(255), "", "sysContact: who looks after the meter.", privilege="setup"),
        Option("sys_name", Str(255), "", "sysName; empty: [meter] name.", privilege="setup"),
        Option("sys_location", Str(255), "", "sysLocation: where the meter is installed.", privilege="setup"),
        Option("destination", Table(DESTINATION, MAX_DESTINATIONS), (),
               "Notification receivers ([[snmp.destination]]): alarms and PQ events as traps or informs."),
        Option("notify_alarms", Bool(), True, "Send meterAlarm for alarm pickups, dropouts and acknowledgements.",
               privilege="setup"),
        Option("notify_pq_events", Bool(), True, "Send meterPqEvent for dips, swells, interruptions, RVCs and "
               "transients.", privilege="setup"),
        Option("notify_priority", Int(0, 255), 1, "Only events of at least this priority are sent.", privilege="setup"),
        Option("inform_timeout", Duration(0.1, 60), 2.0, "Wait for an inform's acknowledgement before sending "
               "it again.", "s", privilege="setup"),
        Option("inform_retries", Int(0, 10), 3, "An inform not acknowledged is sent again this many times.",
               privilege="setup"),
        Option("rate", Int(1, 10000), 200, "Requests per second one manager address may make on average; more "
               "are dropped (an SNMP answer can be larger than its request).", "1/s"),
        Option("burst", Int(1, 10000), 400, "Requests one manager address may make at once above the rate."),
    ], "SNMP agent: v2c read-only community, v3 authPriv users, the meter MIB, notifications (docs/snmp.md).",
        privilege="security"),
]


def check(config: Config) -> None:
    """User names are unique, and a v3 destination names one of them."""
    s = config["snmp"]
    names = [u.name for u in s.user]
    if len(set(names)) != len(names):
        raise ConfigError("config: [[snmp.user]] names a user twice")
    for d in s.destination:
        if d.version == "v3" and d.user not in names:
            raise ConfigError(f"config: [[snmp.destination]] {d.address}:{d.port} is v3 and names user {d.user!r}, "
                              f"which is not a [[snmp.user]] ({', '.join(names) or 'none'})")
