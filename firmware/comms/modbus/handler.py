"""One Modbus request PDU in, one response PDU (or silence) out: the rules of SPEC §7 in one place.

Transport-free: the TCP and RTU servers unwrap their frames, call ``Handler.handle`` and wrap what it returns.
``None`` means "send nothing" (a write to an unmapped register, a malformed request that cannot be answered).

Checks run in the order of the Modbus Application Protocol's state diagrams (§6): function code (01), then
quantity and length (03), then address (02), then execution (04). Beyond that the ION7400 manual's rules:
a read that starts or ends inside a multi-word value gets 03; a write to an address with no register gets no
reply and stores nothing; a write to a read-only register gets 03; a register protected by the access setting
or by the revenue lock gets 02.
"""
from __future__ import annotations

import logging
import struct
from typing import Any, Awaitable, Callable, Mapping, Protocol

from firmware.comms.modbus import blocks as _blocks
from firmware.comms.modbus.blocks import COMMAND_RUN_VALUE, Command
from firmware.comms.modbus.ident import Identity, read_device_identification, report_server_id
from firmware.comms.modbus.regmap import (
    DEVICE_FAILURE,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    RegisterMap,
    WriteRefused,
)
from firmware.security.authorize import Access, decide
from firmware.security.authorize import Identity as User
from hal.errors import AccessDenied

__all__ = ["Access", "Handler", "exception"]

log = logging.getLogger("comms.modbus")

# Quantity limits, Modbus Application Protocol v1.1b3 §6.1–6.12.
MAX_READ_BITS = 2000
MAX_READ_REGISTERS = 125
MAX_WRITE_BITS = 1968
MAX_WRITE_REGISTERS = 123
COIL_ON, COIL_OFF = 0xFF00, 0x0000

FC_READ_COILS, FC_READ_DISCRETE, FC_READ_HOLDING, FC_READ_INPUT = 1, 2, 3, 4
FC_WRITE_COIL, FC_WRITE_REGISTER, FC_WRITE_COILS, FC_WRITE_REGISTERS = 5, 6, 15, 16
FC_REPORT_SERVER_ID, FC_MEI = 17, 43
# Read scattered holding registers (ION7400 function-code table; frame as Schneider Electric defines it, the
# ION7400 manual giving none): FC 100, byte count, sub-function 4, transmission number (echoed), then up to 100
# addresses of one word each; the answer carries the same header and one word per address.
FC_READ_SCATTERED, SCATTERED_SUBFUNCTION, MAX_SCATTERED = 100, 4, 100
SUPPORTED_FUNCTIONS = (1, 2, 3, 4, 5, 6, 15, 16, 17, 43, 100)


# Who runs Modbus commands while [security] is disabled: the port's access mode alone decides.
OPEN_IDENTITY = User.master("modbus", "modbus")


class CommandSink(Protocol):
    """Runs a command in its owning service with its arguments; raises AccessDenied when refused, another
    error when it failed."""

    def __call__(self, command: Command, args: dict[str, Any]) -> Awaitable[Any]: ...


# Values source: returns the latest values when they changed since the last call, else None.
Poll = Callable[[], "Mapping[str, Any] | None"]


def exception(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


class Handler:
    def __init__(self, regmap: RegisterMap, poll: Poll, identity: Identity, access: Access = Access.READ_ONLY,
                 run_command: CommandSink | None = None,
                 commands: tuple[Command, ...] = _blocks.COMMANDS, command_user: User | None = OPEN_IDENTITY,
                 resets_when_locked: bool = False) -> None:
        """``command_user``: the user commands run as (None: security is on and no Modbus user is set, so every
        command is refused); ``resets_when_locked``: [revenue] demand_reset_when_locked."""
        self.regmap = regmap
        self.poll = poll
        self.identity = identity
        self.access = Access(access)
        self.run_command = run_command
        self.commands = {c.point: c for c in commands}
        self.command_user = command_user
        self.resets_when_locked = resets_when_locked
        self.revenue_locked = False
        self.counters = {"requests": 0, "exceptions": 0, "silent": 0, "commands": 0}

    def refresh(self) -> None:
        values = self.poll()
        if values is not None:
            self.regmap.refresh(values)
            locked = values.get("revenue_locked")
            self.revenue_locked = bool(locked) and locked == locked

    async def handle(self, pdu: bytes, server_id: int = 1, access: Access | None = None) -> bytes | None:
        """The response PDU for ``pdu``, or None for no response; ``access`` is the port's (default: ours)."""
        access = self.access if access is None else Access(access)
        self.counters["requests"] += 1
        if not pdu or not 1 <= pdu[0] <= 0x7F:
            # No function code, or one in the range the protocol keeps for exception responses (§5): this is
            # not a request, and an "exception" to it would look like one.
            self.counters["silent"] += 1
            return None
        fc = pdu[0]
        reply: bytes | int | None
        try:
            if fc in (FC_READ_HOLDING, FC_READ_INPUT):
                reply = self._read_registers(pdu, access)
            elif fc in (FC_READ_COILS, FC_READ_DISCRETE):
                reply = self._read_bits(pdu, access)
            elif fc in (FC_WRITE_REGISTER, FC_WRITE_REGISTERS, FC_WRITE_COIL, FC_WRITE_COILS):
                reply = await self._write(pdu, access)
            elif fc == FC_REPORT_SERVER_ID:
                reply = report_server_id(self.identity, server_id) if len(pdu) == 1 else ILLEGAL_VALUE
            elif fc == FC_MEI:
                reply = self._mei(pdu)
            elif fc == FC_READ_SCATTERED:
                reply = self._read_scattered(pdu, access)
            else:
                reply = ILLEGAL_FUNCTION
        except Exception:   # a fault here must cost one request, never the server
            log.exception("modbus: request %s failed", pdu[:16].hex())
            reply = DEVICE_FAILURE
        if reply is None:
            self.counters["silent"] += 1
            return None
        if isinstance(reply, int):
            self.counters["exceptions"] += 1
            return exception(fc, reply)
        return reply

    # ------------------------------------------------------------------ reads

    def _read_request(self, pdu: bytes, max_count: int, access: Access) -> tuple[int, int, int] | int:
        """(function, start, count) of a read request (FC 1-4), or the exception code it earns."""
        if len(pdu) != 5:
            return ILLEGAL_VALUE
        fc, start, count = struct.unpack(">BHH", pdu)
        if not 1 <= count <= max_count:
            return ILLEGAL_VALUE
        if start + count > 0x10000 or access is Access.NONE:
            return ILLEGAL_ADDRESS
        self.refresh()
        return fc, start, count

    def _read_registers(self, pdu: bytes, access: Access) -> bytes | int:
        request = self._read_request(pdu, MAX_READ_REGISTERS, access)
        if isinstance(request, int):
            return request
        fc, start, count = request
        data = self.regmap.read_registers(start, count)
        if isinstance(data, int):
            return data
        return bytes((fc, 2 * count)) + data

    def _read_scattered(self, pdu: bytes, access: Access) -> bytes | int:
        """FC 100 / 4: one word for each address listed. Addresses that follow one another are read as one run,
        under FC 3's rules (a run that starts or ends inside a multi-word value: 03), all from one snapshot."""
        if len(pdu) < 3:
            return ILLEGAL_VALUE
        if pdu[2] != SCATTERED_SUBFUNCTION:
            return ILLEGAL_FUNCTION
        if len(pdu) != 2 + pdu[1]:
            return ILLEGAL_VALUE
        count, odd = divmod(pdu[1] - 2, 2)
        if odd or not 1 <= count <= MAX_SCATTERED:
            return ILLEGAL_VALUE
        if access is Access.NONE:
            return ILLEGAL_ADDRESS
        addresses = struct.unpack(f">{count}H", pdu[4:])
        self.refresh()
        words = bytearray()
        start = 0
        for i in range(1, count + 1):
            if i < count and addresses[i] == addresses[i - 1] + 1:
                continue
            data = self.regmap.read_registers(addresses[start], i - start)
            if isinstance(data, int):
                return data
            words += data
            start = i
        return bytes((FC_READ_SCATTERED, 2 + 2 * count, SCATTERED_SUBFUNCTION, pdu[3])) + bytes(words)

    def _read_bits(self, pdu: bytes, access: Access) -> bytes | int:
        request = self._read_request(pdu, MAX_READ_BITS, access)
        if isinstance(request, int):
            return request
        fc, start, count = request
        bits = self.regmap.read_bits("coil" if fc == FC_READ_COILS else "discrete", start, count)
        if isinstance(bits, int):
            return bits
        packed = bytearray((count + 7) // 8)
        for i, bit in enumerate(bits):
            if bit:
                packed[i >> 3] |= 1 << (i & 7)
        return bytes((fc, len(packed))) + bytes(packed)

    # ------------------------------------------------------------------ writes

    def _parse_write(self, pdu: bytes) -> tuple[int, int, list[int]] | int:
        """(start, count, values) of a write request, or the exception code for a malformed one."""
        fc = pdu[0]
        if fc in (FC_WRITE_REGISTER, FC_WRITE_COIL):
            if len(pdu) != 5:
                return ILLEGAL_VALUE
            _, start, value = struct.unpack(">BHH", pdu)
            if fc == FC_WRITE_COIL:
                if value not in (COIL_ON, COIL_OFF):
                    return ILLEGAL_VALUE
                value = int(value == COIL_ON)
            return start, 1, [value]
        if len(pdu) < 6:
            return ILLEGAL_VALUE
        _, start, count, nbytes = struct.unpack(">BHHB", pdu[:6])
        data = pdu[6:]
        if fc == FC_WRITE_REGISTERS:
            if not 1 <= count <= MAX_WRITE_REGISTERS or nbytes != 2 * count or len(data) != nbytes:
                return ILLEGAL_VALUE
            values = list(struct.unpack(f">{count}H", data))
        else:
            if not 1 <= count <= MAX_WRITE_BITS or nbytes != (count + 7) // 8 or len(data) != nbytes:
                return ILLEGAL_VALUE
            values = [(data[i >> 3] >> (i & 7)) & 1 for i in range(count)]
        if start + count > 0x10000:
            return ILLEGAL_ADDRESS
        return start, count, values

    def _write_targets(self, pdu: bytes) -> list[tuple[str, Any]] | int | None:
        """(point, value) for each whole value a write request covers (a multi-word value decoded), the
        exception it earns, or None for no reply."""
        parsed = self._parse_write(pdu)
        if isinstance(parsed, int):
            return parsed
        start, count, values = parsed
        try:
            if pdu[0] in (FC_WRITE_COIL, FC_WRITE_COILS):
                return [(bit.point, value) for bit, value in zip(self.regmap.check_coil_write(start, count), values)]
            registers = self.regmap.check_write(start, count)
        except WriteRefused as refused:
            return refused.code
        words = struct.pack(f">{count}H", *values)
        return [(reg.point, reg.fmt.decode(words[2 * (reg.address - start):2 * (reg.end - start + 1)], reg.scale))
                for reg in registers]

    def _commands(self, fc: int, targets: list[tuple[str, Any]]) -> list[tuple[Command, dict[str, Any]]] | int:
        """The commands a write runs with their arguments, or the exception code; nothing runs unless all may."""
        if any(point not in self.commands for point, _ in targets):
            return ILLEGAL_ADDRESS       # a writable point with no command behind it
        to_run: list[tuple[Command, dict[str, Any]]] = []
        for point, value in targets:
            cmd = self.commands[point]
            if cmd.arg is not None:      # a command that takes the written value
                to_run.append((cmd, {**dict(cmd.args), cmd.arg: value}))
            elif value == COMMAND_RUN_VALUE:
                to_run.append((cmd, dict(cmd.args)))
            elif fc in (FC_WRITE_REGISTER, FC_WRITE_REGISTERS):
                return ILLEGAL_VALUE     # a trigger register takes 1 only; a coil written 0 runs nothing
        return to_run

    async def _write(self, pdu: bytes, access: Access) -> bytes | int | None:
        targets = self._write_targets(pdu)
        if targets is None or isinstance(targets, int):
            return targets
        if access is not Access.READ_WRITE:
            return ILLEGAL_ADDRESS
        to_run = self._commands(pdu[0], targets)
        if isinstance(to_run, int):
            return to_run
        # Commands run in other processes and cannot be undone: every one the request names is authorized
        # before the first runs, so a refused one refuses the whole request rather than failing half-way.
        self.refresh()
        for cmd, _ in to_run:
            refusal = self._refusal(cmd, access)
            if refusal:
                log.info("modbus: %s refused (with the %d command(s) of its request): %s", cmd.point,
                         len(to_run), refusal)
                return ILLEGAL_ADDRESS
        for cmd, args in to_run:
            code = await self._run(cmd, args)
            if code is not None:
                return code
        return pdu[:5]                  # FC 5/6 echo the request; FC 15/16 echo address and quantity

    async def _run(self, cmd: Command, args: dict[str, Any]) -> int | None:
        """Run one authorized command in its owning service; the exception code when it did not run."""
        if self.run_command is None:
            return DEVICE_FAILURE
        try:
            await self.run_command(cmd, args)
        except AccessDenied as exc:
            log.info("modbus: %s refused: %s", cmd.point, exc)
            return ILLEGAL_ADDRESS
        except Exception as exc:  # noqa: BLE001 - any failure of a command is a DEVICE_FAILURE reply, never a dead server
            log.warning("modbus: %s failed: %s", cmd.point, exc)
            return DEVICE_FAILURE
        self.counters["commands"] += 1
        return None

    def _refusal(self, cmd: Command, access: Access) -> str:
        """Why the authorization point refuses ``cmd`` over this port now ("" when it allows it)."""
        user = self.command_user
        if user is None:
            return "security is enabled and no Modbus user is configured ([security] modbus_user)"
        decision = decide(user, cmd.operation, "modbus", revenue_locked=self.revenue_locked,
                          resets_when_locked=self.resets_when_locked, access=access)
        return decision.reason

    # ------------------------------------------------------------------ identification

    def _mei(self, pdu: bytes) -> bytes | int:
        if len(pdu) < 2 or pdu[1] != 0x0E:
            return ILLEGAL_FUNCTION      # MEI types other than 14 (e.g. 13, CANopen) are not served
        if len(pdu) != 4:
            return ILLEGAL_VALUE
        return read_device_identification(self.identity, pdu[2], pdu[3])
