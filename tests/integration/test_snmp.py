"""The SNMP agent in the comms service, read by net-snmp's tools on loopback: v2c and v3 authPriv gets and
walks that agree with Modbus (mbpoll) on the same snapshot, refusals that are counted, the engine boots count,
and alarms and PQ events as traps and informs received by snmptrapd."""
from __future__ import annotations

import json
import time

import pytest

from firmware.comms.snmp import mib
from firmware.storage.eventlog import Event, EventLog
from tests.integration.modbus_support import VALUES, mbpoll
from tests.integration.snmp_support import ENTERPRISE, OBJECTS, SnmpMeter, TrapReceiver, free_udp_port, instance

SYSTEM = {"sys_contact": "metering@utility.invalid", "sys_location": "Substation 7, panel B"}


@pytest.fixture
def meter(tmp_path):
    m = SnmpMeter(tmp_path, SYSTEM)
    yield m
    m.close()


def obj(point: str) -> mib.MeterObject:
    return next(o for o in mib.meter_objects(ENTERPRISE) if o.point.name == point)


def expected(point: str, value: float) -> int:
    return round(value * obj(point).scale * 10 ** obj(point).decimals)


def modbus_float(meter: SnmpMeter, point: str) -> float:
    address = obj(point).point.mapping("modbus")
    assert address is not None
    got = mbpoll("-m", "tcp", "-p", str(meter.modbus_port), "-t", "4:float", "-B", "-r", str(address["address"]),
                 "-c", "1", "127.0.0.1")
    return float(got[address["address"]])


POINTS = ("v_an", "i_a", "p_total", "pf_total", "frequency", "wh_delivered", "wh_del_minus_rec", "revenue_locked")


def test_v2c_and_v3_reads_agree_with_modbus_on_the_same_snapshot(meter):
    names = [instance(p) for p in POINTS]
    for round_values in (VALUES, {**VALUES, "v_an": 231.5, "i_a": 7.25, "p_total": -1500.5}):
        meter.snapshot.publish(round_values)
        v2c = meter.values("snmpget", meter.v2c(), *names)
        v3 = meter.values("snmpget", meter.v3(), *names)
        sha512 = meter.values("snmpget", meter.v3("auditor", protocol="SHA-512"), *names)
        assert v2c == v3 == sha512
        for point, name in zip(POINTS, names):
            assert int(v2c[name][1]) == expected(point, round_values[point]), point
        for point in ("v_an", "i_a", "frequency"):
            scale = 10 ** obj(point).decimals
            assert int(v2c[instance(point)][1]) / scale == pytest.approx(modbus_float(meter, point), abs=1 / scale)
    assert v2c[instance("wh_delivered")][0] == "Counter64"


def test_walks_carry_every_published_point_and_the_standard_groups(meter):
    walk = meter.values("snmpwalk", meter.v2c(), "." + ".".join(map(str, OBJECTS)))
    bulk = meter.values("snmpbulkwalk", meter.v3(), "-Cr25", "." + ".".join(map(str, OBJECTS)))
    published = {instance(o.point.name) for o in mib.meter_objects(ENTERPRISE) if o.point.name in VALUES}
    assert set(walk) == published == set(bulk)
    assert walk == bulk
    system = meter.values("snmpwalk", meter.v3(), ".1.3.6.1.2.1.1")
    assert system[".1.3.6.1.2.1.1.4.0"][1] == f'"{SYSTEM["sys_contact"]}"'
    assert system[".1.3.6.1.2.1.1.6.0"][1] == f'"{SYSTEM["sys_location"]}"'
    assert system[".1.3.6.1.2.1.1.5.0"][1] == '"meter"'
    assert "SIM-161" in system[".1.3.6.1.2.1.1.1.0"][1]
    assert system[".1.3.6.1.2.1.1.2.0"][1] == ".1.3.6.1.4.1.32473.1.4.1"
    assert system[".1.3.6.1.2.1.1.3.0"][0] == "Timeticks"
    # the whole tree in one bulk walk, from the start: standard groups, then the meter's objects
    everything = meter.values("snmpbulkwalk", meter.v3(), "-Cr50", ".1")
    assert set(walk) < set(everything)
    assert ".1.3.6.1.6.3.15.1.1.5.0" in everything and ".1.3.6.1.6.3.10.2.1.1.0" in everything


def test_wrong_community_and_keys_are_refused_and_counted(meter):
    name = instance("v_an")
    bad_community = meter.tool("snmpget", meter.v2c("public"), name, retries=0, timeout=0.5)
    assert bad_community.returncode != 0 and "Timeout" in bad_community.stderr
    assert meter.counter("snmpInBadCommunityNames") == 1

    wrong_auth = meter.tool("snmpget", meter.v3(auth="not-the-meters-key"), name, retries=0)
    assert wrong_auth.returncode != 0 and "Authentication failure" in wrong_auth.stderr
    assert meter.counter("usmStatsWrongDigests") == 1

    wrong_priv = meter.tool("snmpget", meter.v3(priv="not-the-meters-key"), name, retries=0)
    assert wrong_priv.returncode != 0
    assert meter.counter("usmStatsDecryptionErrors") == 1

    unknown = meter.tool("snmpget", meter.v3(user="intruder", auth="whatever-key", priv="whatever-key"), name,
                         retries=0)
    assert unknown.returncode != 0 and "Unknown user name" in unknown.stderr
    assert meter.counter("usmStatsUnknownUserNames") == 1

    # one context is served, the default one
    context = meter.tool("snmpget", [*meter.v3(), "-n", "other"], name, retries=0)
    assert context.returncode != 0 and "context" in context.stderr.lower(), context.stderr
    assert meter.counter("snmpUnknownContexts") == 1

    # a level below authPriv is not served: every user is authPriv
    no_priv = meter.tool("snmpget", ["-v3", "-l", "authNoPriv", "-u", "monitor", "-a", "SHA-256", "-A",
                                     meter.secrets["monitor"]["auth"]], name, retries=0)
    assert no_priv.returncode != 0
    assert meter.counter("usmStatsUnsupportedSecLevels") == 1

    # a write is refused: the agent is read-only
    refused = meter.tool("snmpset", meter.v3(), name, "i", "1", retries=0)
    assert refused.returncode != 0 and "noAccess" in refused.stdout + refused.stderr
    assert meter.values("snmpget", meter.v2c(), name)[name][1] == str(expected("v_an", VALUES["v_an"]))


def test_engine_boots_count_each_start_and_the_engine_id_is_kept(tmp_path):
    first = SnmpMeter(tmp_path)
    try:
        boots = first.values("snmpget", first.v3(), ".1.3.6.1.6.3.10.2.1.2.0")[".1.3.6.1.6.3.10.2.1.2.0"][1]
        engine = first.engine["engine_id"]
    finally:
        first.close()
    assert boots == "1"
    (tmp_path / "run").rename(tmp_path / "run-1")
    second = SnmpMeter(tmp_path)
    try:
        got = second.values("snmpget", second.v3(), ".1.3.6.1.6.3.10.2.1.2.0", ".1.3.6.1.6.3.10.2.1.1.0")
        assert got[".1.3.6.1.6.3.10.2.1.2.0"][1] == "2"
        assert got[".1.3.6.1.6.3.10.2.1.1.0"][1].replace(" ", "").lower() == engine
        assert second.engine["engine_id"] == engine and second.community == first.community
    finally:
        second.close()


def test_alarms_and_pq_events_reach_snmptrapd_as_traps_and_informs(tmp_path):
    traps, informs = free_udp_port(), free_udp_port()
    meter = SnmpMeter(tmp_path, {
        "inform_timeout": 1.0, "inform_retries": 10,
        "destination": [
            {"address": "127.0.0.1", "port": traps, "version": "v2c", "type": "trap", "community": "traps-v2c"},
            {"address": "127.0.0.1", "port": traps, "version": "v3", "type": "trap", "user": "monitor"},
            {"address": "127.0.0.1", "port": informs, "version": "v2c", "type": "inform", "community": "inf-v2c"},
            {"address": "127.0.0.1", "port": informs, "version": "v3", "type": "inform", "user": "auditor"},
        ]})
    receivers: list[TrapReceiver] = []
    try:
        monitor, auditor = meter.secrets["monitor"], meter.secrets["auditor"]
        receivers.append(TrapReceiver(tmp_path, traps, [
            f"createUser -e 0x{meter.engine['engine_id']} monitor SHA-256 {monitor['auth']} AES {monitor['priv']}",
            "authUser log monitor", "authCommunity log traps-v2c"]))
        log = EventLog(meter.data_dir)
        log.record(Event(200, "alarms", "alarm_pickup", "v_an_high", detail={"value": 260.0}))
        log.record(Event(60, "security", "login_invalid", "admin"))          # not an alarm: not sent
        log.record(Event(128, "pq", "sag", "sag on A, 62 % for 0.12 s"))
        log.close()
        got = receivers[0].wait(4)
        assert len(got) == 4, receivers[0].text()
        alarm, pq = ".1.3.6.1.4.1.32473.1.2.0.1", ".1.3.6.1.4.1.32473.1.2.0.2"
        assert sum(alarm in line and '"alarm_pickup"' in line and '"v_an_high"' in line for line in got) == 2
        assert sum(pq in line and '"sag"' in line for line in got) == 2
        assert not any("login_invalid" in line for line in got)
        # the inform receiver starts late: the informs are sent again until it acknowledges them
        time.sleep(1.5)
        receivers.append(TrapReceiver(tmp_path, informs, [
            f"createUser auditor SHA-512 {auditor['auth']} AES {auditor['priv']}",
            "authUser log auditor", "authCommunity log inf-v2c"]))
        deadline = time.monotonic() + 20
        stats: dict = {}
        while time.monotonic() < deadline:
            stats = _stats(meter)
            if stats.get("acknowledged") == 4:
                break
            time.sleep(0.2)
        assert stats.get("acknowledged") == 4 and stats["retries"] > 0 and stats["given_up"] == 0, stats
        received = receivers[1].notifications()
        assert {alarm, pq} <= {o for line in received for o in (alarm, pq) if o in line}
    finally:
        for r in receivers:
            r.close()
        meter.close()


def _stats(meter: SnmpMeter) -> dict:
    from firmware.control import ControlClient

    answer = ControlClient(meter.run_dir / "comms.sock", timeout_s=5.0).call("stats")
    return dict((answer.get("snmp") or {}).get("notifications") or {})


def test_the_stored_secrets_are_the_meters_own(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = SnmpMeter(tmp_path / "one"), SnmpMeter(tmp_path / "two")
    try:
        assert one.community != two.community
        assert one.secrets["monitor"] != two.secrets["monitor"]
        assert one.engine["engine_id"] != two.engine["engine_id"]
        mode = (one.data_dir / "snmp" / "secrets.json").stat().st_mode & 0o777
        assert mode == 0o600
        # each meter's community opens only that meter
        assert one.tool("snmpget", one.v2c(two.community), instance("v_an"), retries=0, timeout=0.5).returncode != 0
        assert json.loads((one.data_dir / "snmp" / "engine.json").read_text())["boots"] == 1
    finally:
        one.close()
        two.close()
