"""Where a rendered screen goes: the Linux framebuffer on the device, PNG files in simulation.

The CM4's SPI or DPI 320x240 panel is a framebuffer device (``/dev/fb0``) in RGB565: each pixel is 16 bits,
5 red, 6 green, 5 blue, little-endian, rows ``line_length`` bytes apart (``/sys/class/graphics/fbN``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from hal.errors import MeterError

# zlib level of the simulated panel's pictures: a screen a second, written for tests and people to look at; level 1
# encodes a 320x240 screen about four times faster than the default 6, in a file some 1.5 times larger
PNG_COMPRESS_LEVEL = 1


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
        import io
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        data = buf.getvalue()
        for target in (self.dir / "display.png", self.dir / f"{name}.png"):
            # renamed into place: a reader never sees half a file (no fsync: a picture, not a record)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

    def close(self) -> None:
        pass
