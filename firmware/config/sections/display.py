"""The front-panel display: screens, modes, labels (SPEC §6; ION7400 manual "Display")."""
from firmware.config.schema import Bool, Duration, Enum, ListOf, Option, Section, Str

# The panel's screens, in their default scroll order (firmware.display draws them; its panel browses them).
SCREENS = ("energy", "demand", "vip", "harmonics", "phasors", "alarms", "nameplate")

SECTIONS = [
    Section("display", [
        Option("enabled", Bool(), True, "Run the display service."),
        Option("output", Enum("auto", "framebuffer", "png"), "auto",
               "auto: the framebuffer on a real board, PNG files on the simulated one."),
        Option("framebuffer", Str(64, r"/dev/fb[0-9]+", "/dev/fbN"), "/dev/fb0", "Framebuffer device of the panel.",
               local=True),
        Option("png_dir", Str(255), "display",
               "Simulation: PNG files of the screens (display.png is the one shown), relative to data_dir.", local=True),
        Option("screens", ListOf(Enum(*SCREENS), 1, len(SCREENS)), SCREENS,
               "Screens NORM mode scrolls through, in order; ALT mode browses all of them."),
        Option("scroll_interval", Duration(1, 3600), 8.0, "NORM: time each screen is shown.", "s"),
        Option("alt_timeout", Duration(5, 3600), 60.0, "ALT returns to NORM after this long without a press.", "s"),
        Option("labels", Enum("ieee", "iec"), "ieee",
               "Quantity labels on the display (IEEE: Van, Ia, W, VAR, VA; IEC: U1, I1, P, Q, S) and on the web "
               "pages (phases A, B, C or L1, L2, L3)."),
        Option("refresh", Duration(0.2, 60), 1.0, "How often the shown screen is redrawn.", "s"),
    ], "Front-panel display (docs/io.md)."),
]
