"""A revenue-locked meter's configuration file and its seal edited together offline (issue 30): the seal is
recomputed as an unkeyed SHA-256 of the new values, as anyone with the files can, and the meter is started again
on them (`meter run`, tests/support/web_meter.py). The seal is signed with the meter's key, kept out of the data
directory, so the forgery does not pass: a `config_tamper` event (255) at the start, and no accepted change. On
the meter itself (`meter config set`) the lock refuses moving the data directory or the lock file."""
from __future__ import annotations

import hashlib
import json
import time


from firmware.lockstate import set_file_lock
from firmware.storage.eventlog import EventLog
from tests.support.web_meter import WebMeter

SERVICES = "acquisition,metrology,web"


def forge(config, option: str, old: str, new: str) -> None:
    """Edit the file and the seal's values and SHA-256, as an offline editor without the key can."""
    text = config.read_text()
    assert f"{option} = {old}" in text
    config.write_text(text.replace(f"{option} = {old}", f"{option} = {new}"))
    seal_file = config.with_name("meter.toml.seal")
    seal = json.loads(seal_file.read_text())
    seal["sections"]["metrology"][option] = float(new)
    seal["sha256"] = hashlib.sha256(json.dumps(seal["sections"], sort_keys=True, default=str).encode()).hexdigest()
    seal_file.write_text(json.dumps(seal))


def test_a_file_and_seal_edited_together_offline_do_not_pass(tmp_path):
    meter = WebMeter(tmp_path, services=SERVICES, extra="[metrology]\nct_primary = 5.0\n")
    try:
        meter.wait_ready()                           # the first start seals the configuration under the key
        seal = json.loads(meter.config.with_name("meter.toml.seal").read_text())
        assert seal["sections"]["metrology"]["ct_primary"] == 5.0
        version = seal["version"]
        set_file_lock(meter.upgrade.settings.revenue_lock_file, True)
        meter.stop()
        forge(meter.config, "ct_primary", "5.0", "50.0")
        meter.start()
        meter.wait_ready()
        deadline = time.monotonic() + 30
        while not (tampers := [e for e in EventLog(meter.data_dir).read() if e["cause"] == "config_tamper"]):
            assert time.monotonic() < deadline, meter.output()[-3000:]
            time.sleep(0.5)
        assert tampers[0]["priority"] == 255 and "does not verify" in tampers[0]["effect"], tampers
        assert "does not verify against this meter's seal key" in meter.output()
        history = [json.loads(line) for line in
                   meter.config.with_name("meter.toml.history.jsonl").read_text().splitlines()]
        assert history[-1]["refused"] == "revenue lock"
        # not accepted as a change: the seal is not renewed over the forged values
        assert json.loads(meter.config.with_name("meter.toml.seal").read_text())["version"] == version
        # on the meter itself, the lock refuses moving the data (a fresh user store, zero registers) or the lock
        for option in ("meter.data_dir", "upgrade.revenue_lock_file"):
            before = meter.config.read_text()
            out = meter.meter("config", "set", f"{option}={tmp_path / 'elsewhere'}")
            assert out.returncode != 0 and "revenue-locked" in out.stdout + out.stderr, out.stdout + out.stderr
            assert meter.config.read_text() == before
    finally:
        meter.stop()


