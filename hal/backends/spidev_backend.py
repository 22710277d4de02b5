"""The real SPI port through the spidev module, imported when opened."""
from __future__ import annotations

from hal.errors import BusError


def open_spidev(bus: int, chip_select: int, max_speed_hz: int, mode: int = 0) -> object:
    try:
        import spidev
    except ImportError as exc:
        raise BusError("spi backend 'spidev' needs the spidev module (pip install 'openmeter[device]')") from exc
    dev = spidev.SpiDev()
    try:
        dev.open(bus, chip_select)
    except OSError as exc:
        raise BusError(f"spi: cannot open /dev/spidev{bus}.{chip_select}: {exc}; is the SPI overlay enabled "
                       "(dtparam=spi=on) and the user in group spi?") from exc
    dev.max_speed_hz = max_speed_hz
    dev.mode = mode
    dev.bits_per_word = 8
    return dev


def spidev_bufsiz(default: int) -> int:
    """The kernel's per-transfer limit (module parameter bufsiz), or ``default`` when it cannot be read."""
    try:
        with open("/sys/module/spidev/parameters/bufsiz", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return default
