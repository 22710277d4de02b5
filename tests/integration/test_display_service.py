"""The display service as the supervisor runs it on the simulated board: PNG screens, NORM auto-scroll, the
buttons driven through the simulated GPIO wire (ALT, browsing, enter on the alarm screen acknowledging the
io service's alarms)."""
from __future__ import annotations

import time

from PIL import Image

from firmware.config.board import load_board
from tests.conftest import REPO
from tests.support.io_meter import IoMeter

BUTTONS = dict(zip(("up", "down", "left", "right", "enter"), load_board(REPO / "boards" / "sim.toml").gpio.buttons))
DI1 = load_board(REPO / "boards" / "sim.toml").gpio.digital_inputs[0]


def _press(meter: IoMeter, button: str) -> None:
    """A clean 60-ms press (the buttons are pulled up: pressed = low), returning once the button has been up
    for longer than the 20-ms debounce: a press sooner after the release would be a bounce of it."""
    pin = BUTTONS[button]
    t = time.monotonic_ns()
    meter.wire.drive(pin, False, t)
    meter.wire.drive(pin, True, t + 60_000_000)
    time.sleep(0.1)


def test_display_scrolls_in_norm_and_the_buttons_browse_and_acknowledge(tmp_path):
    meter = IoMeter(tmp_path, """
[display]
screens = ["energy", "vip", "nameplate"]
scroll_interval = 1
refresh = 0.2
alt_timeout = 5
[[io.input]]
number = 1
alarm_priority = 150
""", services="io,display")
    meter.start()
    try:
        status = meter.wait(lambda: (s := meter.call("display.status"))["renders"] > 0 and s, 60)
        assert status["mode"] == "NORM"
        seen = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen) < 3:
            seen.add(meter.call("display.status")["screen"])
            time.sleep(0.1)
        assert seen == {"energy", "vip", "nameplate"}          # NORM scrolls the configured screens
        png = Image.open(meter.data / "display" / "display.png")
        assert png.size == (320, 240)
        # an alarm on DI1, then the panel: first press wakes ALT, then down to the alarm screen and enter
        # (the meter's start raised its Power Up alarm too: the DI1 alarm is looked for by its source)
        meter.wire.drive(DI1, False)
        meter.wait(lambda: (a := _di1_alarm(meter)) is not None and not a["acknowledged"], 10)
        _press(meter, "down")
        meter.wait(lambda: meter.call("display.status")["mode"] == "ALT", 10)
        for _ in range(10):
            if meter.call("display.status")["screen"] == "alarms":
                break
            before = meter.call("display.status")["presses"]
            _press(meter, "down")
            meter.wait(lambda b=before: meter.call("display.status")["presses"] > b, 10)
        assert meter.call("display.status")["screen"] == "alarms"
        assert (meter.data / "display" / "alarms.png").exists()
        _press(meter, "enter")
        alarm = meter.wait(lambda: (a := _di1_alarm(meter)) is not None and a["acknowledged"] and a, 10)
        assert alarm["acknowledged_by"].startswith("display (uid ")   # name, uid, pid
        assert meter.call("io.alarms")["alarm_unacknowledged_count"] == 0       # enter acknowledges every alarm
        # no press for alt_timeout: back to NORM
        meter.wait(lambda: meter.call("display.status")["mode"] == "NORM", 15)
    finally:
        meter.stop()


def _di1_alarm(meter: IoMeter) -> dict | None:
    return next((a for a in meter.call("io.alarms")["active"] if a["source"] == "di1"), None)


def _type(meter: IoMeter, text: str) -> None:
    from firmware.display.setup import CHARSET
    for c in text:
        for _ in range(CHARSET.index(c)):       # the wheel starts at CHARSET[0] for each field
            _press(meter, "up")
        _press(meter, "right")
    _press(meter, "enter")


def test_display_login_and_a_setup_change_confirmed_with_old_and_new_value(tmp_path):
    from firmware.config.store import ConfigStore
    from firmware.security.privileges import Privilege
    from firmware.security.users import UserStore
    from firmware.storage.eventlog import EventLog

    meter = IoMeter(tmp_path, "[display]\nscreens = [\"energy\"]\nrefresh = 0.2\nalt_timeout = 60\n",
                    services="display")
    meter.data.mkdir(parents=True, exist_ok=True)
    users = UserStore(meter.data)
    users.add("a", "1", frozenset({Privilege.SETUP}), frozenset({"display"}))
    users.close()
    meter.start()
    try:
        meter.wait(lambda: meter.call("display.status")["renders"] > 0, 60)
        _press(meter, "down")                  # wakes ALT
        _press(meter, "up")                    # from the first screen back to the last of ALT's: setup
        meter.wait(lambda: meter.call("display.status")["screen"] == "setup", 10)
        _press(meter, "enter")
        _type(meter, "a")
        _type(meter, "0")                      # a wrong password first: refused, counted at the display
        status = meter.wait(lambda: (s := meter.call("display.status"))["setup"]["state"] == "user" and
                            "login refused" in " ".join(s["setup"]["lines"]) and s, 10)
        _type(meter, "a")
        _type(meter, "1")
        meter.wait(lambda: meter.call("display.status")["setup"]["user"] == "a", 10)
        _press(meter, "enter")                 # edit display.labels
        _press(meter, "up")
        _press(meter, "enter")                 # asks to confirm, showing old and new
        status = meter.wait(lambda: (s := meter.call("display.status"))["setup"]["state"] == "confirm" and s, 10)
        assert status["setup"]["lines"][:3] == ["Change display.labels?", "old: ieee", "new: iec"]
        assert ConfigStore(meter.config).load()["display"].labels == "ieee"      # not before the confirmation
        _press(meter, "enter")
        meter.wait(lambda: meter.call("display.status")["changes"] == 1, 10)
        config = ConfigStore(meter.config).load()
        assert config["display"].labels == "iec" and config["meta"].changed_by == "a"
        events = [(e["cause"], e["user"], e["effect"]) for e in EventLog(meter.data).read()]
        assert ("login_invalid", "a", "wrong user name or password over display") in events
        assert ("config_change", "a", "display.labels: ieee -> iec") in events
    finally:
        meter.stop()
