"""Open a board's hardware by name: the real chip on spidev + GPIO, or the simulated board.

``open_hardware`` is the one entry point the acquisition service and the tests use; the driver that
comes back is the same class either way. ``read_loop`` picks who services IRQ0: ``"c"`` (``hal.rtloop``,
a thread without the GIL; the meter's default) or ``"python"`` (``hal.ade9000_stream``, the reference).

The simulated board comes in two forms. In real time its chip runs in a process of its own
(``hal.sim.chipd``), producing samples by the wall clock whether the host keeps up or not, reached over a
socket transport and edge pipes exactly where the real board has spidev and a GPIO line. In virtual time
(tests, replay) the chip lives in the host's process and the clock jumps to its next interrupt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hal.ade9000 import Ade9000, ChipSettings
from hal.ade9000_stream import WaveformStream
from hal.backends import board_simulated
from hal.board import BoardParams
from hal.clock import Clock, SystemClock, VirtualClock
from hal.gpio import Gpio, open_gpio
from hal.errors import ConfigError
from hal.spi import open_spi


@dataclass
class Hardware:
    chip: Ade9000
    stream: WaveformStream
    gpio: Gpio
    clock: Clock
    sim: Any = None             # in-process SimAde9000 (virtual time): fault injection, signal source
    chip_process: Any = None    # hal.sim.chipd.ChipProcess (simulated board in real time)

    def close(self) -> None:
        self.stream.stop()
        self.chip.bus.close()
        self.gpio.close()
        if self.chip_process is not None:
            self.chip_process.close()


def open_hardware(board: BoardParams, settings: ChipSettings, *, source: Any = None, realtime: bool = True,
                  clock: Clock | None = None, read_loop: str = "python", chip_process: bool | None = None,
                  lock_memory: bool = False) -> Hardware:
    """Build the transport, GPIO and driver for ``board``; for a simulated board also the chip and its signal.

    ``chip_process`` (simulated board only) defaults to ``realtime``; the C read loop needs it, since the
    in-process chip produces samples only when the host calls it.
    """
    spi, pins = board.spi, board.gpio
    where = f"spidev{spi.bus}.{spi.chip_select}"
    if read_loop not in ("c", "python"):
        raise ConfigError(f"read loop {read_loop!r}; allowed 'c', 'python'")
    simulated = board_simulated(spi.backend, pins.backend, f"board {board.name}")
    sim = proc = None
    irq_kind, irq_fd = "", -1
    transport = None
    if simulated:
        from hal.sim.signals import steady

        source = source if source is not None else steady(nominal_hz=settings.line_hz)
        if chip_process is None:
            chip_process = realtime
        if read_loop == "c" and not chip_process:
            raise ConfigError("the C read loop needs the simulated chip in its own process (real time)")
    if simulated and chip_process:
        from hal import rtloop
        from hal.sim.chipd import ChipProcess

        clock = clock or SystemClock()
        proc = ChipProcess(source, settings.channels, irq0_pin=pins.irq0, irq1_pin=pins.irq1, reset_pin=pins.reset,
                           noise=board.sim_noise, seed=board.sim_seed, nominal_hz=settings.line_hz,
                           max_transfer=spi.max_transfer, speed_hz=spi.max_speed_hz)
        transport = proc.transport
        gpio: Gpio = proc.lines
        bus = open_spi(spi.backend, device=rtloop.TransportDevice(transport), max_transfer=spi.max_transfer)
        irq_kind, irq_fd = "pipe", proc.edge_fds[pins.irq0]
        where = f"simulated {where}"
    elif simulated:
        from hal.sim.chip import SimAde9000
        from hal.sim.gpio import SimGpio

        clock = clock or (SystemClock() if realtime else VirtualClock())
        gpio = SimGpio(clock)
        sim = SimAde9000(source, clock, settings.channels, gpio, irq0_pin=pins.irq0, irq1_pin=pins.irq1,
                         reset_pin=pins.reset, noise=board.sim_noise, seed=board.sim_seed, nominal_hz=settings.line_hz)
        bus = open_spi(spi.backend, device=sim, max_transfer=spi.max_transfer)
        where = f"simulated {where}"
    else:
        clock = clock or SystemClock()
        gpio = open_gpio(pins.backend, chip=pins.chip)
        bus = open_spi(spi.backend, bus=spi.bus, chip_select=spi.chip_select, max_speed_hz=spi.max_speed_hz,
                       max_transfer=spi.max_transfer)
        if read_loop == "c":
            from hal import rtloop

            spidev: Any = bus.device
            transport = rtloop.transport("spidev", spidev.fileno(), spi.max_speed_hz, bus.max_transfer)
            bus.device = rtloop.TransportDevice(transport, owner=spidev)
    chip = Ade9000(bus, gpio, clock, settings, irq0_pin=pins.irq0, irq1_pin=pins.irq1, reset_pin=pins.reset,
                   dready_pin=pins.dready, where=where)
    stream: Any = WaveformStream(chip)
    if read_loop == "c":
        from hal import rtloop

        if not simulated:
            gpio.release(pins.irq0)           # the C thread owns IRQ0's line from here
            chip_path = pins.chip if pins.chip.startswith("/") else f"/dev/{pins.chip}"
            irq_kind, irq_fd = "gpio", rtloop.gpio_line(chip_path, pins.irq0)
        stream = rtloop.RtStream(chip, transport, irq_kind, irq_fd, lock_memory=lock_memory)
    return Hardware(chip, stream, gpio, clock, sim, proc)
