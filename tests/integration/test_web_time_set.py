"""The web's time-set reset sets the clock: over HTTPS to a running meter (acquisition, metrology, time and
web), through the catalogue's time_set command to the time service, which gives chronyd (on loopback, started
here) the manual time; the page's button sends this computer's clock the same way (tests/integration/
test_web.py)."""
from __future__ import annotations

import subprocess
import time

import pytest

from firmware.storage.eventlog import EventLog
from tests.support.chrony import MeterChronyd, require_chrony
from tests.support.web_meter import WebMeter, running, session

OFFSET_S = 40.0


@pytest.fixture
def chronyd(tmp_path):
    require_chrony()
    daemon = MeterChronyd(tmp_path / "chrony")
    try:
        yield daemon
    finally:
        daemon.stop()


def test_the_web_time_set_gives_chrony_the_time(tmp_path, chronyd):
    extra = (f'[time]\nchrony_socket = "{chronyd.socket}"\n'
             f'chrony_sources_file = "{chronyd.sources_dir / "openmeter.sources"}"\npriority = ["protocol", "ntp"]\n')
    with running(WebMeter(tmp_path / "meter", extra=extra, services="acquisition,metrology,time,web")) as meter:
        alice = session(meter)
        utc = time.time() + OFFSET_S
        status, _, answer = alice.request("POST", f"/api/resets/time_set?value={utc:.3f}")
        assert status == 200, answer
        result = answer["result"]
        assert result["accepted"] and result["applied"] and result["offset"] == pytest.approx(OFFSET_S, abs=5.0)
        manual = subprocess.run(["chronyc", "-n", "-h", str(chronyd.socket), "manual", "list"], capture_output=True,
                                text=True, timeout=10)
        assert "n_samples = 1" in manual.stdout, manual.stdout + manual.stderr
        rows = [e for e in EventLog(meter.data_dir).read(min_priority=0) if e["cause"] == "time_set"]
        assert rows and rows[-1]["user"] == "alice", rows
