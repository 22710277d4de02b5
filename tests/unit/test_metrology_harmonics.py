"""Harmonics per IEC 61000-4-7, distortion indices, sequence components and unbalance."""
import math

import numpy as np
import pytest

from metrology.harmonics import fundamental_floor, max_deviation_unbalance, sequence, unbalance, window_harmonics
from metrology.pipeline import Pipeline
from metrology.settings import MetrologySettings
from tests.conformance.signals import Channel, balanced, feed


def synchronous_window(parts, n_cycles=10, spc=512):
    """(n*512, 10) with channel 0 = sum of (order, rms, deg) and channel 6 = same parts (a current)."""
    n = np.arange(n_cycles * spc) / spc * 2 * math.pi
    x = np.zeros((n.size, 11))
    for order, rms, deg in parts:
        x[:, 0] += rms * math.sqrt(2) * np.cos(order * n + math.radians(deg))
    x[:, 6] = x[:, 0]
    return x


def test_magnitudes_angles_and_indices_on_a_synchronous_window():
    parts = [(1, 100.0, 0.0), (3, 8.0, 45.0), (5, 6.0, -30.0), (4, 2.0, 10.0), (63, 0.5, 80.0)]
    x = synchronous_window(parts)
    h = window_harmonics(x, 10, np.abs(x).max(axis=0)[:10], tdd_current=50.0)
    for order, rms, deg in parts:
        assert h.mag[0, order] == pytest.approx(rms, rel=1e-12)
        assert h.angle[0, order] == pytest.approx(deg, abs=1e-9)
    hc = math.sqrt(8 ** 2 + 6 ** 2 + 2 ** 2 + 0.5 ** 2)
    rms = math.sqrt(100 ** 2 + hc ** 2)
    assert h.thd[0] == pytest.approx(100 * hc / 100, rel=1e-12)
    assert h.thd_rms[0] == pytest.approx(100 * hc / rms, rel=1e-12)
    assert h.thd_odd[0] == pytest.approx(math.sqrt(64 + 36 + 0.25), rel=1e-12)
    assert h.thd_even[0] == pytest.approx(2.0, rel=1e-12)
    k = (100 ** 2 + 9 * 64 + 25 * 36 + 16 * 4 + 63 ** 2 * 0.25) / rms ** 2
    assert h.k_factor[0] == pytest.approx(k, rel=1e-12)
    assert h.tdd[6] == pytest.approx(100 * hc / 50.0, rel=1e-12) and math.isnan(h.tdd[0])
    assert h.crest[0] == pytest.approx(np.abs(x[:, 0]).max() / rms, rel=1e-12)
    assert h.mag[0, 0] == pytest.approx(0.0, abs=1e-10)


def test_subgroups_and_centred_interharmonic_subgroups():
    # 5 Hz lines at 50 Hz: line 1 of the 10-cycle window is 5 Hz. An interharmonic at 3.5 orders (175 Hz)
    # belongs to the interharmonic subgroup 3 (between orders 3 and 4); a line right next to order 7
    # (order 7.1) belongs to harmonic subgroup 7.
    n = np.arange(5120) / 512 * 2 * math.pi
    x = np.zeros((n.size, 11))
    x[:, 0] = math.sqrt(2) * (100 * np.cos(n) + 3 * np.cos(3.5 * n) + 4 * np.cos(7.1 * n) + 5 * np.cos(7 * n))
    h = window_harmonics(x, 10, np.ones(10), 0.0)
    assert h.inter[0, 3] == pytest.approx(3.0, rel=1e-9)
    assert h.mag[0, 7] == pytest.approx(math.hypot(4, 5), rel=1e-9)
    assert h.inter[0, 7] == pytest.approx(0.0, abs=1e-9)


def test_sequence_components_and_unbalance():
    a = np.exp(2j * math.pi / 3)
    va, vb, vc = 230, 230 * a ** 2, 230 * a        # ABC: b lags a by 120°
    seq = sequence(va, vb, vc)
    assert abs(seq[1]) == pytest.approx(230) and abs(seq[0]) < 1e-9 and abs(seq[2]) < 1e-9
    seq = sequence(va, vb, vc, "ACB")               # installed as ACB, the same phasors are negative sequence
    assert abs(seq[2]) == pytest.approx(230) and abs(seq[1]) < 1e-9
    vb2 = vb * 0.9                                  # 10 % dip on one phase
    u0, u2 = unbalance(sequence(va, vb2, vc))
    v1 = (230 + 0.9 * 230 + 230) / 3
    assert u2 == pytest.approx(100 * (0.1 * 230 / 3) / v1, rel=1e-9)
    assert u0 == pytest.approx(u2, rel=1e-9)
    assert max_deviation_unbalance(np.array([230.0, 207.0, 230.0])) == pytest.approx(
        100 * (222.333333333 - 207) / 222.333333333, rel=1e-6)


@pytest.mark.parametrize("f0, nominal", [(50.0, 50.0), (59.3, 60.0)])
def test_pipeline_harmonics_with_angles_relative_to_va(f0, nominal):
    sig = balanced(230.0, 5.0, 30.0, f0=f0, v_harm=[(5, 0.10, 20.0), (7, 0.05, -60.0)],
                   i_harm=[(3, 0.3, 0.0), (11, 0.1, 45.0)])
    pl = Pipeline(MetrologySettings(nominal_frequency=nominal))
    wins = [w for r in feed(pl, sig, 1.5) for w in r.windows]
    v = wins[-1].values
    assert wins[-1].cycles == (10 if nominal == 50 else 12)
    np.testing.assert_allclose(v["h_mag"][0, [1, 5, 7]], [230, 23, 11.5], rtol=2e-6)
    np.testing.assert_allclose(v["h_mag"][6, [1, 3, 11]], [5, 1.5, 0.5], rtol=2e-6)
    # the signal's VA fundamental is at -90° (cosine); harmonic h at deg + h*(-90°): relative angle = deg
    assert v["h_angle"][0, 5] == pytest.approx(20.0, abs=2e-4)
    assert v["h_angle"][0, 7] == pytest.approx(-60.0, abs=2e-4)
    assert v["angle"][1] == pytest.approx(-120.0, abs=1e-4)    # V B-N lags V A-N
    assert v["angle"][6] == pytest.approx(-30.0, abs=1e-4)     # I A lags V A-N by 30°
    assert v["thd"][0] == pytest.approx(100 * math.hypot(0.10, 0.05), rel=1e-5)
    assert v["v_u2"][0] < 1e-6 and v["v_seq"][1] == pytest.approx(230.0, rel=1e-6)


def test_ratios_over_a_fundamental_below_the_floor_are_not_available():
    # a balanced non-linear load: the neutral carries the phases' third harmonics (4.5 A) and almost no
    # fundamental (0.2 mA, a ten-thousandth of the third): THD would read ~2,250,000 %
    sig = balanced(230.0, 5.0, 0.0, i_harm=[(3, 0.3, 0.0)])
    sig.channels["IN"] = Channel([(1, 2e-4, -90.0), (3, 4.5, -270.0)])
    pl = Pipeline(MetrologySettings(nominal_current=5.0))
    v = [w for r in feed(pl, sig, 0.5) for w in r.windows][-1].values
    assert v["h_mag"][9, 3] == pytest.approx(4.5, rel=1e-5) and v["h_mag"][9, 1] < 1e-3
    for key in ("thd", "thd_odd", "thd_even"):
        assert math.isnan(v[key][9]), key
        assert v[key][6] == pytest.approx(30.0 if key != "thd_even" else 0.0, abs=1e-3), key
    assert v["thd_rms"][9] == pytest.approx(100.0, rel=1e-4)        # HC/RMS has its own denominator
    # above the floor (1 % of In) the same neutral has a ratio again: 4.5 A / 0.06 A
    sig.channels["IN"] = Channel([(1, 0.06, -90.0), (3, 4.5, -270.0)])
    pl = Pipeline(MetrologySettings(nominal_current=5.0))
    v = [w for r in feed(pl, sig, 0.5) for w in r.windows][-1].values
    assert v["thd"][9] == pytest.approx(7500.0, rel=1e-3)


def test_fundamental_floor_per_signal():
    floor = fundamental_floor(230.0, 5.0)
    np.testing.assert_allclose(floor, [2.3] * 6 + [0.05] * 4)
    x = synchronous_window([(1, 1.0, 0.0), (3, 0.5, 0.0)])         # 1 V fundamental: below 1 % of 230 V
    h = window_harmonics(x, 10, np.ones(10), 0.0, floor)
    assert math.isnan(h.thd[0]) and h.thd[6] == pytest.approx(50.0, rel=1e-9)   # 1 A is above 1 % of 5 A


def test_every_ratio_over_h1_documents_its_floor():
    """The point map says when a THD reads "not available", with the floor metrology applies."""
    from firmware.points import load_points
    from metrology.harmonics import MIN_FUNDAMENTAL_PCT

    ratios = [p for p in load_points() if "HC/H1" in p.description]
    assert len(ratios) == 30                      # THD, odd and even THD of 6 voltages and 4 currents
    for p in ratios:
        nominal = "In" if p.name.endswith(("i_a", "i_b", "i_c", "i_n")) else "Udin"
        assert f"not available while H1 < {MIN_FUNDAMENTAL_PCT:g} % of {nominal}" in p.description, p.name


def test_the_neutral_thd_reads_not_available_on_modbus_21305():
    """A balanced non-linear load through the pipeline to the published 1-s values and the Modbus register of
    thd_i_n: the not-available pattern, not 2e6 %; I A's THD is its value."""
    from firmware.comms.modbus.codecs import get_format
    from firmware.comms.modbus.regmap import build_map
    from metrology.publish import publish

    sig = balanced(230.0, 5.0, 0.0, i_harm=[(3, 0.3, 0.0)])
    sig.channels["IN"] = Channel([(1, 2e-4, -90.0), (3, 4.5, -270.0)])
    pl = Pipeline(MetrologySettings(nominal_current=5.0))
    second = [s for r in feed(pl, sig, 2.5) for s in r.seconds][-1]
    out = publish(second.values, second.energy)
    assert math.isnan(out["thd_i_n"]) and out["thd_i_a"] == pytest.approx(30.0, rel=1e-4)
    regs = build_map()                      # the meter's register map, from the point map
    regs.refresh(out)
    fmt = get_format("float32")
    assert regs.read_registers(21305, 2) == fmt.na                    # thd_i_n: not available
    assert fmt.decode(regs.read_registers(21299, 2)) == pytest.approx(30.0, rel=1e-6)    # thd_i_a
