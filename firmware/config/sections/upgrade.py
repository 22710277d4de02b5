"""Field upgrade: where the A/B slots and the upgrade state live, the health deadline, the checks."""
from firmware.config.schema import Bool, Duration, Int, Option, Section, Str

SECTIONS = [
    Section("upgrade", [
        Option("root", Str(255), "var/upgrade",
               "Directory holding the two slots (slots/a, slots/b) and the pointers 'current' (slot to "
               "boot) and 'good' (last slot that reported healthy). On the CM4: /opt/openmeter.", local=True,
               locked=True),
        Option("state_dir", Str(255), "var/upgrade/state",
               "Upgrade state kept across slots: trial record, anti-rollback floor, upgrade log. On the "
               "CM4 it sits on the data partition: /var/lib/openmeter/upgrade.", local=True, locked=True),
        Option("trust_store", Str(255), "var/upgrade/trust",
               "Directory of the trust store (trust.json: public keys accepted for image signatures).", local=True,
               locked=True),
        Option("board", Str(64), "sim",
               "Board name an image must list as compatible (the name in the board file in use)."),
        Option("health_deadline", Duration(5, 3600), 120.0,
               "Time a newly installed slot has to report healthy (all services up and metering) before "
               "the meter falls back to the previous slot.", "s"),
        Option("health_poll", Duration(0.1, 30), 1.0, "Interval between status requests to a new slot.", "s"),
        Option("max_trial_boots", Int(1, 10), 2,
               "Starts of a new slot (e.g. across power cycles) without a healthy report before it is "
               "given up."),
        Option("free_space_margin", Int(0, 1 << 34), 16 * 1024 * 1024,
               "Free space kept beyond the image's own size when installing.", "bytes"),
        Option("revenue_lock_file", Str(255), "var/revenue_lock",
               "Simulated revenue lock: the meter is locked while this file holds 'locked' (or 1, on, "
               "true). Used until the board's revenue-lock GPIO is read through the HAL.", local=True, locked=True),
        Option("log_depth", Int(10, 100000), 2000, "Upgrade log records kept (circular).", locked=True),
        Option("system_site_packages", Bool(), False,
               "Let each slot's Python environment also see the system's Python packages: on the CM4 image "
               "the SPI binding comes from Debian (python3-spidev) rather than from the image.", local=True,
               locked=True),
    ], "Signed firmware images installed to the inactive of two slots, with automatic fallback.",
       privilege="master"),
]
