"""Options of the metrology pipeline: wiring, nominal values, PT/CT, corrections, conventions, losses."""
from firmware.config.schema import Bool, Enum, Float, ListOf, Option, Section
from hal.board import CHANNELS as INPUTS
from metrology.settings import SYSTEM_TYPES

_PCT = Float(0.0, 100.0)

SECTIONS = [
    Section("metrology", [
        Option("system_type", Enum(*SYSTEM_TYPES), "4W-WYE",
               "Wiring (volts mode): which inputs carry which voltages and currents (docs in metrology/systems.py)."),
        Option("nominal_voltage", Float(1.0, 1_000_000.0), 230.0,
               "Udin, primary: L-N for wye, single and split phase, L-L for DELTA and 2L.", "V"),
        Option("nominal_current", Float(0.001, 100_000.0), 5.0, "In, primary.", "A"),
        Option("nominal_frequency", Enum("50", "60"), "50",
               "Nominal frequency: 10-cycle (50 Hz) or 12-cycle (60 Hz) windows, IEC 61000-4-30.", "Hz"),
        Option("pt_primary", Float(1, 999_999), 1.0, "PT primary.", "V"),
        Option("pt_secondary", Float(1, 999_999), 1.0, "PT secondary.", "V"),
        Option("ct_primary", Float(1, 999_999), 1.0, "CT primary.", "A"),
        Option("ct_secondary", Float(1, 999_999), 1.0, "CT secondary.", "A"),
        Option("invert_inputs", ListOf(Enum(*INPUTS), 0, 7), (),
               "Inputs whose polarity is inverted (e.g. [\"IB\"] for a CT wired backwards)."),
        Option("phase_correction_deg", ListOf(Float(-10.0, 10.0), 7, 7), (0.0,) * 7,
               "PT/CT phase-angle correction per input (IA VA IB VB IC VC IN) at the nominal frequency; "
               "positive advances the input.", "deg"),
        Option("phase_order", Enum("ABC", "ACB"), "ABC", "Normal phase rotation (sequence components)."),
        Option("pf_convention", Enum("IEEE", "IEC"), "IEEE",
               "PF sign: IEEE + lagging / - leading; IEC: the sign of the active power."),
        Option("creep_fraction", Float(0.0, 0.01), 0.0005,
               "No creep: a phase whose current is below this fraction of In registers no energy; the ADE9000's "
               "no-load thresholds (ACT/REACT/APP_NL_LVL, its own energy path) are set from it at start."),
        Option("tdd_demand_current", Float(0.0, 100_000.0), 0.0,
               "I_L for TDD (IEEE 519), primary; 0 uses the nominal current.", "A"),
        Option("loss_compensation", Bool(), False, "Compute the loss-compensated energy registers (EEI form)."),
        Option("loss_va_rated", Float(0.0, 1e10), 0.0, "Transformer rating, all phases.", "VA"),
        Option("loss_v_cal", Float(0.0, 1e7), 0.0, "L-N voltage at which the iron losses are stated.", "V"),
        Option("loss_i_cal", Float(0.0, 1e6), 0.0, "Current at which the copper losses are stated.", "A"),
        Option("loss_del_fe_w", _PCT, 0.0, "Delivered: iron watt loss at Vcal, % of the rating.", "%"),
        Option("loss_del_cu_w", _PCT, 0.0, "Delivered: copper watt loss at Ical, % of the rating.", "%"),
        Option("loss_del_fe_var", _PCT, 0.0, "Delivered: iron var loss at Vcal, % of the rating.", "%"),
        Option("loss_del_cu_var", _PCT, 0.0, "Delivered: copper var loss at Ical, % of the rating.", "%"),
        Option("loss_rec_fe_w", _PCT, 0.0, "Received: iron watt loss at Vcal, % of the rating.", "%"),
        Option("loss_rec_cu_w", _PCT, 0.0, "Received: copper watt loss at Ical, % of the rating.", "%"),
        Option("loss_rec_fe_var", _PCT, 0.0, "Received: iron var loss at Vcal, % of the rating.", "%"),
        Option("loss_rec_cu_var", _PCT, 0.0, "Received: copper var loss at Ical, % of the rating.", "%"),
    ], "The metrology pipeline: what is connected and how it is measured.", sealed=True),
]
