"""The register map loads, is consistent, and the generated doc is current."""
import math

import pytest

from hal.regmap import bit, field_get, field_prep, regmap
from tools import gendocs_hal


def test_known_addresses_and_widths():
    rm = regmap()
    # Addresses from the ADI register header ade90xx.h and the Linux IIO driver.
    expected = {"AIGAIN": 0x000, "BIGAIN": 0x020, "CIGAIN": 0x040, "AVGAIN": 0x00B, "STATUS0": 0x402,
                "STATUS1": 0x403, "MASK0": 0x405, "RUN": 0x480, "CONFIG1": 0x481, "ACCMODE": 0x492,
                "WFB_CFG": 0x4A0, "WFB_PG_IRQEN": 0x4A1, "WFB_TRG_STAT": 0x4A3, "CRC_RSLT": 0x4A8,
                "CRC_SPI": 0x4A9, "EP_CFG": 0x4B0, "EGY_TIME": 0x4B2, "PGA_GAIN": 0x4B9, "VERSION": 0x4FE,
                "AWATTHR_HI": 0x2E7, "BWATTHR_LO": 0x322, "CWATTHR_LO": 0x35E, "CVAHR_LO": 0x372,
                "APERIOD": 0x418, "PART_ID": 0x472}
    for name, addr in expected.items():
        assert rm[name].addr == addr, name
    assert rm["RUN"].width == 16 and rm["VERSION"].width == 16 and rm["STATUS1"].width == 32
    assert all(r.width == 16 for r in rm.registers.values() if 0x480 <= r.addr <= 0x4FE)


def test_fields_match_linux_driver_bits():
    rm = regmap()
    assert bit(rm["STATUS0"], "PAGE_FULL") == 1 << 17
    assert bit(rm["STATUS0"], "EGYRDY") == 1 << 0
    assert bit(rm["STATUS1"], "RSTDONE") == 1 << 16
    wfb = rm["WFB_CFG"]
    assert field_prep(wfb, "WF_MODE", 3) == 0xC0
    assert field_get(wfb, "WF_SRC", 0x3E9) == 3
    with pytest.raises(ValueError):
        field_prep(wfb, "WF_MODE", 4)


def test_disputed_constants_are_self_consistent():
    rm = regmap()
    rms, watt, pcf = (rm.const(n) for n in ("RMS_FULL_SCALE_CODES", "WATT_FULL_SCALE_CODES",
                                           "PCF_FULL_SCALE_CODES"))
    # The chosen TRM set: WATT = RMS^2 / 2^27 and RMS = PCF / sqrt(2), each to 2 ppm.
    assert rms**2 / 2**27 == pytest.approx(watt, rel=2e-6)
    assert pcf / math.sqrt(2) == pytest.approx(rms, rel=2e-6)
    assert rm.const("DSP_RATE_HZ") == 8000
    for name in ("RMS_FULL_SCALE_CODES", "PCF_FULL_SCALE_CODES", "DSP_RATE_HZ"):
        assert rm.constants[name].alternatives and rm.constants[name].why


def test_generated_doc_is_current():
    assert gendocs_hal.main(["--check"]) == 0


def test_energy_accumulators_are_joined_and_split_through_the_map():
    """xHR_HI holds the signed upper 32 bits, xHR_LO the 13 LSBs (field LSBS): no shifts outside the map."""
    from hal.regmap import energy_join, energy_split, regmap

    rm = regmap()
    hi, lo = rm["AWATTHR_HI"], rm["AWATTHR_LO"]
    for value in (0, 1, 8191, 8192, 123_456_789_012, -1, -8193, -(2 ** 44), 2 ** 44 - 1):
        h, lo_raw = energy_split(hi, lo, value)
        assert 0 <= h <= 0xFFFFFFFF and 0 <= lo_raw <= 0x1FFF
        assert energy_join(hi, lo, h, lo_raw) == value
    assert energy_split(hi, lo, 2 ** 45) == (0, 0)          # the 45-bit accumulator wraps
