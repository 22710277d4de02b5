"""The front panel: 320x240 colour screens rendered with Pillow, the NORM/ALT/TEST modes, five buttons.

``screens`` draws each screen from the published points (numbers in, an image out); ``panel`` decides which
screen is shown (modes, buttons, auto-scroll) without clocks of its own; ``output`` writes an image to the
Linux framebuffer on the device or to PNG files in simulation. The display service
(``firmware.services.display``) runs them.
"""
from __future__ import annotations

from firmware.config.sections.display import SCREENS  # noqa: F401  (the options validate against the same list)

WIDTH = 320
HEIGHT = 240
BUTTONS = ("up", "down", "left", "right", "enter")      # board file [gpio] buttons, in this order
