"""What a running meter costs the host: proportional set size (PSS) and CPU time of each of its processes.

PSS (``/proc/<pid>/smaps_rollup``) charges each page to the processes that map it in equal shares, so the
figures of all processes add up to the memory the meter really takes; RSS would count a page shared by
eleven processes eleven times. CPU is the process's own user and system time (``/proc/<pid>/stat``, every
thread, not its children) over a window, as a share of one core: on a busy host that is still what the
process itself used, where wall-clock timings are not.

``python -m tools.footprint`` starts the meter on the simulated board in a scratch directory (ports chosen
free, every service of ``make run`` on, BACnet/IP included), waits for it to settle, prints the table and
stops it; ``--attach RUN_DIR`` measures the meter already running there instead (on a CM4, or in the emulated
image: ``python -m tools.footprint --attach /run/openmeter``). ``benchmarks/bench_footprint.py`` runs it on
this firmware and on the one before, side by side.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from firmware.control import ControlClient, ControlError
from hal.errors import MeterError

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0


@dataclass
class Usage:
    name: str
    pid: int
    pss_kb: int
    cpu_percent: float      # of one core, over the window


def pss_kb(pid: int) -> int:
    """The process's proportional set size in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User plus system time of the process (all its threads), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()   # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children ...), from /proc."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return f"pid {pid}"
    words = [a.decode(errors="replace") for a in argv if a]
    modules = [w for w in words if w.startswith(("hal.", "firmware."))]
    return (modules[-1].rsplit(".", 1)[-1] if modules else Path(words[0]).name if words else f"pid {pid}")


def processes(supervisor_pid: int, services: dict[str, int]) -> dict[str, int]:
    """Name -> pid of the supervisor, its services (by the supervisor's status) and any other descendant
    (the simulated chip), named from its command line."""
    named = {"supervisor": supervisor_pid, **{n: p for n, p in services.items() if p}}
    known = set(named.values())
    for pid in descendants(supervisor_pid):
        if pid not in known:
            named[f"({_label(pid)})"] = pid
    return named


def measure(named: dict[str, int], window_s: float) -> list[Usage]:
    """PSS at the end and CPU over ``window_s`` of each named process."""
    t0, c0 = time.monotonic(), {n: cpu_s(p) for n, p in named.items()}
    time.sleep(window_s)
    dt = time.monotonic() - t0
    return [Usage(n, p, pss_kb(p), 100.0 * (cpu_s(p) - c0[n]) / dt) for n, p in named.items()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, start: str | None = None, snmp: bool = True) -> Path:
    """The settings of ``make run`` (BACnet/IP and SNMP on, the web on loopback) on free ports, under ``root``;
    ``snmp`` off for a firmware older than its agent (whose configuration has no [snmp])."""
    config = root / "meter.toml"
    start_line = f'start = "{start}"\n' if start else ""
    snmp_lines = f'[snmp]\nenabled = true\nport = {_free_udp_port()}\nbind_address = "127.0.0.1"\n' if snmp else ""
    config.write_text(
        f'[meter]\ndata_dir = "{root / "var"}"\nrun_dir = "{root / "run"}"\n'
        f'[supervisor]\n{start_line}'
        f'[modbus]\ntcp_port = {_free_port()}\nbind_address = "127.0.0.1"\n'
        f'[bacnet]\nenabled = true\nip_port = {_free_udp_port()}\nbind_address = "127.0.0.1"\nip_prefix = 32\n'
        f'[web]\nhttps_port = {_free_port()}\nhttp_port = {_free_port()}\nbind_address = "127.0.0.1"\n'
        + snmp_lines)
    return config


class RunningMeter:
    """``meter run`` of the firmware in ``tree`` (this one by default) in the background on a scratch
    directory; a context manager that stops it."""

    def __init__(self, root: Path, start: str | None = None, tree: Path = REPO) -> None:
        self.root = root
        self.config = write_config(root, start, snmp=(tree / "firmware" / "config" / "sections" / "snmp.py").exists())
        self.out = open(root / "meter.out", "w+b")  # noqa: SIM115 - closed in __exit__
        # the tree's own packages first (the current directory), whatever the venv has installed
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config),
                                      "--board", str(tree / "boards" / "sim.toml")], cwd=tree, env=env,
                                     stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = ControlClient(root / "run" / "control.sock", timeout_s=10)

    def __enter__(self) -> RunningMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()

    def wait_ready(self) -> dict[str, int]:
        """Service name -> pid once every service runs and the meter meters."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.out.seek(0)
                raise RuntimeError(f"the meter exited: {self.out.read().decode(errors='replace')[-2000:]}")
            try:
                status = self.client.call("status")
            except (ControlError, MeterError, OSError):
                status = None
            if status and status["healthy"]:
                return {n: s["pid"] for n, s in status["services"].items()}
            time.sleep(0.5)
        raise RuntimeError(f"the meter was not healthy within {READY_TIMEOUT_S:g} s")


def run_and_measure(start: str | None, settle_s: float, window_s: float, tree: Path = REPO) -> list[Usage]:
    with tempfile.TemporaryDirectory(prefix="meter-footprint-") as tmp, \
            RunningMeter(Path(tmp), start, tree) as meter:
        services = meter.wait_ready()
        time.sleep(settle_s)
        return measure(processes(meter.proc.pid, services), window_s)


def measure_running(run_dir: Path, window_s: float) -> list[Usage]:
    """The meter running with ``run_dir`` (its control socket), as it is."""
    status = ControlClient(run_dir / "control.sock", timeout_s=10).call("status")
    services = {n: s["pid"] for n, s in status["services"].items()}
    return measure(processes(int(status["pid"]), services), window_s)


def table(columns: dict[str, list[Usage]]) -> Iterator[str]:
    """Rows of PSS (MB) and CPU (% of one core) per process, one pair of columns per run, and the totals of
    the firmware (the simulated chip, in parentheses, is the board's stand-in and not counted)."""
    heads = list(columns)
    names = list(dict.fromkeys(u.name for runs in columns.values() for u in runs))
    yield f"{'process':16s}" + "".join(f"{h + ' PSS MB':>18s}{h + ' CPU %':>16s}" for h in heads)
    for name in names + ["firmware total"]:
        cells = []
        for h in heads:
            rows = {u.name: u for u in columns[h]}
            if name == "firmware total":
                own = [u for u in columns[h] if not u.name.startswith("(")]
                pss, cpu = sum(u.pss_kb for u in own) / 1024, sum(u.cpu_percent for u in own)
            elif name in rows:
                pss, cpu = rows[name].pss_kb / 1024, rows[name].cpu_percent
            else:
                cells.append(f"{'-':>18s}{'-':>16s}")
                continue
            cells.append(f"{pss:18.1f}{cpu:16.2f}")
        yield f"{name:16s}" + "".join(cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--start", default=None, help="[supervisor] start for this run (default: the default)")
    p.add_argument("--settle", type=float, default=30.0, help="seconds after healthy before measuring")
    p.add_argument("--window", type=float, default=30.0, help="seconds of CPU time measured")
    p.add_argument("--attach", type=Path, default=None, metavar="RUN_DIR",
                   help="measure the meter running with this run directory instead of starting one")
    args = p.parse_args(argv)
    if args.attach is not None:
        usage = measure_running(args.attach, args.window)
    else:
        usage = run_and_measure(args.start, args.settle, args.window)
    for line in table({"attached" if args.attach else args.start or "default": usage}):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
