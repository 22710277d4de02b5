"""The panel's setup: a login with the five buttons, then setup changes each confirmed with the old and new value.

ION7400: the display asks for a password before any setup change, locks out after repeated failures, and shows
every change with its old and new value before it is made. Here the login is the meter's own (a user allowed
over the protocol "display", checked by ``firmware.security.login``: the lockout of that user at the display
and the security event), so the panel has no password of its own to leak or forget.

Entering text with five buttons: up/down turn the character under the cursor through ``CHARSET``, right
accepts it and moves on, left removes the last one (on an empty field: back, or out of the setup), enter ends
the field. The user name, then the password (shown as ``*``), then the list of settings. On a setting, enter
edits it: up/down step the new value (a choice to the next choice; a duration by ``DURATION_STEP_S``), enter asks
to confirm with ``old -> new``, enter again applies it, left cancels. Applying goes through ``apply`` (the
service: authorization for the option's privilege, the configuration store, the event log); whatever it says,
or why it refused, is shown. Time is passed in; the service ends the login when the panel leaves ALT.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable

from firmware.config.schema import Duration, Enum, Kind
from hal.errors import MeterError

CHARSET = string.digits + string.ascii_lowercase + string.ascii_uppercase + "._-"
DURATION_STEP_S = 1.0

USER, PASSWORD, MENU, EDIT, CONFIRM = "user", "password", "menu", "edit", "confirm"


@dataclass(frozen=True)
class Setting:
    """One option the panel can change: ``key`` is SECTION.OPTION, ``kind`` its schema kind, ``value`` now."""

    key: str
    kind: Kind
    value: Any

    def step(self, value: Any, direction: int) -> Any:
        if isinstance(self.kind, Enum):
            choices = list(self.kind.choices)
            return choices[(choices.index(value) + direction) % len(choices)]
        if isinstance(self.kind, Duration):
            return min(max(float(value) + direction * DURATION_STEP_S, self.kind.min_s), self.kind.max_s)
        raise MeterError(f"display setup: {self.key} cannot be stepped with the buttons; set it on the web page")


def shown(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, float) else str(value)


@dataclass
class DisplaySetup:
    """The login and setup dialogue. ``login(name, password)`` returns who logged in or raises AccessDenied;
    ``settings()`` lists what can be changed now; ``apply(who, key, value)`` makes a change and returns what to
    show, or raises MeterError with the reason."""

    login: Callable[[str, str], Any]
    settings: Callable[[], list[Setting]]
    apply: Callable[[Any, str, Any], str]
    active: bool = False
    state: str = USER
    who: Any = None
    text: str = ""
    char: int = 0
    name: str = ""
    message: str = ""
    items: list[Setting] = field(default_factory=list)
    index: int = 0
    new_value: Any = None

    def open(self) -> None:
        self.active, self.state, self.who, self.text, self.char, self.name = True, USER, None, "", 0, ""
        self.message = "log in: up/down letter, right next, enter done"

    def close(self) -> None:
        """Out of the setup and logged out (the panel back to NORM, or left on an empty user name)."""
        self.active, self.who, self.text, self.name, self.state = False, None, "", "", USER

    def press(self, button: str) -> None:
        if self.state in (USER, PASSWORD):
            self._type(button)
        elif self.state == MENU:
            self._menu(button)
        elif self.state == EDIT:
            self._edit(button)
        elif self.state == CONFIRM:
            self._confirm(button)

    def _type(self, button: str) -> None:
        if button in ("up", "down"):
            self.char = (self.char + (1 if button == "up" else -1)) % len(CHARSET)
        elif button == "right":
            self.text += CHARSET[self.char]
        elif button == "left":
            if self.text:
                self.text = self.text[:-1]
            elif self.state == PASSWORD:
                self.state, self.text = USER, self.name
            else:
                self.close()
        elif button == "enter":
            self._field_done()

    def _field_done(self) -> None:
        if self.state == USER:
            self.name, self.text, self.char, self.state = self.text, "", 0, PASSWORD
            self.message = f"password of {self.name}"
            return
        password, self.text, self.char = self.text, "", 0
        try:
            self.who = self.login(self.name, password)
        except MeterError as exc:
            self.state, self.name, self.message = USER, "", str(exc)
            return
        self.state, self.index, self.items = MENU, 0, self.settings()
        self.message = f"logged in as {self.name}"

    def _menu(self, button: str) -> None:
        if button in ("up", "down") and self.items:
            self.index = (self.index + (1 if button == "down" else -1)) % len(self.items)
        elif button == "enter" and self.items:
            self.state, self.new_value = EDIT, self.items[self.index].value
            self.message = "up/down: new value, enter: confirm, left: cancel"
        elif button == "left":
            self.close()

    def _edit(self, button: str) -> None:
        item = self.items[self.index]
        if button in ("up", "down"):
            try:
                self.new_value = item.step(self.new_value, 1 if button == "up" else -1)
            except MeterError as exc:
                self.state, self.message = MENU, str(exc)
        elif button == "enter":
            if self.new_value == item.value:
                self.state, self.message = MENU, f"{item.key} unchanged"
            else:
                self.state, self.message = CONFIRM, "enter: make the change, left: cancel"
        elif button == "left":
            self.state, self.message = MENU, "cancelled"

    def _confirm(self, button: str) -> None:
        item = self.items[self.index]
        if button == "enter":
            try:
                self.message = self.apply(self.who, item.key, self.new_value)
            except MeterError as exc:
                self.message = str(exc)
            self.items, self.state = self.settings(), MENU
        elif button == "left":
            self.state, self.message = MENU, "cancelled"

    def lines(self) -> list[str]:
        """What the panel shows now, line by line (the service draws them)."""
        if self.state in (USER, PASSWORD):
            typed = self.text if self.state == USER else "*" * len(self.text)
            return [f"User: {self.name if self.state == PASSWORD else typed + '[' + CHARSET[self.char] + ']'}",
                    f"Password: {typed + '[' + CHARSET[self.char] + ']' if self.state == PASSWORD else ''}",
                    "", *_wrap(self.message)]
        if self.state == MENU:
            rows = [f"{'>' if k == self.index else ' '} {s.key} = {shown(s.value)}" for k, s in enumerate(self.items)]
            return [*rows, "", *_wrap(self.message)]
        item = self.items[self.index]
        if self.state == EDIT:
            return [item.key, f"now: {shown(item.value)}", f"new: {shown(self.new_value)}", "", *_wrap(self.message)]
        return [f"Change {item.key}?", f"old: {shown(item.value)}", f"new: {shown(self.new_value)}", "",
                *_wrap(self.message)]


def _wrap(text: str, width: int = 44) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    return [*lines, line] if line else lines
