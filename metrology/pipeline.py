"""The metrology pipeline: sample blocks in, cycles, intervals and energy out.

The metrology service and ``meter replay`` run exactly this class; replay only feeds blocks that
come from a file. Stages, in order:

    inputs (V, A at the terminals) -> CycleTracker (boundaries) -> SyncResampler (512 samples/cycle)
    -> CycleStage (PT/CT ratio, polarity and wiring as one matrix; half-cycle sums, powers, phasors)
    -> EventFlagger (Urms(1/2), PQ events, dip/swell flags), TransientDetector -> 10/12-cycle windows
    -> under/over-deviation, mains signalling voltage (metrology/deviation.py, signalling.py)
    -> 150/180-cycle, 10-min, 2-h aggregation; 1-s values with their EnergyIncrement
    -> TenSecondFrequency
    inputs -> FlickerMeter (the phase voltages, L-L where the system has no neutral): Pinst on every
    second, Pst on the 10-min and Plt on the 2-h values

Cycles are computed a batch at a time (every cycle a block completes) and wait in one ``CycleLog``
until their window and their second have closed; a window's DFT runs on the resampled inputs.

Time is passed in: every block carries its first sample index and the clock time of that sample.
A discontinuity (the HAL's GAP or CHIP_RESET flag, or a first index that does not follow on)
restarts the tracker, the resampler and the open 10/12-cycle window; the samples between the last
cycle before it and the first after it (the lost ones and the partial cycles around them) are
reported in ``EnergyIncrement.gap_s``, never bridged. The open 1-s interval and the 10-s frequency
interval go on across it with the cycles measured on either side, and carry ``gap=True`` (the
frequency: ``frequency_10s_flagged``), as do the first intervals after it.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from metrology import _kernels, deviation, signalling
from metrology.cycle import CycleLog, CycleMeasures, CycleStage
from metrology.energy import EnergyIncrement, EnergyRegisters
from metrology.events import EventStart, EventThresholds, PqEvent
from metrology.evstats import cycle_quantities
from metrology.flagging import EventFlagger
from metrology.flicker import PipelineFlicker
from metrology.frequency import CycleTracker, TenSecondFrequency
from metrology.harmonics import HARMONIC_SIGNALS, N_ORDERS, fundamental_floor, spectrum_lines
from metrology.intervals import (FREQ_10S_SLOTS, NS_PER_S, TEN_MIN_NS, TWO_H_NS, ClockAggregator,
                                 INTERVAL_AT, CountAggregator, Interval, Window, WindowPlan, cycles_flat,
                                 cycles_values, window_plan)
from metrology.resample import SyncResampler
from metrology.settings import SAMPLES_PER_CYCLE, MetrologySettings
from metrology.systems import I_PH, INPUTS, SIGNALS, V_LL, V_LN, wiring
from metrology.transients import TransientDetector, TransientSettings

WINDOWS_PER_3S = 15        # 150/180 cycles = 15 windows of 10/12 (IEC 61000-4-30 4.5.2)


@dataclass
class FeedResult:
    cycles: CycleMeasures | None = None
    urms_half: np.ndarray | None = None        # (2m, 11) Urms(1/2) of the new cycles
    cycle_start_ns: np.ndarray | None = None   # (m,) clock time of each new cycle
    half_end_ns: np.ndarray | None = None      # (2m,) clock time at the end of each Urms(1/2) window
    windows: list[Interval] = field(default_factory=list)     # 10/12-cycle values
    seconds: list[Interval] = field(default_factory=list)     # 1-s values, each with .energy
    three_s: list[Interval] = field(default_factory=list)
    ten_min: list[Interval] = field(default_factory=list)
    two_h: list[Interval] = field(default_factory=list)
    frequency_10s: list[tuple[int, float]] = field(default_factory=list)
    events: list[PqEvent | EventStart] = field(default_factory=list)   # PQ events that started or ended
    gap: bool = False


class Pipeline:
    def __init__(self, settings: MetrologySettings) -> None:
        s = self.settings = settings
        self.wiring = wiring(settings.system_type)
        self.fs = settings.sample_rate_hz
        self.n_window = settings.cycles_per_window
        ratio = np.array([s.ct_ratio if name.startswith("I") else s.pt_ratio for name in INPUTS])
        self.gain = ratio * np.where(np.asarray(s.invert), -1.0, 1.0)
        # the ratios and polarities act through the (linear) wiring: inputs are resampled as they come
        self.matrix = self.gain[:, None] * self.wiring.matrix
        self.reference = self.gain * self.wiring.reference
        self._calibration_phase = np.zeros(len(INPUTS))
        delays = self._delays(self._calibration_phase)
        line_ref = settings.system_type in ("DELTA", "2L")
        self.udin_ln = s.nominal_voltage / (np.sqrt(3) if settings.system_type == "DELTA" else
                                            2.0 if settings.system_type == "2L" else 1.0)
        present_peak = s.voltage_present_fraction * self.udin_ln * np.sqrt(2)
        self.tracker = CycleTracker(self.fs, s.nominal_frequency, present_peak)
        self.resampler = SyncResampler(len(INPUTS), SAMPLES_PER_CYCLE, delays)
        self.cycle_stage = CycleStage(self.matrix, SAMPLES_PER_CYCLE, self.fs)
        present = self.wiring.signal_present()
        watch = np.flatnonzero(present[V_LL]) + V_LL.start if line_ref else np.flatnonzero(present[V_LN])
        names = tuple(SIGNALS[k] for k in watch)
        thresholds = EventThresholds(s.nominal_voltage, s.dip_pct, s.swell_pct, s.interruption_pct,
                                     s.hysteresis_pct, s.rvc_enabled, s.rvc_threshold_pct, s.rvc_hysteresis_pct,
                                     2 * int(s.nominal_frequency))
        self.flagger = EventFlagger(thresholds, watch, names)
        # under/over-deviation of the voltages the events watch, NaN for the channels the system lacks
        self._dev_key = "v_ll" if line_ref else "v_ln"
        self._dev_nan = np.full(3, np.nan)
        self._dev_nan[watch - (V_LL.start if line_ref else V_LN.start)] = 0.0
        # mains signalling voltage of the same channels, from their rows of the window spectrum
        self._msv_rows = V_LL if line_ref else V_LN
        self._no_bins = (np.zeros((0, signalling.BINS_OFF_CENTRE)), np.zeros((0, signalling.BINS_OFF_CENTRE)))
        self._window_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, WindowPlan]] = {}
        # the watched voltages from the inputs (wye: three inputs, a diagonal)
        self._tr_matrix = np.ascontiguousarray(self.matrix[:, watch])
        self.transients = TransientDetector(
            TransientSettings(s.transient_enabled, s.transient_threshold_pct / 100.0 * s.nominal_voltage,
                              s.transient_consecutive, s.transient_holdoff_halves), names, s.nominal_voltage)
        self.present = np.asarray(self.wiring.phases)
        self.flicker = PipelineFlicker(self.fs, s, self.matrix, present, line_ref)
        self.creep = s.creep_fraction * s.nominal_current
        self._h1_min = fundamental_floor(self.udin_ln, s.nominal_current)    # THD not available below
        self.ten_s = TenSecondFrequency()
        self.three_s = CountAggregator(WINDOWS_PER_3S, "3s", s.pf_convention)
        self.ten_min = ClockAggregator(TEN_MIN_NS, "10min", s.pf_convention)
        self.two_h = ClockAggregator(TWO_H_NS, "2h", s.pf_convention)
        self.registers = EnergyRegisters()
        self.next_index: int | None = None
        self.origin_ns = 0
        self._latest_window: Interval | None = None
        self.latest_frequency_10s = float("nan")
        # the 10-s frequencies (interval start ns, Hz; NaN when flagged) the open 10-min interval will carry
        self._freq_10s: list[tuple[int, float]] = []
        # cycles wait in one log until both their window and their second have closed
        self.log = CycleLog()
        self._win_lo = 0           # log row of the open window's first cycle
        self._win_count = 0        # cycles in the open window
        self._win_flags = False
        self._win_tick = self._win_start = self._win_end = 0
        # the open window's resampled inputs, one column per input that a harmonic signal uses: the DFT is
        # linear, so the 10 derived spectra are the wiring matrix applied to these inputs' spectra
        used = self.matrix[:, :HARMONIC_SIGNALS]
        self._fft_inputs = np.flatnonzero(np.any(used != 0, axis=1))
        self._fft_input_rows = self._fft_inputs.astype(np.float64)      # as the window_append kernel takes them
        self._fft_matrix = np.ascontiguousarray(used[self._fft_inputs].T)     # (10, inputs used)
        # (samples, inputs), a sample's inputs side by side as the resampler gives them, padded with zero columns
        # to whole groups of four: the DFT kernel loads four inputs of a sample as one vector
        self._win_x = np.zeros((self.n_window * SAMPLES_PER_CYCLE, -(-self._fft_inputs.size // 4) * 4))
        self._win_filled = 0       # cycles whose samples are in _win_x
        self._sec_lo = 0           # log row of the open second's first cycle
        self._sec_key: int | None = None
        self._sec_flag = False
        self._gap_s = 0.0          # unmeasured time not yet reported in an EnergyIncrement
        self._last_end: float | None = None   # sample index where the last cycle ended
        self._lost_s = 0.0         # time the HAL reported lost at the last gap (for a stream that restarted)
        self._sec_gap = False      # the open second has samples missing
        self._gap_index: int | None = None    # first sample the last gap lost, until a second holds cycles past it
        self._win_gap = False      # the next window follows a gap

    # ------------------------------------------------------------------ input

    def _delays(self, calibration_phase_deg: np.ndarray) -> np.ndarray:
        """Resampling delay per input (samples): PT/CT phase correction plus the channel's calibration."""
        s = self.settings
        return (np.asarray(s.phase_correction_deg) + calibration_phase_deg) / 360.0 * self.fs / s.nominal_frequency

    def apply_calibration(self, phase_deg) -> None:
        """Per-input calibration phase (degrees at nominal frequency, positive advances), as the samples carry it;
        it joins the PT/CT phase correction in the resampler. Cheap when unchanged: call it for every block."""
        phase = np.asarray(phase_deg, dtype=np.float64)
        if not np.array_equal(phase, self._calibration_phase):
            self._calibration_phase = phase.copy()
            self.resampler.set_delays(self._delays(phase))

    def feed(self, block) -> FeedResult:   # block: firmware.ipc.samples.SampleBlock (duck-typed)
        self.apply_calibration(block.phase_deg)
        return self.feed_values(block.physical(), block.first_index, block.timestamp_ns,
                                block.restarts, block.lost_frames)

    def feed_values(self, x: np.ndarray, first_index: int, timestamp_ns: int, restart: bool = False,
                    lost_frames: int = 0) -> FeedResult:
        """Samples ``x`` (n, 7) in V and A at the input terminals, burst order IA VA IB VB IC VC IN.
        ``restart``: samples were lost or the ADC re-initialised before ``x`` (the block's gap or reset flag),
        so the measurement restarts there even when ``first_index`` follows on."""
        out = FeedResult()
        discontinuous = self.next_index is not None and first_index != self.next_index
        if self.next_index is None or discontinuous or restart:
            if self.next_index is not None:
                lost = lost_frames if lost_frames else max(first_index - self.next_index, 0)
                self._restart_after_gap(out, lost / self.fs)
            # the tracker bridges a short run of lost samples by itself; a restart with no samples lost (the
            # ADC re-initialised) or indices that went back restart it
            self._restart(first_index, hard=self.next_index is not None and first_index <= self.next_index)
        self.next_index = first_index + x.shape[0]
        self.origin_ns = int(timestamp_ns) - int(round(first_index * 1e9 / self.fs))
        # the tracker first: its filter's recursion leaves time for the batch to arrive from memory, which the
        # flickermeter's squares (a few operations a row) would otherwise wait for; its pass copies the batch into the
        # resampler's buffer as it reads it, and writes the boundaries into the resampler's pending ones
        resampler = self.resampler
        self.tracker.feed(x, first_index, self.reference, resampler.reserve(x.shape[0], first_index), resampler)
        self.flicker.process(x, int(timestamp_ns))
        measured = self.cycle_stage.measure(self.resampler, self.log)
        if measured is None:
            return out
        samples, base, m = measured
        cm = self.log.rows(base, base + m)       # views: the log never writes a row twice
        self._note_hole(float(cm.start[0]))
        self._last_end = float(cm.end[-1])
        start_ns, end_ns, half_end_ns = _kernels.cycle_times(cm.start, cm.end, self.origin_ns, 1e9 / self.fs)
        urms, flags = self.flagger.process(
            cm.half_ms, cm.start, cm.end, half_end_ns, cm.vi, out.events,
            lambda: cycle_quantities(cm.ms, cm.fund, cm.vi, cm.freq, self.flagger.channels))
        self.transients.process_inputs(samples, self._tr_matrix, cm.start, cm.end, start_ns, end_ns, out.events)
        out.cycles, out.urms_half, out.cycle_start_ns, out.half_end_ns = cm, urms, start_ns, half_end_ns
        # the batch's few cycles as plain numbers: the loops below cost less on them than on arrays
        starts, ends = start_ns.tolist(), end_ns.tolist()
        for t, f in self.ten_s.add_lists(starts, ends, cm.duration_s.tolist(), cm.real.tolist(), flags):
            self.latest_frequency_10s = f
            out.frequency_10s.append((t, f))
            self._freq_10s.append((t, math.nan if self.ten_s.flagged else f))
        self._windows(samples, base, starts, ends, flags, out)
        self._seconds(base, starts, flags, out)
        dropped = self.log.drop(min(self._win_lo if self._win_count else self.log.n, self._sec_lo))
        self._win_lo -= dropped
        self._sec_lo -= dropped
        return out

    def _attach_frequency_10s(self, ten: Interval) -> None:
        """``freq_10s`` (60,) of a closing 10-min interval: slot k the 10-s value of the interval starting k * 10 s
        after it (IEC 61000-4-30 5.1), NaN when flagged or not measured; EN 50160 judges frequency on these."""
        slots = np.full(FREQ_10S_SLOTS, np.nan)
        step = TenSecondFrequency.INTERVAL_NS
        for t, f in self._freq_10s:
            k = (t - ten.start_ns) // step
            if 0 <= k < FREQ_10S_SLOTS:
                slots[k] = f
        self._freq_10s = [(t, f) for t, f in self._freq_10s if t >= ten.start_ns + FREQ_10S_SLOTS * step]
        ten.values["freq_10s"] = slots

    def disturbance_counts(self) -> dict[str, int]:
        """The disturbance counters: dips, swells, interruptions, RVCs and transients counted so far."""
        return {**self.flagger.events.counts, "transient": self.transients.count}

    def set_disturbance_counts(self, counts: dict[str, int]) -> None:
        """Carry counters on from where they were (a service that restarts), or set them back to zero."""
        for kind in self.flagger.events.counts:
            self.flagger.events.counts[kind] = int(counts.get(kind, 0))
        self.transients.count = int(counts.get("transient", 0))

    def _restart(self, first_index: int, hard: bool = True) -> None:
        if hard or self.next_index is None:
            self.tracker.restart(first_index)
        self.resampler.restart()
        self.flagger.restart()
        self.flicker.restart()
        self.transients.restart()
        self._win_count = self._win_filled = 0
        self._win_flags = False
        # the open second's cycles stay: the second goes on after the gap; the rows before it only served
        # the window, which starts again
        dropped = self.log.drop(self._sec_lo)
        self._sec_lo -= dropped
        self._win_lo = self.log.n
        self.three_s.restart()

    def _restart_after_gap(self, out: FeedResult, lost_s: float) -> None:
        out.gap = True
        self._lost_s = lost_s
        self._sec_gap = self.log.n > self._sec_lo or self._sec_key is not None
        self._gap_index = self.next_index
        self._win_gap = True
        self.ten_s.mark_gap()

    def _note_hole(self, start: float) -> None:
        """The first new cycle starts at sample ``start``: the time since the last cycle ended is unmeasured."""
        if self._last_end is None:
            return
        hole = start - self._last_end
        if hole > 0.5:
            self._gap_s += hole / self.fs
        elif hole < 0:                 # the indices started over (a chip reset): only the HAL knows the loss
            self._gap_s += self._lost_s
        self._lost_s = 0.0

    # ------------------------------------------------------------------ windows

    def _windows(self, samples: np.ndarray, base: int, starts: list[int], ends: list[int], flags: list[bool],
                 out: FeedResult) -> None:
        """Assign the new cycles (log rows ``base``..; their clock times ``starts``, ``ends`` and event flags) to
        windows; ``samples`` (m, 512, 7) resampled inputs."""
        m, size, k = len(starts), self.n_window, 0
        while k < m:
            if self._win_count and starts[k] // TEN_MIN_NS != self._win_tick:
                self._close_window(out)       # resynchronise at the 10-min tick: the open window closes short
            if self._win_count == 0:
                self._win_tick, self._win_start, self._win_lo = starts[k] // TEN_MIN_NS, starts[k], base + k
            # cycles k..hi - 1 join the open window: up to its size, while they start in its 10-min tick (a batch's
            # starts increase: the first one at or after the next tick is where the run ends)
            hi = min(m, k + size - self._win_count)
            limit = (self._win_tick + 1) * TEN_MIN_NS
            if starts[hi - 1] >= limit:
                hi = bisect_left(starts, limit, k, hi)
            self._append_window(samples, k, hi, flags)
            self._win_count += hi - k
            self._win_end = ends[hi - 1]
            k = hi
            if self._win_count == size:
                self._close_window(out)

    def _append_window(self, samples: np.ndarray, lo: int, hi: int, flags: list[bool]) -> None:
        if hi > lo:
            _kernels.window_append(samples, self._fft_input_rows, self._win_x, lo, hi,
                                   self._win_filled * SAMPLES_PER_CYCLE)
            self._win_filled += hi - lo
            self._win_flags |= any(flags[lo:hi])

    def _close_window(self, out: FeedResult) -> None:
        n = self._win_count
        cm = self.log.rows(self._win_lo, self._win_lo + n)
        self._win_lo += n
        self._win_count = self._win_filled = 0
        flagged, self._win_flags = self._win_flags, False
        s = self.settings
        weights, idx, use, plan = self._window_constants(n)
        # the window's values: one flat array, which each kernel writes in its place
        flat = np.empty(plan.size)
        interval, harmonics, finish = plan.views(flat)
        cycles_flat(cm, weights, self.present, self.creep, s.pf_convention, s.phase_order, interval)
        length = n * SAMPLES_PER_CYCLE
        # the lines the harmonic values use (a window cut short at the 10-min tick has its own length)
        lines = _kernels.window_rfft(self._win_x[:length], spectrum_lines(n), self._fft_inputs.size)
        # the derived signals' lines, harmonic values and signalling voltages: one C pass (reference.window_harmonics)
        _, _, _, _, fund, _, msv = _kernels.window_harmonics(
            lines, self._fft_matrix, cm.ms, cm.peak, n, N_ORDERS, length, s.tdd_current, I_PH.start, self._h1_min,
            idx, use, self._msv_rows.start, harmonics)
        # the fundamentals' angles, the deviations and the channels' signalling voltages: one C pass
        _kernels.window_finish(fund, interval[INTERVAL_AT[self._dev_key]], self._dev_nan, msv, s.nominal_voltage, finish)
        item = Window.of(self._win_start, self._win_end, float(np.add.reduce(cm.duration_s)), n, flagged, self._win_gap,
                         plan, flat)
        self._win_gap = False
        self._latest_window = item
        out.windows.append(item)
        for three in self.three_s.add(item):
            deviation.annotate(three.values, s.nominal_voltage)
            out.three_s.append(three)
        for ten in self.ten_min.add(item):
            self.flicker.annotate(ten)
            self._attach_frequency_10s(ten)
            deviation.annotate(ten.values, s.nominal_voltage)
            out.ten_min.append(ten)
            for two in self.two_h.add(ten):
                two.values.pop("freq_10s", None)        # a 10-min interval's own: not a 2-h value
                self.flicker.annotate(two)
                deviation.annotate(two.values, s.nominal_voltage)
                out.two_h.append(two)
        item.flat = None     # both aggregations have it: callers that keep windows do not keep this too

    @property
    def latest_window(self) -> dict[str, np.ndarray]:
        """The values of the latest window (none before the first): named when asked for, as ``Window`` has them."""
        return {} if self._latest_window is None else self._latest_window.values

    def _window_constants(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, WindowPlan]:
        """A window of ``n`` cycles: the cycles' weights (equal), the signalling frequencies' DFT lines and where its
        values sit in its flat array."""
        known = self._window_cache.get(n)
        if known is None:
            s = self.settings
            idx, use = signalling.bins(s.signalling_hz, s.nominal_frequency, n) if s.signalling_hz else self._no_bins
            plan = window_plan(self._fft_matrix.shape[0], N_ORDERS, self._dev_nan.shape[0],
                               idx.shape[0] if s.signalling_hz else None)
            known = self._window_cache[n] = (np.full(n, 1.0 / n), idx, use, plan)
        return known

    # ------------------------------------------------------------------ seconds and energy

    def _seconds(self, base: int, starts: list[int], flags: list[bool], out: FeedResult) -> None:
        """Close the 1-s intervals that the new cycles (log rows ``base``..; their clock times ``starts`` and event
        flags) complete."""
        if not starts:
            return
        if self._sec_key is None:
            self._sec_key = starts[0] // NS_PER_S
        if starts[0] // NS_PER_S == self._sec_key == starts[-1] // NS_PER_S:
            # the usual batch: every cycle in the open second (a batch's starts increase)
            self._sec_flag |= True in flags
            return
        for k, start in enumerate(starts):
            key = start // NS_PER_S
            if key != self._sec_key:
                out.seconds.append(self._close_second(base + k))
                self._sec_key = key
            self._sec_flag |= flags[k]

    def _close_second(self, hi: int) -> Interval:
        """The 1-s interval made of log rows from the open second's first up to ``hi``."""
        s = self.settings
        cm = self.log.rows(self._sec_lo, hi)
        self._sec_lo = hi
        key = self._sec_key if self._sec_key is not None else 0
        self._sec_key = None
        flagged, self._sec_flag = self._sec_flag, False
        duration = np.add.reduce(cm.duration_s)
        weights = cm.duration_s / duration
        values = cycles_values(cm, weights, self.present, self.creep, s.pf_convention, s.phase_order)
        # the latest window's values that the second has not of its own, after the second's (in the window's order)
        merged = {**values, **self.latest_window}
        merged.update(values)
        values = merged
        values["freq_10s"] = np.array([self.latest_frequency_10s])
        self.flicker.annotate_second(values)
        values["freq_10s_flagged"] = np.array([1.0 if self.ten_s.flagged else 0.0])
        real_f = cm.freq[~np.isnan(cm.freq)]
        values["freq_1cycle"] = np.array([real_f[-1] if real_f.size else np.nan])
        energy, comp, table = self._energy(cm, float(duration))
        energy.start_ns = key * NS_PER_S
        energy.gap_s, self._gap_s = self._gap_s, 0.0
        if comp is not None:        # the same second, the same unmeasured time
            comp.start_ns, comp.gap_s = energy.start_ns, energy.gap_s
        self.registers.add_table(energy, comp, table)
        # flagged when samples were lost inside it, or it holds the first cycles after a gap
        after = self._gap_index is not None and cm.count > 0 and cm.end[-1] > self._gap_index
        gap = self._sec_gap or after
        self._sec_gap = False
        if after:
            self._gap_index = None
        item = Interval("1s", key * NS_PER_S, (key + 1) * NS_PER_S, float(duration), cm.count,
                        values, flagged, gap, energy, comp)
        return item

    def _energy(self, cm: CycleMeasures, duration: float
                ) -> tuple[EnergyIncrement, EnergyIncrement | None, np.ndarray]:
        """The energy of the cycles ``cm`` (``duration``: the sum of their durations) and, with loss compensation
        on, its compensated twin (one pass of the interval_energy kernel, whose definition
        ``reference.interval_energy`` is compute_power and cycle_energy), and the kernel's table their quantities
        are rows of."""
        s = self.settings
        table = _kernels.interval_energy(cm.ms, cm.vi, cm.fund, cm.duration_s, self.present, self.creep, s.losses)
        energy = EnergyIncrement.of_rows(table[0], duration)
        if not s.losses.enabled:
            return energy, None, table
        return energy, EnergyIncrement.of_rows(table[1], duration, True), table
