"""Modbus and the authorization point: per-port access, the Modbus user when security is on, and a request
naming several commands refused as a whole before any runs."""
from __future__ import annotations

import asyncio

import pytest

from firmware.comms.modbus.app import command_user, port_access
from firmware.comms.modbus.feed import FunctionFeed
from firmware.comms.modbus.handler import Access, Handler
from firmware.comms.modbus.regmap import build_map
from firmware.config import meter_schema
from firmware.security.authorize import Identity
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore
from tests.unit.test_modbus_handler import IDENTITY, req

DEMAND_RESET, ENERGY_RESET, DEMAND_SYNC = req(6, 5000, 1), req(6, 5001, 1), req(6, 5003, 1)


class Meter:
    def __init__(self, user, access=Access.READ_WRITE, locked=0.0):
        self.values = {"v_an": 230.0, "revenue_locked": locked}
        self.ran: list[str] = []

        async def run(cmd):
            self.ran.append(cmd.point)

        self.handler = Handler(build_map(), FunctionFeed(lambda: self.values, IDENTITY.register_values()).poll,
                               IDENTITY, access, run, command_user=user)

    def __call__(self, pdu, access=None):
        return asyncio.run(self.handler.handle(pdu, 1, access))


def refused(pdu):
    return bytes((pdu[0] | 0x80, 2))


def test_with_security_on_commands_need_the_modbus_users_privilege():
    resetter = Identity("scada", frozenset({Privilege.READ, Privilege.PEAK_DEMAND_RESET}), "modbus")
    meter = Meter(resetter)
    assert meter(DEMAND_RESET) == DEMAND_RESET
    assert meter(ENERGY_RESET) == refused(ENERGY_RESET)          # setup privilege needed
    assert meter.ran == ["cmd_demand_reset"]
    nobody = Meter(None)                                           # security on, no Modbus user
    assert nobody(DEMAND_SYNC) == refused(DEMAND_SYNC) and nobody.ran == []
    assert nobody(req(3, 3027, 2))[:2] == bytes((3, 4))            # reads are unaffected


def test_a_request_with_one_refused_command_runs_none():
    meter = Meter(Identity("scada", frozenset({Privilege.PEAK_DEMAND_RESET}), "modbus"))
    both = req(16, 5000, 2, fmt=">BHH") + bytes((4, 0, 1, 0, 1))    # demand reset + energy reset
    assert meter(both) == bytes((0x90, 2))
    assert meter.ran == []
    locked = Meter(Identity.master("modbus", "modbus"), locked=1.0)
    sync_and_reset = req(15, 0, 4, fmt=">BHH") + bytes((1, 0b1001))  # coil 0 demand reset, coil 3 demand sync
    assert locked(sync_and_reset) == bytes((0x8F, 2)) and locked.ran == []


@pytest.mark.parametrize("port,expect_read,expect_write", [
    (Access.NONE, False, False), (Access.READ_ONLY, True, False), (Access.READ_WRITE, True, True)])
def test_access_is_per_port(port, expect_read, expect_write):
    meter = Meter(Identity.master("modbus", "modbus"), access=Access.READ_WRITE)
    assert (meter(req(3, 3027, 2), port)[0] == 3) is expect_read
    assert (meter(DEMAND_SYNC, port) == DEMAND_SYNC) is expect_write
    assert meter(DEMAND_SYNC) == DEMAND_SYNC                         # the other port keeps its own access


def test_port_access_and_command_user_from_the_configuration(tmp_path):
    assert port_access("modbus", "read-write") is Access.READ_WRITE
    assert port_access("read-only", "read-write") is Access.READ_ONLY
    schema = meter_schema()
    assert command_user(schema.load({})).user == "modbus"               # security off: the port decides
    users = UserStore(tmp_path)
    users.add("scada", "pw", frozenset({Privilege.PEAK_DEMAND_RESET}), frozenset({"modbus"}))
    users.add("webonly", "pw", frozenset({Privilege.MASTER}), frozenset({"web"}))
    users.close()
    on = {"meter": {"data_dir": str(tmp_path)}, "security": {"enabled": True}}
    assert command_user(schema.load(on)) is None                         # no modbus_user set
    on["security"]["modbus_user"] = "webonly"
    assert command_user(schema.load(on)) is None                         # not allowed over Modbus
    on["security"]["modbus_user"] = "scada"
    user = command_user(schema.load(on))
    assert user.user == "scada" and user.privileges == frozenset({Privilege.PEAK_DEMAND_RESET})
