"""The simulated ADE9000 in a process of its own, producing samples by the wall clock as a real chip does.

A real chip never waits for its host: it fills the waveform buffer at 32 kSPS, raises IRQ0 when a half is
full and overwrites the oldest half 4 ms later whether it was read or not. Run inside the host's process,
the simulated chip only produced samples when the host asked, and its CPU time was charged to the host's
deadline. Here it runs in its own process:

- one thread (SCHED_FIFO where permitted) waits on the host's socket until the next moment the chip raises
  an interrupt (``SimAde9000.next_event_ns``); then it brings the chip up to the wall clock and so fills the
  buffer, sets STATUS0 and drives IRQ0. When the process itself is late it produces everything due at once,
  in a burst: its frame count follows the wall clock, never its own progress. One thread and no lock: two
  threads sharing the interpreter lock made the interrupts and the replies wait for each other by
  milliseconds;
- a completed half raises IRQ0 at once; the work that is not the buffer (the measurement path: RMS, power,
  period and energy registers, in steps of 8 ms, latching energy at its boundary; and the next 8-ms chunk
  of signal) is done while the host is quiet and the next interrupt is at least 2 ms away, so the host's
  reads never wait behind it (a real chip's DSP runs beside its SPI port);
- it answers the host over a ``SOCK_SEQPACKET`` socket, one message per SPI transaction
  (``X`` + the bytes clocked out; the reply is the bytes clocked in), several in one message as
  SPI_IOC_MESSAGE(n) does (``M``), plus line levels (``L``), the RESET line (``P``) and fault injection
  (``C``, JSON).

Each falling edge of IRQ0 or IRQ1 writes the edge's CLOCK_MONOTONIC time (8 bytes) to that line's pipe,
which the host polls as it would poll a GPIO line's event file descriptor.

Same deadline rule as the real chip on spidev: the host reads the buffer through transactions while the
chip keeps writing it between them, so a host later than 4 ms loses the half. What this does not model beyond
``hal.sim.chip``: SPI clock time on the wire (a transaction costs a socket round trip, ~20-50 us).
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from hal.clock import SystemClock
from hal.errors import BusError
from hal.gpio import FALLING, RISING, Gpio

OP_XFER, OP_MULTI, OP_LEVEL, OP_PIN, OP_CONTROL = ord("X"), ord("M"), ord("L"), ord("P"), ord("C")
MAX_MESSAGE = 65536 + 1
PRODUCER_PRIORITY = 60          # SCHED_FIFO, above the host's read loop: the chip is hardware
IDLE_NS = 20_000_000            # longest sleep without a request or an interrupt due
QUIET_NS = 500_000              # the host is taken as done with an interrupt after 0.5 ms without a request
PREFETCH_SLACK_NS = 2_500_000   # ... and a step of work (up to ~2 ms on a loaded VM) only with this long until the next
                                # interrupt, so that it never delays one
CHUNK_FRAMES = 256              # signal computed 8 ms at a time: well under a millisecond of work
_EDGE = struct.Struct("<q")
_PR_SET_PDEATHSIG = 1


# ---------------------------------------------------------------------------------------------- chip side
class _PipeLines:
    """The chip's output lines: levels kept here, each falling edge time-stamped into the line's pipe."""

    def __init__(self, pipes: dict[int, int]) -> None:
        self.pipes = pipes
        self.levels: dict[int, bool] = {}
        self.chip: Any = None

    def attach_chip(self, chip: Any) -> None:
        self.chip = chip

    def drive(self, pin: int, level: bool) -> None:
        old = self.levels.get(pin, True)
        self.levels[pin] = level
        fd = self.pipes.get(pin)
        if old and not level and fd is not None:
            with contextlib.suppress(BlockingIOError):     # nobody reads the line: a level, not a queue
                os.write(fd, _EDGE.pack(time.monotonic_ns()))


def _set_priority() -> str:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRODUCER_PRIORITY))
        return "SCHED_FIFO"
    except (PermissionError, OSError) as exc:
        return f"normal priority ({exc})"


def _chip_main(sock: socket.socket, setup: dict[str, Any]) -> None:
    from hal.sim.chip import SimAde9000

    pipes = {int(k): v for k, v in setup["pipes"].items()}
    for fd in pipes.values():
        os.set_blocking(fd, False)
    lines = _PipeLines(pipes)
    clock = SystemClock()
    chip = SimAde9000(setup["source"], clock, setup["channels"], lines, irq0_pin=setup["irq0_pin"],
                      irq1_pin=setup["irq1_pin"], reset_pin=setup["reset_pin"], noise=setup["noise"],
                      seed=setup["seed"], nominal_hz=setup["nominal_hz"])
    chip.page_sync = True
    chip.defer_measure = True
    chip.frames.chunk_frames = CHUNK_FRAMES
    chip.frames.codes(0, 1)          # first use imports numpy.random (~20 ms): not while streaming
    chip.frames.restart(chip.frames.t0_ns)
    priority = _set_priority() if setup.get("priority", True) else "normal priority"
    sock.send(json.dumps({"ready": True, "priority": priority}).encode())
    last_request = 0
    while True:
        chip.sync()                                   # everything due by now, and the interrupt lines
        nxt = chip.next_event_ns()
        now = time.monotonic_ns()
        wait_ns = IDLE_NS if nxt is None else min(max(nxt - now, 0), IDLE_NS)
        # the measurement path and the next chunk of signal are computed while the host is quiet and the next
        # interrupt is far, so that neither waits for them (frames are a pure function of their numbers)
        if (wait_ns > PREFETCH_SLACK_NS and now - last_request > QUIET_NS
                and (chip.catch_up() or chip.frames.prefetch(chip.frames_due() + CHUNK_FRAMES))):
            continue
        if now - last_request <= QUIET_NS:
            wait_ns = min(wait_ns, QUIET_NS)
        ready, _, _ = select.select([sock], [], [], wait_ns / 1e9)
        if not ready:
            continue
        msg = sock.recv(MAX_MESSAGE)
        if not msg:
            break
        sock.send(_serve(chip, lines, msg))
        last_request = time.monotonic_ns()


def _serve(chip: Any, lines: _PipeLines, msg: bytes) -> bytes:
    """One request of the host (a transfer, a line's level, the reset pin, a control message) and its reply."""
    op = msg[0]
    if op == OP_XFER:
        return chip.transfer(msg[1:])
    if op == OP_MULTI:
        return b"".join(chip.transfer(tx) for tx in _split_multi(msg))
    if op == OP_LEVEL:
        chip.sync()
        return bytes([lines.levels.get(int.from_bytes(msg[1:3], "big"), True)])
    if op == OP_PIN:
        pin, level = int.from_bytes(msg[1:3], "big"), bool(msg[3])
        if pin == chip.reset_pin:
            chip.set_reset_pin(level)
        return b"\x01"
    if op == OP_CONTROL:
        return json.dumps(_control(chip, json.loads(msg[1:]))).encode()
    return b""


def _split_multi(msg: bytes) -> list[bytes]:
    """``M``, a count, then (16-bit length, bytes) per transaction: SPI_IOC_MESSAGE(n) over the socket."""
    out, off = [], 2
    for _ in range(msg[1]):
        n = int.from_bytes(msg[off:off + 2], "big")
        out.append(msg[off + 2:off + 2 + n])
        off += 2 + n
    return out


def _control(chip: Any, req: dict[str, Any]) -> dict[str, Any]:
    """Fault injection and the chip's own view of time, for tests."""
    for name, value in req.get("faults", {}).items():
        if not hasattr(chip.faults, name):
            return {"error": f"no fault {name!r}; allowed {', '.join(asdict(chip.faults))}"}
        setattr(chip.faults, name, type(getattr(chip.faults, name))(value))
    if "upset" in req:
        chip.upset(req["upset"]["register"], int(req["upset"]["xor"]))
    chip.sync()
    return {"faults": asdict(chip.faults), "produced": chip._produced, "capture_start": chip._capture_start,
            "t0_ns": chip.frames.t0_ns, "running": chip._running, "transactions": chip.transactions}


def main() -> int:
    """Entry point of the chip's process: ``python -m hal.sim.chipd FD``; the setup arrives on the socket."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Ctrl-C in a terminal reaches every process of the meter; a chip does not stop on it: its host (the
    # acquisition service) stops and closes it, as the host stopping stops the real chip's use
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    setup = pickle.loads(sock.recv(1 << 20))
    _chip_main(sock, setup)
    return 0


# ---------------------------------------------------------------------------------------------- host side
class RemoteLines(Gpio):
    """The host's view of the simulated board's lines: levels over the socket, edges from the pipes."""

    def __init__(self, chip: ChipProcess) -> None:
        self.chip = chip
        self.irq_pins = set(chip.edge_fds)

    def setup_input(self, pin: int, pull: str = "none") -> None:
        """The chip drives its lines; nothing to configure."""

    def setup_output(self, pin: int, initial: bool) -> None:
        self.write(pin, initial)

    def read(self, pin: int) -> bool:
        return self.chip.request(bytes([OP_LEVEL]) + pin.to_bytes(2, "big"))[:1] == b"\x01"

    def write(self, pin: int, value: bool) -> None:
        self.chip.request(bytes([OP_PIN]) + pin.to_bytes(2, "big") + bytes([value]))

    def wait_for_edge(self, pin: int, edge: str, timeout_s: float) -> bool:
        import select

        fd = self.chip.edge_fds.get(pin)
        if fd is None:
            time.sleep(timeout_s)
            return False
        if edge == RISING:
            raise BusError("simulated lines report falling edges only (IRQ lines are active low)")
        ready, _, _ = select.select([fd], [], [], timeout_s)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(fd, 4096)
        return edge in (FALLING, "both")


class ChipProcess:
    """The host's handle on the simulated ADE9000's process: its transport, its lines, fault injection."""

    def __init__(self, source: Any, channels: Any, *, irq0_pin: int, irq1_pin: int, reset_pin: int | None, noise: bool,
                 seed: int, nominal_hz: float, priority: bool = True, max_transfer: int = 4096,
                 speed_hz: int = 0) -> None:
        from hal import rtloop

        host, chip = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.edge_fds: dict[int, int] = {}
        child_fds: dict[int, int] = {}
        for pin in (irq0_pin, irq1_pin):
            r, w = os.pipe()
            os.set_blocking(r, False)
            self.edge_fds[pin] = r
            child_fds[pin] = w
        self.irq0_pin = irq0_pin
        self.proc = subprocess.Popen([sys.executable, "-m", "hal.sim.chipd", str(chip.fileno())],
                                     pass_fds=(chip.fileno(), *child_fds.values()), close_fds=True)
        chip.close()
        for w in child_fds.values():
            os.close(w)
        self.sock = host
        host.send(pickle.dumps({"source": source, "channels": channels, "irq0_pin": irq0_pin, "irq1_pin": irq1_pin,
                                "reset_pin": reset_pin, "noise": noise, "seed": seed, "nominal_hz": nominal_hz,
                                "pipes": child_fds, "priority": priority}))
        host.settimeout(30.0)
        try:
            hello = json.loads(host.recv(4096) or b"{}")
        except (OSError, ValueError) as exc:
            self.close()
            raise BusError(f"simulated ADE9000: its process did not start ({exc})") from exc
        host.settimeout(None)
        if not hello.get("ready"):
            self.close()
            raise BusError("simulated ADE9000: its process did not start")
        self.priority = hello.get("priority", "")
        # the board's SPI limits, as spidev would impose them: the transfer size, and the clock by which the read
        # loop allows for a message's wire time
        self.transport = rtloop.transport("socket", host.fileno(), speed_hz, max_transfer)
        self.lines = RemoteLines(self)

    def request(self, msg: bytes) -> bytes:
        return bytes(self.transport.request(msg))

    def control(self, **req: Any) -> dict[str, Any]:
        """Inject faults (``faults={"crc_errors": 2}``), upset a register, or just read the chip's state."""
        out: dict[str, Any] = json.loads(self.request(bytes([OP_CONTROL]) + json.dumps(req).encode()))
        if "error" in out:
            raise ValueError(out["error"])
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        for fd in self.edge_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.edge_fds = {}
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
