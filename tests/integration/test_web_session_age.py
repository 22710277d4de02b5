"""A busy web session still ends at `[security] session_max_age` after its login, and the live stream with it:
a meter with the shortest maximum age (60 s) and the default inactivity timeout (15 min), a client that keeps
its session in use over real HTTPS (tests/support/web_meter.py)."""
from __future__ import annotations

import time

import pytest

from tests.support.web_meter import USERS, WebMeter, running

MAX_AGE_S = 60.0
USE_EVERY_S = 5.0                 # far inside the inactivity timeout
DEADLINE_S = 3 * MAX_AGE_S        # the test gives up after this long


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(WebMeter(tmp_path_factory.mktemp("web-session-age"),
                          extra=f"[security]\nsession_max_age = {MAX_AGE_S:g}\n")) as m:
        yield m


def test_a_busy_session_ends_at_its_maximum_age_and_its_stream_with_it(meter):
    client = meter.client("127.0.0.2")
    client.login("reader", USERS["reader"][0])
    logged_in = time.monotonic()
    stream = client.connection()
    stream.request("GET", "/api/stream", headers={"Cookie": client.cookie})
    response = stream.getresponse()
    assert response.status == 200
    statuses: list[tuple[float, int]] = []
    while time.monotonic() - logged_in < DEADLINE_S:
        status = client.request("GET", "/api/session")[0]
        statuses.append((time.monotonic() - logged_in, status))
        if status != 200:
            break
        time.sleep(USE_EVERY_S)
    used_until = max((t for t, s in statuses if s == 200), default=0.0)
    assert statuses[-1][1] == 401, statuses
    assert used_until >= MAX_AGE_S / 2, statuses          # it was in use, and not ended for idleness
    assert client.request("POST", "/api/config", {"changes": {"modbus.idle_timeout": 90}})[0] == 401
    seen = b""
    while b"event: end" not in seen and time.monotonic() - logged_in < DEADLINE_S + 10:
        seen += response.readline()
    stream.close()
    assert b"event: end" in seen, seen[-200:]
