"""The fixed blocks of the Modbus register map, and the catalogue's commands as Modbus runs them.

A block is a range of protocol addresses (0-based, inclusive) that a client may read in one request even where
some words in it carry no value: such words read as 0x8000 (ION7400 user manual, "Modbus invalid read registers
responses"). A read that touches an address outside every block gets exception 02. Registers that a point maps
outside these blocks form blocks of their own, exactly as wide as the registers that touch each other.

Which point sits at which address is in the point map (``firmware/points/*.toml``, key ``modbus``); this table
only says where reads may span gaps, and gives each range the title that ``docs/modbus.md`` shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware.catalogue import commands


@dataclass(frozen=True)
class Block:
    start: int
    end: int          # inclusive
    title: str
    layout: str       # whose layout the addresses follow

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int) and self.start <= address <= self.end

    @property
    def count(self) -> int:
        return self.end - self.start + 1


ION = "PowerLogic ION7400/PM8000"
OWN = "this meter"

# Register blocks, for FC 3 and FC 4 (the same map answers both).
REGISTER_BLOCKS: tuple[Block, ...] = (
    Block(29, 108, "Identity", OWN),
    Block(2999, 3110, "Basic readings: current, voltage, power, power factor, frequency", ION),
    Block(3143, 3150, "Power factor A, B, C, total (also at 3077-3084)", ION),
    Block(3203, 3250, "Energy (signed 64-bit Wh, varh, VAh)", ION),
    Block(3763, 3830, "Demand and peak demand", OWN),
    Block(4000, 4015, "Status", OWN),
    Block(4191, 4310, "Time of use", OWN),
    Block(4320, 4339, "Energy paths: cross-check and gap fill", OWN),
    Block(5000, 5007, "Commands", OWN),
    Block(21299, 21360, "Power quality: THD, unbalance, K-factor, crest factor", OWN),
    Block(22000, 22999, "Harmonics (magnitude per order, fundamental first)", OWN),
    Block(26000, 26017, "Flicker: Pinst, Pst, Plt per phase (IEC 61000-4-15)", OWN),
)

# Bit blocks: coils (FC 1, 5, 15) and discrete inputs (FC 2).
COIL_BLOCKS: tuple[Block, ...] = (
    Block(0, 15, "Command coils (write 1 to run the command)", OWN),
)
DISCRETE_BLOCKS: tuple[Block, ...] = (
    Block(0, 31, "Status bits", OWN),
)


@dataclass(frozen=True)
class Command:
    """A command a client runs by writing 1 to its register or coil, or, when ``arg`` is set, by writing the
    value the command takes (as argument ``arg``, with the fixed arguments ``args``)."""

    point: str            # the command point's name in the point map
    control: str          # "<service>.<command>" on the control socket
    description: str
    arg: str | None = None
    args: tuple[tuple[str, Any], ...] = ()
    operation: str = ""   # what firmware.security.authorize decides on (privilege, revenue lock)


# The catalogue's commands that name a command point (firmware/catalogue/table.py). The comms service asks
# firmware.security.authorize before it sends a command (so a locked meter answers at once), and the owning
# service checks the revenue lock again. One request runs at most one command: commands live in another process
# and cannot be undone, so a write that would run several is refused as a whole.
COMMANDS: tuple[Command, ...] = tuple(
    Command(c.modbus, c.control, c.description, c.value_arg or None, c.protocol_args, c.op)
    for c in commands() if c.modbus)

# Value a client writes to a command register or coil to run it (ION: commands run on a written 1).
COMMAND_RUN_VALUE = 1
