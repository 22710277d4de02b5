"""Generate docs/snmp.md, the SNMP agent reference, and docs/OPENMETER-MIB.txt, the MIB module for the default
enterprise OID, from firmware/comms/snmp (the catalogue's SNMP map, the standard groups, the notifications, the
limits) and the configuration schema.

Run: ``python -m tools.gendocs_snmp`` (rewrites both files; ``make docs`` runs it) or ``--check`` (exit 1 if
either is stale). The whole of each file is generated.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.comms.snmp import agent, ber, mib, mibtext
from firmware.comms.snmp import pdu as P
from firmware.comms.snmp.ber import oid_text
from firmware.comms.snmp.keystore import ENGINE_FILE, SECRETS_FILE, SUBDIR
from firmware.comms.snmp.notify import EVENT_OBJECTS, MAX_PENDING, NOTIFICATIONS, notification_oid
from firmware.config.sections.snmp import DEFAULT_ENTERPRISE_OID
from tools.docfile import generate

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "snmp.md"
MIB_FILE = DOCS / "OPENMETER-MIB.txt"
GENERATOR = "python -m tools.gendocs_snmp"

INTRO = """The meter answers SNMP on UDP (`[snmp] port`, 161 on a device; `make run` serves 127.0.0.1:1161) for IT
monitoring: SNMPv2c with a read-only community and SNMPv3 with the User-based Security Model, authPriv only
(HMAC-SHA-2 authentication, RFC 7860: SHA-256 is usmHMAC192SHA256AuthProtocol; AES-128 privacy, RFC 3826). The
agent is read-only: a Set is answered noAccess. It serves the readings, energy registers, status and alarms the
catalogue gives an SNMP OID (`firmware/points/maps/snmp.toml`), the MIB-2 system group and the SNMP, engine and
USM statistics, and sends alarms and power-quality events as traps or informs. It runs inside the comms service,
beside Modbus and BACnet, on the same measurement snapshot, so a Get and a Modbus read of the same second agree.
The options are in [configuration.md](configuration.md#snmp).

## Walking the meter

The MIB module is [OPENMETER-MIB.txt](OPENMETER-MIB.txt) for the default enterprise OID; `meter snmp mib` prints
it for the configured one. With net-snmp's tools (Debian packages `snmp`, `snmptrapd`), on the development meter:

```
$ meter snmp secrets                 # this meter's community and v3 passphrases (on the meter, as its account)
$ snmpwalk -v2c -c COMMUNITY 127.0.0.1:1161 {objects}
$ snmpbulkwalk -v3 -l authPriv -u monitor -a SHA-256 -A AUTHPASS -x AES -X PRIVPASS 127.0.0.1:1161 .1
$ snmpget -v3 -l authPriv -u monitor -a SHA-256 -A AUTHPASS -x AES -X PRIVPASS \\
      -m +OPENMETER-MIB -M +:docs 127.0.0.1:1161 OPENMETER-MIB::meterVAn.0
OPENMETER-MIB::meterVAn.0 = INTEGER: 230.12 V
```

v3 users are `[[snmp.user]]` tables (name, `auth` SHA-256/SHA-384/SHA-512, `priv` AES); there is no
factory secret. The v2c community (unless `[snmp] community` sets one) and each user's two passphrases are drawn
at random on the meter the first time they are needed and kept in `data_dir/{subdir}/{secrets}` (owner only, like
the configuration seal key), so no two meters share one. `meter snmp secrets` shows them, `meter snmp set
community|USER.auth|USER.priv` replaces one (a security event in the event log); the agent takes them when the
comms service starts. `[snmp] v2c = false` leaves SNMPv3 only.

The engine ID (RFC 3411 format 5: 0x80, the enterprise number, 5, eight random bytes) is made at the first
start and kept in `data_dir/{subdir}/{engine}` with snmpEngineBoots, which is incremented and written to disk at
each start before the agent answers: a message captured in an earlier run is never in the time window again.
"""

LIBRARY = """## Why the meter has its own agent

The agent is the project's own: a strict BER codec of the subset SNMP uses, the v2c and v3 message formats and
USM (HMAC from Python's `hmac`, AES from `cryptography`, both already dependencies), about 1,700 lines in
`firmware/comms/snmp`. The alternative was pysnmp (7.1.30, BSD, with pyasn1). Memory decided it: the whole
firmware must stay within 250 MB PSS and the agent lives in the comms service beside Modbus and BACnet. Measured
on the development PC (RSS added to a Python process that already holds `cryptography` and the comms service's
modules):

| | added RSS |
|---|---|
| this agent: codec, USM, the catalogue's MIB, notifications, one v3 user, socket open | about 2.4 MB |
| pysnmp 7.1.30: engine, transport, one v2c community and one v3 user, Get/GetNext/GetBulk responders, before any of the meter's objects | about 10 MB |

`make bench` measures the agent's own figure at each run (the `snmp` rows). The own agent also keeps what it
parses within fixed bounds (Limits, above) rather than in a general ASN.1 decoder, and maps the catalogue directly,
without a MIB compiler. Nothing is added to `requirements.lock`: the agent uses `cryptography` (pinned there) and
the standard library only.
"""

STANDARD = [
    ("1.3.6.1.2.1.1", "system (RFC 3418)", "sysDescr (model, firmware, serial), sysObjectID (meterProductCM4), "
     "sysUpTime, sysContact, sysName, sysLocation ([snmp] sys_contact, sys_name or [meter] name, sys_location), "
     "sysServices"),
    ("1.3.6.1.2.1.11", "snmp (RFC 3418)", "snmpInPkts, snmpInBadVersions, snmpInBadCommunityNames, "
     "snmpInBadCommunityUses, snmpInASNParseErrs, snmpEnableAuthenTraps (2: disabled), snmpSilentDrops, "
     "snmpProxyDrops"),
    ("1.3.6.1.6.3.10.2.1", "snmpEngine (RFC 3411)", "snmpEngineID, snmpEngineBoots, snmpEngineTime, "
     "snmpEngineMaxMessageSize"),
    ("1.3.6.1.6.3.11.2.1", "snmpMPDStats (RFC 3412)", "snmpUnknownSecurityModels, snmpInvalidMsgs, "
     "snmpUnknownPDUHandlers"),
    ("1.3.6.1.6.3.12.1", "snmpTargetMIB statistics (RFC 3413)", "snmpUnavailableContexts, snmpUnknownContexts "
     "(one context is served: the default, empty one)"),
    ("1.3.6.1.6.3.15.1.1", "usmStats (RFC 3414)", "usmStatsUnsupportedSecLevels, usmStatsNotInTimeWindows, "
     "usmStatsUnknownUserNames, usmStatsUnknownEngineIDs, usmStatsWrongDigests, usmStatsDecryptionErrors"),
]


def render() -> str:
    enterprise = ber.oid(DEFAULT_ENTERPRISE_OID)
    objects_root = mib.objects_root(enterprise)
    out = ["# SNMP agent", "", f"<!-- Generated by `{GENERATOR}` from firmware/comms/snmp and the point map; do not "
           "edit. -->", "",
           INTRO.format(objects=oid_text(objects_root), subdir=SUBDIR, secrets=SECRETS_FILE, engine=ENGINE_FILE)]
    out += ["## The MIB", "",
            f"OPENMETER-MIB sits at `[snmp] enterprise_oid`.1 (default `{DEFAULT_ENTERPRISE_OID}`, RFC 5612's "
            "number for documentation: a manufacturer sets its own IANA enterprise number, and `meter snmp mib` "
            "writes the module for it). Below it: meterObjects (.1), meterNotifications (.2), meterConformance "
            "(.3), meterProducts (.4). Each object is a scalar (instance .0) of a catalogue point; values are "
            "integers sent times 10^decimals (the DISPLAY-HINT of the MIB's textual conventions puts the point "
            "back). A value the meter does not have (not yet measured, or invalid) has no instance: Get answers "
            "noSuchInstance and a walk passes over it.", ""]
    for arc, (name, doc) in mib.GROUPS.items():
        out += [f"### {name} ({oid_text(objects_root + (arc,))})", "", doc, "",
                "| OID | object | catalogue point | syntax | unit | decimals | description |",
                "|---|---|---|---|---|---|---|"]
        for o in mib.meter_objects(enterprise):
            if o.oid[len(objects_root)] != arc:
                continue
            scale = f" (x{o.scale:g})" if o.scale != 1 else ""
            out.append(f"| {oid_text(o.oid)}.0 | {o.descriptor} | `{o.point.name}` | {mib.TYPES[o.syntax][0]} | "
                       f"{o.unit}{scale} | {o.decimals} | {o.point.description} |")
        out.append("")
    out += ["## Standard groups", "", "| OID | group | objects |", "|---|---|---|"]
    out += [f"| {o} | {name} | {what} |" for o, name, what in STANDARD]
    out += ["", "## Notifications", "",
            "Alarms (pickup, dropout, acknowledgement) and PQ events (dips, swells, interruptions and their starts, "
            "RVCs, transients) of the meter's event log go to every `[[snmp.destination]]` as SNMPv2-Trap or "
            "InformRequest PDUs, v2c (community) or v3 (authPriv, as a `[[snmp.user]]`), from the agent's port. "
            "`[snmp] notify_alarms`, `notify_pq_events` and `notify_priority` choose which. The event log is read "
            "after the last record sent (kept across restarts), so a record is notified once. An inform is sent "
            "again every `inform_timeout` until acknowledged, at most `inform_retries` times; at most "
            f"{MAX_PENDING} wait at once. For a v3 trap the meter is the authoritative engine (the receiver "
            "needs its engine ID: `createUser -e 0xENGINEID ...` in snmptrapd.conf, the ID is snmpEngineID); for "
            "a v3 inform the receiver is, and the meter learns its engine ID, boots and time first (RFC 3414 "
            "section 4).", "",
            "| notification | OID | carries |", "|---|---|---|"]
    carried = ", ".join(name for _, name, _, _ in EVENT_OBJECTS)
    for name in NOTIFICATIONS:
        out.append(f"| {name} | {oid_text(notification_oid(enterprise, name))} | sysUpTime.0, snmpTrapOID.0, "
                   f"{carried} |")
    out += ["", "| object | syntax | meaning |", "|---|---|---|"]
    out += [f"| {name} | {kind} | {doc} |" for _, name, kind, doc in EVENT_OBJECTS]
    out += ["", "## Limits", "",
            "Every datagram is hostile until it proves otherwise:", "",
            f"- a request larger than {agent.MAX_REQUEST} bytes, or not strict BER (one-byte tags, definite "
            f"lengths of at most four bytes that fit the message, integers of at most nine bytes, OIDs of at most "
            f"{ber.MAX_OID_ARCS} arcs below 2^32, at most {ber.MAX_DEPTH} levels of nesting, at most "
            f"{P.MAX_VARBINDS} variable bindings) is counted (snmpInASNParseErrs) and dropped;",
            f"- an answer is at most {agent.MAX_RESPONSE} bytes (one Ethernet frame, no IP fragments) or the "
            "manager's msgMaxSize if smaller: a Get or GetNext that would not fit is answered tooBig, a GetBulk "
            f"stops at the last whole row that fits and at {agent.MAX_REPETITIONS} repetitions;",
            "- each source address may send `[snmp] rate` messages a second on average and `burst` at once; more "
            "are dropped unanswered (an answer can be many times its request, and UDP sources can be forged). A "
            f"wrong community or key costs the address {agent.AUTH_FAILURE_COST:g} messages' worth, so guessing "
            "is slow while other managers go on being served. The table of addresses is bounded. Without the "
            "community or a user's keys, the most a datagram gets back is a v3 Report of at most about twice its "
            "size, so the agent is no useful amplifier for a forged source;",
            "- v3 refusals follow RFC 3414 3.2 and are counted in usmStats: an unknown engine ID is answered with "
            "a Report (discovery), an unknown user, a security level other than authPriv, a wrong digest or a "
            "message that cannot be decrypted with a Report of the counter, a message outside the 150-second time "
            "window with an authenticated Report carrying the meter's boots and time.", ""]
    out += [LIBRARY]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    enterprise = ber.oid(DEFAULT_ENTERPRISE_OID)
    status = generate(DOC, render, argv, GENERATOR)
    return status | generate(MIB_FILE, lambda: mibtext.render(enterprise), argv, GENERATOR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
