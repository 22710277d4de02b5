"""A stop signal that reaches a forked service while it is still starting (importing its module, reading its
configuration) stops it cleanly once its handlers are in place: it is neither killed half started nor lost to
the handler the child inherited from the supervisor (which left a service running after the meter's Ctrl-C,
until the supervisor's SIGKILL)."""
from __future__ import annotations

import json
import subprocess
import sys

ROUNDS = 6                 # SIGTERM and SIGINT in turn
# As the supervisor does: its own Python handler installed, then a service forked; the signal is sent the moment
# fork returns, while the child is starting. Prints each signal's exit description.
PROGRAM = r"""
import json, os, signal, subprocess, sys
from firmware.preload import fork_service

caught = []
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, frame: caught.append(signum))
config, run_dir, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
_, hb = os.pipe()
args = ["--config", config, "--board", "boards/sim.toml", "--run-dir", run_dir, "--heartbeat-fd", str(hb),
        "--parent-pid", str(os.getpid()), "--name", "ticker"]
codes = []
for i in range(rounds):
    sig = (signal.SIGTERM, signal.SIGINT)[i % 2]
    proc = fork_service("tests.support.ticker_service", "ticker", args, hb)
    proc.send_signal(sig)
    try:
        codes.append(proc.wait(20))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        codes.append("running 20 s after the signal")
print(json.dumps({"codes": codes, "caught_by_the_parent": caught}))
"""


def test_a_stop_signal_sent_while_a_forked_service_starts_stops_it_cleanly(tmp_path, subprocess_env, repo):
    rounds = ROUNDS
    run_dir = tmp_path / "run"
    config = tmp_path / "meter.toml"
    config.write_text(f'[meter]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{run_dir}"\n')
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(config), str(run_dir), str(rounds)], cwd=repo,
                          env=subprocess_env, capture_output=True, text=True, timeout=rounds * 25)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # exit status 0: the service's own handler stopped it (a signal's default action would give -15 or -2)
    assert result["codes"] == [0] * rounds, (result, done.stderr[-3000:])
    assert result["caught_by_the_parent"] == []
