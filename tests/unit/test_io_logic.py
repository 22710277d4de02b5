"""Digital inputs, outputs and energy pulsing as pure logic (firmware.io), and the simulated GPIO's edges."""
from __future__ import annotations

import math

import pytest

from firmware.io.inputs import NS_PER_S, InputChannel, Totalizer
from firmware.io.outputs import MAX_RATE_HZ, EnergyPulser, OutputChannel
from hal.clock import VirtualClock
from hal.gpio import EdgeEvent
from hal.sim.gpio import SimGpio
from hal.sim.wire import Wire

MS = 1_000_000


def _feed(ch: InputChannel, edges: list[tuple[bool, int]], until_ns: int) -> list:
    out = []
    for level, t in edges:
        out += ch.edge(level, t)
    return out + ch.settle(until_ns)


def test_debounce_rejects_bounces_shorter_than_the_setting_and_stamps_the_first_edge():
    ch = InputChannel(1, debounce_s=0.02)             # 20 ms, the ION default floor (SPEC §6)
    # a contact closing (line low) at 100 ms with 3 bounces inside 5 ms, then staying closed
    edges = [(False, 100 * MS), (True, 101 * MS), (False, 102 * MS), (True, 104 * MS), (False, 105 * MS)]
    out = _feed(ch, edges, 200 * MS)
    assert [(t.active, t.timestamp_ns) for t in out] == [(True, 105 * MS)]   # the edge that stayed
    assert ch.bounces == 2 and ch.activations == 1 and ch.count == 0         # pulse mode counts at the end
    # a 10-ms opening is a bounce too; a 30-ms one is a pulse end at its first edge, to the ms
    out = _feed(ch, [(True, 300 * MS), (False, 310 * MS)], 400 * MS)
    assert out == [] and ch.active
    out = _feed(ch, [(True, 500 * MS)], 531 * MS)
    assert [(t.active, t.timestamp_ns) for t in out] == [(False, 500 * MS)] and ch.count == 1


def test_pulse_mode_counts_whole_pulses_kyz_counts_transitions_and_metering_rolls_over():
    form_a = InputChannel(1, debounce_s=0.0, mode="pulse", ke=2.5, rollover=100.0)
    form_c = InputChannel(2, debounce_s=0.0, mode="kyz")
    t = 0
    for _ in range(50):                                # 50 pulses: close 10 ms, open 10 ms
        for ch in (form_a, form_c):
            _feed(ch, [(False, t), (True, t + 10 * MS)], t + 20 * MS)
        t += 20 * MS
    assert form_a.count == 50 and form_c.count == 100
    assert form_a.total() == pytest.approx(125.0 % 100.0)      # 50 x 2.5 = 125 units, wrapped at 100
    tot = Totalizer("net", ((1, 1.0), (2, -0.5)))
    assert tot.value({1: form_a, 2: form_c}) == pytest.approx(50 * 2.5 - 0.5 * 100)


def test_inverting_polarity_makes_the_open_contact_active():
    ch = InputChannel(1, debounce_s=0.0, inverted=True)
    out = _feed(ch, [(True, 5 * MS)], 6 * MS)
    assert [t.active for t in out] == [True]


def test_energy_pulser_gives_exactly_the_whole_multiples_of_kt_and_resumes_from_its_record():
    p = EnergyPulser(kt=10.0)
    assert p.owed(1000.0) == 0                  # first reading is the origin
    assert p.owed(1034.9) == 3
    p.given = 3
    assert p.owed(1040.0) == 1
    restarted = EnergyPulser(10.0, p.origin, p.given)           # what the count store restores
    assert restarted.owed(1100.0) == 7          # 100 Wh since the origin = 10 pulses, 3 given
    assert EnergyPulser(10.0).owed(math.nan) == 0


def _run(out: OutputChannel, seconds: float, register_per_s: float, start: float = 0.0) -> list[tuple[int, bool]]:
    """Feed a register rising at ``register_per_s`` once a second; tick every ms; return the level changes."""
    changes = []
    level = out.level
    for ms in range(int(seconds * 1000)):
        now = ms * MS
        if ms % 1000 == 0:
            out.energy(start + register_per_s * ms / 1000)
        if out.tick(now) != level:
            level = out.level
            changes.append((now, level))
    return changes


def test_kyz_output_toggles_once_per_kt_and_suspends_above_25_hz():
    out = OutputChannel(1, "energy", "kyz", pulse_width_s=0.001, pulser=EnergyPulser(1.0))
    changes = _run(out, 10.0, 7.3)              # 7.3 Wh/s at 1 Wh/pulse
    # the readings at 1..9 s owe floor(7.3 t) pulses each: 65 by the last reading, all given within 10 s
    assert len(changes) == out.pulses == 65 and not out.suspended
    fast = OutputChannel(2, "energy", "kyz", pulse_width_s=0.001, pulser=EnergyPulser(1.0))
    changes = _run(fast, 3.0, 40.0)             # 40 pulses/s owed: above the 25 Hz cap
    assert fast.suspended
    gaps = [b[0] - a[0] for a, b in zip(changes, changes[1:])]
    assert min(gaps) >= NS_PER_S / MAX_RATE_HZ  # never faster than 25 Hz
    assert fast.owed > 0                        # kept, not dropped: given when the load falls
    _ = _run(fast, 5.0, 0.0, start=80.0)
    assert fast.pulses == 80 and fast.owed == 0 and not fast.suspended


def test_pulse_mode_output_is_on_for_the_width_and_end_of_interval_requests_pulse():
    out = OutputChannel(1, "demand_interval", "pulse", pulse_width_s=0.1)
    out.request_pulse()
    changes = []
    for ms in range(300):
        before = out.level
        if out.tick(ms * MS) != before:
            changes.append((ms, out.level))
    assert changes == [(0, True), (100, False)] and out.pulses == 1
    out.forced = True
    assert out.tick(400 * MS) is True
    out.forced = None
    assert out.tick(401 * MS) is False


def test_sim_gpio_reports_edges_with_the_given_time_stamps_in_and_across_processes(tmp_path):
    gpio = SimGpio(VirtualClock())
    gpio.watch_edges([5, 6], "up")
    gpio.drive(5, False, 1_000)
    gpio.drive(5, False, 2_000)                 # no change: no edge
    gpio.drive(6, False, 3_000)
    gpio.drive(7, False, 4_000)                 # not watched
    assert gpio.read_edges(0) == [EdgeEvent(5, False, 1_000), EdgeEvent(6, False, 3_000)]
    wired = SimGpio(VirtualClock(), wire=tmp_path)
    wired.watch_edges([5], "up")
    wired.setup_output(16, False)
    bench = Wire(tmp_path)                      # another process's end of the wire
    bench.drive(5, False, 10_000)
    bench.drive(5, True, 30_000)
    assert wired.read_edges(0.5) == [EdgeEvent(5, False, 10_000), EdgeEvent(5, True, 30_000)]
    wired.write(16, True)
    wired.write(16, True)
    wired.write(16, False)
    assert [(p, lv) for p, lv, _ in bench.read_outputs()] == [(16, True), (16, False)]
