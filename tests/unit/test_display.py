"""The front panel without processes: each screen drawn and compared with its reference image, the modes and
buttons of the panel, the framebuffer's RGB565 format, number formatting and the legal code hash."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from firmware.display.fmt import scaled
from firmware.display.output import FramebufferOutput, PngOutput, rgb565
from firmware.display.panel import ALT, NORM, TEST, Panel
from firmware.display.screens import DRAW, Context, render
from firmware.upgrade.legal import legal_files, legal_hash
from tests.support.display_values import sample_values

REFERENCE = Path(__file__).parent / "display_reference"
NAMEPLATE = {"Meter": "meter  SIM-000001", "Firmware": "0.1.0", "Code SHA-256": "0123456789abcdef",
             "Config": "version 3", "Volts mode": "4W-WYE", "PT": "1 : 1 V", "CT": "1 : 1 A"}
# Tolerance for font rendering (FreeType builds differ in hinting and antialiasing, glyphs may move by a
# pixel): each pixel is compared with the reference's pixels within one pixel of it and the closest counts;
# the mean over the screen must stay under 3 of 255 and the mean over every 16x16 tile under 24. Measured: a
# one-pixel shift of the whole screen 3.6 per tile, a 0.6-px blur of every glyph 14.5, 8 % more brightness
# 11.3; an OVER mark in place of a number 37, a missing harmonic bar more. What the screens say (numbers,
# labels) is checked exactly from the texts drawn.
MEAN_TOL = 3.0
TILE_TOL = 24.0
TILE = 16


def _context(labels: str = "ieee", **overrides: float) -> Context:
    values = {**sample_values(), **overrides}
    return Context(values, labels, "NORM", "12:34:56", 230.0, 5.0, NAMEPLATE,
                   {4: "Freq Setpoint", 12: "Digital In 2"})


def _difference(a: Image.Image, b: Image.Image) -> tuple[float, float]:
    """(mean, worst 16x16 tile mean) of each pixel's smallest difference to the reference within one pixel."""
    x = np.asarray(a.convert("RGB"), dtype=float)
    y = np.pad(np.asarray(b.convert("RGB"), dtype=float), ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    best = np.min([np.abs(x - y[dy:dy + h, dx:dx + w]).max(axis=2) for dy in range(3) for dx in range(3)], axis=0)
    tiles = best.reshape(h // TILE, TILE, w // TILE, TILE).mean(axis=(1, 3))
    return float(best.mean()), float(tiles.max())


def _matches(img: Image.Image, reference: Image.Image) -> bool:
    mean, tile = _difference(img, reference)
    return mean < MEAN_TOL and tile < TILE_TOL


@pytest.mark.parametrize("screen", sorted(DRAW))
def test_each_screen_matches_its_reference_image(screen, tmp_path):
    img = render(screen, _context())
    assert img.size == (320, 240)
    out = PngOutput(tmp_path)
    out.show(img, screen)                      # through the simulation backend, as the service writes it
    shown = Image.open(tmp_path / f"{screen}.png")
    reference_path = REFERENCE / f"{screen}.png"
    if os.environ.get("METER_UPDATE_DISPLAY_REFERENCE"):
        shown.save(reference_path)
    reference = Image.open(reference_path)
    mean, tile = _difference(shown, reference)
    assert mean < MEAN_TOL and tile < TILE_TOL, (screen, mean, tile)


def test_the_comparison_sees_an_overrange_mark_and_a_missing_bar():
    reference = Image.open(REFERENCE / "vip.png")
    assert _matches(render("vip", _context()), reference)
    assert not _matches(render("vip", _context(i_c=5.0)), reference)        # OVER mark gone, a number instead
    h = sample_values()["harmonics_v_an"].copy()
    h[5] = 0.0
    assert not _matches(render("harmonics", _context(harmonics_v_an=h)), Image.open(REFERENCE / "harmonics.png"))


def test_what_the_screens_say_with_ieee_and_iec_labels():
    ieee = _context()
    render("vip", ieee)
    assert ieee.drawn[:3] == ["V  I  P  PF", "NORM", "12:34:56"]
    assert ieee.drawn[3:9] == ["Van", "230.12 V", "Ia", "5.0010 A", "Vbn", "229.87 V"]
    assert "OVER A" in ieee.drawn                       # Ic 12.5 A: past 2 x 5 A, the input's range
    assert ieee.drawn[-13:] == ["W", "3.4487", "kW", "VAR", "-12.300", "VAR", "VA", "3.4512", "kVA", "PF", "0.9993", "Freq",
            "50.002 Hz"]
    iec = _context("iec")
    render("vip", iec)
    assert iec.drawn[3:6] == ["U1", "230.12 V", "I1"] and "var" in iec.drawn and "P" in iec.drawn
    energy = _context()
    render("energy", energy)
    assert energy.drawn[3:9] == ["W del", "1.234568", "MWh", "W rec", "12.50000", "Wh"]
    assert "----" in energy.drawn                       # varh received not available
    alarms = _context()
    render("alarms", alarms)
    assert [t for t in alarms.drawn if t in (
        "Freq Setpoint", "ACTIVE !", "Digital In 2", "ended")] == ["Freq Setpoint", "ACTIVE !", "Digital In 2", "ended"]
    assert "events unread 3" in alarms.drawn                # the event log's unread counter (io's events_unread)
    plate = _context()
    render("nameplate", plate)
    assert "0123456789abcdef" in plate.drawn and "version 3" in plate.drawn


def test_overrange_missing_values_and_auto_scaling():
    assert scaled(1234567.8, "Wh", 7).text == "1.234568" and scaled(1234567.8, "Wh", 7).unit == "MWh"
    assert scaled(3448.7, "W").text == "3.4487" and scaled(3448.7, "W").unit == "kW"
    assert scaled(math.nan, "V").text == "----"
    assert scaled(12.5, "A", 5, limit=10.0).over and scaled(12.5, "A", 5, limit=10.0).text == "OVER"
    assert scaled(0.9993, "", 5).text == "0.9993" and scaled(50.002, "Hz").text == "50.002"


def test_panel_norm_scrolls_alt_on_a_button_times_out_and_test_mode_takes_over():
    p = Panel(("energy", "vip", "alarms"), scroll_s=8.0, alt_timeout_s=60.0)
    assert p.update(0.0, False) == (NORM, "energy")
    assert p.update(7.9, False) == (NORM, "energy")
    assert p.update(8.0, False) == (NORM, "vip")
    assert p.update(16.0, False) == (NORM, "alarms")
    assert p.update(24.0, False) == (NORM, "energy")
    assert p.press("down", 25.0) is None and p.update(25.0, False) == (ALT, "energy")   # first press wakes ALT
    p.press("down", 26.0)
    p.press("down", 27.0)
    assert p.update(27.0, False) == (ALT, "vip")            # ALT browses every screen: energy, demand, vip
    p.press("up", 28.0)
    assert p.update(80.0, False) == (ALT, "demand")         # no scrolling in ALT
    assert p.update(88.1, False) == (NORM, "energy")        # 60 s after the last press
    p.press("enter", 90.0)
    while p.screen != "alarms":
        p.press("down", 92.0)
    assert p.press("enter", 93.0) == "ack"
    assert p.update(94.0, True) == (TEST, "test")
    p.press("down", 95.0)
    assert p.update(95.0, True)[1] != "test"                # buttons browse while in test mode
    assert p.update(200.0, True) == (TEST, "test")
    assert p.update(201.0, False) == (NORM, "energy")


def test_framebuffer_gets_rgb565_rows_at_the_stride(tmp_path):
    img = Image.new("RGB", (320, 240), (255, 0, 0))
    img.putpixel((1, 0), (0, 255, 0))
    img.putpixel((2, 0), (0, 0, 255))
    img.putpixel((3, 0), (255, 255, 255))
    words = rgb565(img)
    assert [int(w) for w in words[0, :4]] == [0xF800, 0x07E0, 0x001F, 0xFFFF]
    sysfs = tmp_path / "sys"
    (sysfs / "fb0").mkdir(parents=True)
    (sysfs / "fb0" / "bits_per_pixel").write_text("16\n")
    (sysfs / "fb0" / "stride").write_text("1280\n")            # a panel with 640-pixel rows in memory
    device = tmp_path / "fb0"
    device.write_bytes(b"")
    fb = FramebufferOutput(device, sysfs)
    fb.show(img, "vip")
    fb.close()
    data = np.frombuffer(device.read_bytes(), dtype="<u2")
    rows = data[: 239 * 640 + 320]
    assert int(rows[1]) == 0x07E0 and int(rows[640]) == 0xF800 and int(rows[239 * 640 + 319]) == 0xF800
    (sysfs / "fb0" / "bits_per_pixel").write_text("32\n")
    with pytest.raises(Exception, match="RGB565"):
        FramebufferOutput(device, sysfs)


def test_legal_hash_covers_the_metrology_and_revenue_code_and_changes_with_it(tmp_path):
    files = {p.as_posix() for p in legal_files()}
    assert any("/metrology/" in f for f in files) and any(f.endswith("firmware/revenue/engine.py") for f in files)
    assert any(f.endswith("hal/ade9000_map.toml") for f in files)
    assert not any("/firmware/display/" in f for f in files)
    h = legal_hash()
    assert len(h) == 64 and legal_hash() == h
    root = tmp_path / "copy"
    (root / "metrology").mkdir(parents=True)
    (root / "metrology" / "a.py").write_text("x = 1\n")
    first = legal_hash(root)
    (root / "metrology" / "a.py").write_text("x = 2\n")
    assert legal_hash(root) != first


def test_freetype_renders_each_text_once_and_the_pixels_stay_the_same():
    """A screen drawn again with the same values renders no text again, one whose number changed renders only
    that number, and every picture is the same, pixel for pixel, as one drawn with no rendered text kept."""
    from firmware.display import screens

    def misses() -> int:
        return sum(f.misses for f in screens._FONTS.values())

    for screen in sorted(DRAW):
        screens._FONTS.clear()
        first = render(screen, _context()).tobytes()
        rendered = misses()
        assert render(screen, _context()).tobytes() == first and misses() == rendered
        changed = render(screen, _context(v_an=231.77, wh_delivered=123456.7, p_demand_delivered=4321.0))
        screens._FONTS.clear()
        assert render(screen, _context(v_an=231.77, wh_delivered=123456.7,
                                       p_demand_delivered=4321.0)).tobytes() == changed.tobytes()
    screens._FONTS.clear()
    render("vip", _context())
    rendered = misses()
    render("vip", _context(v_an=231.77))
    assert 0 < misses() - rendered <= 2              # the number (and its box), nothing else


def test_the_simulated_panel_writes_each_picture_once_as_an_unfiltered_png(tmp_path):
    """The picture decodes to the rendered screen pixel for pixel; its rows are stored unfiltered (no search of
    the five PNG row filters per row, which was most of the display's time) and the screen's own file is a
    second name of display.png, not a second write; the next picture leaves the last one's file as it was."""
    import zlib

    out = PngOutput(tmp_path)
    img = render("vip", _context())
    out.show(img, "vip")
    shown, screen = tmp_path / "display.png", tmp_path / "vip.png"
    assert np.array_equal(np.asarray(Image.open(shown).convert("RGB")), np.asarray(img.convert("RGB")))
    assert os.stat(shown).st_ino == os.stat(screen).st_ino
    data = shown.read_bytes()
    idat = data.index(b"IDAT")
    size = int.from_bytes(data[idat - 4:idat], "big")
    rows = zlib.decompress(data[idat + 4:idat + 4 + size])
    width = 1 + 3 * img.size[0]
    assert len(rows) == width * img.size[1] and all(rows[k] == 0 for k in range(0, len(rows), width))
    other = render("energy", _context())
    out.show(other, "energy")
    assert np.array_equal(np.asarray(Image.open(screen).convert("RGB")), np.asarray(img.convert("RGB")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["display.png", "energy.png", "vip.png"]
