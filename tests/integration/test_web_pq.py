"""The web's power-quality API and pages against a running meter with its recorder service
(tests/support/web_meter.py): what the API answers is what the recorder and its store hold; capture names are
checked against the capture directory's own list; a real Chromium draws a waveform, the ITI curve and a report.

The API fuzz of tests/integration/test_web.py draws its requests from the served OpenAPI document, so it covers
these endpoints too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from firmware.recorder import reports as cli_report
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.recorder.capture import WAVEFORMS_DIR, capture_names
from firmware.recorder.store import AggregateStore, read_aggregates
from hal.comtrade import read_comtrade
from hal.errors import ComtradeError
from firmware.web.pq import finite
from metrology.pqclass import ITIC_UPPER
from metrology.reports.common import week_bounds
from tests.integration.test_web import CHROMIUM
from tests.support import pqdif_reader as pqdif
from tests.support.web_meter import USERS, WebMeter, running, session

CAPTURE_WAIT_S = 60.0       # the recorder writes a capture once its post-trigger cycles are on the samples ring
CAPTURE_TRIES = 5
ROUNDING = 1e-6             # the capture's JSON values are rounded to 6 decimals (firmware/web/pq.py)


def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(WebMeter(tmp_path_factory.mktemp("web-pq-meter"))) as m:
        yield m


@pytest.fixture(scope="module")
def reader(meter):
    return session(meter, "reader")


@pytest.fixture(scope="module")
def control(meter) -> ControlClient:
    return ControlClient(meter.run_dir / "control.sock", timeout_s=30.0)


@pytest.fixture(scope="module")
def capture(meter, control) -> str:
    """A waveform capture triggered through the control socket, as `meter pq capture` does. A capture taken while
    the loaded test machine lost samples has them missing; one that lost all is taken again (at most CAPTURE_TRIES)."""
    for _ in range(CAPTURE_TRIES):
        name = wait_for(lambda: _try_capture(control), 60, "a capture request accepted (samples on the ring)")
        wait_for(lambda n=name: n in capture_names(meter.data_dir / WAVEFORMS_DIR), CAPTURE_WAIT_S, f"capture {name}")
        try:
            analog = read_comtrade(meter.data_dir / WAVEFORMS_DIR / f"{name}.cfg").analog
        except ComtradeError:
            continue
        if analog.shape[0] > 0 and not np.isnan(analog).all():
            return name
        time.sleep(2.0)
    raise AssertionError(f"every sample of {CAPTURE_TRIES} captures lost:\n{meter.output()[-3000:]}")


def _try_capture(control: ControlClient) -> str | None:
    try:
        return control.call("recorder.capture")["name"]
    except Exception:  # noqa: BLE001 - the recorder refuses until it has samples
        return None


def test_captures_list_json_and_comtrade_download_are_the_recorders(meter, reader, capture):
    status, _, answer = reader.request("GET", "/api/captures")
    assert status == 200
    assert [c["name"] for c in answer["captures"]] == capture_names(meter.data_dir / WAVEFORMS_DIR)
    assert {"name": capture, "kind": "command"} in answer["captures"]

    cfg = meter.data_dir / WAVEFORMS_DIR / f"{capture}.cfg"
    rec = read_comtrade(cfg)
    status, _, wave = reader.request("GET", f"/api/captures/{capture}")
    assert status == 200 and wave["decimation"] == 1
    assert wave["sample_rate_hz"] == pytest.approx(rec.sample_rate_hz)
    assert len(wave["times_s"]) == rec.analog.shape[0]
    assert [c["name"] for c in wave["channels"]] == [a.name for a in rec.analogs]
    for i, ch in enumerate(wave["channels"]):
        a = rec.analogs[i]       # written at the terminals (ps = S): primary = secondary x primary/secondary
        assert a.ps == "S" and (ch["primary"], ch["secondary"]) == (a.primary, a.secondary)
        # samples the acquisition lost are missing in the file (NaN) and null in the JSON
        values = np.array([np.nan if v is None else v for v in ch["values"]])
        np.testing.assert_allclose(values, rec.analog[:, i] * a.primary / a.secondary, rtol=0, atol=ROUNDING)
    v_peak = max(abs(v) for c in wave["channels"] if c["unit"] == "V" for v in c["values"] if v is not None)
    assert 50.0 < v_peak < 1000.0          # the simulated board's mains voltage, not zeros

    for part in ("cfg", "dat"):
        conn = reader.connection()
        try:
            conn.request("GET", f"/api/captures/{capture}/{part}", headers={"Cookie": reader.cookie})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        assert resp.status == 200
        assert body == cfg.with_suffix(f".{part}").read_bytes()
        assert f'filename="{capture}.{part}"' in resp.getheader("content-disposition", "")


def test_pqdif_download_holds_the_capture_read_by_an_independent_reader(meter, reader, capture, tmp_path):
    """GET /api/pq/export: the PQDIF file of `meter pq export`, read back by tests/support/pqdif_reader.py."""
    conn = reader.connection()
    try:
        conn.request("GET", "/api/pq/export?format=pqdif&parts=captures", headers={"Cookie": reader.cookie})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body[:300]
    assert resp.getheader("content-disposition", "").endswith('.pqd"')
    (tmp_path / "download.pqd").write_bytes(body)
    records = pqdif.read(tmp_path / "download.pqd")
    chans = pqdif.channels(records)
    (obs,) = [o for o in pqdif.observations(records) if o["name"] == f"waveform capture {capture}"]
    rec = read_comtrade(meter.data_dir / WAVEFORMS_DIR / f"{capture}.cfg")
    got = {chans[i["channel"]]["name"]: i["series"] for i in obs["channels"]}
    assert set(got) == {f"{a.name} waveform" for a in rec.analogs}
    for k, a in enumerate(rec.analogs):
        t, values = got[f"{a.name} waveform"]
        np.testing.assert_allclose(t, rec.times_s, atol=1e-9)
        np.testing.assert_allclose(values, rec.analog[:, k] * a.primary / a.secondary, rtol=1e-12)
    status, _, answer = reader.request("GET", "/api/pq/export?parts=nothing")
    assert status == 400 and "not one of events, captures, trends" in answer["error"]
    status, _, answer = reader.request("GET", "/api/pq/export?format=comtrade")
    assert status == 400 and "not one of pqdif" in answer["error"]


@pytest.mark.parametrize("name", ["../meter", "..%2F..%2Fmeter.toml", "%2Fetc%2Fpasswd", "nope", "x" * 81,
                                  "..", ".partial"])
def test_a_capture_name_not_in_the_directory_is_refused(meter, reader, capture, name):
    for path in (f"/api/captures/{name}", f"/api/captures/{name}/cfg", f"/api/captures/{name}/dat"):
        status, _, answer = reader.request("GET", path)
        assert status in (400, 404), (path, status, answer)
        assert isinstance(answer, dict) and answer["error"], answer
    status, _, answer = reader.request("GET", f"/api/captures/{capture}/{urllib.parse.quote('../x')}")
    assert status in (400, 404) and answer["error"]
    status, _, answer = reader.request("GET", f"/api/captures/{capture}/meter.toml")
    assert status == 400 and "not one of cfg, dat" in answer["error"]


@pytest.fixture(scope="module")
def ten_min(meter) -> list[dict]:
    """Six 10-min aggregates of one to two hours ago (before the meter started), written through the recorder's own store writer (the live 3-s ones
    depend on a gap-free run of 15 windows, which a loaded test machine does not always give)."""
    now = time.time()
    store = AggregateStore(meter.data_dir, {"3s": 100000, "10min": 10000, "2h": 1000})
    try:
        for k in range(6):
            store.append("10min", (now // 600 - 12 + k) * 600, k == 2, False,
                         {"v_ln": [230.0 + k, 231.5 - k, float("nan")], "freq": [50.0 + 0.01 * k]})
    finally:
        store.close()
    return read_aggregates(meter.data_dir, "10min", (now // 600 - 12) * 600, (now // 600 - 7) * 600)


def test_aggregates_are_the_stores(meter, reader, ten_min):
    assert len(ten_min) == 6
    since, until = ten_min[1]["ts"], ten_min[4]["ts"]
    status, _, answer = reader.request("GET", f"/api/aggregates?kind=10min&since={since!r}&until={until!r}&limit=10")
    assert status == 200 and answer["kind"] == "10min"
    assert [r["ts"] for r in answer["records"]] == [r["ts"] for r in ten_min[1:5]]
    for got, want in zip(answer["records"], ten_min[1:5]):
        assert got["flagged"] == want["flagged"] and got["gap"] == want["gap"]
        assert got["values"] == finite(want["values"])      # JSON has no NaN: a NaN is served as null
    assert answer["records"][1]["values"]["v_ln"] == [232.0, 229.5, None] and answer["records"][1]["flagged"]
    status, _, answer = reader.request("GET", f"/api/aggregates?kind=10min&since={since!r}&names=freq")
    assert status == 200 and [r["values"] for r in answer["records"]] == [{"freq": [50.0 + 0.01 * k]}
                                                                          for k in range(1, 6)]
    # the limit keeps the oldest or the newest of the range, chosen in the database
    for order, want_ts in (("oldest", since), ("newest", until)):
        status, _, answer = reader.request("GET", f"/api/aggregates?kind=10min&names=freq&limit=1&order={order}"
                                                  f"&since={since!r}&until={until!r}")
        assert status == 200 and [r["ts"] for r in answer["records"]] == [want_ts]
    status, _, answer = reader.request("GET", "/api/aggregates?kind=3s")
    assert status == 400 and "names=" in answer["error"]       # whole records: at most 500 at once
    status, _, answer = reader.request("GET", "/api/aggregates?kind=1h")
    assert status == 400 and "not one of 3s, 10min, 2h" in answer["error"]
    status, _, answer = reader.request("GET", f"/api/aggregates?since={until}&until={since - 1}")
    assert status == 400 and "before" in answer["error"]


def test_trend_is_meter_pq_trend(meter, reader, ten_min):
    """GET /api/pq/trend: the hourly intervals hold the stored 10-min frequencies (the fixture's and the meter's)."""
    status, _, answer = reader.request("GET", "/api/pq/trend?target=frequency&interval=hourly")
    assert status == 200 and answer["unit"] == "Hz" and len(answer["intervals"]) == 24
    first = answer["intervals"][0]["start"]
    stored = [r for r in read_aggregates(meter.data_dir, "10min", first + 1e-6, None)
              if r["values"].get("freq") is not None and np.isfinite(np.asarray(r["values"]["freq"], float)).all()]
    assert sum(i["count"] for i in answer["intervals"]) >= len([r for r in stored if r["ts"] <= time.time() - 5])
    assert answer["forecast"]["next"] is None or 49.0 < answer["forecast"]["next"] < 51.0
    status, _, answer = reader.request("GET", "/api/pq/trend?target=nothing")
    assert status == 400 and "not one of" in answer["error"]


def test_pq_events_and_data_recorders_are_the_recorders(reader, control):
    status, _, answer = reader.request("GET", "/api/pq/events?since=0&limit=50")
    assert status == 200 and answer["events"] == finite(control.call("recorder.events", since_ts=0, limit=50))
    assert answer["itic"]["upper"][0] == list(ITIC_UPPER[0]) and answer["itic"]["lower"][-1][0] is None
    # each kind counted as itself; only dips, swells and interruptions lie on the ITI curve
    assert answer["itic"]["kinds"] == ["sag", "swell", "interruption"]
    assert answer["counts"] == {k: sum(1 for e in answer["events"] if e["kind"] == k)
                                for k in ("sag", "swell", "interruption", "rvc", "transient")}
    status, _, answer = reader.request("GET", "/api/recorders")
    recorders = control.call("recorder.recorders")
    assert status == 200 and answer["recorders"] == finite(recorders) and len(recorders) >= 1
    until = time.time() - 5.0        # records up to a past instant: the same in both answers
    for number in range(1, len(recorders) + 1):
        status, _, answer = reader.request("GET", f"/api/recorders/{number}?since=0&until={until!r}")
        assert status == 200
        assert answer["records"] == finite(control.call("recorder.read", recorder=number, since_ts=0, until_ts=until,
                                                        limit=1000))
    status, _, answer = reader.request("GET", "/api/recorders/17")
    assert status == 400 and "1..16" in answer["error"]


def test_reports_are_meter_reports(meter, reader):
    inst = cli_report.installation(ConfigStore(meter.config).load())
    start, end = week_bounds(time.time(), "previous")
    status, _, answer = reader.request("GET", "/api/reports/en50160?week=previous")
    want, _ = cli_report.en50160_week(inst, start, end)
    want.pop("source")
    assert status == 200 and (answer["start"], answer["end"]) == (start, end)
    assert answer["report"] == _json_form(want)
    status, _, answer = reader.request("GET", "/api/reports/ieee519?week=previous&isc_il=35")
    want, _ = cli_report.ieee519_week(inst, start, end, 35.0)
    want.pop("source")
    assert status == 200 and answer["report"] == _json_form(want)
    status, _, answer = reader.request("GET", "/api/reports/ieee519")
    assert status == 400 and "isc_il" in answer["error"]
    status, _, answer = reader.request("GET", "/api/reports/en50160")
    assert status == 200 and answer["week"] == "present" and answer["report"]


def _json_form(value):
    """The report as JSON carries it: NaN as null, tuples as lists."""
    return json.loads(json.dumps(finite(value)))


def test_browser_waveform_iti_trends_and_report(meter, capture, ten_min, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    artifacts = tmp_path_factory.getbasetemp() / "artifacts" / "web"
    artifacts.mkdir(parents=True, exist_ok=True)
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does; docs/web.md)"
    base = f"https://127.0.0.1:{meter.https_port}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/")
            page.wait_for_selector("#login-form")
            page.fill("#login-user", "reader")
            page.fill("#login-password", USERS["reader"][0])
            page.click("#login-submit")
            page.wait_for_selector("td[data-point='v_an']")

            page.goto(f"{base}/#/waveforms")
            page.wait_for_selector(f"[data-capture='{capture}']")
            page.click(f"[data-capture='{capture}']")
            canvas = page.locator("canvas#wave[data-drawn]")
            canvas.wait_for()
            drawn = int(canvas.get_attribute("data-drawn") or 0)
            assert drawn == len(read_comtrade(meter.data_dir / WAVEFORMS_DIR / f"{capture}.cfg").analogs)
            # the canvas holds drawn pixels: not one colour everywhere
            assert page.evaluate("""() => { const c = document.querySelector('canvas#wave');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);
                return seen.size; }""") > 2
            page.uncheck("input[data-channel='IA']")
            page.wait_for_selector(f"canvas#wave[data-drawn='{drawn - 1}']")
            span = float(page.locator("canvas#wave").get_attribute("data-span") or 0)
            page.click("#zoom-in")
            assert float(page.locator("canvas#wave").get_attribute("data-span") or 0) == pytest.approx(span / 2)
            page.screenshot(path=artifacts / "07-waveform.png", full_page=True)

            page.goto(f"{base}/#/iti")
            page.wait_for_selector("svg#iti path.iti-limit")
            # the summary counts each kind as itself, the same as the API, and draws only those on the curve
            counts = json.loads(page.evaluate("""async () => JSON.stringify((await (await fetch(
                '/api/pq/events?limit=10000')).json()).counts)"""))
            summary = page.locator("#iti-summary").inner_text()
            for kind, word in (("sag", "dip"), ("swell", "swell"), ("interruption", "interruption"),
                               ("transient", "transient")):
                assert f"{counts[kind]} {word}" in summary, (summary, counts)
            assert page.locator("svg#iti circle.iti-event[data-kind='transient']").count() == 0
            assert page.locator("svg#iti circle.iti-event").count() <= counts["sag"] + counts["swell"] + \
                counts["interruption"]
            page.screenshot(path=artifacts / "08-iti.png", full_page=True)

            page.goto(f"{base}/#/trends")
            page.wait_for_selector("#trend-kind")
            page.select_option("#trend-span", str(86400))
            page.select_option("#trend-kind", "10min")
            page.wait_for_selector("#trend-info:has-text('10min records')")
            # phase a rises 1 V a record, b falls (the meter's own 10-min record, if one is due, comes after)
            line = page.wait_for_selector("svg#trend polyline[data-element='a']", state="attached")
            ys = [float(p.split(",")[1]) for p in (line.get_attribute("points") or "").split()]
            assert len(ys) >= 6 and all(a > b for a, b in zip(ys[:6], ys[1:6]))      # rising: y grows downwards
            line = page.locator("svg#trend polyline[data-element='b']")
            ys = [float(p.split(",")[1]) for p in (line.get_attribute("points") or "").split()]
            assert all(a < b for a, b in zip(ys[:6], ys[1:6]))
            # trending and forecasting: the hourly frequency as the API answers it
            page.select_option("#forecast-interval", "hourly")
            page.select_option("#forecast-target", "frequency")
            page.wait_for_function("""() => document.querySelectorAll('table#forecast tbody tr').length === 24
                && document.querySelector('#forecast-summary').textContent.startsWith('frequency')""")
            page.screenshot(path=artifacts / "09-trends.png", full_page=True)

            page.goto(f"{base}/#/report")
            page.wait_for_selector("table#en50160 tbody tr")
            # the header counts the records the rows used, as the rows do
            report = json.loads(page.evaluate("""async () => JSON.stringify((await (await fetch(
                '/api/reports/en50160?week=present')).json()).report)"""))
            head = page.locator("#en50160-records").inner_text()
            assert head.startswith(f"{report['records']['10min_used']} of {report['records']['10min_expected']} "
                                   "10-min records used"), head
            assert f"{report['records']['10min']} stored" in head
            # the dip and swell tables of EN 50160:2010 (5 x 5 and 2 x 5) and the interruptions
            assert page.locator("table#en50160-dips tbody tr").count() == 5
            assert page.locator("table#en50160-swells tbody tr td").count() == 2 * 6
            assert "short" in page.locator("#en50160-interruptions").inner_text()
            page.screenshot(path=artifacts / "10-report.png", full_page=True)
            assert not page.locator("#view p.error").count(), page.locator("#view").inner_text()
            assert not errors, errors
        finally:
            browser.close()


def test_captures_go_on_after_acquisition_is_restarted(meter, control, capture, repo, subprocess_env):
    """The diagnostics page's restart of acquisition (the supervisor's `restart`): acquisition counts samples from
    0 again, and `meter pq capture` still writes its file, without restarting the recorder (runs last: it restarts
    the module's acquisition)."""
    before = control.call("recorder.info")
    control.call("restart", service="acquisition")
    deadline, run = time.monotonic() + 120.0, None
    while time.monotonic() < deadline:
        run = subprocess.run([sys.executable, "-m", "firmware.cli", "pq", "--config", str(meter.config), "capture"],
                             cwd=repo, env=subprocess_env, capture_output=True, text=True, timeout=60)
        if run.returncode == 0:
            break
        time.sleep(2.0)                    # acquisition is starting again: the capture fails, and says why
    assert run is not None and run.returncode == 0, (run.stdout + run.stderr if run else "", meter.output()[-3000:])
    got = json.loads(run.stdout)
    assert got["status"] == "written" and Path(got["cfg"]).is_file()
    assert got["name"] in capture_names(meter.data_dir / WAVEFORMS_DIR)
    # the same recorder process followed the new count (a restarted recorder would start at 0 restarts seen)
    after = control.call("recorder.info")
    assert after["acquisition_restarts"] >= before["acquisition_restarts"] + 1, after
