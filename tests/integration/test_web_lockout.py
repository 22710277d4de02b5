"""Failed web logins lock out the source, not the victim (issue 30): real HTTPS logins from several loopback
addresses (127.0.0.x) to a meter with `[security] lockout_attempts = 3`, `lockout_sources = 3` and
`lockout_sources_duration = 10` s, so the short lock for everyone can be waited out."""
from __future__ import annotations

import time

import pytest

from firmware.storage.eventlog import EventLog
from tests.support.web_meter import USERS, WebMeter, running

ATTEMPTS = 3
SHORT_LOCK_S = 10.0


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(WebMeter(tmp_path_factory.mktemp("web-lockout"),
                 extra=f"[security]\nlockout_attempts = {ATTEMPTS}\nlockout_sources = 3\n"
                       f"lockout_sources_duration = {SHORT_LOCK_S:g}\n")) as m:
        yield m


def answer(meter, source: str, user: str, password: str, wait_s: float = 60.0) -> tuple[int, object]:
    """The status and answer to one login attempt; the per-address login rate limit (429) is waited out, as it
    is not what is tested here."""
    deadline = time.monotonic() + wait_s
    while True:
        status, headers, body = meter.client(source).request("POST", "/api/session",
                                                             {"user": user, "password": password})
        if status != 429 or time.monotonic() > deadline:
            return status, body
        time.sleep(float(headers.get("retry-after", "1")))


def attempt(meter, source: str, user: str, password: str) -> int:
    return answer(meter, source, user, password)[0]


def lockouts(meter, user: str) -> list[dict]:
    return [e for e in EventLog(meter.data_dir).read() if e["cause"] == "lockout" and e["user"] == user]


def test_an_attacker_locks_out_their_own_address_not_the_user(meter):
    for _ in range(ATTEMPTS + 2):
        assert attempt(meter, "127.0.0.2", "alice", "wrong") == 401
    # the attacker's pair is locked: even the right password is refused from there
    assert attempt(meter, "127.0.0.2", "alice", USERS["alice"][0]) == 401
    meter.client("127.0.0.3").login("alice", USERS["alice"][0])
    events = lockouts(meter, "alice")
    assert len(events) == 1 and events[0]["detail"]["address"] == "127.0.0.2"
    assert "from 127.0.0.2" in events[0]["effect"]


def test_failures_from_many_addresses_lock_the_user_only_briefly(meter):
    password = USERS["reader"][0]
    for source in ("127.0.0.4", "127.0.0.5", "127.0.0.6"):
        assert attempt(meter, source, "reader", "wrong") == 401
    locked_at = time.monotonic()
    assert attempt(meter, "127.0.0.7", "reader", password) == 401     # everyone, for the short time
    events = lockouts(meter, "reader")
    assert len(events) == 1 and "for everyone after failed logins from 3 addresses" in events[0]["effect"]
    # it ends after lockout_sources_duration, not lockout_duration (the attempts within it counted nothing)
    time.sleep(max(0.0, SHORT_LOCK_S + 1.0 - (time.monotonic() - locked_at)))
    meter.client("127.0.0.7").login("reader", password)
    # and the addresses of that attack alone do not lock the user again
    assert attempt(meter, "127.0.0.4", "reader", "wrong") == 401
    meter.client("127.0.0.8").login("reader", password)


def test_a_refused_login_does_not_tell_whether_the_name_exists(meter):
    source = "127.0.0.9"
    for _ in range(ATTEMPTS):
        assert attempt(meter, source, "alice", "wrong") == 401
    answers = {(user, password): answer(meter, source, user, password)
               for user, password in (("alice", USERS["alice"][0]), ("alice", "wrong"), ("no-such-user", "wrong"))}
    # a locked-out name, a wrong password and a name that does not exist get the same answer
    assert len(set(map(repr, answers.values()))) == 1 and next(iter(answers.values()))[0] == 401, answers
