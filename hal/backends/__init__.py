"""Hardware backends by name: one registry for the SPI and GPIO backends a board file may name.

Each real backend imports its device library (spidev, RPi.GPIO, gpiod) only when opened. A board is either
all simulated (the simulated ADE9000 answers the SPI transfers and drives the GPIO lines) or all real: a
board that names a simulated backend for one bus and a real one for the other is refused.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from hal.errors import ConfigError


@dataclass(frozen=True)
class Backend:
    name: str
    simulated: bool
    target: str = ""            # "module:attribute" opened lazily; "" for the simulated SPI (the chip is the device)

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


SPI_BACKENDS = {b.name: b for b in (Backend("spidev", False, "hal.backends.spidev_backend:open_spidev"),
                                    Backend("sim", True))}
GPIO_BACKENDS = {b.name: b for b in (Backend("rpigpio", False, "hal.backends.rpigpio:RpiGpio"),
                                     Backend("gpiod", False, "hal.backends.gpiod_backend:GpiodGpio"),
                                     Backend("sim", True, "hal.sim.gpio:SimGpio"))}


def backend(kind: str, name: str) -> Backend:
    table = SPI_BACKENDS if kind == "spi" else GPIO_BACKENDS
    if name not in table:
        raise ConfigError(f"{kind}: backend {name!r} is not known; allowed {', '.join(map(repr, table))}")
    return table[name]


def board_simulated(spi: str, gpio: str, where: str = "board") -> bool:
    """True for a simulated board, False for a real one; a board that mixes the two is refused."""
    s, g = backend("spi", spi), backend("gpio", gpio)
    if s.simulated != g.simulated:
        raise ConfigError(f"{where}: [spi] backend {spi!r} is {'simulated' if s.simulated else 'real'} but [gpio] "
                          f"backend {gpio!r} is {'simulated' if g.simulated else 'real'}; a board is all simulated "
                          "(both 'sim') or all real")
    return s.simulated
