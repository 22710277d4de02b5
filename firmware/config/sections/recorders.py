"""Data recorders (SPEC §5, ION7400 "Default data logging configuration"): up to 16 recorders of up to 16 channels,
each interval or triggered, kept by the recorder service in data_dir/recorder.db (firmware.recorder.datarec)."""
from firmware.config.schema import Bool, Enum, Int, ListOf, Option, Section, Str, Table
from metrology.events import KINDS

MAX_RECORDERS = 16
MAX_CHANNELS = 16
TRIGGERS = ("interval", *KINDS, "disturbance", "3s", "10min", "2h")
STATS = ("mean", "high", "low", "last")
CHANNEL = Str(60, r"[a-z][a-z0-9_]*(\[[0-9]{1,4}\])?|event\.[a-z_]+(\[[0-2]\])?",
              "a point name (harmonics_v_an[3] for one element of an array), or event.FIELD for a triggered "
              "recorder (event.duration_s, event.extreme_pct, event.extreme_v[0], event.delta_umax_pct ...)")

RECORDER_OPTIONS = (
    Option("name", Str(40, r"[A-Za-z0-9_ ./-]+", "letters, digits, space, _ . / -"), "recorder", "Name shown."),
    Option("enabled", Bool(), True, "Record."),
    Option("trigger", Enum(*TRIGGERS), "interval",
           "interval: every `interval` seconds, aligned to the clock; an event kind (disturbance: any dip, swell or "
           "interruption) records when such an event ends; 3s/10min/2h when that aggregate closes."),
    Option("interval", Int(1, 86400 * 31), 900, "Interval of an interval recorder.", "s"),
    Option("stat", Enum(*STATS), "mean",
           "What an interval recorder keeps of each channel's 1-s values over the interval."),
    Option("channels", ListOf(CHANNEL, 1, MAX_CHANNELS), ("v_an",), "Up to 16 channels."),
    Option("depth", Int(1, 10_000_000), 3360, "Records kept."),
    Option("mode", Enum("circular", "stop"), "circular", "Full: overwrite the oldest, or stop recording."),
)

_HIST = ("v_ab", "v_bc", "v_ca", "v_ll_avg", "v_ln_unbalance_worst", "i_a", "i_b", "i_c", "i_avg", "i_n", "p_total",
         "q_total", "s_total", "pf_total", "frequency")
_HARM = ("thd_v_an", "thd_v_bn", "thd_v_cn", "thd_i_a", "thd_i_b", "thd_i_c", "k_factor_a", "k_factor_b",
         "k_factor_c")
_PQ10 = ("v_an_10min", "v_bn_10min", "v_cn_10min", "v_ab_10min", "v_bc_10min", "v_ca_10min", "frequency_10min",
         "v_unbal_10min", "thd_va_10min", "thd_vb_10min", "thd_vc_10min", "pq_flagged_10min")
# ION7400 factory data recorders, with this meter's point names
DEFAULT_RECORDERS = Table(RECORDER_OPTIONS, MAX_RECORDERS).parse([
    {"name": "Revenue Log", "channels": ["wh_delivered", "wh_received", "varh_delivered", "varh_received"],
     "interval": 900, "stat": "last", "depth": 3360},
    {"name": "Hist Mean Log", "channels": list(_HIST), "interval": 900, "stat": "mean", "depth": 3360},
    {"name": "Hist High Log", "channels": list(_HIST), "interval": 900, "stat": "high", "depth": 3360},
    {"name": "Hist Low Log", "channels": list(_HIST), "interval": 900, "stat": "low", "depth": 3360},
    {"name": "Sag/Swell Log", "trigger": "disturbance", "depth": 100,
     "channels": ["event.duration_s", "event.extreme_pct", "event.extreme_v[0]", "event.extreme_v[1]",
                  "event.extreme_v[2]", "event.direction_confidence"]},
    {"name": "Harm Mean Log", "channels": list(_HARM), "interval": 3600, "stat": "mean", "depth": 840},
    {"name": "Harm High Log", "channels": list(_HARM), "interval": 3600, "stat": "high", "depth": 840},
    {"name": "EgyDmd Log", "interval": 900, "stat": "last", "depth": 3360,
     "channels": ["wh_delivered", "wh_received", "wh_del_minus_rec", "varh_delivered", "varh_received",
                  "varh_del_minus_rec", "vah_del_plus_rec", "p_demand_delivered_cumulative"]},
    {"name": "PQ 10-min Log", "trigger": "10min", "depth": 4320, "channels": list(_PQ10)},
    {"name": "Harmonics Va Log", "interval": 600, "stat": "mean", "depth": 4320,
     "channels": [f"harmonics_v_an[{k}]" for k in range(2, 18)]},
    {"name": "RVC Log", "trigger": "rvc", "depth": 100,
     "channels": ["event.delta_umax_pct", "event.delta_uss_pct", "event.duration_s"]},
    # ION "Loss Log": the V²h and I²h registers transformer and line losses are computed from (iron ~ V²,
    # copper ~ I²), whatever [revenue] loss compensation is set to
    {"name": "Loss Log", "interval": 900, "stat": "last", "depth": 3360,
     "channels": ["v2h_delivered", "v2h_received", "i2h_delivered", "i2h_received"]},
])

SECTIONS = [
    Section("recorders", [
        Option("recorder", Table(RECORDER_OPTIONS, MAX_RECORDERS), DEFAULT_RECORDERS,
               "Up to 16 data recorders ([[recorders.recorder]]); the defaults are the ION7400's factory logs "
               "(Revenue, Hist Mean/High/Low, Sag/Swell, Harm Mean/High, EgyDmd, RVC, Loss) plus a 10-min PQ log and "
               "one of phase A's voltage harmonics 2-17. A recorder whose configuration changes starts empty."),
    ], "Data recorders: interval or triggered records of up to 16 channels (docs/pq.md)."),
]
