"""Slow login bodies: 64 TLS connections from four loopback addresses (127.0.0.2-5, 16 each: the per-address
limit, and together the whole pool) each send `POST /api/session` announcing a body and then trickle it a byte
every 5 s, reconnecting when closed, while honest users log in, each from an address of its own. The meter runs
with its default [web] limits (tests/support/web_meter.py)."""
from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import pytest

from tests.support.web_meter import USERS, WebClient, WebMeter, running

ATTACKERS = [f"127.0.0.{2 + i // 16}" for i in range(64)]
DECLARED = (60000, 900)          # bytes announced: past any login body, and under the login body's bound
HONEST_LOGINS = 14
SUCCESS_MIN = 0.9


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(WebMeter(tmp_path_factory.mktemp("web-slow-login"), limits="")) as m:
        yield m


class Trickler(threading.Thread):
    def __init__(self, meter: WebMeter, source: str, declared: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.meter, self.source, self.declared, self.stop = meter, source, declared, stop
        self.context = ssl.create_default_context(cafile=str(meter.cert))
        self.connections = 0

    def run(self) -> None:
        head = (f"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1:{self.meter.https_port}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {self.declared}\r\n\r\n").encode()
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                raw = socket.create_connection(("127.0.0.1", self.meter.https_port), timeout=5,
                                               source_address=(self.source, 0))
                with self.context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    self.connections += 1
                    s.sendall(head)
                    while not self.stop.wait(5.0):
                        s.sendall(b"{")
            self.stop.wait(0.5)             # the server closed it: come back, as an attacker would


def test_slow_login_bodies_do_not_lock_honest_users_out(meter):
    stop = threading.Event()
    flood = [Trickler(meter, src, DECLARED[i % 2], stop) for i, src in enumerate(ATTACKERS)]
    for t in flood:
        t.start()
    ok, failed = 0, []
    try:
        time.sleep(3.0)                     # the pool is theirs
        for i in range(HONEST_LOGINS):
            client = WebClient(meter.https_port, meter.cert, timeout_s=10, source=f"127.0.0.{20 + i}")
            try:
                status, _, answer = client.request("POST", "/api/session",
                                                   {"user": "reader", "password": USERS["reader"][0]})
                ok += status == 200
                if status != 200:
                    failed.append(f"{status} {answer}")
            except OSError as exc:
                failed.append(repr(exc))
            time.sleep(1.0)
    finally:
        stop.set()
        for t in flood:
            t.join(15)
    connections = sum(t.connections for t in flood)
    print(f"\n64 trickled login bodies ({connections} connections made): {ok} of {HONEST_LOGINS} honest logins; "
          f"failed: {failed[:3]}")
    assert ok / HONEST_LOGINS >= SUCCESS_MIN
