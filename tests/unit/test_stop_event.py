"""The services' stop event: set by a signal handler or another thread, it wakes every waiter, and stays set."""
from __future__ import annotations

import signal
import threading
import time

from firmware.service import StopEvent


def test_a_signal_handler_sets_it_while_the_main_thread_waits():
    event = StopEvent()
    previous = signal.signal(signal.SIGALRM, lambda *_: event.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        t0 = time.monotonic()
        assert event.wait(10.0) is True
        assert time.monotonic() - t0 < 5.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert event.is_set() and event.wait(0) is True


def test_another_thread_wakes_every_waiter_and_a_timeout_reads_unset():
    event = StopEvent()
    assert event.wait(0.01) is False and not event.is_set()
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(event.wait(10.0))) for _ in range(3)]
    for w in waiters:
        w.start()
    time.sleep(0.05)
    event.set()
    event.set()                      # a second set is harmless
    for w in waiters:
        w.join(5.0)
    assert woken == [True, True, True]
