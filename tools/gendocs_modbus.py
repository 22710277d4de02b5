"""Generate docs/modbus.md, the Modbus register map, from the point map and firmware/comms/modbus.

Run: ``python -m tools.gendocs_modbus`` (rewrites the file; ``make docs`` runs it) or ``--check`` (exit 1 if
it is stale). The whole file is generated.
"""
from __future__ import annotations

import sys
from pathlib import Path

from firmware.comms.modbus.blocks import COMMANDS
from firmware.comms.modbus.codecs import FORMATS
from firmware.comms.modbus.regmap import Register, RegisterMap, build_map
from firmware.security.authorize import OPERATIONS
from tools.docfile import generate

DOC = Path(__file__).resolve().parent.parent / "docs" / "modbus.md"
GENERATOR = "python -m tools.gendocs_modbus"

INTRO = """The meter is a Modbus server over TCP (port `[modbus] tcp_port`, 502 by default) and over RTU on its
RS-485 port (`[modbus.rtu]`). Its register map keeps the addresses that PowerLogic ION7400/PM8000 meters
publish for the basic readings and energies, so energy-management software set up for those meters reads this
one unchanged; the other blocks are this meter's own. The configuration options are in
[configuration.md](configuration.md).

## Conventions

- Addresses are **protocol addresses**, counted from 0 (the number in the request). Client software that
  counts registers from 1 (the "40001" style) shows each address plus one.
- The same registers answer FC 3 (holding) and FC 4 (input).
- Multi-word values are sent **high word first**; each word high byte first.
- A read may span a whole block in one request. A word inside a block that carries no value reads `0x8000`;
  a value the meter does not have (not measured yet, NaN, or too large for its format) reads as its format's
  "not available" pattern below. A read that starts or ends inside a multi-word value is refused (03).
- Scale: register = value × scale (powers are published in kW, kvar, kVA).

| format | words | not available | meaning |
|---|---|---|---|
{formats}
| string | length | all `0x0000` | ASCII text, two characters a word, NUL padded |

## Function codes and exceptions

| FC | function | notes |
|---|---|---|
| 1 | read coils | command coils always read 0 |
| 2 | read discrete inputs | status bits |
| 3, 4 | read holding / input registers | up to 125 registers |
| 5, 15 | write single / multiple coils | 1 runs the command; 0 is accepted and does nothing |
| 6, 16 | write single / multiple registers | only command registers are writable; write 1 to run |
| 17 | report server id | server id, run indicator 0xFF, then product, version and serial number as text |
| 43 / 14 | read device identification | basic, regular and extended (0x80 = serial number), stream and individual |
| 100 / 4 | read scattered holding registers | up to 100 addresses of one word each, in any order; see below |

FC 100 is in the ION7400 manual's function-code table, which gives no frame; the meter follows Schneider
Electric's definition of function 100, sub-function 4. Request: `100`, byte count (of what follows), `4`, a
transmission number (any byte, echoed), then each address as two bytes. Answer: `100`, byte count, `4`, the
transmission number, then one word per address in the order asked, all from one measurement record. Addresses
that follow one another are read as one run under FC 3's rules: to read a float or an energy, list all its
words; a run that starts or ends inside a multi-word value is refused (03), an address outside every block 02.

| exception | when |
|---|---|
| 01 illegal function | any other function code, FC 43 with an MEI type other than 14, or FC 100 with a sub-function other than 4 |
| 02 illegal address | an address outside every block; access `none`; a command refused by the access setting, by the revenue lock or by its owning service |
| 03 illegal value | a quantity out of range or a length that does not match; a read or write that covers part of a multi-word value; a write to a read-only register; a command register written with anything but 1 |
| 04 server failure | the owning service did not carry out a command (not running, or no answer within `[modbus] command_timeout`) |
| no response | a write to an address that has no register (nothing is stored, ION7400 behaviour); a request whose function code is 0 or 128–255 |

On RTU the meter answers its own unit id and 248 (the address of the only device on a line). Unit 0 is a
broadcast: only FC 16 is carried out, and never answered. Requests to any other unit id are ignored, and frame
edges are found by the 3.5-character silence, so the meter can share a line with other devices.

Access (`[modbus] access`): `none` refuses every data request (device identification still answers),
`read-only` (default) refuses commands, `read-write` runs them. Demand reset, energy reset and billing-period
reset change revenue data and are refused while the meter is revenue-locked; demand sync is not.

## Where the map differs from the PowerLogic layout

- Power factor A, B, C and total read at 3077–3084 (the basic readings block) and at 3143–3150, where ION7400
  clients read them; both are the same values (true power factor, signed by `[metrology] pf_convention`).
- The demand block (3763–3830) is this meter's own layout. The PowerLogic meters put, for each demand
  quantity, the last, present, predicted and peak demand (floats at 3763, 3765, 3767, 3769 for active power)
  and the peak's date and time; this meter publishes no present (partial-interval) demand, so each quantity
  has last (3763 for active power delivered, as PowerLogic), predicted (3765), peak (3767) and the peak's time
  as UNIX seconds (3769, u32), then the received direction. A client set up for the PowerLogic layout reads the
  last demand right and must take the others from the table below. The ION7400 user manual gives no register
  addresses (it refers to the device's Modbus map), so the basic-readings and energy blocks follow the
  published PowerLogic addresses and the demand block says where it does not.

## User map

Any quantity of the catalogue (docs/catalogue.md), also those the fixed map below does not carry, can be laid
out at addresses you choose, so that a client reads what it needs in one request (ION7400 "Modbus user map"):

```toml
[modbus]
user_map = ["40000=v_an", "40002=p_total", "40004=wh_delivered:s64", "40008=harmonics_v_an[5]"]
```

Each entry is `ADDRESS=POINT`, optionally `[i]` for one element of an array and `:FORMAT` (any format of the
table above but `string`; float32 by default). The value is in the point's own unit (W, not the fixed map's
kW). Consecutive entries form one block a read may span. An entry naming something that is not a quantity, an
array without its element, an unknown format, or registers on the fixed map or on another entry is refused when
the configuration is saved (`meter config set`, the web's setup page), with the entry named. The user map is
served on TCP and RTU alike.
"""


def _format_rows() -> str:
    return "\n".join(f"| {f.name} | {f.words} | `0x{f.na.hex().upper()}` | {f.description} |"
                     for f in FORMATS.values())


def _register_rows(registers: list[Register]) -> list[str]:
    """One row per scalar; one row per array (its first..last element)."""
    rows = []
    i = 0
    while i < len(registers):
        reg = registers[i]
        j = i
        while (reg.index is not None and j + 1 < len(registers) and registers[j + 1].point == reg.point
               and registers[j + 1].address == registers[j].end + 1):
            j += 1
        last = registers[j]
        span = f"{reg.address}" if last.end == reg.address else f"{reg.address}–{last.end}"
        name = reg.point if reg.index is None else f"{reg.point}[{reg.index}..{last.index}]"
        fmt = reg.fmt.name if reg.index is None else f"{reg.fmt.name} × {j - i + 1}"
        scale = "" if reg.scale == 1.0 else f"{reg.scale:g}"
        access = "read/write" if reg.writable else "read"
        rows.append(f"| {span} | `{name}` | {fmt} | {reg.unit} | {scale} | {access} | {reg.description} |")
        i = j + 1
    return rows


def render(regmap: RegisterMap | None = None) -> str:
    regmap = regmap or build_map()
    lines = ["# Modbus register map", "",
             f"<!-- Generated by `{GENERATOR}` from firmware/points/*.toml, firmware/comms/modbus/mappings.toml "
             f"and firmware/comms/modbus/blocks.py; do not edit. -->", "",
             INTRO.replace("{formats}", _format_rows()), "## Blocks", "",
             "| addresses | block | layout |", "|---|---|---|"]
    lines += [f"| {b.start}–{b.end} | {b.title} | {b.layout} |" for b in regmap.blocks]
    for block in regmap.blocks:
        inside = [r for r in regmap.registers if r.address in block]
        lines += ["", f"## {block.title} ({block.start}–{block.end})", "",
                  "| address | point | format | unit | scale | access | description |",
                  "|---|---|---|---|---|---|---|"]
        lines += _register_rows(inside) or ["| | | | | | | (no registers) |"]
    lines += ["", "## Coils (FC 1, 5, 15)", "", "| coil | point | description |", "|---|---|---|"]
    lines += [f"| {a} | `{b.point}` | {b.description} |" for a, b in sorted(regmap.coils.items())]
    lines += ["", "## Discrete inputs (FC 2)", "", "| input | point | description |", "|---|---|---|"]
    lines += [f"| {a} | `{b.point}` | {b.description} |" for a, b in sorted(regmap.discretes.items())]
    lines += ["", "## Commands", "",
              "Access read-write is needed on the port; with `[security] enabled` the command runs as "
              "`[security] modbus_user`, which needs the privilege below (docs/security.md).", "",
              "| point | runs | privilege | refused while revenue-locked | what it does |", "|---|---|---|---|---|"]
    lines += [f"| `{c.point}` | `{c.control}` | {OPERATIONS[c.operation].privilege.value} | {_locked(c.operation)} "
              f"| {c.description} |" for c in COMMANDS]
    return "\n".join(lines) + "\n"


def _locked(operation: str) -> str:
    from firmware.security.authorize import REVENUE_LOCKED_RESETS, blocked_by_revenue_lock

    if operation in REVENUE_LOCKED_RESETS:
        return "yes, unless `[revenue] demand_reset_when_locked`"
    return "yes" if blocked_by_revenue_lock(operation) else "no"


def main(argv: list[str] | None = None) -> int:
    return generate(DOC, render, argv, GENERATOR)


if __name__ == "__main__":
    sys.exit(main())
