"""The SPI transport: one full-duplex transfer primitive over a spidev-like device.

Backends by name (lazy, python-can style): ``"spidev"`` opens ``/dev/spidevB.C``; ``"sim"`` takes the
simulated ADE9000, which is a drop-in for the ``spidev.SpiDev`` object (it implements ``xfer2``).
The transport knows nothing of registers; it enforces the per-transfer limit (spidev ``bufsiz``) so
callers split long burst reads themselves and never hit an EMSGSIZE at run time.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from hal.backends import SPI_BACKENDS, backend
from hal.errors import BusError, ConfigError


class SpiDevice(Protocol):
    def xfer2(self, data: Any) -> Sequence[int]: ...      # spidev: list[int]; the C loop's transport: bytes
    def close(self) -> None: ...


class SpiBus:
    BACKENDS = tuple(SPI_BACKENDS)

    def __init__(self, device: SpiDevice, max_transfer: int) -> None:
        self.device = device
        self.max_transfer = max_transfer
        self.transfers = 0
        self.bytes = 0

    def transfer(self, tx: bytes) -> bytes:
        """Clock ``tx`` out with chip select held for the whole transfer; return the bytes clocked in."""
        if len(tx) > self.max_transfer:
            raise BusError(f"spi: transfer of {len(tx)} bytes exceeds the {self.max_transfer}-byte limit")
        try:
            rx = self.device.xfer2(tx)
        except OSError as exc:
            raise BusError(f"spi: transfer failed: {exc}") from exc
        self.transfers += 1
        self.bytes += len(tx)
        return bytes(rx)

    def close(self) -> None:
        self.device.close()


def open_spi(name: str, *, bus: int = 0, chip_select: int = 0, max_speed_hz: int = 10_000_000,
             device: SpiDevice | None = None, max_transfer: int = 4096) -> SpiBus:
    """The SPI backend ``name`` of ``hal.backends.SPI_BACKENDS``: the simulated one takes the simulated chip as
    its ``device``."""
    b = backend("spi", name)
    if b.simulated:
        if device is None:
            raise ConfigError(f"spi: backend {name!r} needs the simulated chip as its device")
        return SpiBus(device, max_transfer)
    from hal.backends.spidev_backend import spidev_bufsiz

    return SpiBus(b.load()(bus, chip_select, max_speed_hz), spidev_bufsiz(max_transfer))
