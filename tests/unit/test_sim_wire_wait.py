"""The simulated GPIO's owner waits for input edges on the wire as gpiod's owner waits on its line: it is woken
by an edge (written by another process, or driven in its own), not by looking at the wire file over and over.
Counted by the times the owner reads the wire, never timed."""
from __future__ import annotations

import threading

from hal.clock import VirtualClock
from hal.gpio import EdgeEvent
from hal.sim.gpio import SimGpio
from hal.sim.wire import Wire

IDLE_WAIT_S = 0.3       # a wait with nothing on the wire; polling every 2 ms would read it some 150 times
MAX_READS_IDLE = 3      # the read before waiting, after the timeout, and one spurious wake at most


def _counting(gpio: SimGpio) -> list[int]:
    assert gpio.wire is not None
    reads = [0]
    read = gpio.wire.read_inputs

    def counted():
        reads[0] += 1
        return read()

    gpio.wire.read_inputs = counted  # type: ignore[method-assign]
    return reads


def test_an_idle_owner_does_not_read_the_wire_until_it_is_written(tmp_path):
    owner = SimGpio(VirtualClock(), wire=tmp_path)
    owner.watch_edges([5], "up")
    reads = _counting(owner)
    assert owner.read_edges(IDLE_WAIT_S) == []
    assert reads[0] <= MAX_READS_IDLE, f"the owner read the wire {reads[0]} times while nothing was written"
    owner.close()


def test_an_edge_written_by_another_process_ends_the_wait(tmp_path):
    owner = SimGpio(VirtualClock(), wire=tmp_path)
    owner.watch_edges([5], "up")
    bench = Wire(tmp_path)
    writer = threading.Timer(0.05, bench.drive, args=(5, False, 10_000))
    writer.start()
    # the wait's timeout is far beyond the test's own: only the write can end it
    assert owner.read_edges(600.0) == [EdgeEvent(5, False, 10_000)]
    writer.join()
    owner.close()


def test_an_edge_driven_in_the_owners_process_ends_the_wait(tmp_path):
    owner = SimGpio(VirtualClock(), wire=tmp_path)
    owner.watch_edges([6], "up")
    driver = threading.Timer(0.05, owner.drive, args=(6, False, 20_000))
    driver.start()
    assert owner.read_edges(600.0) == [EdgeEvent(6, False, 20_000)]
    driver.join()
    owner.close()
