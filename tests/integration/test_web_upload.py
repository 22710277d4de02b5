"""Firmware uploads over HTTPS (the project's test client over TLS) against a running meter's web and upgrade
services (tests/support/web_meter.py): the upload is answered only once the whole image was verified, and an
upload while another install runs is refused without touching the running install's image.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.web_meter import WebClient, WebMeter, running, session

BIG_UPLOAD_BYTES = 32 << 20        # room for an image of a few thousand files
SLOW_FILES = 3000                  # each is written and fsynced twice by the install: it runs for a while
UPLOADS = "web/uploads"


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    with running(WebMeter(tmp_path_factory.mktemp("upload-meter"), max_upload=BIG_UPLOAD_BYTES)) as m:
        yield m


@pytest.fixture(scope="module")
def alice(meter) -> WebClient:
    return session(meter, "alice")


def uploads(meter: WebMeter) -> list[Path]:
    return sorted((meter.data_dir / UPLOADS).glob("*.img"))


def payload_offset(image: bytes) -> int:
    """Where the last payload file's data starts: past the manifest, the signatures and every header."""
    at = image.rindex(b"payload/")
    return (at // 512 + 1) * 512


def refused(client: WebClient, data: bytes) -> tuple[int, str]:
    status, _, answer = client.request("POST", "/api/upgrade", raw=data)
    assert status != 200, f"a bad image was answered {answer!r}"
    return status, answer["error"]


def test_damaged_truncated_and_unsigned_images_are_refused_before_the_answer(meter, alice):
    good = meter.upgrade.image("0.2.0").read_bytes()
    flipped = bytearray(good)
    flipped[payload_offset(good)] ^= 0x01          # one payload byte: the manifest and signature still verify
    cut = good[:len(good) - 4096]                  # a lost tail, as from an interrupted download
    unsigned = meter.upgrade.image("0.2.0", sign=False).read_bytes()
    before = alice.request("GET", "/api/upgrade")[2]

    status, error = refused(alice, bytes(flipped))
    assert status == 422 and "refused (damaged)" in error and "SHA-256" in error, error
    status, error = refused(alice, cut)
    assert status == 422 and "refused (truncated)" in error, error
    status, error = refused(alice, unsigned)
    assert status == 422 and "refused (unsigned)" in error, error

    assert not uploads(meter), "a refused image was kept"
    after = alice.request("GET", "/api/upgrade")[2]
    assert after["current"] == before["current"] and after["installing"] is None
    rows = alice.request("GET", "/api/upgrade/log?n=50")[2]["log"]
    assert not [r for r in rows if r["event"] == "accepted"], "a bad image reached the install"


def test_an_upload_while_an_install_runs_is_refused_and_the_install_completes(meter, alice):
    slow = meter.upgrade.image("0.3.0", files=SLOW_FILES).read_bytes()
    other = meter.upgrade.image("0.4.0").read_bytes()

    status, _, first = alice.request("POST", "/api/upgrade", raw=slow)
    assert status == 200 and first["accepted"] and first["version"] == "0.3.0", first
    [running] = uploads(meter)

    status, _, answer = alice.request("POST", "/api/upgrade", raw=other)
    assert alice.request("GET", "/api/upgrade")[2]["installing"] == first["attempt"], \
        "the first install ended before the second upload arrived: make its image larger"
    assert status == 409, answer
    assert "another install is in progress" in answer["error"], answer
    assert f"attempt {first['attempt']} is still being installed" in answer["error"], answer
    assert uploads(meter) == [running] and running.read_bytes() == slow, "the running install's image was touched"

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = alice.request("GET", f"/api/upgrade/{first['attempt']}")[2]
        if progress["state"] != "installing":
            break
        time.sleep(0.2)
    events = [r["event"] for r in progress["log"]]
    steps = [r["message"] for r in progress["log"] if r["event"] == "step"]
    assert "failed" not in events and steps[-1] == "switch", progress
    status = alice.request("GET", "/api/upgrade")[2]
    assert status["current"] == first["slot"] and status["installing"] is None, status
