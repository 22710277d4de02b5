"""The display's screens, drawn with Pillow from the published points: numbers in, a 320x240 image out.

Every screen has the same frame: a title bar with the screen's name, the mode (NORM, ALT, TEST), the alarm
bell in the colour of the highest active or unacknowledged alarm's band (ION7400: High red, Medium yellow,
Low blue; Info and None show no bell) and the time passed in; then the body. The font is Pillow's own
(``ImageFont.load_default``), so nothing depends on the fonts a system has. Values that are not available
show ``----``; values beyond the measuring range show OVER in red rather than a number nobody should read.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, cast

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from firmware.display import HEIGHT, WIDTH
from firmware.display.fmt import LABELS, Shown, scaled
from firmware.storage.eventlog import band

BG = (12, 18, 28)
FG = (235, 235, 235)
DIM = (140, 150, 165)
ACCENT = (80, 170, 255)
BAR = (30, 40, 58)
RED, YELLOW, BLUE, GREEN = (230, 50, 50), (240, 200, 40), (60, 120, 240), (60, 200, 90)
BAND_COLOURS = {"high": RED, "medium": YELLOW, "low": BLUE}
PHASE_COLOURS = (RED, YELLOW, BLUE)
TITLE_H = 22
# Measuring range for the overrange mark, as multiples of the nominal (the board's inputs: 5 A nominal on a
# 10-A class CT input, and the voltage divider's 1000 V peak full scale over 230 V).
V_RANGE = 2.0
I_RANGE = 2.0

_FONTS: dict[int, Any] = {}
# Rendered texts each font keeps: a screen's labels, units and title are the same every second while its
# numbers change, and FreeType's rendering was most of the display's CPU. Enough for every text of every
# screen (some 30 each) and their recent values; the oldest goes first.
TEXT_CACHE_ENTRIES = 512


class _CachedFont(ImageFont.FreeTypeFont):
    """Pillow's FreeType font that keeps the masks (and boxes) of the texts it rendered: the same text in the
    same mode, anchor and sub-pixel start is the same mask, which ``ImageDraw`` only reads."""

    masks: OrderedDict[tuple[Any, ...], Any]
    hits = 0
    misses = 0

    def getmask2(self, text: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if args and args[0] == "RGBA":  # a colour font's mask, which ImageDraw changes before it pastes it
            return super().getmask2(text, *args, **kwargs)
        return self._cached("mask", super().getmask2, text, args, kwargs)

    def getbbox(self, text: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._cached("bbox", super().getbbox, text, args, kwargs)

    def _cached(self, kind: str, render: Callable[..., Any], text: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        key = (kind, text, *(tuple(a) if isinstance(a, list) else a for a in args), *sorted(kwargs.items()))
        try:
            out = self.masks[key]
        except KeyError:
            pass
        except TypeError:               # an argument that cannot be a key: rendered as it is
            return render(text, *args, **kwargs)
        else:
            self.masks.move_to_end(key)
            self.hits += 1
            return out
        out = render(text, *args, **kwargs)
        self.misses += 1
        self.masks[key] = out
        if len(self.masks) > TEXT_CACHE_ENTRIES:
            self.masks.popitem(last=False)
        return out


def font(size: int) -> Any:
    if size not in _FONTS:
        loaded = ImageFont.load_default(size=size)
        if isinstance(loaded, ImageFont.FreeTypeFont):
            loaded.__class__ = _CachedFont
            cast(_CachedFont, loaded).masks = OrderedDict()
        _FONTS[size] = loaded
    return _FONTS[size]


@dataclass
class Context:
    values: Mapping[str, Any]
    labels: str = "ieee"
    mode: str = "NORM"
    clock: str = ""
    nominal_v: float = 230.0
    nominal_i: float = 5.0
    nameplate: dict[str, str] = field(default_factory=dict)
    alarm_names: dict[int, str] = field(default_factory=dict)
    drawn: list[str] = field(default_factory=list)      # every text drawn, in order (what the screen says)

    def v(self, name: str) -> float:
        raw = self.values.get(name, math.nan)
        try:
            return float(raw)
        except (TypeError, ValueError):
            return math.nan

    def arr(self, name: str) -> np.ndarray:
        return np.asarray(self.values.get(name, ()), dtype=float).reshape(-1)

    def label(self, key: str) -> str:
        return LABELS[self.labels][key]


class _Draw(ImageDraw.ImageDraw):
    """ImageDraw that keeps the texts it draws in ``ctx.drawn``: what a screen says can be read back exactly,
    while its pixels are compared with a tolerance for font rendering."""

    def __init__(self, img: Image.Image, drawn: list[str]) -> None:
        super().__init__(img)
        self.drawn = drawn

    def text(self, xy: Any, text: Any, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.drawn.append(str(text))
        super().text(xy, text, *args, **kwargs)


def _frame(ctx: Context, title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (WIDTH, HEIGHT), BG)
    ctx.drawn.clear()
    d = _Draw(img, ctx.drawn)
    d.rectangle((0, 0, WIDTH - 1, TITLE_H - 1), fill=BAR)
    d.text((6, 4), title, font=font(14), fill=FG)
    d.text((176, 5), ctx.mode, font=font(12), fill=YELLOW if ctx.mode == "TEST" else ACCENT)
    d.text((262, 5), ctx.clock, font=font(12), fill=DIM)
    colour = BAND_COLOURS.get(band(int(ctx.v("alarm_highest_priority")) if math.isfinite(
        ctx.v("alarm_highest_priority")) else 0))
    if colour is not None:
        _bell(d, 228, 3, colour)
    return img, d


def _bell(d: ImageDraw.ImageDraw, x: int, y: int, colour: tuple[int, int, int]) -> None:
    d.pieslice((x, y, x + 16, y + 22), 180, 360, fill=colour)
    d.rectangle((x, y + 10, x + 16, y + 13), fill=colour)
    d.ellipse((x + 6, y + 13, x + 10, y + 17), fill=colour)


def _row(d: ImageDraw.ImageDraw, y: int, label: str, shown: Shown, size: int = 18) -> None:
    d.text((10, y), label, font=font(size - 2), fill=DIM)
    colour = RED if shown.over else FG
    box = d.textbbox((0, 0), shown.text, font=font(size))
    d.text((228 - (box[2] - box[0]), y), shown.text, font=font(size), fill=colour)
    d.text((236, y + 2), shown.unit, font=font(size - 4), fill=DIM)


# ---------------------------------------------------------------------------------------------- screens

def energy(ctx: Context) -> Image.Image:
    img, d = _frame(ctx, "Energy")
    rows = (("W del", "wh_delivered", "Wh"), ("W rec", "wh_received", "Wh"),
            ("VAR del" if ctx.labels == "ieee" else "Q del", "varh_delivered", "varh"),
            ("VAR rec" if ctx.labels == "ieee" else "Q rec", "varh_received", "varh"),
            ("VA del" if ctx.labels == "ieee" else "S del", "vah_delivered", "VAh"))
    for k, (label, name, unit) in enumerate(rows):
        _row(d, 34 + 40 * k, label, scaled(ctx.v(name), unit, 7))
    return img


def demand(ctx: Context) -> Image.Image:
    img, d = _frame(ctx, "Demand")
    p, q, s = ctx.label("p"), ctx.label("q"), ctx.label("s")
    rows = ((f"{p} dmd", "p_demand_delivered", "W"), (f"{p} pred", "p_demand_delivered_predicted", "W"),
            (f"{p} peak", "p_demand_delivered_peak", "W"), (f"{q} dmd", "q_demand_delivered", "var"),
            (f"{s} dmd", "s_demand", "VA"))
    for k, (label, name, unit) in enumerate(rows):
        _row(d, 30 + 34 * k, label, scaled(ctx.v(name), unit))
    left = ctx.v("demand_interval_remaining")
    d.text((10, 206), "interval ends in " + ("----" if not math.isfinite(left) else f"{int(left) // 60}:"
                                                                                      f"{int(left) % 60:02d}"),
           font=font(13), fill=DIM)
    return img


def vip(ctx: Context) -> Image.Image:
    img, d = _frame(ctx, "V  I  P  PF")
    vmax, imax = V_RANGE * ctx.nominal_v, I_RANGE * ctx.nominal_i
    for k, ph in enumerate("abc"):
        y = 30 + 30 * k
        d.text((10, y), ctx.label(f"v_{ph}n"), font=font(15), fill=PHASE_COLOURS[k])
        v = scaled(ctx.v(f"v_{ph}n"), "V", 5, vmax)
        d.text((60, y), f"{v.text} {v.unit}", font=font(15), fill=RED if v.over else FG)
        d.text((170, y), ctx.label(f"i_{ph}"), font=font(15), fill=PHASE_COLOURS[k])
        i = scaled(ctx.v(f"i_{ph}"), "A", 5, imax)
        d.text((210, y), f"{i.text} {i.unit}", font=font(15), fill=RED if i.over else FG)
    _row(d, 124, ctx.label("p"), scaled(ctx.v("p_total"), "W"))
    _row(d, 150, ctx.label("q"), scaled(ctx.v("q_total"), "VAR" if ctx.labels == "ieee" else "var"))
    _row(d, 176, ctx.label("s"), scaled(ctx.v("s_total"), "VA"))
    pf, f = scaled(ctx.v("pf_total"), "", 5), scaled(ctx.v("frequency"), "Hz", 5)
    d.text((10, 206), ctx.label("pf"), font=font(16), fill=DIM)
    d.text((60, 204), pf.text, font=font(18), fill=FG)
    d.text((170, 206), ctx.label("freq"), font=font(16), fill=DIM)
    d.text((214, 204), f"{f.text} {f.unit}", font=font(18), fill=FG)
    return img


def harmonics(ctx: Context) -> Image.Image:
    """Voltage harmonics 2..31 of phase A in % of the fundamental, with THD."""
    img, d = _frame(ctx, f"Harmonics {ctx.label('v_an')}")
    h = ctx.arr("harmonics_v_an")
    x0, y0, w, hgt = 34, 200, 278, 160
    d.line((x0, y0, x0 + w, y0), fill=DIM)
    d.line((x0, y0, x0, y0 - hgt), fill=DIM)
    fund = h[1] if h.size > 1 else math.nan
    orders = range(2, 32)
    pct = [100.0 * h[n] / fund if h.size > n and math.isfinite(fund) and fund > 0 else math.nan for n in orders]
    finite = [p for p in pct if math.isfinite(p)]
    top = max(5.0, math.ceil(max(finite, default=0.0)))          # the axis scales to the largest, 5 % at least
    for frac in (0.5, 1.0):
        y = y0 - hgt * frac
        d.text((4, y - 6), f"{top * frac:g}%", font=font(10), fill=DIM)
    bw = w / len(pct)
    for k, p in enumerate(pct):
        if not math.isfinite(p):
            continue
        x = x0 + 2 + k * bw
        bar_top = min(y0 - hgt * min(p / top, 1.0), y0 - 1)
        d.rectangle((x, bar_top, x + bw - 3, y0 - 1), fill=ACCENT if (k + 2) % 2 else GREEN)
        if (k + 2) in (3, 5, 7, 11, 13, 21, 31):
            d.text((x - 1, y0 + 3), str(k + 2), font=font(10), fill=DIM)
    thd = scaled(ctx.v("thd_v_an"), "%", 3)
    d.text((x0 + 120, 28), f"{ctx.label('thd')} {thd.text} {thd.unit}", font=font(14), fill=FG)
    return img


def phasors(ctx: Context) -> Image.Image:
    """Fundamental phasors, Va on +x, counter-clockwise positive (SPEC §2); voltages to the outer circle,
    currents scaled to their largest."""
    img, d = _frame(ctx, "Phasors")
    cx, cy, r = 120, 132, 96
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=BAR, width=2)
    d.line((cx - r, cy, cx + r, cy), fill=BAR)
    d.line((cx, cy - r, cx, cy + r), fill=BAR)
    v_ang = [0.0, ctx.v("angle_v_bn"), ctx.v("angle_v_cn")]
    i_ang = [ctx.v(f"angle_i_{p}") for p in "abc"]
    i_mag = [ctx.v(f"i_{p}") for p in "abc"]
    i_top = max([m for m in i_mag if math.isfinite(m)], default=0.0)
    for k in range(3):
        _arrow(d, cx, cy, r, v_ang[k], PHASE_COLOURS[k], 3)
        if i_top > 0 and math.isfinite(i_mag[k]):
            _arrow(d, cx, cy, 0.6 * r * i_mag[k] / i_top, i_ang[k], PHASE_COLOURS[k], 1)
    for k, ph in enumerate("abc"):
        y = 40 + 56 * k
        d.text((232, y), ctx.label(f"v_{ph}n"), font=font(13), fill=PHASE_COLOURS[k])
        d.text((262, y), _angle(v_ang[k]), font=font(13), fill=FG)
        d.text((232, y + 20), ctx.label(f"i_{ph}"), font=font(13), fill=PHASE_COLOURS[k])
        d.text((262, y + 20), _angle(i_ang[k]), font=font(13), fill=FG)
    return img


def _angle(a: float) -> str:
    return "----" if not math.isfinite(a) else f"{a:6.1f}°"


def _arrow(d: ImageDraw.ImageDraw, cx: int, cy: int, length: float, deg: float, colour: tuple[int, int, int],
           width: int) -> None:
    if not math.isfinite(deg) or length <= 0:
        return
    a = math.radians(deg)
    x, y = cx + length * math.cos(a), cy - length * math.sin(a)       # screen y grows downwards
    d.line((cx, cy, x, y), fill=colour, width=width)
    for side in (-1, 1):
        b = a + math.pi - side * 0.35
        d.line((x, y, x + 10 * math.cos(b), y - 10 * math.sin(b)), fill=colour, width=width)


def alarms(ctx: Context) -> Image.Image:
    """The active alarm list (Low and above), highest priority first, with its state."""
    img, d = _frame(ctx, "Alarms")
    ids, prio, state = ctx.arr("alarm_list_id"), ctx.arr("alarm_list_priority"), ctx.arr("alarm_list_state")
    rows = [(int(i), int(p), int(s)) for i, p, s in zip(ids, prio, state) if math.isfinite(i) and i > 0]
    if not rows:
        d.text((10, 40), "No active alarms", font=font(16), fill=GREEN)
    for k, (alarm_id, priority, st) in enumerate(rows[:8]):
        y = 30 + 25 * k
        colour = BAND_COLOURS.get(band(priority), DIM)
        d.rectangle((8, y + 3, 18, y + 13), fill=colour)
        d.text((26, y), ctx.alarm_names.get(alarm_id, f"alarm {alarm_id}")[:24], font=font(15), fill=FG)
        d.text((226, y + 1), ("ACTIVE" if st & 1 else "ended") + ("" if st & 2 else " !"), font=font(13),
               fill=colour if st & 1 else DIM)
    count = ctx.v("alarm_active_count")
    d.text((10, 218), f"active {int(count) if math.isfinite(count) else '-'}   ! = not acknowledged",
           font=font(12), fill=DIM)
    unread = ctx.v("events_unread")
    if math.isfinite(unread):
        d.text((10, 200), f"events unread {int(unread)}", font=font(12), fill=YELLOW if unread > 0 else DIM)
    return img


def nameplate(ctx: Context) -> Image.Image:
    img, d = _frame(ctx, "Nameplate")
    for k, (label, value) in enumerate(ctx.nameplate.items()):
        y = 30 + 22 * k
        d.text((10, y), label, font=font(13), fill=DIM)
        d.text((110, y), value, font=font(13), fill=FG)
    return img


def test_mode(ctx: Context) -> Image.Image:
    """Revenue test mode: the test registers run, the billing registers stand still (SPEC §3)."""
    img, d = _frame(ctx, "Test mode")
    rows = (("W del", "test_wh_delivered", "Wh"), ("W rec", "test_wh_received", "Wh"),
            ("VAR del" if ctx.labels == "ieee" else "Q del", "test_varh_delivered", "varh"),
            (f"{ctx.label('p')} dmd", "test_p_demand_delivered", "W"))
    for k, (label, name, unit) in enumerate(rows):
        _row(d, 34 + 40 * k, label, scaled(ctx.v(name), unit, 7))
    left = ctx.v("test_mode_remaining")
    d.text((10, 200), "ends in " + ("----" if not math.isfinite(left) else f"{int(left) // 60} min"), font=font(13),
           fill=YELLOW)
    return img


def text_lines(ctx: Context, title: str, lines: list[str]) -> Image.Image:
    """A screen of plain lines (the setup's login and changes, ``firmware.display.setup``)."""
    img, d = _frame(ctx, title)
    for k, line in enumerate(lines[:11]):
        d.text((8, 30 + 19 * k), line, font=font(14), fill=YELLOW if line.startswith(("old:", "new:")) else FG)
    return img


DRAW: dict[str, Callable[[Context], Image.Image]] = {
    "energy": energy, "demand": demand, "vip": vip, "harmonics": harmonics, "phasors": phasors, "alarms": alarms,
    "nameplate": nameplate, "test": test_mode}


def render(name: str, ctx: Context) -> Image.Image:
    return DRAW[name](ctx)
