"""The carrier's device tree overlay: compiled with dtc, applied with fdtoverlay to the nodes of Debian's
CM4 tree (Debian linux-image 6.1 bcm2711-rpi-cm4-io.dtb, decompiled, the nodes the overlay touches), and
read back with fdtget."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tools.image import devicetree

pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in devicetree.TOOLS),
                                reason="needs dtc, fdtoverlay and fdtget (Debian device-tree-compiler)")

# Nodes of Debian's bcm2711-rpi-cm4-io.dtb as `dtc -I dtb -O dts` prints them: no __overrides__, no
# __symbols__; SPI0 disabled, UART0 on the wireless module's pins (GPIO 30-33) with its Bluetooth, the mini
# UART on GPIO 14/15, the watchdog on.
DEBIAN_CM4 = """/dts-v1/;
/ {
    compatible = "raspberrypi,4-compute-module", "brcm,bcm2711";
    #address-cells = <2>;
    #size-cells = <1>;
    aliases { serial0 = "/soc/serial@7e201000"; serial1 = "/soc/serial@7e215040"; };
    soc {
        #address-cells = <1>;
        #size-cells = <1>;
        watchdog@7e100000 { compatible = "brcm,bcm2711-pm", "brcm,bcm2835-pm-wdt"; reg = <0x7e100000 0x114>; };
        gpio@7e200000 {
            compatible = "brcm,bcm2711-gpio";
            reg = <0x7e200000 0xb4>;
            gpio-controller;
            #gpio-cells = <2>;
            phandle = <0x0a>;
            spi0_gpio7 { brcm,pins = <7 8 9 10 11>; brcm,function = <4>; };
            uart0_gpio14 { brcm,pins = <14 15>; brcm,function = <4>; };
            uart0_ctsrts_gpio30 { brcm,pins = <30 31>; brcm,function = <7>; brcm,pull = <2 0>; phandle = <0x08>; };
            uart0_gpio32 { brcm,pins = <32 33>; brcm,function = <7>; brcm,pull = <0 2>; phandle = <0x09>; };
            uart1_gpio14 { brcm,pins = <14 15>; brcm,function = <2>; phandle = <0x0e>; };
        };
        serial@7e201000 {
            compatible = "arm,pl011", "arm,primecell";
            reg = <0x7e201000 0x200>;
            status = "okay";
            pinctrl-names = "default";
            pinctrl-0 = <0x08 0x09>;
            uart-has-rtscts;
            bluetooth { compatible = "brcm,bcm43438-bt"; max-speed = <2000000>; shutdown-gpios = <0x0a 0 0>; };
        };
        spi@7e204000 {
            compatible = "brcm,bcm2835-spi";
            reg = <0x7e204000 0x200>;
            #address-cells = <1>;
            #size-cells = <0>;
            status = "disabled";
        };
        serial@7e215040 {
            compatible = "brcm,bcm2835-aux-uart";
            reg = <0x7e215040 0x40>;
            status = "okay";
            pinctrl-names = "default";
            pinctrl-0 = <0x0e>;
        };
    };
};
"""
CONFIG = """arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz-6.1.0-57-rt-arm64

# Inserted by /etc/default/raspi-firmware-custom
{custom}
"""
CUSTOM = Path(devicetree.__file__).parent / "os" / "etc" / "default" / "raspi-firmware-custom"


def boot_partition(tmp_path: Path, custom: str) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir()
    src = tmp_path / "cm4.dts"
    src.write_text(DEBIAN_CM4)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(boot / "bcm2711-rpi-cm4-io.dtb"), str(src)],
                   check=True)
    (boot / "config.txt").write_text(CONFIG.format(custom=custom))
    return boot


def test_debians_tree_alone_has_none_of_the_carriers_peripherals(tmp_path):
    boot = boot_partition(tmp_path, "")
    found = " ".join(devicetree.problems(boot / "bcm2711-rpi-cm4-io.dtb"))
    for what in ("spi@7e204000 is not enabled", "no ADE9000", "not on GPIO 14/15", "Bluetooth", "(ttyS1) is on"):
        assert what in found


def test_the_images_config_and_overlay_give_spi_the_rs485_uart_and_the_watchdog(tmp_path):
    boot = boot_partition(tmp_path, CUSTOM.read_text())
    checked = devicetree.install(boot)
    assert (boot / "overlays" / "openmeter-cm4.dtbo").is_file()
    assert "UART0 (ttyAMA0) on GPIO 14/15" in checked[0]
    merged = tmp_path / "merged.dtb"
    subprocess.run(["fdtoverlay", "-i", str(boot / "bcm2711-rpi-cm4-io.dtb"), "-o", str(merged),
                    str(boot / "overlays" / "openmeter-cm4.dtbo")], check=True)
    get = lambda node, prop: subprocess.run(["fdtget", str(merged), node, prop], capture_output=True,  # noqa: E731
                                            text=True).stdout.strip()
    assert get("/soc/spi@7e204000", "status") == "okay"
    assert get("/soc/spi@7e204000/ade9000@0", "compatible") == "adi,ade9000"
    assert get("/soc/serial@7e201000/bluetooth", "status") == "disabled"
    assert get("/soc/serial@7e215040", "status") == "disabled"


def test_dtparam_lines_are_refused_they_do_nothing_on_debians_trees(tmp_path):
    boot = boot_partition(tmp_path, CUSTOM.read_text() + "dtparam=spi=on\n")
    with pytest.raises(devicetree.DeviceTreeError, match="dtparam"):
        devicetree.install(boot)


def test_a_config_without_the_overlay_is_refused(tmp_path):
    boot = boot_partition(tmp_path, "device_tree=bcm2711-rpi-cm4-io.dtb\n")
    with pytest.raises(devicetree.DeviceTreeError, match="dtoverlay"):
        devicetree.install(boot)


def test_an_overlay_that_leaves_the_mini_uart_on_is_refused(tmp_path):
    boot = boot_partition(tmp_path, CUSTOM.read_text())
    src = tmp_path / "partial.dts"
    text = devicetree.SOURCE.read_text()
    src.write_text(text[:text.index("\tfragment@4")] + "};\n")
    dtbo = devicetree.compile_overlay(tmp_path / "partial.dtbo", src)
    merged = tmp_path / "merged.dtb"
    subprocess.run(["fdtoverlay", "-i", str(boot / "bcm2711-rpi-cm4-io.dtb"), "-o", str(merged), str(dtbo)],
                   check=True)
    assert devicetree.problems(merged) == ["/soc/serial@7e215040 (ttyS1) is on and shares GPIO 14/15"]
