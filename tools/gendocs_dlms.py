"""Generate docs/dlms.md, the DLMS/COSEM object list, from the catalogue (firmware/points/maps/obis.toml, the
commands' ``obis`` slot) and firmware/comms/dlms.

Run: ``python -m tools.gendocs_dlms`` (rewrites the file; ``make docs`` runs it) or ``--check``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.comms.dlms.model import LP_SCALER, build_model
from firmware.comms.dlms.objects import CLASS_NAMES, UNITS
from firmware.comms.dlms.profiles import EVENT_SOURCE_LN, EVENT_TEXT_LN, STATUS_LN
from firmware.config.sections.revenue import DEFAULT_LP_CHANNELS
from firmware.revenue.loadprofile import FLAGS
from tools.docfile import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "dlms.md"
GENERATOR = "python -m tools.gendocs_dlms"
UNIT_NAMES = {v: k for k, v in UNITS.items() if k not in ("deg", "Qh")}

INTRO = """The meter is a DLMS/COSEM server (IEC 62056-5-3, logical name referencing) as a head-end system or
an AMI data concentrator reads it: over TCP with the wrapper (IEC 62056-47; `[dlms] tcp_port`, 4059, the IANA
port; `make run` serves 127.0.0.1:4059) and over HDLC (IEC 62056-46) on a serial line (`[dlms.hdlc]`). It is off
until `[dlms] enabled` is set; the options are in [configuration.md](configuration.md). The object list follows
the JEMStar II (manual, Appendix D) where this meter has the data.

## Link layers

- **TCP wrapper**: 8-byte header, version 1, the client's SAP as source wPort and 1 (the management logical
  device) as destination. A frame must be complete within `[dlms] frame_timeout` of its first byte, a
  connection that sends nothing for `[dlms] inactivity_timeout` (120 s) is closed, and connections are limited
  in all and per address (`max_connections`, `max_connections_per_address`); one more is closed at once.
- **HDLC**, frame format type 3, the JEMStar II's link parameters: information field at most 128 bytes each
  way (a SNRM may ask for less), window size 1 each way, server address of 4 bytes (upper: logical device 1;
  lower: `[dlms.hdlc] physical_address`; 1- and 2-byte forms are answered too), inactivity timeout
  `[dlms] inactivity_timeout` (120 s), inter-frame timeout `[dlms.hdlc] inter_frame_timeout`. Long answers
  are sent in segments (the client asks for each with RR). Frames for other addresses are ignored (multi-drop),
  frames with a bad HCS or FCS dropped. One serial line carries one protocol: `[dlms.hdlc] port` on the line
  of Modbus RTU or BACnet MS/TP is refused when the configuration is saved, as those two refuse each other.

## Associations

| client SAP | association LN | authentication | may |
|---|---|---|---|
| 16 (public) | 0.0.40.0.1.255 | none | read the objects marked *public* below |
| 1 (management) | 0.0.40.0.2.255 | HLS-GMAC (mechanism 5), or LLS (mechanism 1) when `[dlms] lls` | read every object; set the clock; run the scripts (`[dlms] access` read-write) |

- **HLS-GMAC**, security suite 0 (AES-GCM-128, 12-byte tags): the AARQ's InitiateRequest comes as a
  glo-initiate-request ciphered with the meter's EK and AK under the client's system title; the meter answers
  its challenge (f(CtoS) = SC ‖ IC ‖ GMAC) after the client's reply to the meter's 32-byte challenge
  (Association LN method 1). From then on every request and answer is general-glo-ciphering (authenticated and
  encrypted); a request that fails its tag, comes with another system title, or repeats or lowers the client's
  invocation counter ends the association. Wrong keys are refused in the AARE (authentication failure) or at
  the challenge reply. Every failed authentication (LLS password, HLS-GMAC keys or challenge reply) is a
  security event `login_invalid` from source `dlms` in the event log (repeats are counted into one record) and
  to the security syslog collector when one is set.
- **Keys**: EK, AK, the LLS password and the meter's system title (`OMT` and 5 random bytes) are drawn from
  the operating system's random source the first time the meter serves DLMS, so no two meters share them.
  They live in `DATA_DIR/dlms/keys.json` (mode 0600); `meter dlms keys` shows them to the administrator.
  Nothing serves them over a protocol.
- **Invocation counter** of the meter's ciphered APDUs: a block of 1000 values is reserved on storage (written
  and fsynced) before the first of them is used, and a start resumes at the end of the reserved block, so a
  value is never used twice under the same key, across restarts, power cuts and kill -9.
- **Clock set** (Clock attribute 2, management client): a COSEM date-time (deviation applied when given) goes to
  the time service's `time.set` with source `protocol`, which applies it by `[time] priority`; before that the
  authorization point decides (`[dlms] access`). A refusal answers read-write-denied, a failure of the time
  service temporary-failure.
- **Scripts** (Script table execute, method 1, with the script id): the catalogue's commands with an `obis`
  slot; they go to their owning service as the other protocols' commands do, and obey the revenue lock.

Services: GET (normal, with list of up to 32, block transfer of long answers), SET (normal), ACTION (normal),
selective access to profiles. Maximum PDU 1024 bytes.

## Data types

Register values are integers with a scaler: value × 10^scaler is the quantity in the unit (double-long,
signed 32 bits, for instantaneous and demand values; long64 for energies, in Wh, varh, VAh). A value the meter
does not have (not measured yet, not a number) reads as null-data. The clock is UTC (time zone 0, status 0,
no daylight saving: local time is the head-end's). Identity texts are octet strings.

## Profiles

**Load profile** (1.0.99.1.0.255, class 7): one row per load-profile record (interval and event records of
`[revenue.load_profile]`, newest last), capture period the interval length, sort FIFO, profile entries the
configured depth. Columns: the clock (record end, UTC), the record's status flags ({status_ln}, bits:
{flags}), then one column per configured channel, each a Register {lp_example}... (B = 128, manufacturer
specific) of scaler {lp_scaler}. Selective access by range (restricting object: the clock column, attribute
2; selected columns optional) and by entry (1-based entries and columns; 0 = to the last). One read returns at
most 10,000 rows.

**Event log** (0.0.99.98.0.255, class 7): the meter's event log (the same records as `meter` and the web show),
columns: time, source ({event_source}), text ({event_text}); selective access as the load profile.

## Objects

{table}

Load-profile channels (default configuration; the list follows `[revenue.load_profile] channels`):

{channels}

## JEMStar II objects this meter does not have

| JEMStar II object | OBIS | here |
|---|---|---|
| Metrology, service, PQ, FPGA, digital I/O, analog out/modem, CPLD firmware versions and signatures | 0.1–0.7.0.2.1/8.255 | one firmware image: its version is 0.0.0.2.1.255, its signature 0.0.0.2.8.255 |
| Meter administrator, location, configuration ID, account number | 0.0.96.11.2–5.255 | no such configuration options |
| Transformer ratios (CT/VT primary and secondary) | 1.0.0.4.2/3/5/6.255 | not points of the catalogue |
| Load profile group 2, recording intervals as codes, scaling factors (Km) | 1.0.0.8.4/5.255, 1.128.103/104.0.0.255 | one load profile, in engineering units: its capture period is the interval |
| Energy pulse and LED/optical pulse settings | 1.128.100/101.0.0.255 | not carried |
| SAP assignment (class 17) | 0.0.41.0.0.255 | not carried: the SAPs are the two above |

## Choice of the DLMS library

The server is the meter's own code (`firmware/comms/dlms`, about 2,300 lines, no dependency beyond
`cryptography`, already pinned). Evaluated against it:

- **gurux-dlms 1.0.203** (Gurux's Python library, server side): its server classes fail on the first request
  (`GXDLMSServer.handleRequest` calls `GXServerReply.setReply`, which that class does not have; its error path
  calls an integer; `initialize()` appends the object collection to itself; the inactivity timeout subtracts
  `datetime` from `int`). Using it would mean patching an untested code path of a large library (about 17 MB of
  memory more in the comms process) and shadowing its object model with the catalogue's.
- **dlms-cosem 25.1.0**: a client only (no server state machine, association handling or object model), and
  its A-XDR decoder lacks float64. It is pinned as the *test* client: an independent implementation that reads
  the meter as a head-end would (tests/integration/test_dlms.py).
- **cosempdu**, **dlms-spodes**: PDU codecs / a client family for one national profile; neither is a server.

Writing the server keeps it within the comms process's memory (it adds about 7 MiB of RSS to the comms service;
`make bench` row `dlms`), lets
every input be bounded as the rest of the meter's network code is (lengths checked against the bytes present,
nesting and list sizes bounded, 10,000 malformed APDUs and HDLC frames in tests/unit/test_dlms_fuzz.py), and
projects the catalogue without a second object model.
"""


def _unit(code: int) -> str:
    return UNIT_NAMES.get(code, str(code)) or "—"


def render() -> str:
    model = build_model(DEFAULT_LP_CHANNELS)
    lp = {o.ln for _, o in model.lp_channels}
    rows = ["| OBIS | class | catalogue | description | scaler | unit | public |", "|---|---|---|---|---|---|---|"]
    for o in model.objects:
        if o.ln in lp:
            continue
        scaler = str(o.scaler) if o.class_id in (3, 4, 5) else ""
        unit = _unit(o.unit) if o.class_id in (3, 4, 5) else ""
        rows.append(f"| {o.ln} | {o.class_id} {CLASS_NAMES[o.class_id]} | {o.point or ''} | {o.description} | "
                    f"{scaler} | {unit} | {'yes' if o.public else ''} |")
    channels = ["| OBIS | channel | unit |", "|---|---|---|"]
    channels += [f"| {o.ln} | {name} | {_unit(o.unit)} |" for name, o in model.lp_channels]
    flags = ", ".join(f"{v} {k}" for k, v in FLAGS.items())
    example = model.lp_channels[0][1].ln if model.lp_channels else "1.128.99.1.1.255"
    body = INTRO.format(status_ln=STATUS_LN, flags=flags, lp_example=example, lp_scaler=LP_SCALER,
                        event_source=EVENT_SOURCE_LN, event_text=EVENT_TEXT_LN, table="\n".join(rows),
                        channels="\n".join(channels))
    return f"# DLMS/COSEM\n\n<!-- generated by {GENERATOR}; do not edit -->\n\n{body}"


def main(argv: list[str] | None = None) -> int:
    return generate(DOC, render, argv, GENERATOR)


if __name__ == "__main__":
    sys.exit(main())
