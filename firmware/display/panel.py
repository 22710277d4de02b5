"""Which screen the display shows: the NORM, ALT and TEST modes and the five buttons (ION7400 display modes).

NORM scrolls through the configured screens, one every ``scroll_s``. Any button enters ALT: up/down (and
left/right) step through every screen and, last, the setup (login, then setup changes:
``firmware.display.setup``), enter on the alarm screen acknowledges the alarms and enter on the setup screen
opens the login; ALT returns to NORM after ``alt_timeout_s`` without a press. While the revenue registers are in test mode the display is in TEST:
it shows the test registers, and the buttons browse the other screens as in ALT. Time is passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from firmware.display import SCREENS

NORM, ALT, TEST = "NORM", "ALT", "TEST"
SETUP = "setup"             # the screen in ALT's order that leads to the login; never in NORM's scroll


@dataclass
class Panel:
    norm_screens: tuple[str, ...] = SCREENS
    scroll_s: float = 8.0
    alt_timeout_s: float = 60.0
    screens: tuple[str, ...] = SCREENS
    mode: str = NORM
    screen: str = field(default="")
    _since: float = 0.0             # when the shown NORM screen came up
    _pressed_at: float | None = None

    def __post_init__(self) -> None:
        self.screen = self.norm_screens[0] if self.norm_screens else self.screens[0]

    def press(self, button: str, t: float) -> str | None:
        """A button press; returns "ack" when it asks to acknowledge the alarms, "setup" to open the login."""
        self._pressed_at = t
        if self.mode == NORM:
            self.mode = ALT
            return None                     # the first press wakes ALT on the screen shown
        if button == "enter" and self.screen == "alarms":
            return "ack"
        if button == "enter" and self.screen == SETUP:
            return SETUP
        if button in ("up", "left", "down", "right"):
            order = self.screens + (SETUP,) + (("test",) if self.mode == TEST else ())
            k = order.index(self.screen) if self.screen in order else 0
            step = -1 if button in ("up", "left") else 1
            self.screen = order[(k + step) % len(order)]
        return None

    def touch(self, t: float) -> None:
        """A press the setup dialogue took: ALT stays up while someone works the buttons."""
        self._pressed_at = t

    def update(self, t: float, test_mode: bool) -> tuple[str, str]:
        """(mode, screen) at time ``t``."""
        browsing = self._pressed_at is not None and t - self._pressed_at < self.alt_timeout_s
        if test_mode:
            if self.mode != TEST:
                self.mode, self.screen = TEST, "test"
            elif not browsing:
                self.screen = "test"
            return self.mode, self.screen
        if self.mode == TEST or (self.mode == ALT and not browsing):
            self.mode, self._pressed_at = NORM, None
            self.screen, self._since = self.norm_screens[0], t
        if self.mode == NORM and t - self._since >= self.scroll_s:
            k = self.norm_screens.index(self.screen) if self.screen in self.norm_screens else -1
            self.screen = self.norm_screens[(k + 1) % len(self.norm_screens)]
            self._since = t
        return self.mode, self.screen
