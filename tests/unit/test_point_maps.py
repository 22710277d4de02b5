"""Per-protocol map files (``firmware/points/maps/PROTOCOL.toml``) merge into the point map by name."""
from __future__ import annotations

import pytest

import firmware.points as points
from hal.errors import ConfigError


@pytest.fixture
def point_dirs(tmp_path, monkeypatch):
    (tmp_path / "maps").mkdir()
    (tmp_path / "basic.toml").write_text(
        '[[point]]\nname = "v_an"\nunit = "V"\nkind = "instantaneous"\ndescription = "Voltage A-N"\n'
        'modbus = { address = 3027, format = "float32" }\n'
        '[[point]]\nname = "i_a"\nunit = "A"\nkind = "instantaneous"\ndescription = "Current A"\n'
        'snmp = { oid = "1.1" }\n')
    monkeypatch.setattr(points, "POINTS_DIR", tmp_path)
    monkeypatch.setattr(points, "MAPS_DIR", tmp_path / "maps")
    points.load_points.cache_clear()
    yield tmp_path
    points.load_points.cache_clear()


def test_a_map_file_adds_its_protocol_to_the_named_point(point_dirs):
    (point_dirs / "maps" / "dnp3.toml").write_text('[[point]]\nname = "v_an"\ndnp3 = { group = 30, index = 0 }\n')
    v_an = points.points_by_name()["v_an"]
    assert v_an.mapping("dnp3") == {"group": 30, "index": 0}
    assert v_an.mapping("modbus") == {"address": 3027, "format": "float32"}


@pytest.mark.parametrize("text, message", [
    ('[[point]]\nname = "nosuch"\ndnp3 = { index = 0 }\n', "no point 'nosuch'"),
    ('[[point]]\nname = "v_an"\nmodbus = { address = 1 }\n', "exactly 'name' and a 'dnp3' table"),
    ('[[point]]\nname = "v_an"\ndnp3 = { index = 0 }\n[[point]]\nname = "v_an"\ndnp3 = { index = 1 }\n',
     "mapped twice"),
])
def test_a_bad_map_file_is_refused_by_name(point_dirs, text, message):
    (point_dirs / "maps" / "dnp3.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        points.load_points()


def test_a_map_file_named_after_no_protocol_or_mapping_twice_is_refused(point_dirs):
    (point_dirs / "maps" / "snmp.toml").write_text('[[point]]\nname = "i_a"\nsnmp = { oid = "1.2" }\n')
    with pytest.raises(ConfigError, match="both in basic.toml and in maps/snmp.toml"):
        points.load_points()
    (point_dirs / "maps" / "snmp.toml").unlink()
    (point_dirs / "maps" / "iec104.toml").write_text("")
    points.load_points.cache_clear()
    with pytest.raises(ConfigError, match="must be a protocol"):
        points.load_points()
