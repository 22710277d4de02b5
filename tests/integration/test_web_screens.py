"""Every page of the web interface, as a real Chromium (Debian's, driven by Playwright) draws it at a desktop width
(1280 px) and a phone width (390 px), compared pixel by pixel with reviewed reference images
(``tests/integration/screens/``), so a layout regression fails.

What changes from one moment to the next (the live numbers, times, process ids, what the meter did before the
test, the week a report covers) is frozen, then masked: the page's updates are stopped, each such element's
text is replaced by the same placeholder (a list whose length varies by one placeholder row), so the layout is
the same at every run, and the mask paints the element's box in one colour. Drawings from live data (charts,
the phasor diagram) keep their size and are masked. A page differing from its reference in more than
``MAX_DIFFERENT`` of its pixels (by more than ``PIXEL_TOLERANCE`` in a colour channel: anti-aliasing) fails, and
the page as drawn is kept under the pytest base temporary directory (``artifacts/screens``) with an image of
the difference.

After a reviewed change of the pages: ``SCREENS=update .venv/bin/python -m pytest tests/integration/
test_web_screens.py`` writes new references; look at each before committing it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.web_meter import USERS, WebMeter, running

CHROMIUM = "/usr/bin/chromium"
REFERENCES = Path(__file__).parent / "screens"
UPDATE = os.environ.get("SCREENS") == "update"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
PIXEL_TOLERANCE = 48          # a colour channel may differ this much (font anti-aliasing, sub-pixel positions)
MAX_DIFFERENT = 0.002         # share of the pixels that may differ more than that
MASK_COLOUR = "#ff00ff"
# Frozen and masked on every page: the live numbers and the security checklist (which depends on the accounts).
ALWAYS = ("td.num", "#live-meta", "#checklist")
# page -> (what to wait for, what is frozen and masked on it besides ALWAYS, the whole page or the first screen).
# How many points a folded area holds is frozen, and setup shows its [meter] section open and no other, so a
# point or a configuration section added elsewhere changes no reference.
PAGES = {
    "live": ("td[data-point='v_an']", ("summary .muted",), True),
    "energy": ("td[data-point='wh_delivered']", ("#view > p.muted", "summary .muted"), True),
    "harmonics": ("svg#harmonics-chart rect", ("#harmonics-chart", "#harmonics-info"), True),
    "phasors": ("svg#phasor-diagram line[data-channel]", ("#phasor-diagram",), True),
    "waveforms": ("#view h1", ("#captures", "#view canvas", "#view p.muted"), False),
    "iti": ("svg#iti path.iti-limit", ("svg#iti", "#pq-events", "#view p"), False),
    "trends": ("#trend-kind", ("svg#trend", "#trend-info", "#forecast-summary", "#forecast tbody"), False),
    "report": ("table#en50160 tbody tr", ("#view h2", "#view tbody", "#view p", "#view ul"), False),
    "alarms": ("#alarms-active", ("#alarms-active", "#alarms-historic", "#io-inputs", "#io-outputs"), False),
    "events": ("#events-table tbody tr", ("#events-table tbody", "#events-unread"), False),
    "diagnostics": ("#services-table tr[data-service]", ("#meter-state", "#services-table td:not(:last-child)",
                                                         "#view p"), True),
    "setup": ("details[data-section='meter']", ("#view > p.muted", "[data-option]"), True),
    "upgrade": ("#upgrade-status dd", ("#upgrade-status dd",), True),
}
# What a page shows before it is frozen: setup's form of one section (the others are a list that grows).
PREPARE = {"setup": """() => { for (const d of document.querySelectorAll('#view details[data-section]')) {
    d.hidden = d.dataset.section !== 'meter'; d.open = !d.hidden; } }"""}
# Stops the page's updates (its live stream and timers: stopView in app.js), then gives every volatile element
# the same text; a drawing keeps its size, a list becomes one placeholder row.
FREEZE = """selectors => {
    stopView();
    for (const sel of selectors) for (const el of document.querySelectorAll(sel)) {
        if (el instanceof SVGElement || el.tagName === 'CANVAS') continue;
        const placeholder = () => { const row = document.createElement('tr'), cell = document.createElement('td');
            cell.colSpan = 99; cell.textContent = 'frozen'; row.append(cell); return row; };
        if (el.tagName === 'TBODY') el.replaceChildren(placeholder());
        else if (el.tagName === 'TABLE') {      // rows straight in the table: the header row stays
            for (const row of el.querySelectorAll(':scope > tr, :scope > tbody > tr'))
                if (!row.querySelector('th')) row.remove();
            el.append(placeholder());
        } else el.textContent = el.tagName === 'TD' ? '0' : 'frozen';
    }
}"""


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    # IEC labels (phases L1, L2, L3): the other convention than tests/integration/test_web.py's meter
    with running(WebMeter(tmp_path_factory.mktemp("web-screens"), extra='[display]\nlabels = "iec"\n')) as m:
        yield m


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "artifacts" / "screens"
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nweb page screenshots in {out}")
    return out


def compare(name: str, shot: Path, artifacts: Path) -> None:
    reference = REFERENCES / f"{name}.png"
    if UPDATE:
        REFERENCES.mkdir(exist_ok=True)
        reference.write_bytes(shot.read_bytes())
        return
    assert reference.exists(), f"no reference image {reference}; SCREENS=update writes it (look at it first)"
    want = np.asarray(Image.open(reference).convert("RGB"), dtype=np.int16)
    got = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert got.shape == want.shape, (f"{name}: the page is {got.shape[1]}x{got.shape[0]} px, its reference "
                                     f"{want.shape[1]}x{want.shape[0]} px (drawn: {shot})")
    different = np.abs(got - want).max(axis=2) > PIXEL_TOLERANCE
    share = float(different.mean())
    if share > MAX_DIFFERENT:
        diff = np.where(different[..., None], np.array([255, 0, 0], np.uint8), (want // 3 + 170).astype(np.uint8))
        Image.fromarray(diff.astype(np.uint8)).save(artifacts / f"{name}-difference.png")
    assert share <= MAX_DIFFERENT, (f"{name}: {share:.2%} of the pixels differ from {reference} (at most "
                                    f"{MAX_DIFFERENT:.2%}); drawn: {shot}, difference: {name}-difference.png")


def _labels_inside(page, svg: str) -> list[str]:
    """Texts of an SVG drawn partly outside its own box or its card's (cut off)."""
    return page.evaluate("""sel => { const svg = document.querySelector(sel), own = svg.getBoundingClientRect();
        const card = (svg.closest('.card') || svg).getBoundingClientRect();
        const box = {left: Math.max(own.left, card.left), right: Math.min(own.right, card.right),
                     top: Math.max(own.top, card.top), bottom: Math.min(own.bottom, card.bottom)};
        return [...svg.querySelectorAll('text')].filter(t => { const r = t.getBoundingClientRect();
            return r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5
                || r.bottom > box.bottom + 0.5; }).map(t => t.textContent); }""", svg)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_looks_as_reviewed(meter, artifacts, width):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does; docs/web.md)"
    base = f"https://127.0.0.1:{meter.https_port}"
    w, h = WIDTHS[width]
    failures: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--font-render-hinting=none"])
        try:
            page = browser.new_page(ignore_https_errors=True, viewport={"width": w, "height": h},
                                    device_scale_factor=1, timezone_id="America/New_York")
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#login-form")
            # the login page: no navigation, nothing of a session
            assert not page.locator("#nav").is_visible() and not page.locator("#logout").is_visible()
            page.screenshot(path=artifacts / f"login-{width}.png", full_page=True)
            compare_all = [("login", artifacts / f"login-{width}.png")]
            page.fill("#login-user", "reader")
            page.fill("#login-password", USERS["reader"][0])
            page.click("#login-submit")
            page.wait_for_selector("td[data-point='v_an']")
            assert page.locator("tr:has(td[data-point='v_an']) th").inner_text() == "Voltage L1-N"
            assert page.locator("tr:has(td[data-point='v_ab']) th").inner_text() == "Voltage L1-L2"
            # the header is one row however many privileges the user has
            header = page.locator("header").bounding_box()
            assert header is not None and header["height"] < 60, header
            for name, (ready, masked, whole) in PAGES.items():
                page.goto(f"{base}/#/{name}")
                page.wait_for_selector(ready, timeout=30000, state="attached")
                page.wait_for_timeout(600)         # the first refresh of the page's data has come
                if name == "phasors":
                    assert not _labels_inside(page, "svg#phasor-diagram"), "phasor labels cut off"
                assert not page.locator("#view p.error").count(), page.locator("#view").inner_text()
                # column headers never break inside a word
                broken = page.evaluate("""() => [...document.querySelectorAll('#view th')].filter(t => {
                    const words = t.textContent.trim();
                    if (!words || words.includes(' ') || !t.getClientRects().length) return false;
                    const r = document.createRange(); r.selectNodeContents(t);
                    return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size > 1; })
                    .map(t => t.textContent)""")
                assert not broken, f"{name}: column headers broken across lines: {broken}"
                path = artifacts / f"{name}-{width}.png"
                if name in PREPARE:
                    page.evaluate(PREPARE[name])
                page.evaluate(FREEZE, [*ALWAYS, *masked])
                page.wait_for_timeout(500)         # a refresh under way when the updates stopped has landed:
                page.evaluate(FREEZE, [*ALWAYS, *masked])      # frozen again
                page.screenshot(path=path, full_page=whole, animations="disabled", caret="hide",
                                mask=[page.locator(f"{s} >> visible=true") for s in (*ALWAYS, *masked)],
                                mask_color=MASK_COLOUR)
                compare_all.append((name, path))
            assert not errors, errors
        finally:
            browser.close()
    for name, path in compare_all:
        try:
            compare(f"{name}-{width}", path, artifacts)
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)
