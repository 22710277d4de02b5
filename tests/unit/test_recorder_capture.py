"""The recorder's sample history across lost frames, and the resampler that keeps a gap missing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from firmware.recorder.capture import SampleHistory, resample_with_gaps

FS = 32000.0


def block(first: int, n: int) -> np.ndarray:
    t = (first + np.arange(n)) / FS
    return np.repeat((325.0 * np.cos(2 * np.pi * 50 * t))[:, None], 7, axis=1)


def test_lost_frames_are_held_as_missing_between_the_samples_either_side():
    h = SampleHistory(1.0, FS)
    h.add(0, block(0, 1024))
    h.add(2048, block(2048, 1024))          # frames 1024..2047 lost
    assert (h.start, h.end, h.missing, h.restarts) == (0, 3072, 1024, 0)
    w = h.window(0, 3072)
    assert np.isnan(w[1024:2048]).all() and np.allclose(w[:1024], block(0, 1024), atol=1e-3)
    assert np.allclose(w[2048:], block(2048, 1024), atol=1e-3)
    assert np.isnan(h.window(1100, 1200)).all()     # only missing frames there: held as missing
    assert h.window(3072, 4000) is None              # not reached yet


def test_a_count_that_goes_back_or_a_gap_longer_than_the_history_starts_it_over():
    h = SampleHistory(0.1, FS)              # 3,200 frames
    h.add(0, block(0, 1024))
    h.add(10_000, block(10_000, 1024))
    assert (h.start, h.restarts, h.missing) == (10_000, 1, 0)
    h.add(0, block(0, 512))                 # acquisition restarted
    assert (h.start, h.end, h.restarts) == (0, 512, 2)


def test_the_history_wraps_with_a_gap_across_its_end():
    h = SampleHistory(0.1, FS)              # 3,200 frames
    h.add(0, block(0, 3000))
    h.add(3100, block(3100, 1000))          # lost 3000..3099, wrapping the buffer
    assert (h.start, h.end) == (900, 4100)
    w = h.window(2900, 4100)
    assert np.isnan(w[100:200]).all() and not np.isnan(w[:100]).any() and not np.isnan(w[200:]).any()


@pytest.mark.parametrize("up,down", [(4, 5), (1, 1), (2, 5)])
def test_resampling_around_a_gap_marks_its_reach_missing_and_leaves_the_rest_as_without_it(up, down):
    x = block(0, 6400)[:, :2]
    y_full = resample_poly(x, up, down, axis=0)
    # the recorder's own polyphase filter is scipy's, summed in another order: equal to rounding (325 V peak)
    assert np.allclose(resample_with_gaps(x, up, down), y_full, rtol=0, atol=1e-9)
    gapped = x.copy()
    gapped[3000:3100] = np.nan
    y = resample_with_gaps(gapped, up, down)
    assert y.shape == y_full.shape
    gone = np.flatnonzero(np.isnan(y[:, 0]))
    lo, hi = 3000 * up / down, 3100 * up / down
    assert gone[0] <= lo and gone[-1] >= hi - 1 and np.all(np.diff(gone) == 1)
    assert gone[0] >= lo - 15 * up and gone[-1] <= hi + 15 * up      # no more than the filter's reach
    ok = ~np.isnan(y[:, 0])
    assert np.abs(y[ok] - y_full[ok]).max() < 1e-3 * 325             # outside the reach: as without the gap


# ------------------------------------------------------------------ capture modes and channel groups


def _marked(n: int) -> np.ndarray:
    """(n, 7): each input k holds 1000 k + 100 t (t in s from sample 0): a capture's values say which input and
    which instant they are, through the resampler (a straight line passes its filter unchanged)."""
    t = np.arange(n) / FS
    return np.stack([1000.0 * k + 100.0 * t for k in range(7)], axis=1)


@pytest.mark.parametrize("mode,kw,before,after", [
    ("standard", {}, 4, 8),
    ("delayed", {"delay_cycles": 10}, -6, 18),              # the 12-cycle record 10 cycles later
    ("extended", {"pre_records": 1, "post_records": 2}, 4 + 12, 8 + 24),   # 1 + 1 + 2 records of 12 cycles
])
def test_capture_modes_hold_the_ion7400_spans(tmp_path, mode, kw, before, after):
    import comtrade

    from firmware.recorder.capture import CaptureDirectory, CaptureFormat

    fmt = CaptureFormat(128, 4, 8, 50.0, FS, mode=mode, **kw)
    assert fmt.cycles == (before, after)
    trigger = 2.0 * FS                        # the trigger at t = 2 s
    lo, hi = fmt.span(trigger)
    raw = _marked(int(4 * FS))[lo:hi]
    d = CaptureDirectory(tmp_path, 10)
    cfg = d.write("20231114T221322000000000Z_sag", fmt, raw, lo, trigger, 1_700_000_002_000_000_000)
    rec = comtrade.load(str(cfg), str(cfg.with_suffix(".dat")))          # the PyPI reader
    va = np.asarray(rec.analog[rec.analog_channel_ids.index("VA")])
    assert len(va) == (before + after) * 128
    t_first, t_last = 2.0 - before / 50.0, 2.0 + after / 50.0 - 1 / 6400.0
    # BINARY int16 of a channel up to ~1400: steps of 0.04; a cycle is 2.0 of the line, a sample 0.016
    assert va[0] == pytest.approx(1000.0 + 100.0 * t_first, abs=0.1)
    assert va[-1] == pytest.approx(1000.0 + 100.0 * t_last, abs=0.1)
    # the trigger stamp is the trigger, whatever the mode
    assert (rec.trigger_timestamp - rec.start_timestamp).total_seconds() == pytest.approx(before / 50.0, abs=1e-6)


def test_channel_groups_write_their_own_files(tmp_path):
    import comtrade

    from firmware.recorder.capture import CHANNEL_GROUPS, CaptureDirectory, CaptureFormat, capture_name

    fmt = CaptureFormat(64, 2, 4, 50.0, FS)
    trigger = 1.0 * FS
    lo, hi = fmt.span(trigger)
    raw = _marked(int(2 * FS))[lo:hi]
    d = CaptureDirectory(tmp_path, 10)
    ns = 1_700_000_001_000_000_000
    for group in ("voltages", "currents"):
        name = capture_name(ns, "sag", group)
        assert name.endswith(f"Z_{group}_sag") and name.rpartition("_")[2] == "sag"
        cfg = d.write(name, fmt, raw, lo, trigger, ns, group=group)
        rec = comtrade.load(str(cfg), str(cfg.with_suffix(".dat")))
        assert rec.analog_channel_ids == list(CHANNEL_GROUPS[group])
        for k, ch in enumerate(rec.analog_channel_ids):
            offset = 1000.0 * ("IA", "VA", "IB", "VB", "IC", "VC", "IN").index(ch)
            # int16 steps of up to 0.2 (IN near 6100); a cycle is 2.0
            assert np.asarray(rec.analog[k])[0] == pytest.approx(offset + 100.0 * (1.0 - 2 / 50.0), abs=0.3)
    assert capture_name(ns, "sag") == capture_name(ns, "sag", "all") and capture_name(ns, "sag").endswith("Z_sag")


def test_a_capture_longer_than_the_limit_is_refused_by_the_configuration(tmp_path):
    from firmware.config.checks import check_whole
    from firmware.config.store import ConfigStore
    from hal.errors import ConfigError

    path = tmp_path / "meter.toml"
    path.write_text('[pq]\ncapture_mode = "extended"\ncapture_pre_cycles = 20\ncapture_post_cycles = 40\n'
                    "capture_pre_records = 5\ncapture_post_records = 10\n")
    with pytest.raises(ConfigError, match="longer than the 660"):
        check_whole(ConfigStore(path).load())          # at start, save and validate
    path.write_text('[pq]\ncapture_mode = "extended"\ncapture_pre_records = 2\ncapture_post_records = 3\n')
    config = ConfigStore(path).load()
    check_whole(config)
    assert config["pq"].capture_post_records == 3
