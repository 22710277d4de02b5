"""Where a rendered screen goes: the Linux framebuffer on the device, PNG files in simulation.

The CM4's SPI or DPI 320x240 panel is a framebuffer device (``/dev/fb0``) in RGB565: each pixel is 16 bits,
5 red, 6 green, 5 blue, little-endian, rows ``line_length`` bytes apart (``/sys/class/graphics/fbN``).
"""
from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from hal.errors import MeterError

# zlib level of the simulated panel's pictures: a screen a second, written for tests and people to look at; level 1
# encodes a 320x240 screen about four times faster than the default 6, in a file some 1.5 times larger
PNG_COMPRESS_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(img: Image.Image, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """The image as an 8-bit RGB PNG whose rows are stored unfiltered (filter type 0), compressed at zlib
    ``level``. Pillow tries the five row filters on every row; on the panel's flat colours and text the plain
    rows compress as well (13.6 kB for the vip screen where Pillow's are 16.1 kB) in about half the time."""
    a = np.asarray(img.convert("RGB"), dtype=np.uint8)
    h, w = a.shape[:2]
    rows = np.zeros((h, 1 + 3 * w), dtype=np.uint8)          # each row: its filter type (0), then its pixels
    rows[:, 1:] = a.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)     # 8 bits, truecolour, deflate, no filter, no interlace
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def rgb565(img: Image.Image) -> np.ndarray:
    """The image as little-endian RGB565 words, one per pixel, row by row."""
    a = np.asarray(img.convert("RGB"), dtype=np.uint16)
    word = ((a[..., 0] >> 3) << 11) | ((a[..., 1] >> 2) << 5) | (a[..., 2] >> 3)
    return word.astype("<u2")


class FramebufferOutput:
    def __init__(self, device: str | Path = "/dev/fb0", sysfs_dir: str | Path = "/sys/class/graphics") -> None:
        self.device = Path(device)
        sysfs = Path(sysfs_dir) / self.device.name
        try:
            bpp = int((sysfs / "bits_per_pixel").read_text())
            self.line_length = int((sysfs / "stride").read_text()) if (sysfs / "stride").exists() else 0
        except (OSError, ValueError) as exc:
            raise MeterError(f"display: {sysfs} cannot be read ({exc}); is the panel's framebuffer driver loaded? "
                             "(docs/io.md, display)") from None
        if bpp != 16:
            raise MeterError(f"display: {self.device} has {bpp} bits per pixel; this display writes RGB565 "
                             "(16); set the panel's overlay to 16-bit colour")
        try:
            self.fd = os.open(self.device, os.O_WRONLY)
        except OSError as exc:
            raise MeterError(f"display: cannot open {self.device}: {exc}; the meter user needs the video "
                             "group") from None

    def show(self, img: Image.Image, name: str) -> None:
        words = rgb565(img)
        row_bytes = words.shape[1] * 2
        stride = self.line_length or row_bytes
        if stride == row_bytes:
            os.pwrite(self.fd, words.tobytes(), 0)
            return
        for y in range(words.shape[0]):
            os.pwrite(self.fd, words[y].tobytes(), y * stride)

    def close(self) -> None:
        os.close(self.fd)


class PngOutput:
    """``directory/display.png`` (what the panel shows now) and ``directory/<screen>.png`` (each screen's last)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def show(self, img: Image.Image, name: str) -> None:
        shown, screen = self.dir / "display.png", self.dir / f"{name}.png"
        # renamed into place: a reader never sees half a file (no fsync: a picture, not a record); the screen's
        # own file is a second name of the same picture (the next picture is a new file, so it keeps this one)
        data = png_bytes(img)
        tmp = shown.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, shown)
        if screen == shown:
            return
        link = screen.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        try:
            os.link(shown, link)
        except OSError:                  # a file system without hard links: a copy
            link.write_bytes(data)
        os.replace(link, screen)

    def close(self) -> None:
        pass
