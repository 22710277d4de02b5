"""The CM4 carrier's device tree overlay (``tools/image/boot/openmeter-cm4.dts``) on the boot partition.

Debian's device trees are the kernel's (upstream) ones: no ``__overrides__`` (``dtparam=spi=on`` does
nothing) and no ``__symbols__`` (overlays name their targets by path). The overlay is compiled with ``dtc``
to ``overlays/openmeter-cm4.dtbo``, then applied with ``fdtoverlay`` to the device tree ``config.txt``
names, and the result is read back with ``fdtget``: the image is not written unless SPI0 carries the
ADE9000, UART0 (ttyAMA0) is on GPIO 14/15 with nothing else on those pins, and the watchdog is on.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "boot" / "openmeter-cm4.dts"
NAME = "openmeter-cm4"
TOOLS = ("dtc", "fdtoverlay", "fdtget")
SPI = "/soc/spi@7e204000"
UART0 = "/soc/serial@7e201000"
MINI_UART = "/soc/serial@7e215040"
WATCHDOG = "/soc/watchdog@7e100000"
ALT0 = 4


class DeviceTreeError(Exception):
    pass


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeviceTreeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def compile_overlay(out: Path, source: Path = SOURCE) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(["dtc", "-q", "-@", "-I", "dts", "-O", "dtb", "-o", str(out), str(source)])
    return out


def _get(dtb: Path, node: str, prop: str, kind: str = "s") -> str | None:
    done = subprocess.run(["fdtget", "-t", kind, str(dtb), node, prop], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _pins_of(dtb: Path, node: str) -> tuple[list[int], int | None]:
    """The GPIO pins and function of the pin group ``node``'s ``pinctrl-0`` names (one group)."""
    phandle = _get(dtb, node, "pinctrl-0", "u")
    if phandle is None or len(phandle.split()) != 1:
        return [], None
    for group in _run(["fdtget", "-l", str(dtb), "/soc/gpio@7e200000"]).split():
        path = f"/soc/gpio@7e200000/{group}"
        if _get(dtb, path, "phandle", "u") == phandle:
            pins = [int(p) for p in (_get(dtb, path, "brcm,pins", "u") or "").split()]
            function = (_get(dtb, path, "brcm,function", "u") or "").split()
            return pins, int(function[0]) if len(function) == 1 else None
    return [], None


def problems(dtb: Path) -> list[str]:
    """What a merged device tree gets wrong for the carrier (empty: nothing)."""
    found = []
    if _get(dtb, SPI, "status") != "okay":
        found.append(f"{SPI} is not enabled")
    if _get(dtb, f"{SPI}/ade9000@0", "compatible") != "adi,ade9000":
        found.append(f"no ADE9000 on chip select 0 of {SPI}")
    if _pins_of(dtb, SPI) != ([7, 8, 9, 10, 11], ALT0):
        found.append(f"{SPI} is not on GPIO 7-11 (ALT0): {_pins_of(dtb, SPI)}")
    if _get(dtb, UART0, "status") not in (None, "okay"):
        found.append(f"{UART0} (ttyAMA0) is disabled")
    if _pins_of(dtb, UART0) != ([14, 15], ALT0):
        found.append(f"{UART0} (ttyAMA0) is not on GPIO 14/15 (ALT0): {_pins_of(dtb, UART0)}")
    if _get(dtb, f"{UART0}/bluetooth", "compatible") is not None and \
            _get(dtb, f"{UART0}/bluetooth", "status") != "disabled":
        found.append(f"{UART0} still carries the Bluetooth module")
    if _get(dtb, MINI_UART, "status") != "disabled":
        found.append(f"{MINI_UART} (ttyS1) is on and shares GPIO 14/15")
    if _get(dtb, WATCHDOG, "compatible") is None or _get(dtb, WATCHDOG, "status") not in (None, "okay"):
        found.append(f"{WATCHDOG} is missing or disabled")
    return found


def config_value(config_txt: str, key: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in config_txt.splitlines()
            if line.strip().startswith(key + "=")]


def install(boot: Path) -> list[str]:
    """Compile the overlay into ``boot/overlays``, check it against the device tree ``boot/config.txt``
    names; returns what was checked, raises DeviceTreeError on any problem."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise DeviceTreeError(f"missing {', '.join(missing)} (Debian package device-tree-compiler)")
    config = (boot / "config.txt").read_text()
    trees, overlays = config_value(config, "device_tree"), config_value(config, "dtoverlay")
    if len(trees) != 1 or overlays != [NAME]:
        raise DeviceTreeError(f"config.txt names device_tree={trees} and dtoverlay={overlays}, not one tree and "
                              f"{NAME}")
    if config_value(config, "dtparam"):
        raise DeviceTreeError(f"config.txt has dtparam lines, which Debian's device trees ignore: "
                              f"{config_value(config, 'dtparam')}")
    base = boot / trees[0]
    if not base.is_file():
        raise DeviceTreeError(f"config.txt names {trees[0]}, which is not on the boot partition")
    dtbo = compile_overlay(boot / "overlays" / f"{NAME}.dtbo")
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "merged.dtb"
        _run(["fdtoverlay", "-i", str(base), "-o", str(merged), str(dtbo)])
        found = problems(merged)
    if found:
        raise DeviceTreeError(f"{base.name} with {dtbo.name}: " + "; ".join(found))
    return [f"{base.name} + overlays/{dtbo.name}: SPI0 GPIO 7-11 with the ADE9000 on CE0, UART0 (ttyAMA0) on "
            "GPIO 14/15, mini UART off, watchdog on"]
