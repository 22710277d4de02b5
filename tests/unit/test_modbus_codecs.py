"""Register formats: encodings, round trips and "not available" patterns (ION7400 manual, SPEC §7)."""
import math
import struct

import pytest

from firmware.comms.modbus.codecs import FORMATS, get_format, string_format


@pytest.mark.parametrize("name,value,raw", [
    ("u16", 1234, "04d2"),
    ("s16", -2, "fffe"),
    ("u32", 0x12345678, "12345678"),
    ("s32", -1, "ffffffff"),
    ("float32", 1.5, "3fc00000"),
    ("float32", 230.0, "43660000"),
    ("s64", 123456789012, "0000001cbe991a14"),
    ("s64", -5, "fffffffffffffffb"),
    ("u32-M10K", 12345678, "04d2" + "162e"),           # 1234 × 10000 + 5678
    ("s32-M10K", -12345678, "fb2e" + "e9d2"),          # -1234, -5678
])
def test_encoding_high_word_first(name, value, raw):
    fmt = FORMATS[name]
    assert fmt.encode(value).hex() == raw
    assert fmt.decode(bytes.fromhex(raw)) == value


@pytest.mark.parametrize("name,na", [
    ("u16", "ffff"), ("s16", "8000"), ("u32", "ffffffff"), ("s32", "80000000"),
    ("s64", "8000000000000000"), ("float32", "ffc00000"),
    ("u32-M10K", "ffffffff"), ("s32-M10K", "80000000"),
])
@pytest.mark.parametrize("value", [None, math.nan, "text"])
def test_missing_or_nan_encodes_not_available(name, na, value):
    fmt = FORMATS[name]
    assert fmt.encode(value).hex() == na
    assert fmt.decode(bytes.fromhex(na)) is None


@pytest.mark.parametrize("name,value", [
    ("u16", -1), ("u16", 0xFFFF), ("s16", 40000), ("s16", -32768), ("u32", 2**32), ("s32", 2**31),
    ("u32-M10K", 10_000 * 10_000), ("u32-M10K", -1), ("s64", 2**63), ("u16", math.inf),
])
def test_out_of_range_is_not_available_not_clipped(name, value):
    fmt = FORMATS[name]
    assert fmt.encode(value) == fmt.na


def test_scale_applies_before_rounding():
    fmt = FORMATS["s64"]
    # 1.2345 kWh at scale 1000 -> 1235 Wh (rounded half-to-even of 1234.5 is 1234, the float is 1234.4999...)
    assert fmt.decode(fmt.encode(1.2346, scale=1000.0)) == 1235
    assert fmt.decode(fmt.encode(12.0, scale=10.0), scale=10.0) == 12.0


def test_float32_round_trip_and_infinity():
    fmt = FORMATS["float32"]
    value = 229.87654
    assert fmt.decode(fmt.encode(value)) == pytest.approx(value, rel=1e-7)   # float32: 24-bit mantissa
    assert fmt.decode(fmt.encode(1e40)) == math.inf
    assert struct.unpack(">f", fmt.encode(-0.0))[0] == 0.0


def test_string_format():
    fmt = string_format(4)
    assert fmt.words == 4
    assert fmt.encode("ABC") == b"ABC\0\0\0\0\0"
    assert fmt.encode("ABCDEFGHIJ") == b"ABCDEFGH"
    assert fmt.decode(b"ABC\0\0\0\0\0") == "ABC"
    assert get_format("string", 20).words == 20
    with pytest.raises(ValueError, match="length"):
        get_format("string")
    with pytest.raises(ValueError, match="allowed"):
        get_format("float64")
