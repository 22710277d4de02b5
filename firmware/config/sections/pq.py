"""Power quality (SPEC §4): event thresholds (IEC 61000-4-30 Class A), their event-log priorities, waveform
capture and the high-speed RMS burst, the recorder's stores."""
from typing import Any

from firmware.config.schema import Bool, Enum, Float, Int, ListOf, Option, Section
from firmware.recorder.capture import CAPTURE_MODES, CHANNEL_GROUPS, CaptureFormat
from firmware.storage.eventlog import PRIORITY_MAX
from hal.errors import ConfigError
from metrology.events import KINDS
from metrology.signalling import MAX_FREQUENCIES, MSV_MAX_HZ, MSV_MIN_HZ, check_frequencies

_PRIORITY = Int(0, PRIORITY_MAX)
EVENT_KINDS = KINDS
SAMPLES_PER_CYCLE = ("16", "32", "64", "128", "256", "512")

SECTIONS = [
    Section("pq", [
        Option("sag_pct", Float(1.0, 99.0), 90.0,
               "Dip (sag) threshold, % of Udin ([metrology] nominal_voltage); ION7400 default 90 %.", "%"),
        Option("swell_pct", Float(101.0, 200.0), 110.0, "Swell threshold, % of Udin; ION7400 default 110 %.", "%"),
        Option("interruption_pct", Float(0.0, 50.0), 10.0,
               "Interruption threshold, % of Udin, reached by every phase; ION7400 default 10 % (JEMStar 50 %).",
               "%"),
        Option("hysteresis_pct", Float(0.0, 10.0), 2.0,
               "A dip ends at threshold + hysteresis, a swell at threshold - hysteresis; ION7400 default 2 %.", "%"),
        Option("rvc_enabled", Bool(), True, "Detect rapid voltage changes (IEC 61000-4-30 5.11)."),
        Option("rvc_threshold_pct", Float(0.5, 10.0), 5.0,
               "RVC: deviation from the mean of the last second of Urms(1/2), % of Udin (JEMStar default 5 %).",
               "%"),
        Option("rvc_hysteresis_pct", Float(0.0, 5.0), 2.5,
               "RVC ends when the voltage is steady within threshold - hysteresis (JEMStar reset 2.5 %).", "%"),
        Option("transient_enabled", Bool(), True,
               "Detect transients: each sample against the same sample one cycle earlier."),
        Option("transient_threshold_pct", Float(1.0, 400.0), 10.0,
               "Transient threshold: the sample difference, % of Udin (JEMStar example 10 V on 120 V).", "%"),
        Option("transient_consecutive", Int(1, 256), 3,
               "Samples in a row (of 512 per cycle) beyond the threshold that make a transient (JEMStar 3)."),
        Option("transient_holdoff", Int(1, 432000), 120,
               "Half cycles after a transient during which that phase does not trigger again (JEMStar 120)."),
        Option("signalling_frequencies", ListOf(Float(MSV_MIN_HZ, MSV_MAX_HZ), 0, MAX_FREQUENCIES), (),
               "Ripple-control (mains signalling) frequencies whose voltage is measured (IEC 61000-4-30 5.10), Hz, "
               "at most 4 (316.67, 1050 ...); the EN 50160 report checks them against its "
               "Figure 1.", "Hz"),
        Option("priority_sag", _PRIORITY, 255, "Event-log priority of sags (ION7400 Sag/Swell alarm: High)."),
        Option("priority_swell", _PRIORITY, 255, "Event-log priority of swells (ION7400 Sag/Swell alarm: High)."),
        Option("priority_interruption", _PRIORITY, 64,
               "Event-log priority of interruptions (ION7400 4-30 Volt Intrp alarm: Low)."),
        Option("priority_rvc", _PRIORITY, 64, "Event-log priority of rapid voltage changes (Low)."),
        Option("priority_transient", _PRIORITY, 128, "Event-log priority of transients (Medium)."),
        Option("capture_on", ListOf(Enum(*EVENT_KINDS), 0, 5), KINDS,
               "Event kinds that trigger a waveform capture (the pq.capture command always does)."),
        Option("capture_samples_per_cycle", Enum(*SAMPLES_PER_CYCLE), "128",
               "Samples per cycle of a waveform capture (at the nominal frequency)."),
        Option("capture_pre_cycles", Int(0, 60), 4, "Cycles recorded before the trigger."),
        Option("capture_post_cycles", Int(1, 600), 8, "Cycles recorded after the trigger."),
        Option("capture_mode", Enum(*CAPTURE_MODES), "standard",
               "standard: capture_pre_cycles before the trigger and capture_post_cycles after it; delayed: that "
               "record capture_delay_cycles later; extended: capture_pre_records and capture_post_records more "
               "records of that length before and after it, in the same file (ION7400 waveform capture types)."),
        Option("capture_delay_cycles", Int(0, 600), 0, "Delayed capture: cycles the record starts later."),
        Option("capture_pre_records", Int(0, 10), 0, "Extended capture: records before the trigger's record."),
        Option("capture_post_records", Int(0, 10), 0, "Extended capture: records after the trigger's record."),
        Option("capture_groups", ListOf(Enum(*CHANNEL_GROUPS), 1, len(CHANNEL_GROUPS)), ["all"],
               "Channel groups, each written as its own capture file per trigger: all (the seven inputs), "
               "voltages (VA VB VC), currents (IA IB IC IN)."),
        Option("capture_format", Enum("BINARY", "BINARY32", "FLOAT32", "ASCII"), "BINARY",
               "COMTRADE 2013 data file type of captures."),
        Option("capture_depth", Int(1, 10000), 100,
               "Captures kept in data_dir/waveforms; the oldest is overwritten (and counted)."),
        Option("capture_holdoff", Float(0.0, 60.0), 0.0,
               "After a capture, event-triggered captures within this time are not started (counted).", "s"),
        Option("hsrms_pre_s", Float(0.0, 0.5), 0.5, "High-speed RMS burst: half-cycle values before an event.", "s"),
        Option("hsrms_post_s", Float(0.0, 1.0), 1.0, "High-speed RMS burst: half-cycle values after its start.",
               "s"),
        Option("hsrms_depth", Int(1, 100000), 100, "High-speed RMS bursts kept (circular)."),
        Option("aggregate_depth_3s", Int(100, 1_000_000), 28_800,
               "3-s values kept in data_dir/recorder.db (28,800: a day, for IEEE 519's daily percentiles)."),
        Option("aggregate_depth_10min", Int(100, 1_000_000), 4032,
               "10-min values kept (4,032: four weeks, for EN 50160's present and previous week)."),
        Option("aggregate_depth_2h", Int(10, 100_000), 336, "2-h values kept (336: four weeks)."),
        Option("event_depth", Int(10, 1_000_000), 10_000,
               "PQ event records kept in data_dir/recorder.db with their full detail (circular)."),
        Option("ring_records", Int(64, 16384), 512,
               "Records the PQ ring from metrology to the recorder holds, 16 kB of shared memory each: what a "
               "restarted recorder catches up on (512: about a minute of the usual 8 records a second, 20 s of a "
               "burst of 1,000 events a minute; docs/memory.md)."),
    ], "Power-quality events, waveform capture and the recorder service (docs/pq.md)."),
]


def check(config: Any) -> None:
    """The signalling frequencies as the metrology service takes them at start, and the captures' length
    (``firmware.config.checks``)."""
    try:
        check_frequencies(tuple(config["pq"].signalling_frequencies))
    except ValueError as exc:
        raise ConfigError(f"config: [pq] signalling_frequencies: {exc}; set them with "
                          "`meter config set pq.signalling_frequencies=[316.67]`") from None
    try:
        capture_format(config).check()
    except ValueError as exc:
        raise ConfigError(f"config: [pq] capture_*: {exc}; shorten capture_pre_cycles, capture_post_cycles, "
                          "capture_delay_cycles or the extended records") from None


def capture_format(config: Any, sample_rate_hz: float = 32000.0) -> CaptureFormat:
    """The waveform captures as [pq] and [metrology] set them (the recorder's, and what the check checks)."""
    cfg, m = config["pq"], config["metrology"]
    return CaptureFormat(int(cfg.capture_samples_per_cycle), cfg.capture_pre_cycles, cfg.capture_post_cycles,
                         float(m.nominal_frequency), sample_rate_hz, cfg.capture_format,
                         (m.pt_primary, m.pt_secondary), (m.ct_primary, m.ct_secondary), cfg.capture_mode,
                         cfg.capture_delay_cycles, cfg.capture_pre_records, cfg.capture_post_records)
