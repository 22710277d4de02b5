"""Open a board's hardware by name: the real chip on spidev + GPIO, or the simulated board.

``open_hardware`` is the one entry point the acquisition service and the tests use; the driver that
comes back is the same class either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hal.ade9000 import Ade9000, ChipSettings
from hal.ade9000_stream import WaveformStream
from hal.board import BoardParams
from hal.clock import Clock, SystemClock, VirtualClock
from hal.gpio import Gpio, open_gpio
from hal.spi import open_spi


@dataclass
class Hardware:
    chip: Ade9000
    stream: WaveformStream
    gpio: Gpio
    clock: Clock
    sim: Any = None             # the SimAde9000 on a simulated board (fault injection, signal source)

    def close(self) -> None:
        self.chip.bus.close()
        self.gpio.close()


def open_hardware(board: BoardParams, settings: ChipSettings, *, source: Any = None, realtime: bool = True,
                  clock: Clock | None = None) -> Hardware:
    """Build the transport, GPIO and driver for ``board``; for a simulated board also the chip and its signal."""
    spi, pins = board.spi, board.gpio
    where = f"spidev{spi.bus}.{spi.chip_select}"
    if spi.backend == "sim" or pins.backend == "sim":
        from hal.sim.chip import SimAde9000
        from hal.sim.gpio import SimGpio
        from hal.sim.signals import steady

        clock = clock or (SystemClock() if realtime else VirtualClock())
        gpio = SimGpio(clock)
        sim = SimAde9000(source if source is not None else steady(nominal_hz=settings.line_hz), clock,
                         settings.channels, gpio, irq0_pin=pins.irq0, irq1_pin=pins.irq1, reset_pin=pins.reset,
                         noise=board.sim_noise, seed=board.sim_seed, nominal_hz=settings.line_hz)
        bus = open_spi("sim", device=sim, max_transfer=spi.max_transfer)
        where = f"simulated {where}"
    else:
        clock = clock or SystemClock()
        gpio = open_gpio(pins.backend, chip=pins.chip)
        bus = open_spi("spidev", bus=spi.bus, chip_select=spi.chip_select, max_speed_hz=spi.max_speed_hz,
                       max_transfer=spi.max_transfer)
        sim = None
    chip = Ade9000(bus, gpio, clock, settings, irq0_pin=pins.irq0, irq1_pin=pins.irq1, reset_pin=pins.reset,
                   where=where)
    return Hardware(chip, WaveformStream(chip), gpio, clock, sim)
