"""Options of the acquisition service (ADE9000 streaming and the chip's own energy path).

The wiring and the nominal frequency the chip is set up for (ACCMODE.VCONSEL, ACCMODE.SELFREQ) are
``[metrology] system_type`` and ``nominal_frequency``: configured once, so the chip's energy path always assumes
the wiring the sample path measures, whichever interface changes it."""
from firmware.config.schema import Bool, Duration, Enum, Int, Option, Section

SECTIONS = [
    Section("acquisition", [
        Option("energy_interval", Duration(0.1, 8.0), 1.0,
               "Interval of the chip's energy accumulators (EGY_TIME, EGYRDY), published on 'chip_energy'.", "s", locked=True),
        Option("ring_slots", Int(64, 65536), 2048,
               "Sample blocks kept on the samples ring (2048 blocks of 4 ms = 8.2 s).", "blocks"),
        Option("read_loop", Enum("c", "python"), "c",
               "Who serves IRQ0 and reads the waveform buffer within the chip's 4-ms deadline: a C thread without "
               "the interpreter lock, SCHED_FIFO where permitted (c), or the Python reference driver (python)."),
        Option("lock_memory", Bool(), True,
               "Lock the acquisition process's pages in RAM as it uses them (mlockall, MCL_ONFAULT) so no page the "
               "read loop touched is ever paged out; its buffers and stack are touched before it starts. When "
               "refused (no CAP_IPC_LOCK, low RLIMIT_MEMLOCK) only the loop's own ring is locked, and the log "
               "says so."),
        Option("max_restarts", Int(0, 1000), 10,
               "Chip re-initialisations after a fault before the service gives up and lets the supervisor "
               "restart it."),
    ], "ADE9000 acquisition: samples ring and chip energy."),
]
