"""The revenue registers' inputs: which source a board gets, and the levels the engine sees (digital inputs
from the io snapshot, as the io service publishes them)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from firmware.config import meter_schema
from firmware.config.board import load_board
from firmware.revenue.inputs import NOT_FITTED, DigitalInputs, GpioInputs, SimInputs, open_inputs
from firmware.revenue.publish import values as publish_values
from firmware.revenue.runtime import RevenueRuntime
from hal.clock import VirtualClock
from hal.errors import BusError
from hal.sim.gpio import SimGpio
from firmware.io.reader import IoReader
from tests.conftest import REPO
from tests.support.io_snapshot import IoSnapshotWriter
from tests.unit.test_revenue_engine import ALL_DAYS, REL, T0, FakeWallClock, inc


def test_board_file_decides_between_gpio_and_simulated_inputs(tmp_path):
    cfg = meter_schema().load({"upgrade": {"revenue_lock_file": str(tmp_path / "lock")},
                               "revenue": {"inputs": {"sim_dir": str(tmp_path / "inputs")}}})
    sim = open_inputs(cfg, REPO / "boards" / "sim.toml")
    assert isinstance(sim, SimInputs) and not sim.locked()
    (tmp_path / "lock").write_text("locked\n")
    assert sim.locked()
    # A real board's lock is its GPIO line: without the GPIO bindings this is an error naming them,
    # never the simulated board's files (which nobody would set on a sealed meter).
    with pytest.raises(BusError, match="gpiod"):
        open_inputs(cfg, REPO / "boards" / "cm4-ade9000.toml")


# ---------------------------------------------------------------------------- input-driven features
# The runtime reads the io snapshot each second, as the metrology service does, and
# hands the engine seconds of a balanced 3 kW (1 kvar) load built by ``inc``: 3000 / 3600 Wh a second.

WH_PER_S = 3000.0 / 3600


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class InputRig:
    """A RevenueRuntime on an io snapshot written here, fed seconds from ``t0``."""

    def __init__(self, tmp_path, revenue: dict, t0: float = T0) -> None:
        self.dir = tmp_path / "inputs"
        self.dir.mkdir()
        self.lock = tmp_path / "lock"
        doc = {"upgrade": {"revenue_lock_file": str(self.lock)},
               "revenue": _merge({"persist_interval": "1 h", "demand_reset_lockout": 0,
                                  "inputs": {"sim_dir": str(self.dir)}}, revenue)}
        cfg = meter_schema().load(doc)
        self.clock = FakeWallClock()
        self.t = self.clock.t = t0
        self.mono = 0.0
        self.io = IoSnapshotWriter()
        self.rt = RevenueRuntime(cfg, tmp_path / "var", open_inputs(cfg, REPO / "boards" / "sim.toml", self.io.name),
                                 clock=self.clock)
        self.engine = self.rt.engine

    def input(self, number: int, on: bool) -> None:
        self.io.set(number, on)

    def run(self, seconds: int, **load) -> None:
        for _ in range(seconds):
            self.t += 1
            self.mono += 1
            self.clock.t = self.t
            self.rt.on_second(inc(**load), None, {}, self.t, self.mono)

    def reg(self, name: str = "wh_del") -> dict:
        return self.engine.cmd.registers()["energy"][name]

    def close(self) -> None:
        self.rt.close()
        self.rt.inputs.digital.reader.close()
        self.io.close()


@pytest.fixture
def rigs():
    made: list[InputRig] = []

    def make(tmp_path, revenue: dict, t0: float = T0) -> InputRig:
        made.append(InputRig(tmp_path, revenue, t0))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def test_bpr_button_input_resets_on_the_press_edge_and_respects_lockout_and_lock(tmp_path, rigs):
    rig = rigs(tmp_path, {"demand_reset_lockout": "5 min", "inputs": {"bpr_button": 1}})
    rig.run(1050)                     # rolling 15/5-min demand: closures at 07:05, 07:10, 07:15 -> peak 3 kW
    rig.input(1, True)
    rig.run(1)                        # pressed during second 1051 (T0 + 1051 on the wall clock)
    snap = rig.engine.snapshots["bpr"]
    assert snap["energy"][0][0][3] == pytest.approx(1050 * WH_PER_S, rel=REL)       # 875 Wh at the press
    assert snap["peaks"][0] == pytest.approx(3000.0, rel=REL)
    reg = rig.engine.cmd.registers()
    assert reg["peaks"]["p_del"]["value"] == 0.0 and reg["cumulative"]["p_del"] == pytest.approx(3000.0, rel=REL)
    assert rig.reg()["total"] == pytest.approx(1051 * WH_PER_S, rel=REL)            # energy is not reset
    rig.run(10)                       # held down: one press, one reset
    assert rig.engine.counters["bpr"] == 1
    rig.input(1, False)
    rig.run(1)
    rig.input(1, True)
    rig.run(1)                        # 12 s after the first: within the 5-min lockout
    rig.input(1, False)
    rig.lock.write_text("locked\n")
    rig.run(337)                      # past the lockout (T0 + 1351)
    rig.input(1, True)
    rig.run(1)                        # locked: refused (demand_reset_when_locked = false)
    assert rig.engine.counters["bpr"] == 1
    audit = rig.engine.cmd.audit_log()
    assert [(a["action"], a["user"], a["accepted"], a["args"]["source"]) for a in audit] == [
        ("billing_reset", "button", 1, "button"), ("billing_reset", "button", 0, "button"),
        ("billing_reset", "button", 0, "button")]
    assert "lockout" in audit[1]["reason"] and "revenue-locked" in audit[2]["reason"]
    out = publish_values(rig.engine)
    assert out["bpr_count"] == 1.0 and out["bpr_time"] == T0 + 1051
    assert out["wh_delivered_bpr"] == pytest.approx(875.0, rel=REL)
    assert out["p_demand_delivered_peak_bpr"] == pytest.approx(3000.0, rel=REL)


def test_demand_sync_input_ends_the_subinterval_at_the_pulse_and_free_runs_from_it(tmp_path, rigs):
    rig = rigs(tmp_path, {"demand_method": "block", "demand_interval": 15, "demand_sync": "input",
                          "inputs": {"demand_sync": 2}})
    rig.run(300, p=3000.0, q=0.0)                    # 07:00-07:05 at 3 kW
    rig.input(2, True)
    rig.run(1, p=6000.0, q=0.0)                      # the pulse, seen with the second after 07:05
    # the subinterval closed at the pulse: 3 kW x 300 s over the 900-s interval
    demand = rig.engine.cmd.registers()["demand"]
    assert demand["p_del"] == pytest.approx(1000.0, rel=REL)
    rig.run(899, p=6000.0, q=0.0)                    # held: no further pulse; 07:15 is no boundary now
    assert rig.engine.cmd.registers()["demand"]["p_del"] == pytest.approx(1000.0, rel=REL)
    rig.run(1, p=6000.0, q=0.0)                      # 900 s after the pulse: 6 kW x 900 s / 900 s
    reg = rig.engine.cmd.registers()
    assert reg["demand"]["p_del"] == pytest.approx(6000.0, rel=REL)
    assert reg["peaks"]["p_del"]["value"] == pytest.approx(6000.0, rel=REL)
    assert reg["peaks"]["p_del"]["time"] == T0 + 1200.5
    assert [(a["action"], a["user"], a["accepted"]) for a in rig.engine.cmd.audit_log()] == [("demand_sync", "input", 1)]


def test_tou_override_input_books_energy_to_the_override_rate(tmp_path, rigs):
    days = {d: "00:00=A 08:00=B 20:00=A" for d in ALL_DAYS}
    rig = rigs(tmp_path, {"tou": {"enabled": True, "override_rate": "C", "season": [{"start": "01-01", **days}]},
                          "inputs": {"tou_override": 3}})
    rig.input(3, True)
    rig.run(600)                                     # 07:00-07:10 overridden: rate C instead of A
    assert publish_values(rig.engine)["tou_active_rate"] == 3.0
    rig.input(3, False)
    rig.run(600)                                     # 07:10-07:20: the schedule's rate A
    assert publish_values(rig.engine)["tou_active_rate"] == 1.0
    rates = rig.reg()["rates"]
    assert rates["C"] == pytest.approx(600 * WH_PER_S, rel=REL)
    assert rates["A"] == pytest.approx(600 * WH_PER_S, rel=REL)
    assert rates["B"] == 0.0 and sum(rates.values()) == pytest.approx(rig.reg()["total"], rel=REL)


def test_energy_gate_input_runs_the_conditional_registers_only_while_on(tmp_path, rigs):
    rig = rigs(tmp_path, {"inputs": {"energy_gate": 4}})
    rig.input(4, True)
    rig.run(600)
    rig.input(4, False)
    rig.run(600)
    rig.input(4, True)
    rig.run(300)
    assert rig.engine.cmd.registers()["conditional"]["wh_del"] == pytest.approx(900 * WH_PER_S, rel=REL)   # 750 Wh
    assert rig.reg()["total"] == pytest.approx(1500 * WH_PER_S, rel=REL)
    rig.engine.cmd.test_mode_enter(user="tester")
    rig.run(60)                                      # test mode: the conditional registers stop too
    assert rig.engine.cmd.registers()["conditional"]["wh_del"] == pytest.approx(750.0, rel=REL)
    assert publish_values(rig.engine)["wh_delivered_conditional"] == pytest.approx(750.0, rel=REL)


def test_season_change_snapshot_holds_the_registers_at_the_boundary(tmp_path, rigs):
    t0 = datetime(2024, 6, 30, 23, 50, tzinfo=timezone.utc).timestamp()
    seasons = [{"start": "01-01", **{d: "00:00=A" for d in ALL_DAYS}},
               {"start": "07-01", **{d: "00:00=B" for d in ALL_DAYS}}]
    rig = rigs(tmp_path, {"tou": {"enabled": True, "season": seasons}}, t0=t0)
    rig.run(1200)                                    # 23:50 on 30 June to 00:10 on 1 July
    snap = rig.engine.snapshots["season"]
    assert snap["why"] == "season 1 ended" and snap["time"] == t0 + 600.5
    # exactly the 600 s of season 1, and the peak of the rolling demand closed at 00:00 (2 of 3 subintervals)
    assert snap["energy"][0][0][3] == pytest.approx(600 * WH_PER_S, rel=REL)
    assert snap["peaks"][0] == pytest.approx(2000.0, rel=REL)
    out = publish_values(rig.engine)
    assert out["wh_delivered_season"] == pytest.approx(500.0, rel=REL)
    assert out["tou_active_season"] == 2.0
    rates = rig.reg()["rates"]
    assert rates["A"] == pytest.approx(500.0, rel=REL) and rates["B"] == pytest.approx(500.0, rel=REL)


# ---------------------------------------------------------------------------- a real board's GPIO path

def test_gpio_inputs_read_the_board_lines_active_low_on_simulated_gpio_lines():
    """GpioInputs, the code a real board runs, on SimGpio lines driven as the board's switches would; the
    digital inputs come from the io snapshot, not from lines of their own."""
    gp = load_board(REPO / "boards" / "cm4-ade9000.toml").gpio
    gpio = SimGpio(VirtualClock())
    io = IoSnapshotWriter()
    digital = DigitalInputs(IoReader(io.name), {"bpr_button": 1, "demand_sync": 0, "energy_gate": 3})
    try:
        inputs = GpioInputs(gpio, gp.revenue_lock, gp.power_fail, digital)
        assert not inputs.locked() and not inputs.power_fail()           # pulled up: switch open, supply good
        first = inputs.read()
        assert first.pressed == set() and first.contacts == {1: False, 2: False, 3: False, 4: False}
        gpio.drive(gp.revenue_lock, False)                               # the sealed switch closed
        gpio.drive(gp.power_fail, False)                                 # the supply falling
        io.set(1, True)                                                  # DI1: the BPR button pressed
        state = inputs.read()
        assert state.locked and state.power_fail and state.bpr_button and not state.energy_gate
        assert state.pressed == {"bpr_button"}
        assert state.contacts == {1: True, 2: False, 3: False, 4: False}
        io.set(1, False)
        io.set(1, True)                                                  # released and pressed within a second
        io.set(1, False)
        state = inputs.read()
        assert state.pressed == {"bpr_button"} and not state.bpr_button and state.pulses[1] == 2
        io.set(3, True)
        assert inputs.read().energy_gate and inputs.read().pressed == set()
        gpio.drive(gp.revenue_lock, True)
        assert not inputs.locked()
    finally:
        digital.reader.close()
        io.close()


def test_press_shorter_than_a_second_is_one_reset(tmp_path, rigs):
    """The button's activation counter, not its level once a second, triggers the reset."""
    rig = rigs(tmp_path, {"inputs": {"bpr_button": 1}})
    rig.run(10)
    rig.input(1, True)
    rig.input(1, False)                  # pressed and released between two seconds
    rig.run(1)
    assert rig.engine.counters["bpr"] == 1


def test_alarm_and_pulse_overflow_from_the_io_snapshot_set_status_word_bits(tmp_path, rigs):
    from firmware.revenue.engine import STATUS_BITS
    rig = rigs(tmp_path, {})
    rig.run(1)
    assert not int(publish_values(rig.engine)["status_word"]) & (STATUS_BITS["alarm_active"] | STATUS_BITS["pulse_overflow"])
    rig.io.publish(alarm_active=1.0, pulsing_suspended=1.0)
    rig.run(1)
    word = int(publish_values(rig.engine)["status_word"])
    assert word & STATUS_BITS["alarm_active"] and word & STATUS_BITS["pulse_overflow"]


def test_gpio_lock_that_cannot_be_read_counts_as_locked_and_a_missing_one_never_locks():
    class Failing(SimGpio):
        def read(self, pin: int) -> bool:
            raise OSError("line released")

    class Strict(SimGpio):
        """As a hardware backend: a line that does not exist is an error."""

        def setup_input(self, pin: int, pull: str = "none") -> None:
            if pin < 0:
                raise ValueError(f"no GPIO line {pin}")
            super().setup_input(pin, pull)

        def read(self, pin: int) -> bool:
            if pin < 0:
                raise ValueError(f"no GPIO line {pin}")
            return super().read(pin)

    assert GpioInputs(Failing(VirtualClock()), 17, 4, DigitalInputs(None, {})).locked()
    none_fitted = GpioInputs(Strict(VirtualClock()), NOT_FITTED, NOT_FITTED, DigitalInputs(None, {}))
    assert not none_fitted.locked() and not none_fitted.power_fail()


def test_simulated_power_fail_wait_ends_when_the_file_is_written_not_by_polling(tmp_path):
    """The power-fail watch sleeps until the simulated line's file is written (inotify, as a GPIO line's edge
    wakes a reader): a wait with an hour's poll period and idle limit ends at the write, and the line reads
    active after it. The directory is made by the first wait when missing."""
    import threading
    import time

    sim = SimInputs(tmp_path / "lock", tmp_path / "inputs", DigitalInputs(None, {}))
    sim.wait_power_fail(3600.0, 0.0)                 # the watch is set up (and the directory made)
    assert (tmp_path / "inputs").is_dir() and not sim.power_fail()
    writer = threading.Timer(0.2, lambda: (tmp_path / "inputs" / "power_fail").write_text("1"))
    writer.start()
    t0 = time.monotonic()
    try:
        for _ in range(5):            # the file's creation and its write each wake it, as in the watch's loop
            sim.wait_power_fail(3600.0, 3600.0)
            if sim.power_fail():
                break
    finally:
        writer.cancel()
    assert time.monotonic() - t0 < 600            # woken by the write: neither limit ran out
    assert sim.power_fail()


def test_gpio_power_fail_wait_ends_at_the_lines_edge_not_by_polling(tmp_path):
    """On a real board the watch sleeps until the power-fail line's edge (gpiod's edge events; here the simulated
    wire, which carries another process's edges as the kernel's queue does): a wait with an hour's poll period
    and idle limit ends at the falling edge, and the line reads failing after it; the rising edge (the supply
    back) ends the next wait and the line reads healthy."""
    import threading

    from hal.clock import SystemClock
    from hal.sim.wire import Wire

    pin = 4
    inputs = GpioInputs(SimGpio(SystemClock(), wire=tmp_path / "wire"), NOT_FITTED, pin, DigitalInputs(None, {}))
    line = Wire(tmp_path / "wire")
    assert not inputs.power_fail()
    for level, failing in ((False, True), (True, False)):
        driver = threading.Timer(0.1, line.drive, (pin, level))
        driver.start()
        try:
            inputs.wait_power_fail(3600.0, 3600.0)
        finally:
            driver.cancel()
            driver.join()
        assert inputs.power_fail() is failing
    inputs.gpio.close()
    line.close()
