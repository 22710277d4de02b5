"""Per-protocol map files (``firmware/points/maps/PROTOCOL.toml``) merge into the point map by name; every point
carries the label, area and type the pages show it by."""
from __future__ import annotations

import pytest

import firmware.points as points
from hal.errors import ConfigError


@pytest.fixture
def point_dirs(tmp_path, monkeypatch):
    (tmp_path / "maps").mkdir()
    (tmp_path / "basic.toml").write_text(
        '[[point]]\nname = "v_an"\nunit = "V"\nkind = "instantaneous"\ndescription = "Voltage A-N"\n'
        'label = "Voltage {a}-N"\narea = "voltage"\nmodbus = { address = 3027, format = "float32" }\n'
        '[[point]]\nname = "i_a"\nunit = "A"\nkind = "instantaneous"\ndescription = "Current A"\n'
        'label = { ieee = "Ia", iec = "I1" }\narea = "current"\nsnmp = { oid = "1.1" }\n')
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


def test_labels_name_phases_by_the_convention(point_dirs):
    by_name = points.points_by_name()
    assert by_name["v_an"].label("ieee") == "Voltage A-N" and by_name["v_an"].label("iec") == "Voltage L1-N"
    assert by_name["i_a"].label("ieee") == "Ia" and by_name["i_a"].label("iec") == "I1"
    assert by_name["v_an"].area == "voltage" and by_name["v_an"].type == "number"


_POINT = '[[point]]\nname = "f"\nunit = "Hz"\nkind = "instantaneous"\ndescription = "Frequency"\n'


@pytest.mark.parametrize("extra, message", [
    ('area = "frequency"\n', "'label' is missing"),
    ('label = "Frequency"\n', "area None is not one of"),
    ('label = "Frequency"\narea = "nowhere"\n', "area 'nowhere' is not one of"),
    ('label = "Frequency"\narea = "frequency"\ntype = "float"\n', "type 'float' is not one of"),
    ('label = "Frequency {d}"\narea = "frequency"\n', "phases written {a} {b} {c}"),
    ('label = { ieee = "f" }\narea = "frequency"\n', "table of ieee and iec texts"),
    ('label = ""\narea = "frequency"\n', "must be 1-80 characters"),
])
def test_a_point_without_a_proper_label_area_or_type_is_refused(point_dirs, extra, message):
    (point_dirs / "pq.toml").write_text(_POINT + extra)
    with pytest.raises(ConfigError, match=message):
        points.load_points()


def test_every_published_point_of_the_meter_has_a_label_and_an_area_on_a_page():
    """The meter's own point map: what the pages show is labelled, never by its internal name."""
    pages = {a.name: a.page for a in points.AREAS}
    for p in points.load_points():
        for convention in points.LABEL_CONVENTIONS:
            label = p.label(convention)
            assert label != p.name and "{" not in label and "_" not in label, (p.name, label)
        if p.kind not in ("identity", "command", "setting"):
            assert pages[p.area] in ("readings", "energy"), (p.name, p.area)
        if p.type == "time":
            assert p.unit == "s", p.name
        if p.type in ("flag", "count", "code"):
            assert p.unit == "", p.name
    labels = [p.label("ieee") for p in points.load_points()]
    assert len(set(labels)) == len(labels), sorted({x for x in labels if labels.count(x) > 1})
