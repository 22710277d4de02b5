"""Plain board parameters the hardware layer receives (parsed and checked by firmware.config.board).

Nothing here reads files: ``firmware.config.board.load_board`` validates a board TOML file against
its schema and builds these dataclasses; tests build them directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hal.regmap import regmap

CHANNELS = ("IA", "VA", "IB", "VB", "IC", "VC", "IN")  # ADE9000 burst order
PGA_GAINS = (1, 2, 4)

_RM = regmap()
INPUT_FULL_SCALE_V = float(_RM.const("INPUT_FULL_SCALE_V"))          # V peak at the pins, PGA 1
SAMPLE_FULL_SCALE_CODES = _RM.const("SINC4_FULL_SCALE_CODES") / 16.0  # 24-bit codes at +-1 V peak


@dataclass(frozen=True)
class ChannelParams:
    """One ADC channel: the sensor in front of it, its PGA gain, default calibration, simulated errors."""

    name: str
    sensor: str = "divider"          # "divider" (voltage), "ct" (current transformer + burden), "rogowski"
    ratio: float = 1000.0            # divider: terminal V per pin V; ct: primary A per secondary A
    burden_ohm: float = 1.0          # ct only
    rogowski_v_per_a: float = 0.0    # rogowski only: pin V rms per terminal A rms at the nominal frequency
    pga_gain: int = 1
    cal_gain: float = 1.0            # multiplies the ideal scale (calibration removes the channel's gain error)
    cal_phase_deg: float = 0.0       # phase correction at the nominal frequency, degrees (positive = advance)
    cal_offset: float = 0.0          # offset in terminal units (V or A)
    sim_gain_error: float = 0.0      # simulated ADC/sensor gain error (relative)
    sim_offset_codes: float = 0.0    # simulated offset, 24-bit codes
    sim_phase_error_deg: float = 0.0  # simulated lag at the nominal frequency, degrees

    @property
    def is_current(self) -> bool:
        return self.name.startswith("I")

    def pin_volts_per_unit(self) -> float:
        """Volts at the ADC pins per volt or ampere at the meter's input terminals."""
        if self.sensor == "divider":
            return 1.0 / self.ratio
        if self.sensor == "ct":
            return self.burden_ohm / self.ratio
        return self.rogowski_v_per_a

    def ideal_scale(self) -> float:
        """Terminal units (V or A) per 24-bit code with no calibration applied."""
        return INPUT_FULL_SCALE_V / (SAMPLE_FULL_SCALE_CODES * self.pga_gain * self.pin_volts_per_unit())

    def scale(self) -> float:
        """Terminal units per code after the channel's gain calibration."""
        return self.ideal_scale() * self.cal_gain

    def full_scale_peak(self) -> float:
        """Largest terminal value (peak) the channel converts without clipping."""
        return INPUT_FULL_SCALE_V / (self.pga_gain * self.pin_volts_per_unit())


@dataclass(frozen=True)
class SpiParams:
    backend: str = "sim"             # "spidev" or "sim"
    bus: int = 0
    chip_select: int = 0
    max_speed_hz: int = 20_000_000
    max_transfer: int = 4096         # spidev bufsiz


@dataclass(frozen=True)
class GpioParams:
    """The board's GPIO lines (BCM numbers). The pin defaults are the CM4 carrier's (boards/cm4-ade9000.toml)
    and the board schema (firmware/config/board.py) takes its defaults from here: one place says them."""
    backend: str = "sim"             # "rpigpio", "gpiod" or "sim"
    chip: str = "gpiochip0"
    irq0: int = 24
    irq1: int = 23
    dready: int | None = 22          # CF4/DREADY: held as an input (the chip drives it); None when not wired
    reset: int | None = 27
    revenue_lock: int = 17           # -1 when not fitted (firmware.revenue.inputs)
    power_fail: int = 4
    digital_inputs: tuple[int, ...] = (5, 6, 12, 13)
    digital_outputs: tuple[int, ...] = (16, 20, 21, 26)
    buttons: tuple[int, ...] = ()   # front panel: up, down, left, right, enter (active low)


@dataclass(frozen=True)
class BoardParams:
    name: str
    description: str = ""
    simulated: bool = True
    spi: SpiParams = field(default_factory=SpiParams)
    gpio: GpioParams = field(default_factory=GpioParams)
    channels: tuple[ChannelParams, ...] = ()
    calibration_file: str = ""
    sim_seed: int = 1
    sim_noise: bool = True
    sim_realtime: bool = True

    def channel(self, name: str) -> ChannelParams:
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise KeyError(name)

    def scales(self) -> tuple[float, ...]:
        return tuple(ch.scale() for ch in self.channels)


def default_channels() -> tuple[ChannelParams, ...]:
    """A 230/400 V, 5 A (CT-operated) board: 1000:1 dividers (1000 V peak full scale), 1000:1 CTs into
    50 ohm burdens (20 A peak full scale), PGA 1."""
    out = []
    for name in CHANNELS:
        if name.startswith("V"):
            out.append(ChannelParams(name, "divider", ratio=1000.0))
        else:
            out.append(ChannelParams(name, "ct", ratio=1000.0, burden_ohm=50.0))
    return tuple(out)
