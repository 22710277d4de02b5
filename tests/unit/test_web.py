"""The web's parts without a server: certificates, the route table and its checks, per-client limits, the
redirect, and the log reads by time range the API's events and load profile use."""
from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from firmware.security.authorize import OPERATIONS
from firmware.storage.feed import LogFeed
from firmware.storage.logstore import LogStore
from firmware.web.api import LOGGED_IN, ApiError, Param, check_json
from firmware.web.app import redirect_app, route_table
from firmware.web.certs import Certificates, check_upload, self_signed
from firmware.web.limits import RateLimiter, TooLarge, TooSlow, read_body
from hal.errors import ConfigError

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


# ------------------------------------------------------------------------------------------------ certificates

def _rsa_key_pem(bits: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_self_signed_certificate_is_accepted_and_names_the_meter():
    cert, key = self_signed("feeder-7", ["192.0.2.10", "0.0.0.0"], now=NOW)
    leaf = check_upload(cert, key, now=NOW + datetime.timedelta(days=1))
    assert "CN=feeder-7" in leaf.subject.rfc4514_string()
    names = [str(n.value) for n in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    assert "localhost" in names and "127.0.0.1" in names and "192.0.2.10" in names and "0.0.0.0" not in names


@pytest.mark.parametrize("problem, expected", [
    ("other key", "the key does not belong to the certificate"),
    ("expired", "not now; check the meter's clock or renew it"),
    ("weak rsa", "too weak"),
    ("not pem", "not PEM text"),
    ("bad key", "not an unencrypted PEM private key"),
])
def test_bad_uploads_are_refused_with_the_reason(problem, expected):
    cert, key = self_signed("m", [], days=30, now=NOW)
    other_cert, other_key = self_signed("m", [], now=NOW)
    now = NOW + datetime.timedelta(days=1)
    if problem == "other key":
        key = other_key
    elif problem == "expired":
        now = NOW + datetime.timedelta(days=31)
    elif problem == "weak rsa":
        key = _rsa_key_pem(1024)
    elif problem == "not pem":
        cert = b"hello"
    elif problem == "bad key":
        key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError, match=expected):
        check_upload(cert, key, now=now)


def test_certificates_upload_delete_regenerate_and_reload(tmp_path):
    certs = Certificates(tmp_path / "web", "m", ["127.0.0.1"])
    info = certs.reload()                                    # first start: a self-signed one is made
    assert info.kind == "selfsigned" and certs.active() == "selfsigned"
    assert (tmp_path / "web" / "selfsigned.key").stat().st_mode & 0o777 == 0o600
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem, key_pem = self_signed("uploaded", [])
    with pytest.raises(ConfigError):
        certs.upload(cert_pem, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    assert certs.active() == "selfsigned"                    # a refused upload changes nothing
    assert certs.upload(cert_pem, key_pem).kind == "custom"
    assert "CN=uploaded" in certs.reload().subject
    assert certs.delete_custom() and not certs.delete_custom()
    before = certs.info().sha256
    assert certs.regenerate().sha256 != before
    assert isinstance(certs.context, ssl.SSLContext) and certs.reload().kind == "selfsigned"


# ------------------------------------------------------------------------------------------------ route table

def test_route_table_names_known_operations_and_unique_ids():
    eps, document = route_table(["acquisition", "web"])
    assert len({e.operation_id for e in eps}) == len(eps)
    for e in eps:
        assert e.operation in (None, LOGGED_IN) or e.operation in OPERATIONS, e.path
        if e.changes_state and e.operation is not None:
            assert document["paths"][e.path][e.method.lower()]["security"] == [{"session": [], "csrf": []}]
    public = {(e.method, e.path) for e in eps if e.operation is None}
    assert public == {("POST", "/api/session"), ("GET", "/api/openapi.json")}


def test_parameters_are_checked_against_their_bounds():
    limit = Param("limit", "integer", "most records", default=100, minimum=1, maximum=1000)
    assert limit.parse(None) == 100 and limit.parse("5") == 5
    for raw, why in (("0", "outside 1..1000"), ("x", "not an integer"), ("1e3", "not an integer")):
        with pytest.raises(ApiError, match=why):
            limit.parse(raw)
    since = Param("since", "number", "from", minimum=0, maximum=10)
    with pytest.raises(ApiError, match="not a finite number"):
        since.parse("nan")
    value = Param("value", "number", "a value with a lower bound only", minimum=0)
    with pytest.raises(ApiError, match=r"-1.0 is outside 0\.\.$"):
        value.parse("-1.0")
    order = Param("order", "string", "order", enum=("newest", "oldest"))
    with pytest.raises(ApiError, match="not one of newest, oldest"):
        order.parse("random")


def test_json_bodies_are_checked_against_their_schema():
    _, document = route_table([])
    schema = document["paths"]["/api/config"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    check_json(schema, {"changes": {"meter.name": "x"}, "reason": "why"})
    for body, why in (([], "must be a JSON object"), ({}, "'changes' is missing"),
                      ({"changes": {}, "extra": 1}, "unknown field"), ({"changes": "x"}, "must be a JSON object"),
                      ({"changes": {}, "reason": "r" * 201}, "longer than 200")):
        with pytest.raises(ApiError, match=why):
            check_json(schema, body)


# ------------------------------------------------------------------------------------------------ limits

def test_rate_limiter_allows_a_burst_then_the_rate_per_address():
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: now[0], max_addresses=2)
    assert [limiter.allow("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.allow("a") == pytest.approx(0.5)           # one token comes back every 1/rate s
    assert limiter.allow("b") == 0                            # another address has its own bucket
    now[0] = 0.5
    assert limiter.allow("a") == 0
    limiter.allow("c")                                        # the table is bounded: "b" (idle longest) goes
    assert list(limiter._buckets) == ["a", "c"] and limiter.refused == 1


def _receiver(chunks: list[bytes], delay_s: float = 0.0):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        await asyncio.sleep(delay_s)
        return messages.pop(0)
    return receive


def test_bodies_are_bounded_in_size_and_time():
    assert asyncio.run(read_body(_receiver([b"ab", b"cd"]), 4, 1.0)) == b"abcd"
    with pytest.raises(TooLarge):
        asyncio.run(read_body(_receiver([b"ab", b"cde"]), 4, 1.0))
    with pytest.raises(TooLarge):
        asyncio.run(read_body(_receiver([b""]), 4, 1.0, declared=5))   # refused before a byte is read
    with pytest.raises(TooSlow):
        asyncio.run(read_body(_receiver([b"a", b"b"], delay_s=0.3), 4, 0.4))


def _call(app, host: bytes) -> dict:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/a b", "raw_path": b"/a%20b", "query_string": b"x=1",
             "headers": [(b"host", host)]}
    asyncio.run(app(scope, receive, send))
    return {"status": sent[0]["status"], "headers": dict(sent[0]["headers"])}


def test_plain_http_redirects_to_the_https_port_and_refuses_bad_hosts():
    app = redirect_app(8443)
    answer = _call(app, b"meter.example:8080")
    assert answer["status"] == 308 and answer["headers"][b"location"] == b"https://meter.example:8443/a%20b?x=1"
    assert _call(redirect_app(443), b"[fe80::1]:80")["headers"][b"location"] == b"https://[fe80::1]/a%20b?x=1"
    assert _call(app, b"evil.example\r\nx: y")["status"] == 400
    assert _call(app, b"a/b@c")["status"] == 400


# ------------------------------------------------------------------------------------------------ log reads

def test_log_feed_reads_by_time_range_priority_and_order(tmp_path):
    store = LogStore(tmp_path / "events.db", "event_log", {"priority": "INTEGER", "detail": "JSON"}, 100)
    for i in range(10):
        store.append(1000.0 + i, {"priority": i * 20, "detail": {"i": i}})
    feed = LogFeed(tmp_path / "events.db", "event_log", ("detail",))
    assert [r["detail"]["i"] for r in feed.read_range(1002, 1005)] == [2, 3, 4, 5]
    assert [r["detail"]["i"] for r in feed.read_range(1002, 1005, newest_first=True, limit=2)] == [5, 4]
    assert [r["priority"] for r in feed.read_range(at_least=("priority", 128))] == [140, 160, 180]
    assert [r["id"] for r in feed.read(7)] == [8, 9, 10]
    assert LogFeed(tmp_path / "absent.db", "event_log").read_range() == []
    store.close()
    feed.close()


# ------------------------------------------------------------------------------------------------ local time

def _utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp()


def test_the_pages_local_clock_carries_the_meters_dst_periods(tmp_path):
    from firmware.config.store import ConfigStore
    from firmware.web.data import CLOCK_YEARS, local_clock

    store = ConfigStore(tmp_path / "meter.toml")
    store.update({"revenue.time": {"zone": "+01:00", "dst_offset": "+01:00", "dst_start": "3-5-sun-02:00",
                                   "dst_end": "10-5-sun-03:00"}}, "test")
    clock = local_clock(store.load(), NOW.timestamp())
    assert clock["offset_min"] == 60 and clock["dst_offset_min"] == 60
    assert len(clock["dst"]) == CLOCK_YEARS + 2                    # back CLOCK_YEARS, this year and the next
    # EU 2026: from 29 March 01:00 UTC to 25 October 01:00 UTC
    assert [_utc(2026, 3, 29, 1), _utc(2026, 10, 25, 1)] in clock["dst"]
    # the southern hemisphere's summer spans the new year: one period from its start to the next year's end
    store.update({"revenue.time": {"zone": "+10:00", "dst_start": "10-1-sun-02:00", "dst_end": "4-1-sun-03:00"}},
                 "test")
    south = local_clock(store.load(), NOW.timestamp())
    assert [_utc(2026, 10, 3, 16), _utc(2027, 4, 3, 16)] in south["dst"]


def test_accept_encoding_is_read_with_its_weights():
    from firmware.web.assets import accepts_gzip

    assert accepts_gzip("gzip, deflate, br") and accepts_gzip("br;q=1.0, gzip;q=0.8") and accepts_gzip("*")
    assert not accepts_gzip("") and not accepts_gzip("identity") and not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("*;q=0") and not accepts_gzip("gzip;q=nonsense")


def test_a_web_server_wakes_only_to_renew_its_date_header_and_a_stop_wakes_it(monkeypatch):
    """uvicorn's own loop wakes ten times a second to see whether to stop; the meter's servers wake to renew the
    Date header (each tick's counter a multiple of ten, which renews it) and a stop wakes them at once: with the
    tick an hour long, setting should_exit ends the server after its first tick and the stop's."""
    from firmware.web.server import ConnectionLimits, bind, make_server, serve

    monkeypatch.setattr("firmware.web.server.TICK_S", 3600.0)
    server = make_server(redirect_app(8443), bind("127.0.0.1", 0, "http_port"), ConnectionLimits(4, 4, 5.0), None)
    ticks: list[int] = []
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    server.on_tick = counted

    async def run() -> None:
        task = asyncio.ensure_future(serve(server))
        for _ in range(3000):                        # until the first tick (the server has started)
            if ticks:
                break
            await asyncio.sleep(0.01)
        server.should_exit = True
        await asyncio.wait_for(task, 60)

    asyncio.run(run())
    assert ticks == [0, 10]
