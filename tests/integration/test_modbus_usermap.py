"""The Modbus user map on a real TCP server: mbpoll (libmodbus) and pymodbus read the configured points at the
user's addresses, with the values the fixed map and the snapshot give; a wrong map is refused at save with the
entry named."""
from __future__ import annotations

import struct

import pytest
from pymodbus.client import ModbusTcpClient

from firmware.comms.modbus.feed import SnapshotFeed
from firmware.comms.modbus.handler import Access, Handler
from firmware.comms.modbus.regmap import build_map
from firmware.comms.modbus.tcp import ModbusTcpServer
from firmware.config.store import ConfigStore
from hal.errors import ConfigError
from tests.integration.modbus_support import IDENTITY, VALUES, LoopThread, Meter, mbpoll, need

USER_MAP = ("40000=v_an", "40002=p_total", "40004=wh_delivered:s64", "40008=harmonics_v_an[5]", "40010=i_a:u16")


@pytest.fixture
def server():
    loop = LoopThread()
    meter = Meter()
    meter.snapshot.publish({"harmonics_v_an": [0.0] * 5 + [4.5] + [0.0] * 58})
    feed = SnapshotFeed(meter.snapshot, IDENTITY.register_values())
    handler = Handler(build_map(user_map=USER_MAP), feed.poll, IDENTITY, Access.READ_ONLY)
    srv = ModbusTcpServer(handler, "127.0.0.1", 0)
    loop.run(srv.start())
    yield srv.port
    loop.run(srv.stop())
    loop.close()
    meter.close()


def test_the_user_map_serves_each_point_at_its_address(server):
    need("mbpoll")
    got = mbpoll("-m", "tcp", "-p", str(server), "-t", "4:float", "-B", "-r", "40000", "-c", "2", "127.0.0.1")
    assert float(got[40000]) == pytest.approx(VALUES["v_an"], rel=1e-6)
    assert float(got[40002]) == pytest.approx(VALUES["p_total"], rel=1e-6)     # the point's unit: W, not kW
    client = ModbusTcpClient("127.0.0.1", port=server, timeout=5, retries=0)
    assert client.connect()
    try:
        rr = client.read_holding_registers(40004, count=7)                       # s64, float32, u16 in one read
        assert not rr.isError(), rr
        words = struct.pack(">7H", *rr.registers)
        assert struct.unpack(">q", words[:8])[0] == round(VALUES["wh_delivered"])
        assert struct.unpack(">f", words[8:12])[0] == pytest.approx(4.5)
        assert rr.registers[6] == round(VALUES["i_a"])
        fixed = client.read_holding_registers(3027, count=2)                    # v_an in the fixed map, too
        assert struct.unpack(">f", struct.pack(">2H", *fixed.registers))[0] == pytest.approx(VALUES["v_an"])
        assert client.read_holding_registers(40012, count=1).isError()           # nothing mapped there
    finally:
        client.close()


@pytest.mark.parametrize("entry, says", [
    ("3027=v_an", "overlaps the fixed register map"),
    ("40000=no_such_point", "'no_such_point' is not a quantity of the catalogue"),
    ("40000=harmonics_v_an", "name one element"),
    ("40000=v_an:text", "format 'text' is not one of"),
])
def test_a_wrong_user_map_is_refused_when_saved(tmp_path, entry, says):
    store = ConfigStore(tmp_path / "meter.toml")
    with pytest.raises(ConfigError, match=says):
        store.update({"modbus": {"user_map": [entry]}}, "alice", "user map")
    store.update({"modbus": {"user_map": list(USER_MAP)}}, "alice", "user map")
    assert store.load()["modbus"].user_map == USER_MAP
