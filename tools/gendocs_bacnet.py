"""Generate docs/bacnet.md, the BACnet device reference, from firmware/comms/bacnet (objects.toml, the settings,
the readings rules) and the configuration schema.

Run: ``python -m tools.gendocs_bacnet`` (rewrites the file; ``make docs`` runs it) or ``--check`` (exit 1 if it
is stale). The whole file is generated.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.comms.bacnet import readings
from firmware.comms.bacnet.app import AMPLIFIED_BURST, AMPLIFIED_PER_S, MAX_COV_LIFETIME_S, MAX_COV_PER_CLIENT, MAX_COV_SUBSCRIPTIONS
from firmware.comms.bacnet.device import (
    AV1_COMMANDS,
    EVENT_CHANGE,
    EVENT_COMMAND,
    EVENT_DEVICE_CONTROL,
    EVENT_REFUSED,
)
from firmware.comms.bacnet.live import STALE_AFTER_S
from firmware.comms.bacnet.model import Model, load_model
from firmware.comms.bacnet.mstp import frame, master
from firmware.comms.bacnet.objects import TREND_LOG_BUFFER_SIZE, VENDOR_IDENTIFIER
from firmware.comms.bacnet.settings import SETTING_DOCS
from firmware.security.authorize import REVENUE_LOCKED, REVENUE_LOCKED_RESETS
from firmware.config import meter_schema
from firmware.config.sections.bacnet import MSTP_BAUD_RATES
from tools.docfile import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "bacnet.md"
GENERATOR = "python -m tools.gendocs_bacnet"

INTRO = """The meter is a BACnet device with the object model of the Leviton Series 4100 (an MS/TP meter common in
building automation): the same Device, 83 analog inputs, 11 analog values, 15 binary inputs and 3 trend logs,
with the same names, instances, units and write rules, so a front end set up for an S4100 reads this meter
unchanged. It runs in the comms service (`[bacnet] enabled`), on BACnet/IP (Annex J, UDP `[bacnet] ip_port`)
and on MS/TP (Clause 9, the RS-485 port `[bacnet] mstp_port`). With both on, each link serves the same device
and objects; the meter does not route between the two networks (as the S4100: "Networking Options: None"). The
options are in [configuration.md](configuration.md#bacnet); the numbers come from the same point map as
[modbus.md](modbus.md).

## Protocol implementation conformance (PICS summary)

| | |
|---|---|
| Vendor | OpenMeter (Vendor_Identifier {vendor}: the project has no ASHRAE-assigned identifier) |
| Model | {model} |
| BACnet protocol | version 1, revision 14 |
| Device profile | BACnet Application Specific Controller (B-ASC) |
| Segmentation | none; Max_APDU_Length_Accepted {max_apdu} |
| Data links | BACnet/IP (Annex J); MS/TP master (Clause 9), {bauds} baud |
| Character set | ANSI X3.4 (UTF-8) |
| Dynamic object creation | no |

BIBBs supported (Annex K): DS-RP-B, DS-RPM-B, DS-WP-B, DS-COV-B, DM-DDB-B, DM-DOB-B, DM-DCC-B, DM-TS-B,
DM-UTC-B, DM-RD-B, T-VMT-I-B (ReadRange of the trend logs). DS-COV-B is an addition to the S4100.

| service | answered | notes |
|---|---|---|
| ReadProperty, ReadPropertyMultiple | yes | each value worked out from the latest measurement snapshot (published once a second) when it is read; ReadPropertyMultiple and ReadRange answers, which can be many times their request, go to one address at most {amp_burst} at once then {amp_rate} a second (more are dropped: a forged source address gets no flood) |
| WriteProperty | yes | only the properties below; every write passes the one authorization point |
| SubscribeCOV | yes | analog and binary inputs and values; a change of a published value notifies (a subscribed object is refreshed from the snapshot each second, the others only when read); at most {max_cov} subscriptions in all and {max_cov_client} per client address (more: NO_SPACE_TO_ADD_LIST_ELEMENT), each for at most {max_cov_life} s (an indefinite one too: renew it) |
| Who-Is / I-Am, Who-Has / I-Have | yes | by instance range, object name or identifier |
| DeviceCommunicationControl | yes | needs `[bacnet] password` (empty: refused); a wrong one is held 1 s and a run of them locks DCC and RD out (docs/security.md); disable answers only DCC and RD |
| ReinitializeDevice | yes | same password; cold and warm start re-initialise the BACnet device inside the comms service (configuration read again, communication control ended; Modbus and metering go on); other states refused |
| TimeSynchronization, UTCTimeSynchronization | yes | passed to the time service as `time.set` with source `protocol`; it applies them by `[time] priority` |
| ReadRange | yes | Log_Buffer of TL1-TL3, by position, sequence number or time |

## Writes, commands and the revenue lock

Every write and command from BACnet (any object, either link) goes through one decision (`BacnetDevice._authorize`
in `firmware/comms/bacnet/device.py`), as user `bacnet` on interface `bacnet`. A change of revenue data or of a
sealed setting (metrology and revenue sections: AV2-AV7, AV10, AV11, the trend logs' Log_Interval) is refused
with WRITE_ACCESS_DENIED while the meter is revenue-locked; the owning service and the configuration store
check the lock again. The AV1 codes that change revenue data (30078, 21212) run only with `[bacnet]
revenue_commands` (a security setting, off by default) and never while locked. A value outside the S4100's range, or one this meter cannot represent, is refused with
VALUE_OUT_OF_RANGE (the reason is in the comms log). A property that is not writable answers
WRITE_ACCESS_DENIED; a value of a type the property cannot hold (a CharacterString for a REAL) answers Error
PROPERTY / INVALID_DATA_TYPE. A value written as the property reads already (compared as the REAL it reads, so
a front end that writes back what it read, or rewrites its setpoints, changes nothing) is acknowledged and is no
change: no new configuration version, no event, no service restarted.

## Malformed requests

Confirmed requests the device cannot carry out as encoded are answered (ASHRAE 135 Clause 5.4.5, Clause 18):

| request | answer |
|---|---|
| a service the device does not execute (one not in the table above) | Reject UNRECOGNIZED_SERVICE |
| a tag whose length runs past the end of the request, opening and closing tags that do not pair | Reject INVALID_TAG |
| a required parameter missing (ReadProperty without a property identifier) | Reject MISSING_REQUIRED_PARAMETER |
| a parameter of the wrong type (a ReadRange count that is not a signed integer) | Reject INVALID_PARAMETER_DATA_TYPE |
| a segmented request (the device accepts no segmentation) | Abort SEGMENTATION_NOT_SUPPORTED |
| an APDU too short to carry an invoke ID | nothing: there is no request to answer |

## COV

Property_List of every object lists its properties except Object_Identifier, Object_Name, Object_Type and
Property_List (Clause 12.1.1.4.1). COV_Increment (analog inputs and values) is the change of Present_Value that
notifies a subscriber (Clause 13.1.4); it is writable (a REAL from 0 to 1e9; 0: every change notifies), saved
as `[[bacnet.cov_increment]]` in the configuration. Until written, analog values notify every change (they are
settings) and analog inputs have the default of their units:

| units | default COV_Increment |
|---|---|
{cov}

Every change made over BACnet, every command, and every refusal by the revenue lock or for a wrong password is
recorded in the meter's event log (source and user `bacnet`; changes priority {p_change}, commands {p_cmd},
communication control and reinitialize {p_dev}, refusals {p_ref}); a refusal repeating the one before it is
counted into it (`count`, `first`, `last`), so a flood of them cannot push earlier events out. Saved changes
(all clients together) are held to 20 at once, then one every 10 s; more are refused with DEVICE_BUSY, and the
configuration history keeps its newest entries within 1 MiB.

AV2-AV11 are views of the meter's configuration: reading one reads the configuration, writing one is a
configuration change (versioned, logged in `meter.toml.history.jsonl` with user `bacnet`). A metrology or
revenue setting takes effect when the metrology service restarts, which the device asks the supervisor for at
once (the revenue registers persist across it).

| AV1 code | S4100 meaning | runs | refused while revenue-locked |
|---|---|---|---|
{commands}

## Reliability and QNAN

- A value that is not valid in the configured system type (a phase the type does not measure) reads QNAN.
- Frequency outside {fmin:g}-{fmax:g} Hz reads QNAN, Reliability UNRELIABLE_OTHER, and raises BI7.
- A value the meter could not measure (NaN in the snapshot) reads QNAN with UNRELIABLE_OTHER.
- While a voltage or current alert (BI1-BI6) is active, the instantaneous and demand values of that phase
  (of every phase for totals) report UNRELIABLE_OTHER; accumulated energies keep NO_FAULT_DETECTED.
- Reserved instances read QNAN with NO_FAULT_DETECTED, as on the S4100; instances this meter does not measure
  read QNAN with NO_SENSOR.
- When the measurement snapshot has not been refreshed for {stale:g} s, every input reports
  COMMUNICATION_FAILURE (and its Status_Flags FAULT).

Alerts (not latched): voltage above {over:g} × nominal, current above {over:g} × the CT primary (or In if larger),
frequency outside {fmin:g}-{fmax:g} Hz, phase loss below AV8 % of nominal or AV9 % below the highest phase,
power factor below {lowpf:g} on a phase carrying over {pfi:g} % of its rating, and BI15 while the clock is not
synchronised.
"""

MSTP = """## MS/TP

The node is an MS/TP master (Clause 9.5.6) written in this project over pyserial: preamble 55 FF, header CRC-8,
data CRC-16 (Annex G), token passing, Poll-For-Master up to `max_master`, at most `max_info_frames` frames per
token, and the Clause 9 timers:

| parameter | value |
|---|---|
| T_no_token | {tnt:g} ms (+ {tslot:g} ms × MAC) |
| T_reply_timeout | {trt:g} ms |
| T_usage_timeout | {tut:g} ms |
| T_reply_delay (answer or Reply Postponed) | {trd:g} ms |
| N_poll | {npoll} tokens |
| frame abort | {abort} bit times, at least {abort_floor:g} ms |
| data | 0 to {maxdata} octets |

A frame with a bad header or data CRC, a length over {maxdata}, or one that stops arriving is dropped and the
receiver hunts for the next preamble; nothing a sender does holds more than one frame of memory.

{options}
"""


def _commands() -> str:
    rows = []
    meaning = {30078: "clear all energy accumulators", 21211: "new demand subinterval; log a trend record "
               "(sync-to-comms mode)", 21212: "reset maximum demands", 16498: "clear pulse counters"}
    for code, cmd in AV1_COMMANDS.items():
        runs = f"`{cmd.control}`" if cmd else "nothing: refused with OPTIONAL_FUNCTIONALITY_NOT_SUPPORTED"
        op = cmd.op if cmd else ""
        locked = ("yes" if op in REVENUE_LOCKED else "unless [revenue] demand_reset_when_locked"
                  if op in REVENUE_LOCKED_RESETS else "no") if cmd else ""
        rows.append(f"| {code} | {meaning[code]} | {runs} | {locked} |")
    return "\n".join(rows)


def _cov(model: Model) -> str:
    return "\n".join(f"| {units} | {inc:g} |" for units, inc in model.cov_increments.items())


def _options() -> str:
    section = meter_schema().section("bacnet")
    rows = ["| option | default | meaning |", "|---|---|---|"]
    keep = ("mstp_enabled", "mstp_port", "mstp_mac", "mstp_baud", "max_master", "max_info_frames")
    for option in section.options:
        if option.name in keep:
            rows.append(f"| `{option.name}` | `{option.default}` | {option.doc} |")
    return "\n".join(rows)


def render() -> str:
    model = load_model()
    bauds = ", ".join(str(b) for b in MSTP_BAUD_RATES)
    lines = ["# BACnet device", "",
             f"<!-- Generated by `{GENERATOR}` from firmware/comms/bacnet (objects.toml, settings.py, readings.py) "
             "and the configuration schema; do not edit. -->", "",
             INTRO.format(vendor=VENDOR_IDENTIFIER, p_change=EVENT_CHANGE, p_cmd=EVENT_COMMAND, p_dev=EVENT_DEVICE_CONTROL, p_ref=EVENT_REFUSED, amp_burst=AMPLIFIED_BURST, amp_rate=AMPLIFIED_PER_S, max_cov=MAX_COV_SUBSCRIPTIONS, max_cov_client=MAX_COV_PER_CLIENT, max_cov_life=MAX_COV_LIFETIME_S, model=model.device["model_name"],
                          max_apdu=model.device["max_apdu_length_accepted"], bauds=bauds,
                          commands=_commands(), cov=_cov(model), fmin=readings.FREQUENCY_RANGE_HZ[0],
                          fmax=readings.FREQUENCY_RANGE_HZ[1], stale=STALE_AFTER_S,
                          over=readings.OVER_RANGE_FACTOR, lowpf=readings.LOW_PF,
                          pfi=readings.PF_MIN_CURRENT_FRACTION * 100),
             "## Device", "",
             "Writable: Object_Identifier (1 to 4,193,999), Object_Name, Location (up to 64 characters), "
             "Max_Master (1 to 127), saved to `[bacnet]`. Local_Date and Local_Time are the meter's clock; "
             "Vendor_Name, Model_Name, Firmware_Revision and Application_Software_Version say what runs.", "",
             "## Analog inputs", "",
             "| object | name | units | value from | description |", "|---|---|---|---|---|"]
    lines += [f"| AI{ai.instance} | {ai.name} | {ai.units} | {ai.source} | {ai.description} |"
              for ai in model.analog_inputs]
    lines += ["", "AI76 Max_Power is the S4100's theoretical maximum: AV6 system voltage × rated current × √3 (three-"
              "phase types) at unity power factor, in kW; the rated current is AV3 CT primary, or `[metrology] "
              "nominal_current` where that is larger (a 1:1 connection, `ct_primary` 1).", ""]
    lines += ["", "## Analog values", "", "Present_Value and COV_Increment are the writable properties.", "",
              "| object | name | units | accepts | reads and writes |", "|---|---|---|---|---|"]
    for av in model.analog_values:
        accepts, where = SETTING_DOCS[av.setting]
        lines.append(f"| AV{av.instance} | {av.name} | {av.units} | {accepts} | {where} |")
    lines += ["", "## Binary inputs", "", "| object | name | description |", "|---|---|---|"]
    lines += [f"| BI{bi.instance} | {bi.name} | {bi.description} |" for bi in model.binary_inputs]
    first, last = model.device["loggable_inputs"]
    lines += ["", "## Trend logs", "",
              f"TL1-TL3 each keep {TREND_LOG_BUFFER_SIZE} records (time stamp and REAL value) on disk "
              "(`data_dir/bacnet/trendlogs.db`); a polled record is taken at every multiple of Log_Interval, "
              "which is AV11 (writing either writes both; 0 = one record per AV1 21211). Writable: Enable, "
              "Start_Time, Stop_Time (kept until the service restarts), Log_DeviceObjectProperty (the "
              f"Present_Value of AI{first} to AI{last}), Log_Interval, Stop_When_Full, Record_Count (0 clears). "
              "Log_Buffer is read with ReadRange only; without segmentation, an answer holds as many records "
              "as fit the smaller of both devices' APDU sizes, with MORE_ITEMS set when there are more.", "",
              "| object | logs by default | description |", "|---|---|---|"]
    lines += [f"| TL{tl.instance} | AI{tl.default_input} | {tl.description} |" for tl in model.trend_logs]
    lines += ["", MSTP.format(tnt=master.T_NO_TOKEN_S * 1000, tslot=master.T_SLOT_S * 1000,
                              trt=master.T_REPLY_TIMEOUT_S * 1000, tut=master.T_USAGE_TIMEOUT_S * 1000,
                              trd=master.T_REPLY_DELAY_S * 1000, npoll=master.N_POLL,
                              abort=frame.FRAME_ABORT_BITS, abort_floor=frame.FRAME_ABORT_FLOOR_S * 1000,
                              maxdata=frame.MAX_DATA_OCTETS, options=_options()).rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return generate(DOC, render, argv, GENERATOR)


if __name__ == "__main__":
    sys.exit(main())
