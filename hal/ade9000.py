"""ADE9000 driver: register access with CRC and read-back, bring-up, calibration, configuration CRC, energy.

The same code runs against the real chip (spidev + RPi.GPIO/gpiod) and the simulated one (``hal.sim``):
there are no simulator branches. Waveform streaming lives in ``hal.ade9000_stream``.

Register protocol (TRM "SPI Protocol"): a 16-bit command word ``addr << 4`` with bit 3 set for a read,
then big-endian data of the register's width. A single-register read also clocks out CRC_SPI (CRC-16-
CCITT of the data); a mismatch is retried, counted and, if it persists, raised as a BusError. Writes
carry no CRC, so every configuration write is read back and compared.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hal.board import ChannelParams
from hal.calibration import gain_register, phase_register
from hal.clock import Clock
from hal.crc import crc16_ccitt
from hal.errors import BusError, ChipError, ConfigError, MeterTimeoutError
from hal.gpio import Gpio
from hal.regmap import Register, bit, energy_delta, energy_join, field_get, field_prep, regmap
from hal.spi import SpiBus

log = logging.getLogger("hal.ade9000")

RM = regmap()
CRC_READ_RETRIES = 3              # a persistent mismatch after this many re-reads is a bus fault
RESET_PULSE_S = 0.001             # data sheet: RESET low for at least 10 us; 1 ms is generous
RESET_TIMEOUT_S = 0.5             # RSTDONE arrives in well under this on a powered, clocked chip
CRC_DONE_TIMEOUT_S = 0.1          # TRM: the configuration CRC takes 10.8 ms
DSP_RATE_HZ = float(RM.const("DSP_RATE_HZ"))
WATT_FS = float(RM.const("WATT_FULL_SCALE_CODES"))
ALL_ONES_32 = 0xFFFFFFFF

# System types of SPEC.md section 2 -> ACCMODE.VCONSEL (TRM Table 'VCONSEL'): the chip's own energy path
WIRING_VCONSEL = {"4W-WYE": 0, "DELTA": 1, "3W-WYE": 0, "SINGLE": 0, "2L": 0, "2L+1n": 0, "DEMO": 0}


@dataclass(frozen=True)
class ChipSettings:
    """What the init sequence needs from the board file and the meter configuration."""

    channels: tuple[ChannelParams, ...]
    line_hz: int = 50
    wiring: str = "4W-WYE"
    energy_interval_s: float = 1.0
    # Apparent power per phase at the meter's terminals (V x A) below which the chip's own accumulators register
    # nothing (its no-load thresholds); 0 leaves the chip's reset thresholds.
    no_load_va: float = 0.0

    def __post_init__(self) -> None:
        if self.line_hz not in (50, 60):
            raise ConfigError(f"ade9000: line frequency {self.line_hz} Hz; allowed 50 or 60")
        if self.wiring not in WIRING_VCONSEL:
            raise ConfigError(f"ade9000: wiring {self.wiring!r}; allowed {', '.join(WIRING_VCONSEL)}")
        if not 0.001 <= self.energy_interval_s <= 65536 / DSP_RATE_HZ:
            raise ConfigError(f"ade9000: energy interval {self.energy_interval_s} s; allowed 0.001..8.192 s")


NO_LOAD_SAMPLES = 64     # EP_CFG.NOLOAD_TMR = 0: no-load judged over 64 samples at 8 kSPS (8 ms), the TRM default


def no_load_level(channels: tuple[ChannelParams, ...], no_load_va: float) -> int:
    """ACT/REACT/APP_NL_LVL for a no-load level of ``no_load_va`` per phase at the terminals.

    TRM UG-1098 "No-Load Detection": xNL_LVL = xWATT_FULL_SCALE x 64 / X, X the ratio of full scale to the no-load
    level, the energy being judged over 64 samples (NOLOAD_TMR = 0). Full scale is both pins at their +-1 V / PGA
    peak, i.e. rms V and I at 1/sqrt(2) of it: X = VA_full_scale / no_load_va. The thresholds are one register
    for three phases: the phase with the most sensitive front end sets it, so no phase loses energy above the
    no-load level."""
    levels = []
    ch = {c.name: c for c in channels}
    for phase in "ABC":
        v, i = ch.get(f"V{phase}"), ch.get(f"I{phase}")
        if v is None or i is None:
            continue
        va_full_scale = (1.0 / (math.sqrt(2) * v.pga_gain * v.pin_volts_per_unit())
                         * 1.0 / (math.sqrt(2) * i.pga_gain * i.pin_volts_per_unit()))
        levels.append(WATT_FS * NO_LOAD_SAMPLES * no_load_va / va_full_scale)
    reg = RM["ACT_NL_LVL"]
    return min(int(round(min(levels))), reg.value_mask) if levels else reg.reset


@dataclass
class EnergyReading:
    """The chip's own accumulators (the second, independent energy path) since the previous reading: one EGYRDY
    interval, or several when interrupts went unserved (the accumulators keep adding; nothing is lost)."""

    timestamp_ns: int
    interval_s: float
    counts: np.ndarray            # int64 (3 phases, 3 kinds: watt, var, va), accumulator LSBs since the last reading
    wh: np.ndarray                # float64 (3, 3): Wh, varh, VAh at the input terminals
    frame_count: int = -1         # frames captured when the interrupt that reported it was served (-1: unknown)


@dataclass
class DriverStats:
    reads: int = 0
    writes: int = 0
    crc_errors: int = 0
    crc_retries_exhausted: int = 0
    verify_failures: int = 0
    resets: int = 0
    config_crc_changes: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Ade9000:
    def __init__(self, bus: SpiBus, gpio: Gpio, clock: Clock, settings: ChipSettings, *, irq0_pin: int,
                 irq1_pin: int, reset_pin: int | None, dready_pin: int | None = None, where: str = "spi") -> None:
        self.bus, self.gpio, self.clock, self.settings = bus, gpio, clock, settings
        self.irq0_pin, self.irq1_pin, self.reset_pin = irq0_pin, irq1_pin, reset_pin
        self.dready_pin = dready_pin
        self.where = where
        self.stats = DriverStats()
        self.config_crc: int | None = None
        self._energy_prev: list[int] | None = None     # accumulators at the last energy reading
        gpio.setup_input(irq0_pin, "up")
        gpio.setup_input(irq1_pin, "up")
        if dready_pin is not None:
            # CF4/DREADY is the chip's output (an energy pulse by default): the line is taken as an input with no
            # pull, so neither a GPIO left as output nor a pull-up fights it. Samples are read on PAGE_FULL (IRQ0).
            gpio.setup_input(dready_pin, "none")
        if reset_pin is not None:
            gpio.setup_output(reset_pin, True)

    # ------------------------------------------------------------------ register access
    @staticmethod
    def command(addr: int, read: bool) -> bytes:
        cmd = (addr << RM.spi["command_addr_shift"]) | ((1 << RM.spi["command_read_bit"]) if read else 0)
        return cmd.to_bytes(2, "big")

    def read(self, name: str) -> int:
        """Raw (unsigned) value of a register, CRC-checked, retried on mismatch."""
        reg = RM[name]
        tx = self.command(reg.addr, True) + b"\x00" * (reg.nbytes + 2)
        for attempt in range(CRC_READ_RETRIES + 1):
            rx = self.bus.transfer(tx)
            self.stats.reads += 1
            data, crc = rx[2:2 + reg.nbytes], int.from_bytes(rx[2 + reg.nbytes:4 + reg.nbytes], "big")
            if crc16_ccitt(data) == crc:
                return int.from_bytes(data, "big")
            if data == b"\xff" * reg.nbytes and crc == 0xFFFF:
                raise ChipError(f"ade9000 on {self.where}: reading {name} returned all ones: no chip is answering; "
                                "check the wiring (MISO), the 3.3 V supply and the chip select")
            self.stats.crc_errors += 1
            log.warning("CRC mismatch reading %s (attempt %d): data %s crc %#06x", name, attempt + 1, data.hex(), crc)
        self.stats.crc_retries_exhausted += 1
        raise BusError(f"ade9000 on {self.where}: CRC mismatch reading {name} {CRC_READ_RETRIES + 1} times; "
                       "check SPI signal integrity (cable length, SCLK speed, ground)")

    def read_signed(self, name: str) -> int:
        return RM[name].to_signed(self.read(name))

    def write(self, name: str, value: int, verify: bool = True) -> None:
        """Write a register; configuration registers are read back and must match."""
        reg = RM[name]
        if not reg.writable:
            raise ChipError(f"ade9000: register {name} is read-only")
        raw = value & reg.value_mask
        self.bus.transfer(self.command(reg.addr, False) + raw.to_bytes(reg.nbytes, "big"))
        self.stats.writes += 1
        if reg.access == "w1c" or reg.volatile or not verify:
            return
        back = self.read(name)
        if back != raw:
            self.stats.verify_failures += 1
            raise ChipError(f"ade9000 on {self.where}: wrote {name} = {raw:#x} but read back {back:#x}; "
                            "the write did not take (WR_LOCK set, chip in reset, or SPI corruption)")

    def burst_read(self, addr: int, n_words: int) -> bytes:
        """Read ``n_words`` 32-bit words from a burst region, split to the transport's transfer limit."""
        out = bytearray()
        per = (self.bus.max_transfer - 2) // 4
        while n_words > 0:
            k = min(per, n_words)
            rx = self.bus.transfer(self.command(addr, True) + b"\x00" * (4 * k))
            out += rx[2:]
            addr += k
            n_words -= k
        return bytes(out)

    # ------------------------------------------------------------------ bring-up
    def reset(self) -> None:
        """Hardware reset on the RESET pin (or CONFIG1.SWRST without one), then wait for RSTDONE."""
        self.stats.resets += 1
        self.config_crc = None
        self._energy_prev = None          # the reset clears the accumulators
        if self.reset_pin is not None:
            self.gpio.write(self.reset_pin, False)
            self.clock.sleep_until_ns(self.clock.monotonic_ns() + int(RESET_PULSE_S * 1e9))
            self.gpio.write(self.reset_pin, True)
        else:
            self.write("CONFIG1", field_prep(RM["CONFIG1"], "SWRST", 1), verify=False)
        self._wait_rstdone()

    def _wait_rstdone(self) -> None:
        deadline = self.clock.monotonic_ns() + int(RESET_TIMEOUT_S * 1e9)
        rstdone = bit(RM["STATUS1"], "RSTDONE")
        while True:
            remaining = (deadline - self.clock.monotonic_ns()) / 1e9
            self.gpio.wait_low(self.irq1_pin, max(0.0, min(remaining, 0.01)))
            status = self.read("STATUS1")
            if status == ALL_ONES_32:
                raise ChipError(f"ade9000 on {self.where}: STATUS1 reads all ones: no chip is answering; "
                                "check the wiring (MISO), the 3.3 V supply and the chip select")
            if status & rstdone:
                self.write("STATUS1", rstdone)
                return
            if remaining <= 0:
                raise MeterTimeoutError(
                    f"ade9000 on {self.where}: RSTDONE not set {RESET_TIMEOUT_S} s after reset; likely causes: "
                    f"no CLKIN (crystal), the RESET line (GPIO {self.reset_pin}) held low, or a wrong chip select")

    def check_identity(self) -> int:
        part = self.read("PART_ID")
        if part == ALL_ONES_32 or not field_get(RM["PART_ID"], "ADE9000_ID", part):
            raise ChipError(f"ade9000 on {self.where}: PART_ID is {part:#010x}, not an ADE9000 (bit 20 clear); "
                            "generally a wiring problem, a different chip on this chip select, or a faulty chip")
        return self.read("VERSION")

    def init_sequence(self) -> list[tuple[str, int]]:
        """The ordered (register, value) writes that configure the chip; verified one by one."""
        s = self.settings
        pga = 0
        accmode = field_prep(RM["ACCMODE"], "SELFREQ", 1 if s.line_hz == 60 else 0)
        accmode |= field_prep(RM["ACCMODE"], "VCONSEL", WIRING_VCONSEL[s.wiring])
        config0 = 0
        for ch in s.channels:
            pga |= field_prep(RM["PGA_GAIN"], f"{ch.name}_GAIN", {1: 0, 2: 1, 4: 2}[ch.pga_gain])
            if ch.sensor == "rogowski" and ch.name != "IN":
                config0 |= field_prep(RM["CONFIG0"], "INTEN", 1)
            elif ch.sensor == "rogowski":
                config0 |= field_prep(RM["CONFIG0"], "ININTEN", 1)
        wfb = RM["WFB_CFG"]
        wfb_cfg = (field_prep(wfb, "WF_IN_EN", 1) | field_prep(wfb, "WF_SRC", 0) | field_prep(wfb, "WF_MODE", 3)
                   | field_prep(wfb, "WF_CAP_SEL", 1) | field_prep(wfb, "BURST_CHAN", 0))
        half_pages = int(RM.waveform_buffer["pages"]) // 2
        seq = [
            ("PGA_GAIN", pga),
            ("CONFIG0", config0),
            ("CONFIG1", 0),
            ("CONFIG2", RM["CONFIG2"].reset),
            ("CONFIG3", 0),
            ("ACCMODE", accmode),
            ("DICOEFF", 0xFFFFE000 if config0 else 0),     # TRM: recommended value with the integrator on
            ("EGY_TIME", int(round(s.energy_interval_s * DSP_RATE_HZ)) - 1),
            # the accumulators add every interval (EGY_LD_ACCUM = 0) and are never reset by a read: the energy of
            # any span is the difference of two readings, however many EGYRDY interrupts went unserved between them
            ("EP_CFG", field_prep(RM["EP_CFG"], "EGY_PWR_EN", 1) | field_prep(RM["EP_CFG"], "EGY_LD_ACCUM", 0)),
        ]
        if s.no_load_va > 0:
            # no creep on the chip's own energy path as on the sample path: nothing registers with the current
            # circuit open (the chip's gap fill books these accumulators)
            level = no_load_level(s.channels, s.no_load_va)
            seq += [("ACT_NL_LVL", level), ("REACT_NL_LVL", level), ("APP_NL_LVL", level)]
        seq += [
            ("WFB_PG_IRQEN", (1 << (half_pages - 1)) | (1 << (2 * half_pages - 1))),
            ("WFB_CFG", wfb_cfg),
            ("EVENT_MASK", 0),
            ("MASK0", bit(RM["STATUS0"], "PAGE_FULL") | bit(RM["STATUS0"], "EGYRDY")),
            ("MASK1", bit(RM["STATUS1"], "CRC_CHG")),
        ]
        for ch in s.channels:
            phase = ch.name[1] if ch.name != "IN" else "N"
            kind = "I" if ch.is_current else "V"
            if phase == "N":
                seq.append(("NIGAIN", gain_register(ch.cal_gain)))
                continue
            seq.append((f"{phase}{kind}GAIN", gain_register(ch.cal_gain)))
            if kind == "I":
                seq.append((f"{phase}PHCAL0", phase_register(ch.cal_phase_deg, s.line_hz, DSP_RATE_HZ)))
        return seq

    def configure(self) -> None:
        for name, value in self.init_sequence():
            self.write(name, value)
        self.write("STATUS0", ALL_ONES_32)
        self.write("STATUS1", ALL_ONES_32)

    def start(self) -> None:
        """RUN the DSP, compute the configuration CRC and remember it."""
        self.write("RUN", 1)
        self.refresh_config_crc()

    def refresh_config_crc(self) -> None:
        """Recompute CRC_RSLT after an intended configuration change and keep it as the reference."""
        self.write("CRC_FORCE", field_prep(RM["CRC_FORCE"], "FORCE_CRC_UPDATE", 1), verify=False)
        done = bit(RM["STATUS1"], "CRC_DONE")
        deadline = self.clock.monotonic_ns() + int(CRC_DONE_TIMEOUT_S * 1e9)
        while not self.read("STATUS1") & done:
            if self.clock.monotonic_ns() >= deadline:
                raise MeterTimeoutError(f"ade9000 on {self.where}: CRC_DONE not set {CRC_DONE_TIMEOUT_S} s after "
                                        "CRC_FORCE; the DSP may not be running")
            self.clock.sleep_until_ns(self.clock.monotonic_ns() + 1_000_000)
        self.write("STATUS1", done | bit(RM["STATUS1"], "CRC_CHG"))
        self.config_crc = self.read("CRC_RSLT")

    def bring_up(self) -> int:
        """Reset, identify, configure, calibrate and start; returns the chip VERSION."""
        self.reset()
        version = self.check_identity()
        self.configure()
        self.start()
        log.info("ADE9000 on %s up: version %#06x, configuration CRC %#06x", self.where, version, self.config_crc)
        return version

    # ------------------------------------------------------------------ health and energy
    def check_health(self) -> list[str]:
        """Problems found in STATUS1: configuration CRC changed, an unexpected reset, internal errors."""
        problems = []
        status = self.read("STATUS1")
        st1 = RM["STATUS1"]
        if status & bit(st1, "CRC_CHG"):
            crc = self.read("CRC_RSLT")
            self.write("STATUS1", bit(st1, "CRC_CHG"))
            if crc != self.config_crc:
                self.stats.config_crc_changes += 1
                problems.append(f"configuration CRC changed from {self.config_crc:#06x} to {crc:#06x}: "
                                "a configuration register was altered")
        if status & bit(st1, "RSTDONE"):
            problems.append("the chip reset itself (RSTDONE set while running): supply brown-out or RESET glitch")
        for k in range(4):
            if status & bit(st1, f"ERROR{k}"):
                problems.append(f"STATUS1.ERROR{k} set: internal chip error, reset required")
        return problems

    def energy_scale_wh(self) -> np.ndarray:
        """Wh (varh, VAh) per accumulator LSB for each phase, from the board's channel full scales."""
        out = np.empty(3)
        for p, ph in enumerate("ABC"):
            v = next(c for c in self.settings.channels if c.name == f"V{ph}")
            i = next(c for c in self.settings.channels if c.name == f"I{ph}")
            p_fs = (v.full_scale_peak() / np.sqrt(2)) * (i.full_scale_peak() / np.sqrt(2))
            out[p] = p_fs / WATT_FS / DSP_RATE_HZ / 3600.0
        return out

    @staticmethod
    def energy_registers() -> tuple[str, ...]:
        """The accumulator registers in reading order: per phase A, B, C, per kind W, var, VA, HI then LO."""
        return tuple(f"{ph}{kind}_{part}" for ph in "ABC" for kind in ("WATTHR", "VARHR", "VAHR")
                     for part in ("HI", "LO"))

    def energy_from_raw(self, raw: Sequence[int], timestamp_ns: int, frame_count: int = -1) -> EnergyReading:
        """An ``EnergyReading`` from the raw values of ``energy_registers()``: the accumulators add up since the
        reset (EGY_LD_ACCUM = 0), so the reading's energy is their difference from the previous reading (from 0
        after a reset), whatever number of intervals that spans."""
        names = self.energy_registers()
        acc = [energy_join(RM[names[2 * j]], RM[names[2 * j + 1]], raw[2 * j], raw[2 * j + 1]) for j in range(9)]
        prev = self._energy_prev or [0] * 9
        counts = np.array([energy_delta(RM[names[2 * j]], RM[names[2 * j + 1]], acc[j], prev[j]) for j in range(9)],
                          dtype=np.int64).reshape(3, 3)
        self._energy_prev = acc
        wh = counts.astype(np.float64) * self.energy_scale_wh()[:, None]
        return EnergyReading(timestamp_ns, self.settings.energy_interval_s, counts, wh, frame_count)

    def read_energy(self, frame_count: int = -1) -> EnergyReading:
        """Read the latched accumulators of the last EGYRDY interval."""
        raw = [self.read(name) for name in self.energy_registers()]
        return self.energy_from_raw(raw, self.clock.realtime_ns(), frame_count)

    def register_dump(self) -> dict[str, int]:
        """Every readable, non-volatile register (dump_config habit), for diagnostics."""
        return {r.name: self.read(r.name) for r in sorted(RM.registers.values(), key=lambda r: r.addr)
                if not r.volatile and r.width in (16, 32)}


def register(name: str) -> Register:
    return RM[name]
