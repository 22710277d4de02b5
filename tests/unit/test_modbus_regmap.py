"""Register map built from the point map: layout, blocks, partial reads, write rules, build errors."""
import math
import struct

import numpy as np
import pytest

from firmware.comms.modbus.blocks import Block
from firmware.comms.modbus.regmap import (
    ILLEGAL_ADDRESS,
    ILLEGAL_VALUE,
    RegisterMap,
    WriteRefused,
    build_map,
    load_overlay,
)
from firmware.points import Point, load_points
from hal.errors import ConfigError


def point(name, modbus, kind="instantaneous", size=1, unit="V"):
    return Point(name, unit, kind, f"test point {name}", size, "", "test", {"modbus": modbus})


@pytest.fixture(scope="module")
def full_map():
    return build_map()


# Issue 6 / ION7400-PM8000 layout: protocol address -> point, float32 unless noted.
ION_ADDRESSES = {
    2999: "i_a", 3001: "i_b", 3003: "i_c", 3005: "i_n", 3009: "i_avg",
    3019: "v_ab", 3021: "v_bc", 3023: "v_ca", 3025: "v_ll_avg", 3027: "v_an", 3029: "v_bn", 3031: "v_cn",
    3035: "v_ln_avg", 3053: "p_a", 3055: "p_b", 3057: "p_c", 3059: "p_total", 3061: "q_a", 3063: "q_b",
    3065: "q_c", 3067: "q_total", 3069: "s_a", 3071: "s_b", 3073: "s_c", 3075: "s_total", 3109: "frequency",
}
ION_ENERGY = {
    3203: "wh_delivered", 3207: "wh_received", 3211: "wh_del_plus_rec", 3215: "wh_del_minus_rec",
    3219: "varh_delivered", 3223: "varh_received", 3227: "varh_del_plus_rec", 3231: "varh_del_minus_rec",
    3235: "vah_delivered", 3239: "vah_received", 3243: "vah_del_plus_rec", 3247: "vah_del_minus_rec",
}


def test_point_map_gives_the_ion_layout(full_map):
    by_address = {r.address: r for r in full_map.registers}
    for address, name in ION_ADDRESSES.items():
        assert by_address[address].point == name and by_address[address].fmt.name == "float32"
    for address, name in ION_ENERGY.items():
        assert by_address[address].point == name and by_address[address].fmt.name == "s64"


def test_whole_basic_block_reads_with_not_available_patterns(full_map):
    values = {name: float(i + 1) for i, name in enumerate(ION_ADDRESSES.values())}
    values["p_total"] = 12345.0      # W, published in kW
    full_map.refresh(values)
    data = full_map.read_registers(2999, 112)
    assert isinstance(data, bytes) and len(data) == 224
    words = struct.unpack(">112H", data)
    for address, name in ION_ADDRESSES.items():
        raw = data[2 * (address - 2999): 2 * (address - 2999) + 4]
        expected = values[name] * (0.001 if name[:2] in ("p_", "q_", "s_") else 1.0)   # W -> kW
        assert struct.unpack(">f", raw)[0] == pytest.approx(expected, rel=1e-7)
    # 3007 (ground current in the ION map) has no point here: a word with no register reads 0x8000.
    assert words[3007 - 2999] == 0x8000 and words[3008 - 2999] == 0x8000
    # pf_a (3077) is mapped but not in the values: float "not available" 0xFFC00000.
    assert data[2 * (3077 - 2999): 2 * (3077 - 2999) + 4] == b"\xff\xc0\x00\x00"


def test_energy_s64(full_map):
    full_map.refresh({"wh_delivered": 1_234_567.4, "wh_received": 0.0, "vah_del_minus_rec": -42.0})
    data = full_map.read_registers(3203, 48)
    assert struct.unpack(">q", data[0:8])[0] == 1_234_567
    assert struct.unpack(">q", data[8:16])[0] == 0
    assert struct.unpack(">q", data[88:96])[0] == -42
    assert data[16:24] == b"\x80" + b"\0" * 7            # wh_del_plus_rec absent


def test_read_outside_blocks_is_illegal_address(full_map):
    assert full_map.read_registers(2998, 1) == ILLEGAL_ADDRESS
    assert full_map.read_registers(3113, 2) == ILLEGAL_ADDRESS      # runs past 3113
    assert full_map.read_registers(0, 1) == ILLEGAL_ADDRESS
    assert full_map.read_registers(65535, 1) == ILLEGAL_ADDRESS


def test_partial_multiword_read_is_illegal_value(full_map):
    assert full_map.read_registers(3000, 2) == ILLEGAL_VALUE        # starts inside i_a
    assert full_map.read_registers(2999, 1) == ILLEGAL_VALUE        # ends inside i_a
    assert full_map.read_registers(3205, 2) == ILLEGAL_VALUE        # inside an s64
    assert full_map.read_registers(3203, 3) == ILLEGAL_VALUE
    assert isinstance(full_map.read_registers(3007, 2), bytes)      # unmapped words may be read singly
    assert isinstance(full_map.read_registers(3008, 1), bytes)


def test_array_point_elements_and_nan():
    harm = np.arange(64, dtype=float)
    harm[5] = math.nan
    m = RegisterMap.from_points([point("h", {"address": 100, "format": "float32", "first": 1, "count": 3},
                                       size=64)], register_blocks=())
    m.refresh({"h": harm})
    data = m.read_registers(100, 6)
    assert struct.unpack(">3f", data) == (1.0, 2.0, 3.0)
    assert [r.label for r in m.registers] == ["h[1]", "h[2]", "h[3]"]
    # Loose registers form their own block exactly as wide as they are.
    assert [(b.start, b.end) for b in m.blocks] == [(100, 105)]
    assert m.read_registers(106, 1) == ILLEGAL_ADDRESS


def test_write_rules():
    m = RegisterMap.from_points([
        point("cmd", {"address": 10, "format": "u16", "access": "rw", "coil": 0}, kind="command"),
        point("v", {"address": 11, "format": "float32"}),
    ], register_blocks=(Block(10, 20, "t", "t"),), coil_blocks=(Block(0, 7, "c", "c"),))
    assert [r.point for r in m.check_write(10, 1)] == ["cmd"]
    with pytest.raises(WriteRefused) as err:
        m.check_write(11, 2)                 # read-only register
    assert err.value.code == ILLEGAL_VALUE
    with pytest.raises(WriteRefused) as err:
        m.check_write(12, 1)                 # half of a float
    assert err.value.code == ILLEGAL_VALUE
    with pytest.raises(WriteRefused) as err:
        m.check_write(13, 1)                 # unmapped: silence
    assert err.value.code is None
    with pytest.raises(WriteRefused) as err:
        m.check_write(10, 5)                 # runs onto unmapped words: silence, nothing stored
    assert err.value.code is None
    assert [b.point for b in m.check_coil_write(0, 1)] == ["cmd"]
    with pytest.raises(WriteRefused):
        m.check_coil_write(0, 2)
    assert m.read_bits("coil", 0, 8) == [False] * 8
    assert m.read_bits("coil", 0, 9) == ILLEGAL_ADDRESS


@pytest.mark.parametrize("points,match", [
    ([point("a", {"address": 1, "format": "float32"}), point("b", {"address": 2, "format": "u16"})], "overlaps"),
    ([point("a", {"address": 1, "format": "float64"})], "not known"),
    ([point("a", {"address": 1, "format": "u16", "access": "rw"})], "only command points"),
    ([point("a", {"address": 1, "format": "u16", "colour": 1})], "not known"),
    ([point("a", {"address": 1, "format": "u16", "coil": 1})], "only command points may be coils"),
    ([point("a", {"address": 65535, "format": "float32"})], "outside"),
    ([point("a", {"address": 9, "format": "float32"})], "crosses the edge"),
    ([point("a", {"address": 1, "format": "float32", "count": 9}, size=4)], "outside the point's size"),
])
def test_build_errors_name_the_point(points, match):
    with pytest.raises(ConfigError, match=match):
        RegisterMap.from_points(points, register_blocks=(Block(10, 20, "t", "t"),))


def test_discrete_inputs_follow_values(full_map):
    full_map.refresh({"revenue_locked": 1.0, "test_mode": 0.0, "time_synced": math.nan})
    assert full_map.read_bits("discrete", 0, 8) == [True, False, False, False, False, False, False, False]
    assert full_map.read_bits("discrete", 30, 3) == ILLEGAL_ADDRESS


def test_every_overlay_entry_names_a_point_without_its_own_mapping():
    names = {p.name: p for p in load_points()}
    for name in load_overlay():
        assert name in names, f"mappings.toml names {name!r}, which no point file defines"
        assert names[name].mapping("modbus") is None
    assert build_map().unknown_overlay == []


def test_overlay_and_own_mapping_is_an_error():
    p = point("a", {"address": 11, "format": "float32"})
    with pytest.raises(ConfigError, match="keep one"):
        RegisterMap.from_points([p], {"a": {"address": 13, "format": "float32"}},
                                register_blocks=(Block(10, 20, "t", "t"),))
