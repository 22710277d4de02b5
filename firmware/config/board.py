"""Board files (``boards/*.toml``): schema, validation and ``load_board(path) -> Board``.

A board file names the SPI port and GPIO pins of the ADE9000 and the meter's I/O, and describes each
ADC input: the sensor in front of it (voltage divider, CT with burden, Rogowski coil), its PGA gain,
its default calibration and, on the simulated board, the ADC errors to simulate. Unknown, mistyped,
out-of-range and missing keys are ConfigErrors naming the section, the option and what is allowed.
The result is ``hal.board.BoardParams``: plain values the hardware layer receives.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from firmware.config.schema import Bool, Enum, Float, Int, ListOf, Option, Schema, Section, Str
from firmware.config.store import parse_toml_file
from hal.backends import GPIO_BACKENDS, SPI_BACKENDS, board_simulated
from hal.board import CHANNELS, PGA_GAINS, BoardParams, ChannelParams, GpioParams, SpiParams
from hal.calibration import apply_calibration, load_calibration
from hal.errors import ConfigError

Board = BoardParams
GENERATOR = "python -m tools.gendocs_hal"

PIN = Int(0, 53)                     # BCM GPIO numbers on the CM4
OPTIONAL_PIN = Int(-1, 53)           # -1: not fitted
SPI_PINS = {7, 8, 9, 10, 11}         # SPI0 CE1, CE0, MISO, MOSI, SCLK: never usable as GPIO here
_PINS = GpioParams()                 # hal.board owns the default pins (the CM4 carrier's)


def _pin(pin: int | None) -> int:
    return -1 if pin is None else pin


def _channel_section(name: str) -> Section:
    voltage = name.startswith("V")
    return Section(f"channel.{name.lower()}", [
        Option("sensor", Enum("divider") if voltage else Enum("ct", "rogowski"), "divider" if voltage else "ct",
               "Sensor in front of the ADC input."),
        Option("ratio", Float(1.0, 1e6), 1000.0 if voltage else 1000.0,
               "Divider: terminal volts per volt at the ADC pins. CT: primary amperes per secondary ampere."),
        Option("burden_ohm", Float(0.01, 10000.0), 50.0, "CT burden resistor.", "ohm"),
        Option("rogowski_v_per_a", Float(0.0, 10.0), 0.0,
               "Rogowski coil output at the nominal frequency (V rms at the pins per A rms).", "V/A"),
        Option("pga_gain", Int(1, 4), 1, "ADE9000 PGA gain: 1, 2 or 4."),
        Option("gain", Float(0.5, 1.5), 1.0, "Default gain calibration (a calibration file overrides it)."),
        Option("phase_deg", Float(-5.0, 5.0), 0.0, "Default phase calibration at the nominal frequency.", "deg"),
        Option("offset", Float(-1000.0, 1000.0), 0.0, "Default offset calibration, terminal units.",
               "V" if voltage else "A"),
        Option("sim_gain_error", Float(-0.1, 0.1), 0.0, "Simulated board only: relative gain error of the input."),
        Option("sim_offset_codes", Float(-1e5, 1e5), 0.0, "Simulated board only: ADC offset in 24-bit codes."),
        Option("sim_phase_error_deg", Float(-5.0, 5.0), 0.0,
               "Simulated board only: phase lag of the input at the nominal frequency.", "deg"),
    ], f"ADC input {name}.")


SECTIONS = [
    Section("board", [
        Option("name", Str(64, r"[A-Za-z0-9._-]+", "letters, digits, dot, dash, underscore"), "board",
               "Board identifier (firmware images name the boards they run on)."),
        Option("description", Str(255), "", "Free text."),
        Option("simulated", Bool(), False, "True for the simulated board."),
    ], "Identity."),
    Section("spi", [
        Option("backend", Enum(*SPI_BACKENDS), "spidev", "SPI backend (hal.backends)."),
        Option("bus", Int(0, 6), 0, "spidev bus number (/dev/spidevB.C)."),
        Option("chip_select", Int(0, 3), 0, "spidev chip select."),
        Option("max_speed_hz", Int(100_000, 20_000_000), 20_000_000,
               "SPI clock; the ADE9000 accepts up to 20 MHz.", "Hz"),
        Option("max_transfer", Int(64, 65536), 4096,
               "Largest single transfer (spidev bufsiz); longer burst reads are split.", "bytes"),
    ], "The ADE9000's SPI port (mode 0)."),
    Section("gpio", [
        Option("backend", Enum(*GPIO_BACKENDS), "gpiod", "GPIO backend (hal.backends)."),
        Option("chip", Str(64), "gpiochip0", "gpiod character device."),
        Option("irq0", PIN, _PINS.irq0, "ADE9000 IRQ0 (PAGE_FULL, EGYRDY), active low."),
        Option("irq1", PIN, _PINS.irq1, "ADE9000 IRQ1 (RSTDONE, CRC_CHG), active low."),
        Option("dready", OPTIONAL_PIN, _pin(_PINS.dready),
               "ADE9000 CF4/DREADY, held as an input so nothing drives the line the chip drives (the meter reads "
               "the chip on IRQ0's PAGE_FULL, not per sample); -1 when not wired."),
        Option("reset", OPTIONAL_PIN, _pin(_PINS.reset), "ADE9000 RESET, active low; -1 to use CONFIG1.SWRST."),
        Option("revenue_lock", OPTIONAL_PIN, _PINS.revenue_lock, "Sealable revenue-lock switch input; -1 when not fitted."),
        Option("power_fail", OPTIONAL_PIN, _PINS.power_fail, "Power-fail early warning input; -1 when not fitted."),
        Option("digital_inputs", ListOf(PIN, 0, 16), list(_PINS.digital_inputs), "Status/pulse inputs, in order."),
        Option("digital_outputs", ListOf(PIN, 0, 16), list(_PINS.digital_outputs), "Relay/pulse outputs, in order."),
        Option("buttons", ListOf(PIN, 0, 5), [], "Front-panel buttons up, down, left, right, enter (active low, "
               "pulled up); none for a board without a display."),
    ], "GPIO lines (BCM numbers)."),
    *[_channel_section(name) for name in CHANNELS],
    Section("calibration", [
        Option("file", Str(255), "", "Calibration file (TOML) overriding the channels' default calibration; "
               "relative to the board file. Empty: the board's defaults."),
    ], "Where the calibration comes from."),
    Section("sim", [
        Option("seed", Int(0, 2**31 - 1), 1, "Seed of the simulated ADC noise."),
        Option("noise", Bool(), True, "Simulate the ADC noise floor."),
        Option("realtime", Bool(), True,
               "Run the simulated chip by the wall clock (32 kSPS, the 4-ms deadline); false: it makes samples "
               "as fast as the meter reads them, for a machine too slow for the chip's rate (an emulated CPU). "
               "[simulation] realtime = false does the same for every simulated board."),
    ], "Simulated board only."),
]

BOARD_SCHEMA = Schema(SECTIONS, what="board")

# Keys a board file must state: defaults would silently describe some other board.
REQUIRED = [("board", "name"), ("spi", "backend"), ("spi", "bus"), ("spi", "chip_select"), ("gpio", "backend"),
            ("gpio", "irq0"), ("gpio", "irq1"), ("gpio", "reset")] + \
           [(f"channel.{n.lower()}", key) for n in CHANNELS for key in ("sensor", "ratio")]


def _lookup(doc: dict[str, Any], section: str, option: str) -> bool:
    node: Any = doc
    for part in section.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict) and option in node


def load_board(path: str | Path) -> Board:
    """Validate a board file and return its plain parameters; every problem is a ConfigError."""
    p = Path(path)
    doc = parse_toml_file(p, "board")
    source = str(p)
    for section, option in REQUIRED:
        if not _lookup(doc, section, option):
            allowed = BOARD_SCHEMA.section(section).option(option).kind.allowed()
            raise ConfigError(f"board {source}: [{section}] option '{option}' is missing; allowed {allowed}")
    cfg = BOARD_SCHEMA.load(doc, source=source)
    gpio = cfg["gpio"]
    used: dict[int, str] = {}
    for name in ("irq0", "irq1", "dready", "reset", "revenue_lock", "power_fail"):
        pin = gpio[name]
        if pin >= 0:
            _claim(used, pin, name, source)
    for kind in ("digital_inputs", "digital_outputs", "buttons"):
        for k, pin in enumerate(gpio[kind]):
            _claim(used, pin, f"{kind}[{k}]", source)
    channels = []
    for name in CHANNELS:
        sec = cfg[f"channel.{name.lower()}"]
        if sec.pga_gain not in PGA_GAINS:
            raise ConfigError(f"board {source}: [channel.{name.lower()}] option 'pga_gain': {sec.pga_gain} is not "
                              f"allowed; allowed {', '.join(map(str, PGA_GAINS))}")
        if sec.sensor == "rogowski" and sec.rogowski_v_per_a <= 0:
            raise ConfigError(f"board {source}: [channel.{name.lower()}] option 'rogowski_v_per_a' must be > 0 "
                              "for a Rogowski coil")
        channels.append(ChannelParams(name, sec.sensor, sec.ratio, sec.burden_ohm, sec.rogowski_v_per_a, sec.pga_gain,
                                      sec.gain, sec.phase_deg, sec.offset, sec.sim_gain_error,
                                      sec.sim_offset_codes, sec.sim_phase_error_deg))
    cal_file = cfg["calibration"].file
    chans = tuple(channels)
    if cal_file:
        cal_path = Path(cal_file) if Path(cal_file).is_absolute() else p.parent / cal_file
        chans = apply_calibration(chans, load_calibration(cal_path))
        cal_file = str(cal_path)
    spi, b = cfg["spi"], cfg["board"]
    simulated = board_simulated(spi.backend, gpio.backend, f"board {source}") or b.simulated
    return BoardParams(
        name=b.name, description=b.description, simulated=simulated,
        spi=SpiParams(spi.backend, spi.bus, spi.chip_select, spi.max_speed_hz, spi.max_transfer),
        gpio=GpioParams(gpio.backend, gpio.chip, gpio.irq0, gpio.irq1, gpio.dready if gpio.dready >= 0 else None,
                        gpio.reset if gpio.reset >= 0 else None,
                        gpio.revenue_lock, gpio.power_fail, tuple(gpio.digital_inputs), tuple(gpio.digital_outputs),
                        tuple(gpio.buttons)),
        channels=chans, calibration_file=cal_file, sim_seed=cfg["sim"].seed, sim_noise=cfg["sim"].noise,
        sim_realtime=cfg["sim"].realtime)


def _claim(used: dict[int, str], pin: int, name: str, source: str) -> None:
    if pin in SPI_PINS:
        raise ConfigError(f"board {source}: [gpio] option '{name}': GPIO {pin} is an SPI0 pin; allowed any other "
                          "GPIO 0..53")
    if pin in used:
        raise ConfigError(f"board {source}: [gpio] option '{name}': GPIO {pin} is already used by '{used[pin]}'")
    used[pin] = name


def with_calibration(board: Board, channels: tuple[ChannelParams, ...]) -> Board:
    return replace(board, channels=channels)
