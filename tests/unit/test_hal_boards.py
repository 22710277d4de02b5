"""Board files: both shipped boards load; bad or missing keys are ConfigErrors naming section, option and allowed."""
from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config.board import load_board
from hal.ade9000 import ChipSettings
from hal.errors import ConfigError
from hal.hardware import open_hardware

BOARDS = Path(__file__).resolve().parents[2] / "boards"


def edited(tmp_path, old: str, new: str, name: str = "sim.toml") -> Path:
    text = (BOARDS / name).read_text()
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


def test_shipped_boards_load():
    sim, real = load_board(BOARDS / "sim.toml"), load_board(BOARDS / "cm4-ade9000.toml")
    assert sim.simulated and not real.simulated
    assert real.spi.backend == "spidev" and real.spi.max_speed_hz <= 20_000_000
    assert [c.name for c in sim.channels] == ["IA", "VA", "IB", "VB", "IC", "VC", "IN"]
    # the same board apart from the backends
    assert sim.channels == real.channels and sim.gpio.irq0 == real.gpio.irq0


def test_pin_defaults_have_one_owner_and_are_the_carriers():
    """hal.board.GpioParams says the default pins; the board schema and the CM4 carrier's file agree with it."""
    from dataclasses import asdict

    from firmware.config.board import BOARD_SCHEMA
    from hal.board import GpioParams

    defaults, schema, real = GpioParams(), BOARD_SCHEMA.defaults()["gpio"], load_board(BOARDS / "cm4-ade9000.toml")
    for name, value in asdict(defaults).items():
        if name in ("backend", "buttons"):
            continue
        in_schema = getattr(schema, name)
        as_written = tuple(in_schema) if isinstance(in_schema, (list, tuple)) else in_schema
        assert as_written == (-1 if value is None else value), name             # -1: "not wired" in a file
        assert getattr(real.gpio, name) == value, name


def test_dready_is_held_as_an_input_or_absent(tmp_path):
    board = load_board(BOARDS / "sim.toml")
    hw = open_hardware(board, ChipSettings(board.channels), realtime=False)
    gpio = hw.gpio
    assert board.gpio.dready == 22 and hw.chip.dready_pin == 22
    assert 22 in gpio.levels and 22 not in gpio.outputs              # configured, and never driven
    unwired = load_board(edited(tmp_path, "dready = 22", "dready = -1"))
    assert unwired.gpio.dready is None
    assert open_hardware(unwired, ChipSettings(unwired.channels), realtime=False).chip.dready_pin is None


def test_sim_board_brings_up(tmp_path):
    board = load_board(BOARDS / "sim.toml")
    hw = open_hardware(board, ChipSettings(board.channels), realtime=False)
    assert hw.chip.bring_up() > 0


@pytest.mark.parametrize("old,new,message", [
    ("max_speed_hz = 20_000_000", "max_speed_hz = 40_000_000",
     r"\[spi\] option 'max_speed_hz': 40000000 is out of range; allowed 100000..20000000"),
    ("pga_gain = 1", "pga_gain = 3", r"\[channel.ia\] option 'pga_gain': 3 is not allowed; allowed 1, 2, 4"),
    ('sensor = "ct"', 'sensor = "shunt"', r"\[channel.ia\] option 'sensor': 'shunt' is not one of the allowed"),
    ("irq1 = 23", "irq1 = 24", r"\[gpio\] option 'irq1': GPIO 24 is already used by 'irq0'"),
    ("reset = 27", "reset = 10", r"\[gpio\] option 'reset': GPIO 10 is an SPI0 pin"),
    ("[sim]", "[sim]\nspeed = 3", r"\[sim\] option 'speed' is not valid in section \[sim\]"),
    ('backend = "sim"\nbus', 'backend = "spidev"\nbus',
     r"\[spi\] backend 'spidev' is real but \[gpio\] backend 'sim' is simulated; a board is all simulated"),
])
def test_bad_keys(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load_board(edited(tmp_path, old, new))


def test_missing_key_names_section_option_and_allowed(tmp_path):
    with pytest.raises(ConfigError, match=r"\[gpio\] option 'irq0' is missing; allowed 0..53"):
        load_board(edited(tmp_path, "irq0 = 24", ""))


def test_calibration_file_overrides_defaults(tmp_path):
    (tmp_path / "cal.toml").write_text("[IA]\ngain = 1.002\nphase_deg = 0.1\n[VB]\ngain = 0.999\n")
    board = load_board(edited(tmp_path, 'file = ""', 'file = "cal.toml"'))
    assert board.channel("IA").cal_gain == 1.002 and board.channel("IA").cal_phase_deg == 0.1
    assert board.channel("VB").scale() == pytest.approx(board.channel("VA").scale() * 0.999)
    (tmp_path / "cal.toml").write_text("[IA]\ngain = 2.0\n")
    with pytest.raises(ConfigError, match=r"cal.toml: \[IA\] option 'gain': 2.0 is out of range; allowed 0.5..1.5"):
        load_board(tmp_path / "sim.toml")


def test_the_meter_inputs_have_one_order_across_the_layers():
    """hal owns the ADE9000 burst order; metrology (which imports no hal) states the order it computes in, and
    the samples ring, configuration and COMTRADE mapping take hal's."""
    from firmware.config.sections.metrology import INPUTS as CONFIG_INPUTS
    from firmware.ipc.samples import CHANNELS as RING_CHANNELS
    from hal.board import CHANNELS
    from hal.comtrade import ORDER
    from metrology.systems import INPUTS

    assert INPUTS == CHANNELS
    assert CONFIG_INPUTS is CHANNELS and RING_CHANNELS is CHANNELS and ORDER is CHANNELS


@pytest.mark.parametrize("spi,gpio", [("sim", "gpiod"), ("spidev", "sim"), ("sim", "rpigpio")])
def test_open_hardware_refuses_a_board_that_mixes_simulated_and_real_parts(spi, gpio):
    """Whoever builds the board (a board file, a test, a tool), the hardware is all simulated or all real."""
    from hal.board import BoardParams, GpioParams, SpiParams, default_channels

    board = BoardParams("mixed", channels=default_channels(), spi=SpiParams(spi), gpio=GpioParams(gpio))
    with pytest.raises(ConfigError, match=r"board mixed: \[spi\] backend .* a board is all simulated"):
        open_hardware(board, ChipSettings(default_channels()), realtime=False)


def test_unknown_backends_name_the_registry():
    from hal.gpio import open_gpio
    from hal.spi import open_spi

    with pytest.raises(ConfigError, match=r"spi: backend 'usb' is not known; allowed 'spidev', 'sim'"):
        open_spi("usb")
    with pytest.raises(ConfigError, match=r"gpio: backend 'wiringpi' is not known; allowed 'rpigpio', 'gpiod', 'sim'"):
        open_gpio("wiringpi")
