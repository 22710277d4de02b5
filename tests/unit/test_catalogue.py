"""The catalogue walked against every interface's own tables: each quantity and command is carried where its entry
says, and no interface carries anything the catalogue does not name.

The protocol peers' side of the same walk (pymodbus, bacpypes3, HTTPS, the `meter` command against a running
meter) is tests/integration/test_catalogue_walk.py.
"""
from __future__ import annotations

import importlib
import re
import inspect

import pytest

from firmware import catalogue
from firmware.catalogue import NOT_MEASURED, commands, quantities
from firmware.catalogue import table as cat_table
from firmware.catalogue.values import pick
from firmware.points import points_by_name
from firmware.service import Service
from firmware.services.registry import SERVICES
from hal.errors import ConfigError


def _served() -> set[str]:
    """Every control command a service or the supervisor serves, as "<service>.<command>"."""
    from firmware.maintenance import ACTIONS
    from firmware.revenue.runtime import COMMAND_NAMES
    from firmware.supervisor import Supervisor

    served = {"status", "restart", "shutdown"}
    assert all(hasattr(Supervisor, f"cmd_{name}") for name in served)
    served |= set(ACTIONS)
    for spec in SERVICES:
        module = importlib.import_module(spec.module)
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, Service) and c is not Service and c.__module__ == module.__name__]
        assert len(classes) == 1, spec.module
        names = {getattr(f, "_control_command", None) for _, f in inspect.getmembers(classes[0])} - {None}
        names |= {"ping", "info"}                        # every service answers these (firmware.service)
        if spec.name == "metrology":
            names |= set(COMMAND_NAMES)
        served |= {f"{spec.name}.{n}" for n in names}
    return served


def _controls(cmd: catalogue.Command) -> list[str]:
    if "{service}" in cmd.control:
        return [cmd.control.format(service=s) for s in cmd.arg("service").choices]
    return [cmd.control]


def test_every_command_is_served_and_every_served_command_is_catalogued():
    served = _served()
    declared = {control for c in commands() for control in _controls(c)}
    assert declared - served == set(), "catalogue commands no service serves"
    assert served - declared == set(), "served commands the catalogue does not name"


def test_the_authorization_point_takes_each_command_from_the_catalogue():
    from firmware.security import authorize as az

    for c in commands():
        for control in _controls(c):
            assert az.operation_for_command(control) == c.op
        if c.op != "read":
            op = az.OPERATIONS[c.op]
            assert (op.privilege.value, op.writes) == (c.privilege, c.writes)
        assert (c.op in az.REVENUE_LOCKED) == (c.revenue_lock == "refused")
        assert (c.op in az.REVENUE_LOCKED_RESETS) == (c.revenue_lock == "refused-unless-resets-allowed")
    assert az.operation_for_command("metrology.no_such_thing") == "metrology.no_such_thing"   # master only


def test_modbus_carries_exactly_the_catalogue():
    from firmware.comms.modbus.blocks import COMMANDS
    from firmware.comms.modbus.regmap import build_map

    regmap = build_map()
    points = points_by_name()
    mapped = {r.point for r in regmap.registers} | {b.point for b in regmap.coils.values()} | \
        {b.point for b in regmap.discretes.values()}
    assert mapped <= set(points), "Modbus maps names the point map does not have"
    writable = {r.point for r in regmap.registers if r.writable} | {b.point for b in regmap.coils.values()}
    modbus_commands = {c.modbus: c for c in commands() if c.modbus}
    assert writable == set(modbus_commands), "a writable Modbus point with no catalogue command, or the reverse"
    assert {(m.point, m.control, m.operation) for m in COMMANDS} == \
        {(c.modbus, c.control, c.op) for c in modbus_commands.values()}
    for c in modbus_commands.values():
        if c.value_arg:
            assert any(r.point == c.modbus and r.writable for r in regmap.registers), c.name


def test_bacnet_carries_exactly_the_catalogue():
    from firmware.comms.bacnet.device import AV1_COMMANDS
    from firmware.comms.bacnet.model import load_model

    names = {p.name for p in quantities()}
    model = load_model()
    assert {ai.point for ai in model.analog_inputs if ai.point} <= names
    av1 = {code: c.name for code, c in AV1_COMMANDS.items() if c is not None}
    assert av1 == {c.bacnet_av1: c.name for c in commands() if c.bacnet_av1 is not None}


def test_dnp3_carries_exactly_the_catalogue():
    from firmware.comms.dnp3 import points as dnp3_points
    from firmware.comms.dnp3.app import control_indexes
    from firmware.comms.dnp3.database import Database
    from firmware.comms.dnp3.outstation import FREEZE_COMMANDS

    mapped = {p.name: p.mapping("dnp3") for p in points_by_name().values() if p.mapping("dnp3") is not None}
    assert mapped, "the point map names no DNP3 point"
    assert set(mapped) <= {p.name for p in quantities()}, "DNP3 maps a name that is not a quantity"
    served = dnp3_points.load()
    assert {d.name for d in served} == set(mapped), "a DNP3 point the point map does not name, or the reverse"
    for d in served:
        table = mapped[d.name]
        assert (d.group, d.klass) == (table["group"], table.get("class", 0)), d.label
        assert d.index - table["index"] == (d.bit if d.bit is not None else d.element or 0), d.label
    db = Database()
    assert {(d.group, d.index) for d in db.points} == {(d.group, d.index) for d in served}
    assert control_indexes() == {c.dnp3: c.name for c in commands() if c.dnp3 is not None}
    assert {name for names in FREEZE_COMMANDS.values() for name in names} <= {c.name for c in commands()}
    assert all("dnp3" in c.interfaces for c in commands() if c.dnp3 is not None)


def test_web_and_cli_carry_every_quantity_and_their_commands():
    from firmware.web import actions
    from firmware.web.routes import endpoints

    assert set(actions.RESETS) == {c.name for c in commands() if c.web}
    reset_route = next(e for e in endpoints([], []) if e.path == "/api/resets/{name}")
    assert set(reset_route.params[0].enum) == set(actions.RESETS)
    # /api/values and `meter read` answer any quantity by name; nothing else
    everything = pick({}, [p.name for p in quantities()])
    assert set(everything) == {p.name for p in quantities()}
    for kind_name in [p.name for p in points_by_name().values() if p.kind in NOT_MEASURED][:5]:
        with pytest.raises(ConfigError, match="not a quantity of the catalogue"):
            pick({}, [kind_name])


def test_mqtt_publishes_only_catalogue_quantities():
    from firmware.config import meter_schema
    from firmware.mqtt.collect import energy_points

    names = {p.name for p in quantities()}
    assert set(energy_points()) <= names
    option = next(o for o in meter_schema().section("mqtt").options if o.name == "readings_points")
    assert set(option.default) <= names


def test_each_domain_list_agrees_with_its_owner():
    from firmware.recorder.store import AGGREGATE_KINDS
    assert cat_table.AGGREGATE_KINDS == AGGREGATE_KINDS
    # system types: metrology.settings owns them; the chip (hal, which imports no metrology) and BACnet map each
    from firmware.comms.bacnet.settings import CODE_OF_SYSTEM_TYPE
    from hal.ade9000 import WIRING_VCONSEL
    from metrology.settings import SYSTEM_TYPES
    assert set(SYSTEM_TYPES) <= set(WIRING_VCONSEL) and set(SYSTEM_TYPES) == set(CODE_OF_SYSTEM_TYPE)
    # the io inputs own their defaults and the revenue functions an input may have; the schema shows them
    from firmware.config import meter_schema
    from firmware.config.sections.io import INPUT
    from firmware.io.inputs import INPUT_DEFAULTS, INPUT_FUNCTIONS
    assert {o.name: o.default for o in INPUT if o.name != "number"} == INPUT_DEFAULTS
    functions = tuple(o.name for o in meter_schema().section("revenue.inputs").options if o.name != "sim_dir")
    assert functions == INPUT_FUNCTIONS
    assert set(catalogue.commands_module_services()) == {s.name for s in SERVICES}


def test_arguments_are_checked_with_what_is_allowed():
    preset = catalogue.command("preset")
    with pytest.raises(ConfigError, match="outside 0..1e\\+15"):
        preset.bind({"register": "wh_del", "value": -1.0})
    with pytest.raises(ConfigError, match="not one of wh_del"):
        preset.bind({"register": "nope", "value": 1.0})
    with pytest.raises(ConfigError, match="missing"):
        preset.bind({"value": 1.0})
    assert preset.bind({"register": "wh_del", "value": 5}) == ("metrology.preset",
                                                               {"register": "wh_del", "value": 5.0})
    assert catalogue.command("ping").bind({"service": "web"}) == ("web.ping", {})


def test_dlms_carries_exactly_the_catalogue():
    from firmware.comms.dlms.model import POINT_CLASSES, build_model, lp_channel_ln
    from firmware.comms.dlms.objects import (
        ASSOCIATION_LN,
        CLOCK,
        PROFILE_GENERIC,
        SCRIPT_TABLE,
        UNITS,
    )

    channels = ("wh_del", "varh_del")
    model = build_model(channels)
    points = points_by_name()
    served = {o.point: o for o in model.objects if o.class_id in POINT_CLASSES and o.point}
    assert set(served) == {p.name for p in points.values() if p.mapping("obis")}, \
        "DLMS serves a point the obis map does not name, or the reverse"
    for name, obj in served.items():
        m = points[name].mapping("obis")
        assert (obj.ln, obj.class_id, obj.scaler, obj.unit) == (m["code"], m.get("class", 3), m.get("scaler", 0),
                                                                UNITS[points[name].unit])
    scripts = {(o.ln, sid, cmd) for o in model.objects if o.class_id == SCRIPT_TABLE for sid, cmd in o.scripts.items()}
    assert scripts == {(c.obis.partition("#")[0], int(c.obis.partition("#")[2] or 1), c.name)
                       for c in commands() if c.obis}
    assert all("dlms" in c.interfaces for c in commands() if c.obis)
    # everything else is a fixed COSEM object of every meter, or a load-profile channel of the configuration
    rest = [o for o in model.objects if o.class_id != SCRIPT_TABLE and not o.point]
    lp = {lp_channel_ln(i) for i in range(len(channels))}
    assert all(o.class_id in (CLOCK, PROFILE_GENERIC, ASSOCIATION_LN) or o.ln in lp for o in rest)
    assert len(rest) == 5 + len(channels)


def test_snmp_carries_exactly_the_catalogue():
    from firmware.comms.snmp import ber, mib, mibtext
    from firmware.comms.snmp.notify import EVENT_OBJECTS
    from firmware.config.sections.snmp import DEFAULT_ENTERPRISE_OID

    enterprise = ber.oid(DEFAULT_ENTERPRISE_OID)
    mapped = {p.name for p in points_by_name().values() if p.mapping("snmp") is not None}
    objects = mib.meter_objects(enterprise)
    assert mapped <= {p.name for p in quantities()}, "an SNMP OID for something that is not a quantity"
    assert {o.point.name for o in objects} == mapped
    # the agent's tree below the meter's objects is those points and nothing else
    encoded: dict = {}
    tree = mib.Tree(mib.catalogue_getters(objects, encoded))
    root = mib.objects_root(enterprise)
    assert {o for o in tree.oids if o[:len(root)] == root} == {o.oid + (0,) for o in objects}
    # ... and the MIB declares exactly those objects (plus what the notifications carry)
    text = mibtext.render(enterprise)
    declared = set(re.findall(r"^(\w+) OBJECT-TYPE$", text, re.M))
    assert declared == {o.descriptor for o in objects} | {name for _, name, _, _ in EVENT_OBJECTS}
    # the catalogue's groups are the MIB's: readings, energies, status, alarms
    kinds = {mib.GROUPS[o.oid[len(root)]][0]: set() for o in objects}
    for o in objects:
        kinds[mib.GROUPS[o.oid[len(root)]][0]].add(o.point.kind)
    assert kinds["meterReadings"] == {"instantaneous"} and kinds["meterEnergies"] == {"total"}
