"""What a web user may change and read of the configuration, and how long a session lasts, against a running
meter over real HTTPS (tests/support/web_meter.py): no path from `setup` to `master`, no option that can move
the meter's files, the revenue lock over everything that affects billing data, the lock or the logs, no secret
read back, and sessions that end with their user."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import stat
import subprocess
import time
import tomllib

import pytest

from firmware.lockstate import set_file_lock
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore
from firmware.storage.eventlog import EventLog
from tests.support.web_meter import USERS, WebMeter, running, session

SETUP_USER = ("sam", "sam-pw-1")


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    m = WebMeter(tmp_path_factory.mktemp("web-security"))
    try:
        users = UserStore(m.data_dir)
        users.add(SETUP_USER[0], SETUP_USER[1], frozenset({Privilege.SETUP, Privilege.READ}))
        users.close()
    except BaseException:
        m.stop()
        raise
    with running(m):
        yield m


@pytest.fixture(scope="module")
def alice(meter):
    return session(meter, "alice")


@pytest.fixture(scope="module")
def sam(meter):
    client = meter.client("127.0.0.2")
    client.login(*SETUP_USER)
    return client


def change(client, **options):
    """POST /api/config with SECTION__OPTION=value keywords."""
    return client.request("POST", "/api/config", {"changes": {k.replace("__", "."): v for k, v in options.items()}})


@pytest.mark.parametrize("option, value", [
    ("meter.data_dir", "/tmp/empty"),                        # a fresh user store: the factory master account
    ("meter.run_dir", "/tmp/run"),
    ("time.chrony_sources_file", "/etc/passwd"),              # written as root by the time service
    ("upgrade.revenue_lock_file", "/tmp/nothing"),            # unlocks the simulated lock
    ("upgrade.state_dir", "/tmp/state"),                      # the anti-rollback floor
    ("upgrade.trust_store", "/tmp/trust"),
    ("web.cert_dir", "/tmp/cert"),
    ("mqtt.key_file", "/etc/shadow"),
])
@pytest.mark.parametrize("who", ["sam", "alice"])
def test_paths_are_not_writable_over_the_network_even_by_master(meter, request, who, option, value):
    client = request.getfixturevalue(who)                       # a setup user, then the master
    before = meter.config.read_text()
    status, _, answer = change(client, **{option.replace(".", "__"): value})
    assert status == 403, answer
    assert "cannot be changed over the network" in answer["error"] and f"meter config set {option}=" in \
        answer["error"], answer
    assert meter.config.read_text() == before


@pytest.mark.parametrize("option, value, needs", [
    ("bacnet.password", "guess", "security"),
    ("modbus.access", "read-write", "security"),
    ("bacnet.access", "read-write", "security"),
    ("time.ntp_servers", ["203.0.113.5"], "security"),         # whose clock stamps the events and intervals
    ("time.priority", ["protocol", "ntp"], "security"),       # an unauthenticated protocol setting the clock
    ("events.cutoff", 200, "security"),                       # would keep failed logins out of the event log
    ("upgrade.health_deadline", 60, "master"),
    ("alarms.capture_command", "metrology.energy_reset", "master"),   # run with the meter's own rights
])
def test_a_setup_user_cannot_change_security_or_master_options(meter, sam, option, value, needs):
    before = meter.config.read_text()
    status, _, answer = change(sam, **{option.replace(".", "__"): value})
    assert status == 403 and f"lacks the {needs} privilege" in answer["error"], answer
    assert meter.config.read_text() == before
    status, _, answer = change(sam, modbus__idle_timeout=90)        # plain setup stays allowed
    assert status == 200, answer


@pytest.mark.parametrize("option, value", [
    ("events.depth", 7000), ("meter.serial_number", "OTHER-1"), ("metrology.system_type", "DELTA"),
    ("time.event_depth", 100), ("metrology.ct_primary", 50.0),
])
def test_the_revenue_lock_refuses_options_affecting_billing_data_or_logs(meter, alice, option, value):
    lock = meter.upgrade.settings.revenue_lock_file
    set_file_lock(lock, True)
    try:
        status, _, answer = change(alice, **{option.replace(".", "__"): value})
        assert status == 403 and "revenue-locked" in answer["error"] and option in answer["error"], answer
        status, _, answer = change(alice, modbus__idle_timeout=95)   # not locked: still allowed
        assert status == 200, answer
    finally:
        set_file_lock(lock, False)


def test_secrets_are_never_read_back_and_the_file_is_private(meter, alice, sam):
    status, _, answer = change(alice, bacnet__password="s3cret-dcc", email__password="smtp-pw")
    assert status == 200, answer
    assert {c["new"] for c in answer["changes"]} == {"(secret)"}, answer
    for client in (alice, sam):
        status, _, cfg = client.request("GET", "/api/config")
        assert status == 200
        text = str(cfg)
        assert "s3cret-dcc" not in text and "smtp-pw" not in text
        bacnet = next(s for s in cfg["sections"] if s["name"] == "bacnet")
        password = next(o for o in bacnet["options"] if o["name"] == "password")
        assert password["value"] == "(secret)" and password["secret"] is True
    assert tomllib.loads(meter.config.read_text())["bacnet"]["password"] == "s3cret-dcc"
    history = meter.config.with_name("meter.toml.history.jsonl")
    assert "s3cret-dcc" not in history.read_text()
    # the web service runs with the test's umask (022 here): the files are private all the same
    for path in (meter.config, history, meter.config.with_name("meter.toml.seal")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # an option's rule is in what the page gets
    web = next(s for s in cfg["sections"] if s["name"] == "web")
    cert_dir = next(o for o in web["options"] if o["name"] == "cert_dir")
    assert cert_dir["web_writable"] is False and cert_dir["privilege"] == "master"


def test_a_session_ends_with_its_user_and_with_a_change_of_privileges(meter):
    users = UserStore(meter.data_dir)
    try:
        users.add("temp1", "temp-pw-1", frozenset({Privilege.SETUP}))
        users.add("temp2", "temp-pw-2", frozenset({Privilege.SETUP}))
        one, two = meter.client("127.0.0.3"), meter.client("127.0.0.3")
        one.login("temp1", "temp-pw-1")
        two.login("temp2", "temp-pw-2")
        for client in (one, two):
            status, _, answer = change(client, modbus__idle_timeout=80)
            assert status == 200, answer
        users.remove("temp1")
        users.set_privileges("temp2", frozenset({Privilege.READ}))
        for client in (one, two):
            status, _, answer = change(client, modbus__idle_timeout=81)
            assert status == 401 and "session ended" in answer["error"], answer
            assert client.request("GET", "/api/session")[0] == 401
    finally:
        users.close()


def test_the_live_stream_ends_at_logout(meter):
    client = meter.client("127.0.0.4")
    client.login("reader", USERS["reader"][0])
    conn = client.connection()
    conn.request("GET", "/api/stream", headers={"Cookie": client.cookie})
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"event: readings")
    started = time.monotonic()
    assert client.request("DELETE", "/api/session")[0] == 200
    seen = b""
    while b"event: end" not in seen and time.monotonic() - started < 10:
        seen += response.readline()
    conn.close()
    assert b"event: end" in seen, seen[-200:]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("option, value, message", [
    ("alarms.setpoint", [{"name": "bad", "point": "no_such_point", "pickup": 1.0}],
     "point 'no_such_point' is not published"),
    ("recorders.recorder", [{"name": "bad", "channels": ["no_such_point"]}],
     "channel 'no_such_point' is not a point of the point map"),
])
def test_settings_a_service_would_refuse_at_start_are_refused_when_saved(meter, alice, option, value, message):
    before = meter.config.read_text()
    status, _, answer = change(alice, **{option.replace(".", "__"): value})
    assert status == 400 and message in answer["error"], answer
    assert meter.config.read_text() == before


def _raw_https(meter, payload: bytes, source: str = "127.0.0.7") -> bytes:
    context = ssl.create_default_context(cafile=str(meter.cert))
    raw = socket.create_connection(("127.0.0.1", meter.https_port), timeout=10, source_address=(source, 0))
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(payload)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(4096):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        return answer


def test_a_request_head_is_bounded_even_when_it_arrives_whole(meter):
    big = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (30 * 1024) + b"\r\n\r\n"
    assert _raw_https(meter, big).startswith(b"HTTP/1.1 431")
    small = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (12 * 1024) + b"\r\n\r\n"
    assert _raw_https(meter, small).startswith(b"HTTP/1.1 200")
    # a head followed by a larger body in the same write is not a large head
    body = json.dumps({"user": "nobody", "password": "x" * 600}).encode()
    login = (b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
             + str(len(body) + 20000).encode() + b"\r\n\r\n" + body + b" " * 20000)
    assert not _raw_https(meter, login, "127.0.0.8").startswith(b"HTTP/1.1 431")


def _openssl_tls12(meter, ciphers: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{meter.https_port}", "-tls1_2",
                           "-cipher", ciphers, "-CAfile", str(meter.cert), "-brief"],
                          input="", capture_output=True, text=True, timeout=30)


def test_tls_offers_no_cbc_suites(meter):
    cbc = _openssl_tls12(meter, "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA:"
                                "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA256:"
                                "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384")
    assert cbc.returncode != 0 and "Ciphersuite" not in cbc.stdout + cbc.stderr, cbc.stdout + cbc.stderr
    offered = _openssl_tls12(meter, "ALL")                  # what the meter picks of everything TLS 1.2 has
    assert offered.returncode == 0, offered.stdout + offered.stderr
    suite = next(line for line in (offered.stdout + offered.stderr).splitlines() if "Ciphersuite" in line)
    assert "GCM" in suite or "CHACHA20" in suite, suite


def test_x_forwarded_for_does_not_change_the_client_address(meter):
    client = meter.client("127.0.0.1")          # the address a proxy in front would have
    status, _, _ = client.request("POST", "/api/session", {"user": "reader", "password": "wrong"},
                                  headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 401
    events = [e for e in EventLog(meter.data_dir).read() if e["cause"] == "login_invalid" and e["user"] == "reader"]
    assert events and {e["detail"]["address"] for e in events} == {"127.0.0.1"}


def test_the_kept_audit_trail_is_read_over_the_web(meter, alice):
    status, _, answer = change(alice, modbus__idle_timeout=77)
    assert status == 200, answer
    meter.client("127.0.0.11").request("POST", "/api/session", {"user": "alice", "password": "wrong"})
    status, _, kept = alice.request("GET", "/api/events?kept=true&order=newest&limit=50")
    assert status == 200, kept
    causes = {e["cause"] for e in kept["events"]}
    assert "config_change" in causes and "login_invalid" not in causes
