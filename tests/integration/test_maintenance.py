"""Master reset, factory defaults and device wipe on a running supervisor, through `meter reset`: what each
clears and keeps, the event it logs, the revenue lock's refusal, and a wipe that leaves the meter stopped."""
from __future__ import annotations

import subprocess
import sys

from firmware.config.store import ConfigStore, load_file
from firmware.lockstate import set_file_lock
from firmware.storage.eventlog import EventLog
from tests.integration.test_supervisor import Meter

# files of every kind a meter keeps under data_dir: what a master reset clears, and what it keeps
CLEARED = ("revenue/registers.a", "recorder.db", "recorder.db-wal", "waveforms/x_sag.cfg", "io/counts.a",
           "pq_counters.json", "bacnet/trendlogs.db", "time.db")
KEPT = ("security.db", "web/selfsigned.pem", "powerup.json")


def _reset(meter: Meter, which: str, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "reset", which, "--yes", "--config",
                           str(meter.config)], capture_output=True, text=True, env=env, timeout=180)


def _running_pid(meter: Meter) -> int:
    status = meter.wait_for(lambda s: s["services"]["ticker"]["state"] == "running", 30, "ticker running")
    return status["services"]["ticker"]["pid"]


def test_master_reset_factory_defaults_and_wipe(tmp_path, subprocess_env):
    lock = tmp_path / "revenue_lock"
    meter = Meter(tmp_path, subprocess_env, ["ticker"],
                  extra_config=f'[upgrade]\nrevenue_lock_file = "{lock}"\n[supervisor]\nstop_timeout = 2\n'
                               '[modbus]\ntcp_port = 1502\n')
    data = tmp_path / "var"
    try:
        pid = _running_pid(meter)
        for name in CLEARED + KEPT:
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_text("x")

        # without --yes nothing happens, and says so
        run = subprocess.run([sys.executable, "-m", "firmware.cli", "reset", "master", "--config", str(meter.config)],
                             capture_output=True, text=True, env=subprocess_env)
        assert run.returncode == 1 and "add --yes to do it" in run.stderr
        # the revenue lock refuses it
        set_file_lock(lock, True)
        run = _reset(meter, "master", subprocess_env)
        assert run.returncode == 1 and "revenue-locked" in run.stderr, run.stderr
        assert all((data / name).exists() for name in CLEARED)
        set_file_lock(lock, False)

        run = _reset(meter, "master", subprocess_env)
        assert run.returncode == 0, run.stderr
        assert not any((data / name).exists() for name in CLEARED)
        assert all((data / name).exists() for name in KEPT)
        assert _running_pid(meter) != pid                       # the services were stopped and started again
        (event,) = [e for e in EventLog(data).read() if e["cause"] == "master_reset"]
        assert event["priority"] == 255 and event["user"] and "revenue" in event["detail"]["cleared"], event

        run = _reset(meter, "factory", subprocess_env)
        assert run.returncode == 0, run.stderr
        cfg = load_file(meter.config)
        assert cfg["modbus"].tcp_port == 502 and cfg["supervisor"].stop_timeout != 2   # back to the defaults
        assert cfg.meter.data_dir == str(data) and cfg["upgrade"].revenue_lock_file == str(lock)   # kept
        assert ConfigStore(meter.config).history()[-1]["reason"] == "factory defaults"
        assert [e["cause"] for e in EventLog(data).read()][-1] == "factory_defaults"
        _running_pid(meter)

        run = _reset(meter, "wipe", subprocess_env)
        assert run.returncode == 0, run.stderr
        meter.proc.wait(timeout=30)                              # the meter stops after a wipe
        assert not meter.config.exists() and list(data.iterdir()) == []
    finally:
        if meter.proc.poll() is None:
            meter.proc.kill()
            meter.proc.wait()
