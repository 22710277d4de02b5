"""`make run` started and stopped as a user does: the development settings (Makefile ``dev-config``), `meter run`
on the simulated board in a session of its own, then Ctrl-C, which a terminal sends to every process of the
group. The stop is clean and says so: no traceback, every service's exit status 0, the supervisor's too; the
start says each thing once."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.web_meter import free_port

READY_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 60.0


def test_ctrl_c_stops_make_run_cleanly(repo, subprocess_env, tmp_path):
    config = tmp_path / "meter.toml"
    # the ports make run would use (5020, 47809, 8443, 8080) may be taken on this machine: free ones, set
    # before dev-config, which leaves options already changed alone
    config.write_text(
        f'[meter]\ndata_dir = "{tmp_path / "var"}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[modbus]\ntcp_port = {free_port()}\n[bacnet]\nip_port = {free_port()}\n'
        f'[web]\nhttps_port = {free_port()}\nhttp_port = {free_port()}\n'
        # a loaded test machine may need more than the default 3 s to stop a service: a SIGKILL then would be
        # the machine's slowness, not what this test looks at; nor is a heartbeat late on a loaded machine
        '[supervisor]\nstop_timeout = 20\nheartbeat_timeout = 60\n')
    subprocess.run(["make", "-s", "-C", str(repo), "dev-config", f"RUN_CONFIG={config}", "STAMP=",
                    f"BIN={Path(sys.executable).parent}"], check=True, env=subprocess_env, capture_output=True,
                   timeout=120)
    log = tmp_path / "meter.out"
    with open(log, "w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(config), "--board",
                                 str(repo / "boards" / "sim.toml")], cwd=repo, env=subprocess_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while "Press Ctrl-C to stop." not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.5)
            time.sleep(3.0)                                  # metering for a few seconds
            started = len(log.read_text())
            os.killpg(proc.pid, signal.SIGINT)               # Ctrl-C: the whole process group
            code = proc.wait(STOP_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[text.find("Traceback") - 2000:]
    exits = dict(re.findall(r"supervisor: (\w+) stopped: (.+)", text[started:]))
    assert len(exits) >= 8 and set(exits.values()) == {"exit status 0"}, (
        {name: how for name, how in exits.items() if how != "exit status 0"}, text[started:][-3000:])
    assert "supervisor stopped" in text
    # the start says each thing once
    assert text.count("still has its factory default password") == 1, text[:3000]
    assert "Started server process" not in text
    # a PC running the simulated board has no chronyd: information, not a warning
    assert not re.search(r"warning +time/time: chronyc", text), text
