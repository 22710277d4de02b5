"""Who loses a place in the Modbus TCP pool (8 connections) when it is full: hosts on other loopback addresses
(127.0.0.2...) hold it, as remote hosts would, while mbpoll on 127.0.0.1 polls now and then, each time on a new
connection. Honest slow pollers must not be the ones kept out or evicted."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.integration.test_modbus_attacks import FC3, attacker, comms  # noqa: F401 - comms is a fixture
from tests.integration.modbus_support import mbpoll_raw

POLLS = 20                       # mbpoll runs, one every POLL_EVERY_S
POLL_EVERY_S = 0.4
SUCCESS_MIN = 0.85               # share of the honest polls answered


def honest_polls(port: int) -> float:
    ok = 0
    for _ in range(POLLS):
        out = mbpoll_raw("-m", "tcp", "-p", str(port), "-o", "1", "-t", "4:float", "-B", "-r", "3027", "-c", "1",
                         "127.0.0.1")
        ok += out.returncode == 0 and "[3027]:" in out.stdout
        time.sleep(POLL_EVERY_S)
    return ok / POLLS


class Pipeliners(threading.Thread):
    """4 connections from each of ``sources`` that pipeline reads and never read a reply; a closed one comes back."""

    def __init__(self, port: int, sources: list[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.sources = port, sources
        self.stop = threading.Event()
        self.reconnects = 0

    def _open(self, source: str) -> socket.socket | None:
        with contextlib.suppress(OSError):
            s = attacker(source, self.port, rcvbuf=4096)
            s.setblocking(False)
            return s
        return None

    def run(self) -> None:
        socks = [(src, self._open(src)) for src in self.sources for _ in range(4)]
        burst = FC3 * 200
        while not self.stop.is_set():
            for i, (src, s) in enumerate(socks):
                if s is None:
                    socks[i] = (src, self._open(src))
                    self.reconnects += 1
                    continue
                try:
                    s.send(burst)
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    socks[i] = (src, None)
            self.stop.wait(0.02)
        for _, s in socks:
            if s is not None:
                s.close()


class FastPoller(threading.Thread):
    """One connection from ``source`` sending a valid read every 0.8 s and reading the reply; reconnects."""

    def __init__(self, port: int, source: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.source, self.stop = port, source, stop

    def run(self) -> None:
        s: socket.socket | None = None
        while not self.stop.is_set():
            try:
                if s is None:
                    s = attacker(self.source, self.port)
                    s.settimeout(1.0)
                s.sendall(FC3)
                if not s.recv(512):
                    raise OSError("closed")
            except OSError:
                if s is not None:
                    s.close()
                s = None
            self.stop.wait(0.8)
        if s is not None:
            s.close()


def test_pipelining_hosts_on_two_addresses_do_not_keep_a_poller_out(comms):  # noqa: F811
    flood = Pipeliners(comms["port"], ["127.0.0.2", "127.0.0.3"])
    flood.start()
    try:
        time.sleep(2.0)                                   # the pool is theirs and their writes have stalled
        share = honest_polls(comms["port"])
    finally:
        flood.stop.set()
        flood.join(10)
    print(f"\n8 pipelining connections from 2 addresses: mbpoll answered {share:.0%} of {POLLS} polls")
    assert share >= SUCCESS_MIN


def test_twenty_fast_pollers_on_five_addresses_do_not_keep_a_slow_one_out(comms):  # noqa: F811
    stop = threading.Event()
    pollers = [FastPoller(comms["port"], f"127.0.0.{2 + i // 4}", stop) for i in range(20)]
    for p in pollers:
        p.start()
    try:
        time.sleep(2.0)
        share = honest_polls(comms["port"])
    finally:
        stop.set()
        for p in pollers:
            p.join(10)
    print(f"\n20 connections from 5 addresses reading every 0.8 s: mbpoll answered {share:.0%} of {POLLS} polls")
    assert share >= SUCCESS_MIN
