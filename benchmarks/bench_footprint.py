"""What the running meter costs: PSS per process and in total, CPU per process (% of one core), measured on
``make run``'s settings in steady state (tools/footprint.py), three meters one after the other in this run:

- ``fork``: this firmware as it runs (services forked from the preloaded supervisor, the default);
- ``exec``: this firmware with ``[supervisor] start = "exec"`` (each service a new interpreter);
- ``base``: the firmware of ``BASELINE_REV`` (``BENCH_BASELINE_REV`` overrides it), exported with ``git
  archive`` and its C extensions built beside it: each service a new interpreter importing everything, the
  acquisition's whole address space locked, the PQ ring of 32 MB, the io and display polling. Skipped, and
  said so, where git or a C compiler is missing;
- ``before``: the firmware of ``BEFORE_REV`` (``BENCH_BEFORE_REV`` overrides it), the same way: services
  forked as now, but the C read loop's seven messages to the chip per interrupt, the power-fail input read
  every 10 ms, the samples ring waking its readers at each block, BACnet counting its trend logs in SQLite
  every second: the CPU baseline of those changes;
- ``prev``: the firmware of ``PREVIOUS_REV`` (``BENCH_PREVIOUS_REV`` overrides it), the same way: the last one
  before BACnet worked its values out on read, the Modbus reaper and the web servers stopped ticking while
  idle, the display kept its rendered texts and acquisition drained every 64 ms: the CPU baseline of those.

Goals (docs/memory.md): firmware PSS <= 250 MB, each idle service (io, display, comms, upgrade, time, web,
supervisor) <= 0.3 % of a core, the firmware <= 8 %. CPU is each process's own time over the window, so the
figure holds on a busy host; the load average beside it says how busy. The simulated chip (``chipd``) is the
board's stand-in and not counted. ``python -m benchmarks footprint``; the metrology pipeline's real-time factor
is ``bench_metrology``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tools.footprint import REPO, Usage, run_and_measure, table

BASELINE_REV = "5379b93"     # the last revision whose services each imported everything and polled
BEFORE_REV = "e42c7b2"       # the last revision before the idle-CPU changes (docs/memory.md, "Figures")
PREVIOUS_REV = "27e3ab0"     # the last revision before the second round of them (docs/memory.md, "Figures")
SETTLE_S = 20.0               # after the meter is healthy: start-up work (imports, first seconds) is over
WINDOW_S = 20.0
GOAL_PSS_MB = 250.0
GOAL_IDLE_CPU = 0.3
GOAL_TOTAL_CPU = 8.0
IDLE = ("supervisor", "io", "display", "comms", "upgrade", "time", "web")


def _baseline_tree(rev: str, into: Path) -> Path | None:
    """The firmware of ``rev`` with its C extensions built in place, or None (and why) if it cannot be had."""
    archive = into / "base.tar"
    try:
        into.mkdir(parents=True, exist_ok=True)
        with open(archive, "wb") as out:
            subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=out, check=True, stderr=subprocess.PIPE)
        with tarfile.open(archive) as tar:
            tar.extractall(into / "tree", filter="data")
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=into / "tree", check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"baseline {rev}: not measured ({exc}; {detail.decode(errors='replace').strip()[-300:]})")
        return None
    return into / "tree"


def _summary(name: str, usage: list[Usage]) -> str:
    own = [u for u in usage if not u.name.startswith("(")]
    idle = [u for u in own if u.name in IDLE]
    worst = max(idle, key=lambda u: u.cpu_percent) if idle else None
    pss = sum(u.pss_kb for u in own) / 1024
    cpu = sum(u.cpu_percent for u in own)
    return (f"{name:5s}: firmware {pss:6.1f} MB (goal <= {GOAL_PSS_MB:g}), {cpu:5.2f} % of a core (goal <= "
            f"{GOAL_TOTAL_CPU:g})" + (f", busiest idle service {worst.name} {worst.cpu_percent:.2f} % (goal <= "
                                      f"{GOAL_IDLE_CPU:g})" if worst else ""))


def main() -> None:
    revs = {"base": os.environ.get("BENCH_BASELINE_REV", BASELINE_REV),
            "before": os.environ.get("BENCH_BEFORE_REV", BEFORE_REV),
            "prev": os.environ.get("BENCH_PREVIOUS_REV", PREVIOUS_REV)}
    runs: dict[str, list[Usage]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        for name, start in (("fork", "fork"), ("exec", "exec")):
            runs[name] = run_and_measure(start, SETTLE_S, WINDOW_S)
            print(f"{name} measured (load average {os.getloadavg()[0]:.1f})", flush=True)
        for name, rev in revs.items():
            tree = _baseline_tree(rev, Path(tmp) / name)
            if tree is not None:
                runs[name] = run_and_measure(None, SETTLE_S, WINDOW_S, tree)
                print(f"{name} ({rev}) measured (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nPSS (MB) and CPU (% of one core over {WINDOW_S:g} s, {SETTLE_S:g} s after healthy), "
          f"{os.cpu_count()} CPUs:")
    for line in table(runs):
        print(line)
    print()
    for name, usage in runs.items():
        print(_summary(name, usage))
    if "base" in runs:
        base = sum(u.pss_kb for u in runs["base"] if not u.name.startswith("(")) / 1024
        now = sum(u.pss_kb for u in runs["fork"] if not u.name.startswith("(")) / 1024
        print(f"firmware PSS: {now:.1f} MB = {now / base:.2f} x the baseline's {base:.1f} MB")
    now = _firmware_cpu(runs["fork"])
    for name, what in (("before", "before the idle-CPU changes"), ("prev", f"of {revs['prev']}")):
        if name in runs:
            then = _firmware_cpu(runs[name])
            print(f"firmware CPU: {now:.2f} % of a core = {now / then:.2f} x the {then:.2f} % {what}")


def _firmware_cpu(usage: list[Usage]) -> float:
    return sum(u.cpu_percent for u in usage if not u.name.startswith("("))
