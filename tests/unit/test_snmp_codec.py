"""The SNMP agent's BER codec, messages and USM against hostile and honest input."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.comms.snmp import ber, mib
from firmware.comms.snmp import pdu as P
from firmware.comms.snmp.agent import MAX_RESPONSE, Agent
from firmware.comms.snmp.usm import AUTH_PROTOCOLS, UserKeys, in_time_window, localize, password_to_key
from firmware.web.limits import RateLimiter

SHA256 = AUTH_PROTOCOLS["SHA-256"]


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_integers_round_trip(n):
    assert ber.Reader(ber.encode_int(n)).integer() == n


@given(st.lists(st.integers(0, ber.MAX_ARC), min_size=1, max_size=40), st.integers(0, 2), st.integers(0, 39))
def test_object_identifiers_round_trip(tail, first, second):
    name = (first, second, *tail)
    assert ber.Reader(ber.encode_oid(name)).oid() == name


@settings(max_examples=3000)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_fail_with_a_ber_error(data):
    try:
        message, version = P.peek_version(data)
        if version == P.V3:
            P.decode_v3(message)
        else:
            P.decode_community(message, version)
    except ber.BerError:
        pass


@pytest.mark.parametrize("data", [
    b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",          # length past the end
    b"\x30\x80\x02\x01\x01\x00\x00",                  # indefinite length
    b"\x30\x85\x00\x00\x00\x00\x03\x02\x01\x01",      # five length bytes
    b"\x3f\x81\x01\x00",                              # multi-byte tag
    b"\x30" + b"\x30\x80" * 50,                       # nested without end
    b"\x30\x0c\x02\x0a" + b"\x01" * 10,               # a 10-byte integer
    b"\x30\x06\x02\x01\x01\x04\x01",                  # truncated community
])
def test_malformed_messages_are_ber_errors(data):
    with pytest.raises(ber.BerError):
        message, version = P.peek_version(data)
        P.decode_community(message, version)


def test_oid_arcs_and_length_are_bounded():
    with pytest.raises(ber.BerError, match="too large"):
        ber.decode_oid(b"\x2b\x90\x80\x80\x80\x00")     # an arc of 2^32
    with pytest.raises(ber.BerError, match="too long"):
        ber.decode_oid(b"\x2b" + b"\x01" * 200)
    with pytest.raises(ber.BerError, match="leading zero"):
        ber.decode_oid(b"\x2b\x80\x01")


def test_v3_message_authentication_field_is_where_the_encoder_says():
    keys = UserKeys.make("monitor", SHA256, "authpassphrase", "privpassphrase", b"\x80\x00\x7e\xd9\x05abcdefgh")
    scoped = P.encode_scoped(b"", b"", P.Pdu(P.GET, 7, 0, 0, [(ber.oid("1.3.6.1.2.1.1.1.0"), ber.NULL_VALUE)]))
    encrypted, salt = keys.encrypt(scoped, 3, 1234)
    params = P.UsmParameters(b"\x80\x00\x7e\xd9\x05abcdefgh", 3, 1234, b"monitor", bytes(24), salt)
    message, offset = P.encode_v3(99, 1472, 7, params, encrypted, True)
    signed = message[:offset] + keys.sign(message) + message[offset + 24:]
    decoded = P.decode_v3(P.peek_version(signed)[0])
    assert decoded.auth_offset == offset and keys.verify(signed, offset, decoded.usm.auth)
    assert not keys.verify(signed[:-1] + bytes([signed[-1] ^ 1]), offset, decoded.usm.auth)
    assert keys.decrypt(decoded.data, 3, 1234, decoded.usm.priv) == scoped


def test_keys_differ_by_engine_and_passphrase_and_short_passphrases_are_refused():
    ku = password_to_key(b"maplesyrup", SHA256)
    assert localize(ku, b"\x00" * 11 + b"\x02", SHA256) != localize(ku, b"\x00" * 11 + b"\x03", SHA256)
    with pytest.raises(ValueError, match="at least 8"):
        password_to_key(b"short", SHA256)
    assert in_time_window(4, 100, 4, 240) and not in_time_window(4, 100, 4, 251) and not in_time_window(3, 1, 4, 1)


def test_values_are_scaled_clamped_and_absent_when_not_a_number():
    o = next(o for o in mib.meter_objects(ber.oid("1.3.6.1.4.1.32473")) if o.point.name == "v_an")
    assert ber.Reader(o.encode(230.125)).integer() == round(230.125 * 100)
    assert ber.Reader(o.encode(1e300)).integer() == (1 << 31) - 1
    assert o.encode(math.nan) is None and o.encode(math.inf) is None


def _agent(values: dict[str, float]) -> Agent:
    enterprise = ber.oid("1.3.6.1.4.1.32473")
    objects = mib.meter_objects(enterprise)
    encoded: dict = {}
    mib.encode_values(objects, values, encoded)
    counters = {name: 0 for name in mib.COUNTERS}
    tree = mib.Tree({**mib.catalogue_getters(objects, encoded), **mib.counters_getters(counters)})
    return Agent(tree, counters, b"\x80\x00\x7e\xd9\x05abcdefgh", 1, b"secret-community", {},
                 RateLimiter(1000, 1000), lambda: None)


def test_get_bulk_answers_stay_within_one_datagram_and_the_repetition_bound():
    agent = _agent({"v_an": 230.0, "i_a": 5.0, "wh_delivered": 1e6})
    request = P.encode_community(P.V2C, b"secret-community",
                                 P.Pdu(P.GET_BULK, 5, 0, 100000, [(ber.oid("1.3"), ber.NULL_VALUE)] * 40))
    answer = agent.handle(request, ("127.0.0.1", 1))
    assert answer is not None and len(answer) <= MAX_RESPONSE
    response = P.decode_community(*P.peek_version(answer))
    assert response.pdu.tag == P.RESPONSE and len(response.pdu.varbinds) > 0


def test_a_wrong_community_is_counted_and_not_answered():
    agent = _agent({})
    request = P.encode_community(P.V2C, b"public", P.Pdu(P.GET, 5, 0, 0, [(ber.oid("1.3.6.1"), ber.NULL_VALUE)]))
    assert agent.handle(request, ("127.0.0.1", 1)) is None
    assert agent.counters["snmpInBadCommunityNames"] == 1


def test_v3_outside_the_time_window_gets_an_authenticated_report_with_the_engines_boots_and_time():
    engine_id = b"\x80\x00\x7e\xd9\x05abcdefgh"
    keys = UserKeys.make("monitor", SHA256, "authpassphrase", "privpassphrase", engine_id)
    agent = _agent({"v_an": 230.0})
    agent.engine_id, agent.boots, agent.users = engine_id, 5, {b"monitor": keys}
    scoped = P.encode_scoped(engine_id, b"", P.Pdu(P.GET, 42, 0, 0, [(ber.oid("1.3.6.1.2.1.1.1.0"), ber.NULL_VALUE)]))

    def request(boots: int, engine_time: int) -> bytes:
        encrypted, salt = keys.encrypt(scoped, boots, engine_time)
        params = P.UsmParameters(engine_id, boots, engine_time, b"monitor", bytes(24), salt)
        message, offset = P.encode_v3(7, 1472, 7, params, encrypted, True)
        return message[:offset] + keys.sign(message) + message[offset + 24:]

    answer = agent.handle(request(4, 0), ("127.0.0.1", 1))          # an earlier start's boots
    assert answer is not None
    report = P.decode_v3(P.peek_version(answer)[0])
    assert report.flags == P.FLAG_AUTH and report.usm.boots == 5 and keys.verify(answer, report.auth_offset,
                                                                                  report.usm.auth)
    pdu = P.decode_scoped(report.data)[2]
    assert pdu.tag == P.REPORT and pdu.varbinds[0][0] == mib.COUNTERS["usmStatsNotInTimeWindows"]
    assert agent.counters["usmStatsNotInTimeWindows"] == 1
    # in time, the same request is answered, encrypted
    answer = agent.handle(request(5, report.usm.time), ("127.0.0.1", 1))
    assert answer is not None and P.decode_v3(P.peek_version(answer)[0]).flags == P.FLAG_AUTH | P.FLAG_PRIV
