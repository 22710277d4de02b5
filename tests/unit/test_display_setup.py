"""The panel's login and setup dialogue without processes: the meter's login at the display (its lockout, its
security events) and a change shown with its old and new value before it is made."""
from __future__ import annotations

import pytest

from firmware.config.schema import Duration, Enum
from firmware.display.setup import CHARSET, CONFIRM, EDIT, MENU, PASSWORD, USER, DisplaySetup, Setting
from firmware.security.audit import SecurityAudit
from firmware.security.login import Logins
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore
from firmware.storage.eventlog import EventLog
from hal.errors import AccessDenied


def _type(dialog: DisplaySetup, text: str) -> None:
    """Each character by up/down from where the wheel is, accepted with right; then enter."""
    for c in text:
        target = CHARSET.index(c)
        while dialog.char != target:
            dialog.press("up")
        dialog.press("right")
    dialog.press("enter")


@pytest.fixture
def parts(tmp_path):
    users = UserStore(tmp_path, lockout_attempts=3, lockout_duration_s=600)
    users.add("ann", "7x", frozenset({Privilege.SETUP}), frozenset({"display"}))
    users.add("rita", "1", frozenset({Privilege.READ}), frozenset({"display"}))
    users.add("webby", "1", frozenset({Privilege.SETUP}), frozenset({"web"}))
    log = EventLog(tmp_path)
    logins = Logins(users, SecurityAudit(log, None, "display"))
    config = {"display.labels": "ieee", "display.scroll_interval": 8.0}
    applied: list[tuple[str, str, object]] = []

    def settings():
        return [Setting("display.labels", Enum("ieee", "iec"), config["display.labels"]),
                Setting("display.scroll_interval", Duration(1, 3600), config["display.scroll_interval"])]

    def apply(who, key, value):
        if Privilege.SETUP not in who.privileges:
            raise AccessDenied(f"user {who.user!r} lacks the setup privilege")
        applied.append((who.user, key, value))
        config[key] = value
        return f"{key} saved"

    dialog = DisplaySetup(lambda n, p: logins.login(n, p, "display"), settings, apply)
    yield dialog, users, log, applied, config
    logins.close()


def test_login_then_a_change_shows_old_and_new_and_needs_the_confirmation(parts):
    dialog, _, log, applied, config = parts
    dialog.open()
    _type(dialog, "ann")
    assert dialog.state == PASSWORD and dialog.lines()[0] == "User: ann"
    _type(dialog, "7x")
    assert dialog.state == MENU and dialog.lines()[0] == "> display.labels = ieee"
    dialog.press("down")
    dialog.press("enter")
    assert dialog.state == EDIT
    for _ in range(3):
        dialog.press("up")
    dialog.press("enter")
    assert dialog.state == CONFIRM
    assert dialog.lines()[:3] == ["Change display.scroll_interval?", "old: 8 s", "new: 11 s"]
    assert applied == []                                 # nothing changes before the confirmation
    dialog.press("enter")
    assert applied == [("ann", "display.scroll_interval", 11.0)] and config["display.scroll_interval"] == 11.0
    assert dialog.state == MENU and "display.scroll_interval = 11 s" in dialog.lines()[1]
    dialog.press("up")                                  # a change cancelled at the confirmation is not made
    dialog.press("enter")
    dialog.press("up")
    dialog.press("enter")
    assert dialog.lines()[1:3] == ["old: ieee", "new: iec"]
    dialog.press("left")
    assert dialog.state == MENU and len(applied) == 1 and config["display.labels"] == "ieee"
    dialog.press("left")                                # out, logged out
    assert not dialog.active and dialog.who is None


def test_wrong_passwords_lock_the_user_out_of_the_display_only(parts):
    dialog, users, log, applied, _ = parts
    dialog.open()
    for _ in range(3):
        _type(dialog, "ann")
        _type(dialog, "00")
        assert dialog.state == USER and "login refused" in dialog.message
    _type(dialog, "ann")
    _type(dialog, "7x")                                 # the right one, but locked out now
    assert dialog.state == USER and dialog.who is None
    assert users.lockout_state("ann", "display")[1] > 0 and users.lockout_state("ann", "web") == (0, 0.0)
    assert [e["cause"] for e in log.read()][-2:] == ["lockout", "login_invalid"]
    _type(dialog, "webby")                              # not allowed over the display
    _type(dialog, "1")
    assert dialog.state == USER and dialog.who is None


def test_a_user_without_the_privilege_is_told_why_and_nothing_changes(parts):
    dialog, _, _, applied, config = parts
    dialog.open()
    _type(dialog, "rita")
    _type(dialog, "1")
    dialog.press("enter")
    dialog.press("up")
    dialog.press("enter")
    dialog.press("enter")
    assert applied == [] and config["display.labels"] == "ieee"
    assert dialog.state == MENU and "lacks the setup privilege" in dialog.message
