"""Generate docs/dnp3.md (the DNP3 outstation: device profile, implementation table, point list, controls) and
docs/dnp3-device-profile.xml (the same profile as an IEEE 1815 device profile document) from the point map's
DNP3 list, the catalogue's commands and the configuration schema.

Run: ``python -m tools.gendocs_dnp3`` (rewrites both; ``make docs`` runs it) or ``--check`` (exit 1 if stale).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from firmware.catalogue import command
from firmware.comms.dnp3.app import control_indexes
from firmware.comms.dnp3.channel import MAX_BAD_FRAMES
from firmware.comms.dnp3.database import FREEZE_TIME_POINT
from firmware.comms.dnp3.link import MAX_FRAME
from firmware.comms.dnp3.outstation import FREEZE_COMMANDS, PENDING_REQUESTS, RESTART_DELAY_MS
from firmware.comms.dnp3.points import GROUP_NAMES, DnpPoint, by_group
from firmware.comms.dnp3.server import WRITE_TIMEOUT_S
from firmware.config import meter_schema

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "dnp3.md"
XML = DOCS / "dnp3-device-profile.xml"
GENERATOR = "python -m tools.gendocs_dnp3"
LIBRARY_PIN = "dnp3py==0.6.0"

INTRO = """The meter is a DNP3 outstation (IEEE 1815-2012, Subset Level 2 with the additions of the AMETEK JEMStar
II's profile: frozen counters and their events, analog input variations 1-5, time set by g50v1 and g50v3) over
TCP (`[dnp3] tcp_port`, 20000 as on the ION7400; `make run` serves it on 127.0.0.1:20000) and over the RS-485
port (`[dnp3] serial_enabled`; one protocol per line: a configuration that puts DNP3 on the line Modbus RTU or
BACnet MS/TP uses is refused). It runs in the comms service, beside Modbus and BACnet, on the same asyncio loop,
and reads its values from the measurement snapshot like them. The options are in
[configuration.md](configuration.md#dnp3); the device profile as an XML file is
[dnp3-device-profile.xml](dnp3-device-profile.xml). Every point below is a quantity of the catalogue
(`firmware/points/maps/dnp3.toml` gives its group, index, variations, class, deadband and scale); every control
is a command of the catalogue (`dnp3` in `firmware/catalogue/table.py`)."""

LIBRARY = f"""## Implementation

The outstation is the meter's own code (`firmware/comms/dnp3`, about 2,000 lines). The pure-Python `dnp3py`
0.6.0 (MIT, IEEE 1815-2012 Level 2) was evaluated for it and is used instead as the independent master of the
tests, pinned exactly (`{LIBRARY_PIN}` in requirements.lock). It was not chosen for the outstation because:

- it has no serial channel (TCP and a simulator only), and the meter serves the RS-485 port too;
- it has no frozen counter events (group 23), which the JEMStar II profile reports at each freeze, and keeps
  one database per outstation where the meter needs one point list projected from the catalogue for every
  session;
- the meter's network rules need control of every buffer: at most one frame and one fragment held per
  connection, deadlines for partial frames, limits per client address, eviction, and bounded event buffers per
  session; `dnp3py` is a general library of some 20,000 lines (with a MESA DER simulator) that would have to be
  patched for each, inside the comms process whose memory is counted (docs/memory.md);
- its own master, polled against this outstation, encodes a control at an index above 255 with qualifier 0x28
  but a one-octet count: a library to be read carefully rather than trusted as a reference.

The bindings of the C++ opendnp3 (`dnp3-python`, `yadnp3`) bring a native runtime with threads of its own
beside the comms service's asyncio loop and several megabytes per process; `dnp3-outstation` serves Level 1
only.

`make bench` (`benchmarks/bench_dnp3.py`) measures it against a bare responder that answers every poll with the
outstation's own octets, in the same run: on the shared 2-core development VM, three masters polling class 1, 2,
3 and 0 of the whole point list back to back got about 520 polls a second (p50 4.7 ms, p99 19 ms), 0.43 of the
bare responder's rate (target 0.3), and each open session costs about 10 KiB. With DNP3 on, the comms process
grows by about 0.2 MB PSS (docs/memory.md)."""

SECURITY = f"""## Access and limits

- Reads, class polls, delay measurement and time sets are always served; controls (group 12) and freezes need
  `[dnp3] access = "read-write"`. Each control, freeze and time set is decided by the one authorization point
  (`firmware/security/authorize.py`, interface `dnp3`) with the command's privilege and revenue-lock rule from
  the catalogue, then runs in its owning service through the control socket, which checks the revenue lock
  again. With `[security] enabled`, they run as the meter user `[security] dnp3_user` (empty: refused).
- TCP: at most `sessions` sessions (3 by default, as the ION7400), at most `sessions_per_address` per client
  address (a new connection from an address at its limit closes that address's oldest session: a master
  reconnecting after a broken link), clients limited to `allowed_hosts` when set. A session without a valid
  frame for `idle_timeout` is closed.
- Frames from a master link address not in `masters` (when set), to another outstation address or to a
  broadcast address are dropped unanswered. A master's link address is what it says it is: `allowed_hosts`
  is the filter to rely on.
- Each connection holds at most one frame ({MAX_FRAME} octets) and one application fragment
  (`max_fragment`); a frame must be complete `frame_timeout` after its first octet; {MAX_BAD_FRAMES} damaged
  frames in a row close a TCP connection (on the serial line, the octets are dropped); at most
  {PENDING_REQUESTS} requests wait while one is answered (more are dropped: a master waits for each answer);
  a master that takes no answers for {WRITE_TIMEOUT_S:g} s loses its session. Events are kept per session and
  class, at most `event_buffer` each: past it the oldest is dropped and IIN2.3 is set until a confirmed read
  makes room."""

BEHAVIOUR = f"""## Behaviour

- **Class 0** (g60v1) returns every static point in its configured variation; a read of a group with variation
  0 does too, a read with a variation returns every point of the group in it. Ranges (qualifiers 00, 01),
  counts (07, 08) and index lists (17, 28: answered with the same qualifier) select points; a range or index
  outside the list is answered with IIN2.2.
- **Events** (g60v2-4, or groups 2, 22, 23, 32): a binary input makes an event on each change, an analog
  input or counter when it moves by more than its deadband from the value last reported in an event. An event
  stays in the session's buffer until the response that carries it is confirmed. IIN1.1-1.3 say which classes
  hold events.
- **Frozen counters** (g21) are the catalogue's frozen registers (the revenue freeze's snapshot); when
  `{FREEZE_TIME_POINT}` changes (a freeze from any interface), each frozen counter with a class makes a frozen
  counter event (g23) time-stamped with the freeze.
- **Freeze** (function 7, 8) of g20 runs the catalogue's `freeze`; **freeze-and-clear** (9, 10) runs `freeze`
  then `energy_reset`, so the revenue lock refuses it (answered with IIN2.2, nothing run). Both are decided by
  the authorization point before anything runs.
- **Controls** (g12v1; select 3 then operate 4 within `select_timeout`, direct operate 5, direct operate
  without answer 6): pulse on or latch on (trip/close code NUL or CLOSE) at a control index runs that command;
  other operations answer status 4 (not supported), a refused command 9 (not authorized), a command that failed
  6 (hardware error); one control per request (others answer 8, too many objects).
- **Time**: g50v1 written (function 2) sets the clock; function 24 (record current time) followed by g50v3 sets
  it for a LAN (the time since the record is added); function 23 answers g52v2 (delay measurement). A time set
  goes to the time service as the catalogue's `time_set` (source `protocol`), which applies it by `[time]
  priority`; a refused one is answered with IIN2.2. IIN1.4 (need time) is set while the clock is not
  synchronised by a better source and no DNP3 time set came within `need_time_interval`.
- **Restart**: IIN1.7 is set at the start of each session until the master writes 0 to g80v1 index 7. Cold and
  warm restart (13, 14) restart the session's DNP3 state, not the meter (as on the JEMStar II), answering
  g52v1 / g52v2 with {RESTART_DELAY_MS} ms.
- **Unsolicited responses** (`unsolicited`): after a restart the outstation sends a null unsolicited response
  until it is confirmed; then, for the classes a master enables (function 20), the events as they come, each
  response repeated `unsolicited_retries` times `confirm_timeout` apart until confirmed, then again after
  `unsolicited_retry_delay`. The events stay in the buffer until confirmed.
- Responses longer than `max_fragment` are sent in several fragments, each but the last asking for
  confirmation; an unconfirmed fragment ends the response (its events are reported again). A repeated
  request (same sequence and octets) is answered again without being carried out again.
- Link layer: reset link states, test link states, request link status and confirmed user data (with its
  frame count bit) are answered; the outstation sends unconfirmed user data."""


def _config_defaults() -> dict[str, object]:
    section = meter_schema().section("dnp3")
    return {opt.name: opt.default for opt in section.options}


def _point_rows(points: list[DnpPoint], group: int) -> list[str]:
    head = "| Index | Point | Description | Unit | Variation | Event class | Deadband | Scale |"
    out = [head, "|---:|---|---|---|---:|---:|---:|---:|"]
    for d in points:
        klass = str(d.klass) if d.klass else "-"
        dead = f"{d.deadband:g}" if d.klass and group in (20, 30) else "-"
        scale = f"{d.scale:g}" if d.scale != 1 else "-"
        event = f" (events v{d.event_variation})" if d.klass else ""
        out.append(f"| {d.index} | `{d.label}` | {d.description} | {d.unit or '-'} | {d.variation}{event} | "
                   f"{klass} | {dead} | {scale} |")
    return out


def _implementation_table() -> list[str]:
    rows = [("1", "0, 1, 2", "1", "00, 01, 06, 07, 08, 17, 28"), ("2", "0, 1, 2", "1", "06, 07, 08"),
            ("10", "0, 1, 2", "1", "00, 01, 06, 07, 08, 17, 28"), ("12", "1", "3, 4, 5, 6", "17, 28"),
            ("20", "0, 1, 2, 5, 6", "1, 7, 8, 9, 10", "00, 01, 06, 07, 08, 17, 28 (freeze: 06 and ranges)"),
            ("21", "0, 1, 2, 5, 6, 9, 10", "1", "00, 01, 06, 07, 08, 17, 28"),
            ("22", "0, 1, 2, 5, 6", "1", "06, 07, 08"), ("23", "0, 1, 2, 5, 6", "1", "06, 07, 08"),
            ("30", "0, 1, 2, 3, 4, 5, 6", "1", "00, 01, 06, 07, 08, 17, 28"),
            ("32", "0, 1, 2, 3, 4, 5, 6, 7, 8", "1", "06, 07, 08"), ("50", "1", "1 (07, count 1), 2", "07"),
            ("50", "3", "2 (after 24)", "07"), ("60", "1", "1", "06"), ("60", "2, 3, 4", "1, 20, 21", "06, 07, 08"),
            ("80", "1", "2 (index 7 to 0)", "00"),
            ("-", "-", "13, 14, 23, 24 (no objects)", "-")]
    out = ["| Group | Variations | Functions (request) | Qualifiers (request) |", "|---:|---|---|---|"]
    out += [f"| {g} | {v} | {f} | {q} |" for g, v, f, q in rows]
    return out


def render() -> str:
    d = _config_defaults()
    groups = by_group()
    lines = ["# DNP3 outstation", "",
             f"<!-- Generated by `{GENERATOR}` from firmware/comms/dnp3, firmware/points/maps/dnp3.toml, the "
             "catalogue and the configuration schema; do not edit. -->", "", INTRO, "",
             "## Device profile", "",
             "| | |", "|---|---|",
             "| Device function | outstation |",
             "| Subset level | 2 (requests and responses), with the JEMStar II additions below |",
             f"| TCP port | {d['tcp_port']} (`[dnp3] tcp_port`), listening; sessions {d['sessions']} |",
             f"| Serial | RS-485, {d['serial_baud']} bit/s {d['serial_framing']} by default |",
             f"| Link address | {d['address']} (`[dnp3] address`); masters: any unless `[dnp3] masters` |",
             f"| Largest frame | {MAX_FRAME} octets sent and received |",
             f"| Largest fragment | {d['max_fragment']} octets sent (`max_fragment`), 2048 received |",
             "| Data link confirmation | never requested; confirmed user data from a master is acknowledged |",
             f"| Application confirmation | for events and for every fragment but the last; "
             f"timeout {d['confirm_timeout']:g} s |",
             f"| Unsolicited responses | {'on' if d['unsolicited'] else 'off'} by default (`unsolicited`) |",
             "| Static data in unsolicited responses | never |",
             "| Default counter | g20v5; frozen counter g21v9 |",
             "| Counters roll over at | 2^32 (32-bit variations), 2^16 (16-bit) |",
             f"| Time set | g50v1 write, g50v3 after record current time; need time "
             f"{d['need_time_interval']:g} s after the last |",
             "| Broadcast | not carried out |", "",
             "### Implementation table", "", *_implementation_table(), "",
             BEHAVIOUR, "", SECURITY, "", LIBRARY, "", "## Point list", ""]
    for group in (1, 10, 20, 21, 30):
        points = groups[group]
        lines += [f"### Group {group}: {GROUP_NAMES[group]}s ({len(points)})", "", *_point_rows(points, group), ""]
    lines += ["## Controls (group 12)", "",
              "| Index | Command | What it does | Privilege | While revenue-locked |", "|---:|---|---|---|---|"]
    for index, name in sorted(control_indexes().items()):
        c = command(name)
        lines.append(f"| {index} | `{name}` | {c.description} | {c.privilege} | {c.revenue_lock} |")
    lines += ["", "## Freezes", "", "| Function | Runs |", "|---:|---|"]
    for fc, names in sorted(FREEZE_COMMANDS.items()):
        lines.append(f"| {fc} | {', then '.join(f'`{n}`' for n in names)} |")
    lines += ["", "## Internal indications", "", "| Bit | Set when |", "|---|---|",
              "| IIN1.1-1.3 | the session holds events of class 1, 2, 3 |",
              "| IIN1.4 | need time (above) |", "| IIN1.7 | restart, until cleared by the master |",
              "| IIN2.0 | function code not served |", "| IIN2.1 | object or variation not served |",
              "| IIN2.2 | a request that does not parse, a range or index outside the list, a refused freeze or "
              "time set |", "| IIN2.3 | events were lost to a full buffer |", ""]
    return "\n".join(lines)


def _x(tag: str, value: object, indent: int) -> str:
    return f"{' ' * indent}<{tag}>{escape(str(value))}</{tag}>"


def _current(tag: str, inner: str, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}<{tag}>", f"{pad}  <currentValue>{inner}</currentValue>", f"{pad}</{tag}>"]


def render_xml() -> str:
    d = _config_defaults()
    groups = by_group()
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f"<!-- Generated by `{GENERATOR}`; do not edit. The element names follow the IEEE 1815 device profile "
           "schema for the parts this meter fills in. -->",
           '<DNP3DeviceProfileDocument xmlns="http://www.dnp3.org/DNP3/DeviceProfile/Jan2010" '
           'schemaVersion="2.10.00">',
           "  <documentHeader>", _x("documentTitle", "OpenMeter DNP3 outstation device profile", 4),
           "  </documentHeader>", "  <ReferenceDevice>", "    <configuration>", "      <deviceConfig>",
           *_current("deviceFunction", "<outstation/>", 8),
           *_current("vendorName", "<value>OpenMeter</value>", 8),
           *_current("deviceName", "<value>OM-CM4-ADE9000</value>", 8),
           *_current("dnpLevelSupported", "<requests>2</requests><responses>2</responses>", 8),
           "      </deviceConfig>", "      <serialConfig>",
           *_current("baudRate", f"<value>{d['serial_baud']}</value>", 8),
           "      </serialConfig>", "      <networkConfig>",
           *_current("typeOfEndPoint", "<tcpListening/>", 8),
           *_current("tcpListenPort", f"<value>{d['tcp_port']}</value>", 8),
           "      </networkConfig>", "      <linkConfig>",
           *_current("dataLinkAddress", f"<value>{d['address']}</value>", 8),
           *_current("maxTransmittedFrameSize", f"<value>{MAX_FRAME}</value>", 8),
           *_current("maxReceivedFrameSize", f"<value>{MAX_FRAME}</value>", 8),
           *_current("sendsConfirmedUserDataFrames", "<never/>", 8),
           "      </linkConfig>", "      <applConfig>",
           *_current("maxTransmittedFragmentSize", f"<value>{d['max_fragment']}</value>", 8),
           *_current("maxReceivedFragmentSize", "<value>2048</value>", 8),
           *_current("timeoutWaitingForCompleteApplConfirm", f"<value>{int(float(str(d['confirm_timeout'])) * 1000)}</value>", 8),
           "      </applConfig>", "      <unsolicitedConfig>",
           *_current("supportsUnsolicitedReporting", f"<{'on' if d['unsolicited'] else 'off'}/>", 8),
           *_current("maxUnsolicitedRetries", f"<value>{d['unsolicited_retries']}</value>", 8),
           "      </unsolicitedConfig>", "    </configuration>", "    <database>"]
    element = {1: ("binaryInputGroup", "binaryInput"), 10: ("binaryOutputGroup", "binaryOutput"),
               20: ("counterGroup", "counter"), 21: ("counterGroup", "frozenCounter"),
               30: ("analogInputGroup", "analogInput")}
    for group in (1, 10, 20, 21, 30):
        outer, inner = element[group]
        out.append(f"      <{outer}>")
        for p in groups[group]:
            out += [f"        <{inner}>", _x("index", p.index, 10), _x("name", p.label, 10),
                    _x("description", p.description, 10), _x("defaultStaticVariation", p.variation, 10),
                    _x("changeEventClass", p.klass if p.klass else "none", 10)]
            if p.klass and group in (20, 30):
                out.append(_x("deadband", f"{p.deadband:g}", 10))
            if p.unit:
                out.append(_x("units", p.unit, 10))
            out.append(f"        </{inner}>")
        out.append(f"      </{outer}>")
    out.append("      <controlGroup>")
    for index, name in sorted(control_indexes().items()):
        out += ["        <control>", _x("index", index, 10), _x("name", name, 10),
                _x("description", command(name).description, 10), _x("supportedControlOperations",
                                                                    "pulseOn latchOn", 10), "        </control>"]
    out += ["      </controlGroup>", "    </database>", "  </ReferenceDevice>", "</DNP3DeviceProfileDocument>", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=GENERATOR)
    parser.add_argument("--check", action="store_true", help="exit 1 if dnp3.md or the XML profile is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in ((DOC, render()), (XML, render_xml())):
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `{GENERATOR}` (or `make docs`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
