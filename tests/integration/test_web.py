"""The web interface of a running meter: a real Chromium (Debian's /usr/bin/chromium, driven by Playwright) and a
real HTTPS client against the web service on loopback, with the acquisition, metrology and upgrade services
behind it (tests/support/web_meter.py).

Screenshots of each step are saved under the pytest base temporary directory, in ``artifacts/web`` (the path
is printed), for a person to look at.
"""
from __future__ import annotations

import datetime
import gzip
import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.config.store import ConfigStore
from tests.conftest import iterations
from firmware.web.app import STATIC_DIR
from tests.support.web_meter import MAX_UPLOAD_BYTES, REPO, USERS, WebMeter, running, session

CHROMIUM = "/usr/bin/chromium"          # Debian's chromium package (.ci/run installs it; docs/web.md)
MATCH_TRIES = 20                        # reads until the page and the snapshot show the same publish
READ_CELL = """name => {
    const cell = document.querySelector(`td[data-point='${name}']`);
    return [cell.dataset.raw, cell.textContent, cell.closest("table").dataset.count];
}"""


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    # local time 5 h 30 min ahead of UTC: the pages show times on the meter's clock, not the browser's or UTC
    with running(WebMeter(tmp_path_factory.mktemp("web-meter"), extra='[revenue.time]\nzone = "+05:30"\n')) as m:
        yield m


@pytest.fixture(scope="module")
def alice(meter):
    return session(meter, "alice")


@pytest.fixture(scope="module")
def reader(meter):
    return session(meter, "reader")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "artifacts" / "web"
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nweb test screenshots in {out}")
    return out


def tampered_image(meter: WebMeter) -> Path:
    """A correctly signed image whose manifest was changed afterwards (version 0.2.0 -> 0.2.1)."""
    img = meter.upgrade.image("0.2.0")
    data = bytearray(img.read_bytes())
    at = data.index(b'"version": "0.2.0"') + len('"version": "0.2.0"') - 2
    data[at] ^= 0x01
    img.write_bytes(bytes(data))
    return img


def snapshot_value(meter: WebMeter, name: str) -> tuple[float, int]:
    assert meter.snapshot is not None
    data, _, count = meter.snapshot.read_array()
    return float(meter.snapshot.field(data, name)), count


# ---------------------------------------------------------------------------------------------- the browser

def test_browser_login_live_values_setting_refusal_and_tampered_image(meter, artifacts):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does; docs/web.md)"
    base = f"https://127.0.0.1:{meter.https_port}"
    password = USERS["alice"][0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # The certificate is the meter's own self-signed one: the browser is told to accept it, TLS stays on.
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#login-form")
            page.fill("#login-user", "alice")
            page.fill("#login-password", "wrong-password")
            page.click("#login-submit")
            page.wait_for_selector("#login-error:has-text('wrong user name or password')")
            page.screenshot(path=artifacts / "01-login-refused.png")
            page.fill("#login-password", password)
            page.click("#login-submit")
            page.wait_for_selector("td[data-point='v_an']")
            # The factory account user1 still has its default password: the security core's checklist says so.
            assert "user 'user1' still has its factory default password" in page.locator("#checklist").inner_text()
            cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-meter_session")
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            # Live values are the snapshot's: same publish, same number (the page shows the value published).
            for _ in range(MATCH_TRIES):
                # One evaluation reads the cell and its publish count together (the page cannot update between);
                # the snapshot is read after it, so equal counts mean the same publish.
                raw, shown, page_count = page.evaluate(READ_CELL, "v_an")
                page_count = int(page_count)
                value, count = snapshot_value(meter, "v_an")
                if count == page_count:
                    break
                time.sleep(0.2)
            assert count == page_count, "the page never showed the snapshot's latest publish"
            assert float(raw) == value                       # the same float64, through JSON and the DOM
            assert abs(float(shown) - value) <= 0.005 + 1e-9  # shown to 2 decimals (DIGITS["V"] in app.js)
            assert 50.0 < value < 500.0

            # Rows read as the catalogue says: labels, not names; units scaled; flags, counts and times as such.
            def row(name: str) -> tuple[str, str, str]:
                cells = page.locator(f"tr:has(td[data-point='{name}'])")
                return (cells.locator("th").inner_text(), cells.locator("td.num").inner_text(),
                        cells.locator("td.unit").inner_text())

            assert row("v_an")[0] == "Voltage A-N" and row("v_an")[2] == "V"
            assert row("i_res")[0] == "Residual current"
            label, power, unit = row("p_total")
            assert label == "Active power total" and unit in ("W", "kW") and re.fullmatch(r"-?\d+\.\d{3}", power)
            assert row("revenue_locked")[1:] == ("no", "")
            assert row("time_synced")[1] in ("yes", "no")
            assert page.locator("th", has_text="Alarms unacknowledged").count() == 1
            page.click("details[data-area='pq_events'] > summary")
            assert re.fullmatch(r"\d+", row("pq_sag_count")[1])                    # a count: no decimals
            page.click("details[data-area='pq_3s'] > summary")
            for _ in range(MATCH_TRIES):    # the end of the last 3-s interval, as the meter's local time
                raw, shown = page.evaluate("""() => { const c = document.querySelector("td[data-point='pq_end_3s']");
                    return [c.dataset.raw, c.textContent]; }""")
                if raw and float(raw) > 0:
                    break
                time.sleep(0.5)
            local = datetime.datetime.fromtimestamp(float(raw), datetime.timezone(datetime.timedelta(minutes=330)))
            assert shown == local.strftime("%Y-%m-%d %H:%M:%S"), (raw, shown)
            assert "(meter time, UTC+05:30)" in page.locator("#live-meta").inner_text()
            assert not page.locator("#view th", has_text="v_an").count()
            assert page.locator("#view .cards > .card").count() >= 5          # the main areas open, the rest folded
            assert page.locator("#view details.area:not([open])").count() >= 5
            # the live page stays short: the folded areas take a line each
            assert page.evaluate("document.documentElement.scrollHeight") < 2500

            # ... and they update without a reload: the marker set in this page survives three publishes.
            page.evaluate("window.__same_page = true")
            first = int(page.locator("#live-meta").get_attribute("data-count") or page_count)
            deadline = time.monotonic() + 30
            while int(page.locator("#live-meta").get_attribute("data-count") or 0) < first + 3:
                assert time.monotonic() < deadline, "the live values stopped updating"
                time.sleep(0.25)   # polled from here: the page's CSP refuses Playwright's evaluated predicates
            assert page.evaluate("window.__same_page === true")
            page.screenshot(path=artifacts / "02-live.png", full_page=True)

            # A setting: saved, answered with the old and the new value, on disk as a new version by alice.
            page.goto(base + "/#/setup")
            page.click("details[data-section='meter'] > summary")
            page.fill("[data-option='meter.name']", "feeder-7")
            page.click("[data-save='meter']")
            message = page.locator("#setup-message.ok")
            message.wait_for()
            assert 'meter.name: "web-test" → "feeder-7"' in message.inner_text()
            store = ConfigStore(meter.config)
            assert store.load().meter.name == "feeder-7"
            assert store.history()[-1]["user"] == "alice"
            page.screenshot(path=artifacts / "03-setting-saved.png")

            # A bad value: refused with the schema's own message, nothing saved.
            version = store.load().version
            page.click("details[data-section='modbus'] > summary")
            page.fill("[data-option='modbus.tcp_port']", "70000")
            page.click("[data-save='modbus']")
            refusal = page.locator("#setup-message.error")
            refusal.wait_for()
            assert "[modbus] option 'tcp_port': 70000 is out of range; allowed 1..65535" in refusal.inner_text()
            assert store.load().version == version
            page.screenshot(path=artifacts / "04-setting-refused.png")

            # A tampered image: uploaded, refused by the upgrade service's signature check, reason shown.
            page.goto(base + "/#/upgrade")
            page.set_input_files("#upgrade-file", str(tampered_image(meter)))
            page.click("#upgrade-submit")
            result = page.locator("#upgrade-result.error")
            result.wait_for(timeout=60000)
            assert "refused (signature)" in result.inner_text()
            assert "altered after signing" in result.inner_text()
            page.screenshot(path=artifacts / "05-upgrade-refused.png")
            assert not list((meter.data_dir / "web" / "uploads").glob("*.img")), "a refused image was kept"

            for view in ("harmonics", "phasors", "energy", "events", "diagnostics"):
                page.goto(f"{base}/#/{view}")
                page.wait_for_selector("#view h1")
                page.wait_for_timeout(1500)
                assert not page.locator("#view p.error").count(), page.locator("#view").inner_text()
                page.screenshot(path=artifacts / f"06-{view}.png", full_page=True)

            # Alarms and I/O: the meter's Power Up alarm acknowledged on the page (a unary alarm: it ends then),
            # the inputs and outputs listed, an output forced on and released
            page.goto(f"{base}/#/alarms")
            page.click("#alarms-active tr[data-alarm='Power Up'] button[data-ack]")
            page.wait_for_selector("#alarms-historic tr[data-alarm='Power Up']")
            assert not page.locator("#alarms-active tr[data-alarm='Power Up']").count()
            assert page.locator("#io-inputs tr").count() == 4 and page.locator("#io-outputs tr").count() == 4
            page.click("#io-outputs tr[data-output='1'] button[data-force='on']")
            page.wait_for_selector("#io-outputs tr[data-output='1']:has-text('forced on')")
            page.screenshot(path=artifacts / "07-alarms-io.png", full_page=True)
            page.click("#io-outputs tr[data-output='1'] button[data-force='release']")
            page.wait_for_selector("#io-outputs tr[data-output='1']:has-text('no')")

            # The event log page shows the unread counter and marks every event read
            page.goto(f"{base}/#/events")
            page.wait_for_selector("#events-unread.warn")
            assert int(page.locator("#events-unread").inner_text().split()[0]) >= 1     # at least the refused login
            page.click("#events-mark-read")
            page.wait_for_selector("#events-unread:has-text('0 unread')")
            page.screenshot(path=artifacts / "08-events-read.png")

            # The time-set button sets the meter's clock from this computer's (the time service accepts it)
            page.goto(f"{base}/#/energy")
            page.click("details[data-area='demand_peak'] > summary")
            peak_time = page.locator("td[data-point='p_demand_delivered_peak_time']")
            assert re.fullmatch(r"—|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", peak_time.inner_text())  # none yet: —
            assert peak_time.get_attribute("data-raw") != "0" or peak_time.inner_text() == "—"
            page.once("dialog", lambda dialog: dialog.accept())
            page.click("button[data-reset='time_set']")
            page.wait_for_selector("#reset-message.ok:has-text('time_set: done')")
            assert not errors, errors
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------- the API

def test_login_is_needed_and_csrf_is_checked(meter, alice):
    client = meter.client()
    status, _, answer = client.request("GET", "/api/readings")
    assert status == 401 and "log in" in answer["error"]
    client.login("reader", USERS["reader"][0])
    status, _, answer = client.request("GET", "/api/readings")
    assert status == 200 and answer["values"]["v_an"] is not None
    change = {"changes": {"meter.name": "x"}}
    status, _, answer = client.request("POST", "/api/config", change, csrf=False)
    assert status == 403 and "CSRF" in answer["error"]
    status, _, answer = client.request("POST", "/api/config", change)
    assert status == 403 and "lacks the setup privilege" in answer["error"], answer
    status, _, answer = client.request("POST", "/api/resets/demand_reset")
    assert status == 403 and "peak-demand-reset" in answer["error"], answer
    admin = meter.client()
    admin.cookie, admin.csrf = alice.cookie, alice.csrf
    status, _, answer = admin.request("POST", "/api/config", change, headers={"Origin": "https://evil.example"})
    assert status == 403 and "another site" in answer["error"]


def test_cookie_and_security_headers(meter):
    client = meter.client()
    status, headers, _ = client.request("POST", "/api/session", {"user": "reader", "password": USERS["reader"][0]})
    assert status == 200
    cookie = [p.strip() for p in headers["set-cookie"].split(";")]
    assert cookie[0].startswith("__Host-meter_session=") and len(cookie[0]) > 40
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=Strict"} <= set(cookie)
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_plain_http_only_redirects(meter):
    with socket.create_connection(("127.0.0.1", meter.http_port), timeout=10) as sock:
        sock.sendall(b"GET /api/readings?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = sock.makefile("rb").read().decode()
    assert reply.startswith("HTTP/1.1 308")
    assert f"location: https://127.0.0.1:{meter.https_port}/api/readings?x=1" in reply.lower()


def test_readings_harmonics_phasors_are_the_snapshot(meter, reader):
    client = reader
    for _ in range(MATCH_TRIES):
        _, _, readings = client.request("GET", "/api/readings")
        _, _, harmonics = client.request("GET", "/api/harmonics?channel=v_an")
        value, count = snapshot_value(meter, "p_total")
        if readings["count"] == harmonics["count"] == count:
            break
    assert readings["count"] == count
    assert readings["values"]["p_total"] == value                     # exact: the same float64 through JSON
    assert harmonics["magnitude"][1] == pytest.approx(snapshot_value(meter, "v_an")[0], rel=0.01)  # fundamental
    # ~ RMS: the simulated load's voltage THD is a few %, so H1 is within 1 % of the RMS.
    _, _, phasors = client.request("GET", "/api/phasors")
    angles = {p["channel"]: p["angle_deg"] for p in phasors["phasors"]}
    assert angles["v_an"] == 0.0
    assert angles["v_bn"] % 360 == pytest.approx(240.0, abs=1.0)     # ABC rotation: B lags A by 120 degrees
    assert angles["v_cn"] % 360 == pytest.approx(120.0, abs=1.0)
    status, _, answer = client.request("GET", "/api/harmonics?channel=nope")
    assert status == 400 and "is not one of" in answer["error"]


def _open_stream(client) -> tuple[object, object]:
    conn = client.connection()
    conn.request("GET", "/api/stream", headers={"Cookie": client.cookie})
    return conn, conn.getresponse()


def _next_event(resp) -> tuple[str, dict]:
    event, data = "", ""
    while True:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and event:
            return event, json.loads(data)


def test_live_stream_sends_each_publish_and_is_limited_per_address(meter, reader):
    streams = [_open_stream(reader) for _ in range(2)]
    try:
        for _, resp in streams:
            assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
        _, resp = streams[0]
        first = _next_event(resp)
        second = _next_event(resp)
        assert first[0] == second[0] == "readings"
        assert second[1]["count"] > first[1]["count"]        # a new event per publish, about one a second
        value, count = snapshot_value(meter, "v_an")
        assert count >= second[1]["count"] and 50.0 < second[1]["values"]["v_an"] < 500.0
        status, _, answer = reader.request("GET", "/api/stream")     # a third from the same address
        assert status == 429 and "too many live streams" in answer["error"]
    finally:
        for conn, _ in streams:
            conn.close()


def _curl(meter: WebMeter, path: str, *args: str, body: Path | None = None) -> tuple[int, dict[str, str]]:
    """curl (Debian's, not this meter's HTTP code) fetching ``path``: status and headers; the body to ``body``."""
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(meter.cert), "-D", "-",
                          "-o", str(body or "/dev/null"), *args, f"https://127.0.0.1:{meter.https_port}{path}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    status = int(out.split()[1])
    headers = dict(line.split(": ", 1) for line in out.splitlines()[1:] if ": " in line)
    return status, {k.lower(): v.strip() for k, v in headers.items()}


def test_static_files_are_sent_compressed_and_revalidated(meter, tmp_path):
    plain = (STATIC_DIR / "app.js").read_bytes()
    status, headers = _curl(meter, "/static/app.js", "--compressed", body=tmp_path / "decoded")
    assert status == 200 and headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert headers["content-type"].startswith("text/javascript") and headers["cache-control"] == "no-cache"
    assert (tmp_path / "decoded").read_bytes() == plain                         # curl decoded it
    _, raw = _curl(meter, "/static/app.js", "-H", "Accept-Encoding: gzip", body=tmp_path / "raw")
    packed = (tmp_path / "raw").read_bytes()
    assert gzip.decompress(packed) == plain and len(packed) < 0.4 * len(plain), (len(packed), len(plain))
    # unchanged: 304 without a body, for the encoding the ETag names
    status, again = _curl(meter, "/static/app.js", "--compressed", "-H", f"If-None-Match: {raw['etag']}")
    assert status == 304 and again["etag"] == raw["etag"]
    # a client that takes no gzip gets the file as it is, under another ETag
    status, identity = _curl(meter, "/static/app.js", "-H", "Accept-Encoding: gzip;q=0, identity",
                             body=tmp_path / "identity")
    assert status == 200 and "content-encoding" not in identity and identity["etag"] != raw["etag"]
    assert (tmp_path / "identity").read_bytes() == plain
    status, _ = _curl(meter, "/static/app.js", "-H", "Accept-Encoding: identity", "-H",
                      f"If-None-Match: {raw['etag']}")
    assert status == 200                      # the gzip ETag does not validate the uncompressed copy
    status, page = _curl(meter, "/", "--compressed", body=tmp_path / "index")
    assert status == 200 and page["content-encoding"] == "gzip" and b"<nav id=\"nav\" hidden>" in \
        (tmp_path / "index").read_bytes()
    status, _ = _curl(meter, "/static/nosuch.js")
    assert status == 404


def test_points_carry_labels_and_the_pages_their_areas(reader):
    status, _, answer = reader.request("GET", "/api/points")
    assert status == 200 and answer["labels"] == "ieee"
    by_name = {p["name"]: p for p in answer["points"]}
    assert by_name["v_an"]["label"] == "Voltage A-N" and by_name["v_an"]["area"] == "voltage"
    assert by_name["revenue_locked"]["type"] == "flag" and by_name["pq_sag_count"]["type"] == "count"
    assert by_name["p_demand_delivered_peak_time"]["type"] == "time"
    assert {"name": "voltage", "title": "Voltage", "page": "readings", "main": True} in answer["areas"]
    assert answer["clock"] == {"offset_min": 330, "dst_offset_min": 0, "dst": []}
    _, _, readings = reader.request("GET", "/api/readings")
    _, _, energy = reader.request("GET", "/api/energy")
    assert {"pq_sag_count", "power_up_count", "v_an"} <= set(readings["values"])     # counts are readings
    assert {"wh_delivered", "p_demand_delivered_peak"} <= set(energy["values"])
    assert not set(readings["values"]) & set(energy["values"])


def test_diagnostics_and_meter_status_show_the_saved_configuration_version(meter, alice):
    started = ConfigStore(meter.config).load().version
    status, _, answer = alice.request("POST", "/api/config", {"changes": {"display.scroll_interval": 9}})
    assert status == 200, answer
    saved = ConfigStore(meter.config).load().version
    assert saved == answer["version"] > started
    _, _, diagnostics = alice.request("GET", "/api/diagnostics")
    assert diagnostics["meter"]["config_version"] == saved
    assert diagnostics["meter"]["config_started_version"] <= started
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "status", "--config", str(meter.config)],
                         capture_output=True, text=True, timeout=60, cwd=REPO).stdout
    assert re.search(rf"config v{saved} \(started with v\d+\)", out), out


def test_config_write_old_and_new_values_and_event(alice):
    client = alice
    status, _, answer = client.request("POST", "/api/config", {"changes": {"events.depth": 6000},
                                                               "reason": "longer event log"})
    assert status == 200, answer
    assert answer["changes"] == [{"option": "events.depth", "old": 5000, "new": 6000}]
    status, _, events = client.request("GET", "/api/events?limit=20")
    assert any(e["cause"] == "config_change" and e["user"] == "alice" and "events.depth" in e["effect"]
               for e in events["events"]), events
    status, _, answer = client.request("POST", "/api/config", {"changes": {"modbus.nope": 1}})
    assert status == 400 and "option 'nope' is not valid in section [modbus]" in answer["error"]


def test_resets_go_through_privileges_and_the_revenue_lock(meter, alice):
    from firmware.lockstate import set_file_lock

    client = alice
    status, _, answer = client.request("POST", "/api/resets/demand_sync")
    assert status == 200 and answer["done"] == "demand_sync", answer
    # time_set takes the UTC time to set; without it the request says so instead of failing in the time service
    status, _, answer = client.request("POST", "/api/resets/time_set")
    assert status == 400 and "give the value to set as ?value=" in answer["error"], answer
    status, _, answer = client.request("POST", f"/api/resets/time_set?value={time.time():.3f}")
    assert status == 200 and answer["result"]["accepted"], answer
    lock = meter.upgrade.settings.revenue_lock_file
    set_file_lock(lock, True)
    try:
        status, _, answer = client.request("POST", "/api/resets/energy_reset")
        assert status == 403 and "revenue-locked" in answer["error"], answer
        status, _, answer = client.request("POST", "/api/config", {"changes": {"metrology.nominal_voltage": 240}})
        assert status == 403 and "revenue-locked" in answer["error"], answer
    finally:
        set_file_lock(lock, False)
    _, _, events = client.request("GET", "/api/events?limit=50&min_priority=64")
    assert any(e["cause"] == "access_denied" and e["user"] == "alice" for e in events["events"]), events


def test_alarms_and_io_need_their_privileges(meter, reader, alice):
    status, _, answer = reader.request("GET", "/api/io")
    assert status == 200 and len(answer["outputs"]) == 4, answer
    status, _, answer = reader.request("POST", "/api/io/outputs/1", {"state": "on"})
    assert status == 403, answer                                      # output_force is the master's
    status, _, answer = reader.request("GET", "/api/alarms")
    assert status == 200 and {"active", "historic"} <= set(answer)
    status, _, answer = alice.request("POST", "/api/io/outputs/1", {"state": "sideways"})
    assert status == 409 and answer["error"] == 'io.force: state must be "on", "off" or "release", got \'sideways\'', \
        answer


def test_load_profile_and_events_by_time_range(reader):
    client = reader
    now = time.time()
    status, _, answer = client.request("GET", f"/api/load-profile?since={now - 86400:.0f}&until={now + 60:.0f}")
    assert status == 200 and answer["channels"] and isinstance(answer["records"], list)
    assert all(now - 86400 <= r["ts"] <= now + 60 for r in answer["records"])
    status, _, answer = client.request("GET", f"/api/load-profile?since={now:.0f}&until={now - 10:.0f}")
    assert status == 400 and "before" in answer["error"]
    status, _, answer = client.request("GET", f"/api/events?since={now + 3600:.0f}")
    assert status == 200 and answer["events"] == []


def _served_fingerprint(meter: WebMeter) -> str:
    """SHA-256 of the certificate a new TLS connection is given (not verified: it is what is being checked)."""
    import hashlib

    with socket.create_connection(("127.0.0.1", meter.https_port), timeout=15) as raw, \
            ssl._create_unverified_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def test_certificate_upload_is_served_at_once_and_deleted_again(meter, alice):
    from firmware.web.certs import self_signed

    before = _served_fingerprint(meter)
    cert, key = self_signed("uploaded-by-test", ["127.0.0.1"])
    other_cert, _ = self_signed("someone-else", [])
    status, _, answer = alice.request("POST", "/api/certificate", {"certificate": other_cert.decode(),
                                                                   "key": key.decode()})
    assert status == 400 and "does not belong to the certificate" in answer["error"]
    assert _served_fingerprint(meter) == before
    status, _, answer = alice.request("POST", "/api/certificate", {"certificate": cert.decode(), "key": key.decode()})
    assert status == 200 and answer["active"] == "custom", answer
    served = _served_fingerprint(meter)           # new connections, no restart
    assert served == answer["certificate"]["sha256"].replace(":", "") and served != before
    alice.context = ssl._create_unverified_context()   # this client trusted the self-signed one only
    status, _, answer = alice.request("DELETE", "/api/certificate")
    alice.context = ssl.create_default_context(cafile=str(meter.cert))
    assert status == 200 and answer["active"] == "selfsigned"
    assert _served_fingerprint(meter) == before


def test_bounded_bodies(meter, alice):
    client = alice
    big = {"changes": {"meter.name": "x" * (70 * 1024)}}
    status, _, answer = client.request("POST", "/api/config", big)
    assert status == 413 and "max_body" in answer["error"]
    # an image announced larger than the limit is refused at its head and the connection closed, the body unread
    # (a client still sending it would find the connection closed under it)
    conn = client.connection()
    try:
        conn.putrequest("POST", "/api/upgrade")
        for name, value in (("Cookie", client.cookie), ("X-CSRF-Token", client.csrf),
                            ("Content-Type", "application/octet-stream"),
                            ("Content-Length", str(MAX_UPLOAD_BYTES + 4096))):
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        status, answer = resp.status, json.loads(resp.read())
    finally:
        conn.close()
    assert status == 413 and "max_upload" in answer["error"]
    assert not list((meter.data_dir / "web" / "uploads").glob("*.img"))
    status, _, answer = client.request("POST", "/api/config", raw=b"{}")
    assert status == 415


def test_a_silent_connection_is_closed_after_the_head_timeout(meter):
    context = ssl.create_default_context(cafile=str(meter.cert))
    with socket.create_connection(("127.0.0.1", meter.https_port), timeout=15) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        started = time.monotonic()
        tls.sendall(b"GET /api/readings HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # never finished
        assert tls.recv(1024) == b""
        waited = time.monotonic() - started
    assert 1.5 <= waited <= 10.0, waited      # [web] header_timeout = 2 s in this meter, plus scheduling slack


def test_openapi_document_is_the_route_table(meter):
    from firmware.services.registry import SERVICES
    from firmware.web.app import route_table

    status, _, served = meter.client().request("GET", "/api/openapi.json")
    assert status == 200
    _, document = route_table([s.name for s in SERVICES])
    assert served == document
    assert {"/api/readings", "/api/config", "/api/upgrade", "/api/events", "/api/load-profile"} <= set(served["paths"])
    status, _, answer = meter.client().request("PUT", "/api/readings", {})
    assert status == 405 and "openapi.json" in answer["error"]
    status, _, answer = meter.client().request("GET", "/api/nothing-here")
    assert status == 404 and "openapi.json" in answer["error"]


# Calls the fuzz leaves out: they end the fuzzer's own session, restart services, or spend the login allowance.
FUZZ_SKIP = {("DELETE", "/api/session"), ("POST", "/api/session"), ("POST", "/api/services/{name}/restart")}
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                      st.text(max_size=20))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                          max_leaves=8)


def _param(p: dict) -> st.SearchStrategy:
    schema = p["schema"]
    if "enum" in schema:
        valid: st.SearchStrategy = st.sampled_from(schema["enum"])
    elif schema["type"] == "integer":
        valid = st.integers(int(schema.get("minimum", -2**31)) - 2, int(schema.get("maximum", 2**31)) + 2)
    elif schema["type"] == "number":
        valid = st.floats(schema.get("minimum", -1e12) - 1, schema.get("maximum", 1e12) + 1, allow_nan=False)
    else:
        valid = st.text(max_size=schema.get("maxLength", 50) + 2)
    return st.one_of(valid.map(str), st.text(max_size=30))


def _body(op: dict) -> st.SearchStrategy:
    content = op.get("requestBody", {}).get("content", {})
    if "application/octet-stream" in content:
        return st.binary(max_size=2048).map(lambda b: ("raw", b))
    if "application/json" not in content:
        return st.just(("none", None))
    props = content["application/json"]["schema"].get("properties", {})
    changes = st.dictionaries(st.sampled_from(["meter.name", "events.depth", "modbus.tcp_port", "web.rate",
                                               "metrology.nominal_voltage", "nope", "modbus.nope", "log.level"]),
                              JSON_LEAF, max_size=3)
    fields = {name: (changes if name == "changes" else JSON_VALUE) for name in props}
    shaped = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(shaped, JSON_VALUE).map(lambda b: ("json", b))


def test_api_fuzz_never_answers_500(meter, alice):
    """Every endpoint of the served OpenAPI document, with arguments drawn from its schemas and beyond them:
    no request gets a 5xx, and every refusal is JSON with an "error" that says what was wrong."""
    client = meter.client()
    client.context = ssl._create_unverified_context()   # a regenerated certificate must not end the fuzz
    client.cookie, client.csrf = alice.cookie, alice.csrf
    _, _, document = client.request("GET", "/api/openapi.json")
    operations = [(m.upper(), path, op) for path, ops in document["paths"].items() for m, op in ops.items()
                  if (m.upper(), path) not in FUZZ_SKIP and "text/event-stream" not in op["responses"]["200"]["content"]]
    seen: dict[int, int] = {}

    @settings(max_examples=iterations(120, 300, 3000), deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data):
        method, path, op = data.draw(st.sampled_from(operations))
        url = path
        query = {}
        for p in op.get("parameters", []):
            value = data.draw(_param(p))
            if p["in"] == "path":
                url = url.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe="") or "x")
            elif data.draw(st.booleans()):
                query[p["name"]] = value
        if query:
            url += "?" + urllib.parse.urlencode(query)
        kind, body = data.draw(_body(op))
        status, _, answer = client.request(method, url, body=body if kind == "json" else None,
                                           raw=body if kind == "raw" else None)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, f"{method} {url} {body!r:.200} -> {status} {answer}"
        if status >= 400:
            assert isinstance(answer, dict) and answer.get("error"), (method, url, status, answer)

    one()
    assert seen.get(200) and sum(v for k, v in seen.items() if 400 <= k < 500), seen


def test_failed_logins_are_rate_limited_and_recorded(meter):
    """From its own loopback address: the other tests' logins have spent some of 127.0.0.1's allowance."""
    client = meter.client(source="127.0.0.9")
    statuses = [client.request("POST", "/api/session", {"user": "mallory", "password": "x"})[0] for _ in range(40)]
    assert statuses[0] == 401 and 429 in statuses
    assert statuses.index(429) <= 6          # 5 at once (LOGIN_BURST), then [web] login_rate: 30 a minute
    admin = meter.client(source="127.0.0.9")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:          # the allowance refills at 1 every 2 s
        status, headers, answer = admin.request("POST", "/api/session",
                                                {"user": "alice", "password": USERS["alice"][0]})
        if status == 200:
            admin.cookie, admin.csrf = headers["set-cookie"].split(";")[0], answer["csrf"]
            break
        assert status == 429 and "retry-after" in headers
        time.sleep(1)
    _, _, events = admin.request("GET", "/api/events?limit=100&min_priority=128")
    invalid = [e for e in events["events"] if e["cause"] == "login_invalid" and e["user"] == "mallory"]
    assert invalid and all(e["priority"] == 128 for e in invalid)
