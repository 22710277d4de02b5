"""The whole meter as `make run` starts it: every service up, metering, Modbus answering, clean stop."""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from firmware.control import ControlClient

STARTUP_TIMEOUT_S = 90.0   # generous: CI machines are small and may be busy
STOP_DEADLINE_S = 5.0      # requirement: Ctrl-C or SIGTERM stops everything within 5 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def meter(tmp_path, repo, subprocess_env):
    port = _free_port()
    config = tmp_path / "meter.toml"
    config.write_text(f'[meter]\ndata_dir = "{tmp_path / "var"}"\nrun_dir = "{tmp_path / "run"}"\n'
                      f'[modbus]\ntcp_port = {port}\nbind_address = "127.0.0.1"\n'
                      f'[snmp]\nenabled = true\nport = {port}\nbind_address = "127.0.0.1"\n'
                      f'[web]\nhttps_port = {_free_port()}\nhttp_port = {_free_port()}\nbind_address = "127.0.0.1"\n')
    log = open(tmp_path / "meter.out", "w+")  # noqa: SIM115 - the meter writes it while the test reads it
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(config),
                             "--board", str(repo / "boards" / "sim.toml")], cwd=repo, env=subprocess_env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.output = lambda: (log.seek(0), log.read())[1]  # type: ignore[attr-defined]
    client = ControlClient(tmp_path / "run" / "control.sock", timeout_s=10)
    yield proc, client, port
    if proc.poll() is None:
        proc.terminate()              # a clean stop, which removes the meter's shared memory
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tmp_path_of(client: ControlClient) -> Path:
    return client.path.parent.parent          # the control socket is tmp_path/run/control.sock


def _wait_healthy(proc, client) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    status: dict = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.output()[-4000:]
        try:
            status = client.call("status")
            if status["healthy"]:
                return status
        except Exception:  # noqa: BLE001 - polled until the meter answers
            pass
        time.sleep(0.25)
    raise AssertionError(f"meter not healthy within {STARTUP_TIMEOUT_S} s: {status}")


def test_whole_meter_runs_meters_serves_modbus_and_stops_cleanly(meter):
    proc, client, port = meter
    status = _wait_healthy(proc, client)
    for name in ("acquisition", "metrology", "comms", "web"):
        assert status["services"][name]["state"] == "running", status
    web_url = status["services"]["web"]["endpoints"][0]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/", web_url), web_url
    context = ssl.create_default_context(cafile=str(tmp_path_of(client) / "var" / "web" / "selfsigned.pem"))
    with urllib.request.urlopen(web_url + "api/openapi.json", context=context, timeout=30) as answer:
        assert json.load(answer)["openapi"].startswith("3.")
    assert status["metering"] is True
    # Voltages A-N, B-N, C-N (ION layout 3027..3032, float32 high word first), read by libmodbus' mbpoll.
    assert shutil.which("mbpoll"), "mbpoll is not installed (Debian package 'mbpoll'; .ci/run installs it)"
    run = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-r", "3027", "-c", "3",
                          "-t", "4:float", "-B", "-1", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    volts = [float(m.group(1)) for m in re.finditer(r"^\[30\d\d\]:\s+(\S+)", run.stdout, re.M)]
    assert len(volts) == 3 and all(50.0 < v < 500.0 for v in volts), run.stdout
    # The same voltage over SNMP (UDP, on the Modbus port's number), read by net-snmp's snmpget with this meter's
    # own community: hundredths of a volt, within what one second's change of the simulated board can be.
    assert shutil.which("snmpget"), "snmpget is not installed (Debian package 'snmp'; .ci/run installs it)"
    community = json.loads((tmp_path_of(client) / "var" / "snmp" / "secrets.json").read_text())["community"]
    run = subprocess.run(["snmpget", "-v2c", "-c", community, "-On", "-Oqv", f"udp:127.0.0.1:{port}",
                          ".1.3.6.1.4.1.32473.1.1.1.10.0"], capture_output=True, text=True, timeout=30,
                         env={"MIBS": "", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout) / 100 == pytest.approx(volts[0], abs=2.0), (run.stdout, volts)
    assert f"snmp:127.0.0.1:{port}" in status["services"]["comms"]["endpoints"]
    pids = [svc["pid"] for svc in status["services"].values()] + [proc.pid]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    out = proc.output()
    elapsed = time.monotonic() - t0
    assert elapsed < STOP_DEADLINE_S, f"stop took {elapsed:.2f} s"
    assert [p for p in pids if _alive(p)] == [], "a process outlived the meter"
    assert "meter 0.1.0 running" in out or "running (configuration version" in out
    assert web_url in out, "the banner does not say where the web interface listens"
    from firmware.ipc.names import instance_name

    assert not list(Path("/dev/shm").glob(instance_name(status["run_dir"]) + ".*")), "shared memory left behind"
    print(f"stopped in {elapsed:.2f} s")
