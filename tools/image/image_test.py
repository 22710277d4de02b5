"""``make image-test``: the image built by ``make image`` booted on emulated arm64, used as a user would.

1. boot: first boot to ``meter status`` metering (healthy, or degraded: metering while losing samples);
   the per-unit secrets were made on the unit (first-boot unit done, host key and certificate present).
2. modbus: V A-N..C-N and the delivered active energy read from the host with mbpoll.
3. https: the web's login page over HTTPS, with the certificate the guest made for itself.
4. bacnet: a Who-Is from the host answered with an I-Am.
5. memory: each service's PSS in the guest, and the total.
6. upgrade: a newer signed image installed with ``meter image install --wait``: committed, the meter runs it.
7. fallback: an image whose upgrade service fails at start: rolled back by itself, the old slot metering.
8. power cut: qemu killed while an upgrade installs (its venv made or read back): the guest boots, meters, the committed slot is the
   one before (after the checks above: the upgraded one, so this boot also shows the upgrade kept over a
   power cycle), and the delivered energy did not go backwards.

Each boot of the emulated CPU takes minutes, so the guest boots twice: the first boot, and after the power
cut.
9. hil: ``meter hil run`` in the guest (against the simulated chip) writes its report.

Prints one line per check, then ``N passed, N failed``; exits 1 when any failed. The figures measured
(boot to metering, PSS, install times) are printed, and written to ``build/image-test/figures.json``.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

from tools.image.build import DEFAULT_BOARDS, build_image
from tools.image.keys import load_private_key, sign_image
from tools.image.vm import Guest

REPO = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT_S = 1500.0
METERING = ("healthy", "degraded")
# The emulated CPU (TCG on a shared 2-core host) is tens of times slower than a CM4: nine services importing
# numpy and scipy at once take minutes to send their first heartbeat, and a new slot as long to report
# healthy. Before the first boot the test gives the emulated meter that time (the CM4 defaults: 5 s, 120 s).
EMULATED_HEALTH_DEADLINE = 900
# the install steps a power cut is made in: after the image is written to the staging directory, before the
# slot is placed (docs/upgrade.md)
CUT_STEPS = ("deps", "verify")
EMULATED_SETTINGS = ["supervisor.heartbeat_timeout=300", f"upgrade.health_deadline={EMULATED_HEALTH_DEADLINE}"]


class Failed(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


class ImageTest:
    def __init__(self, image: Path, work: Path, build: Path) -> None:
        self.build = build
        self.guest = Guest(image, work)
        self.figures: dict[str, Any] = {}
        self.version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

    # ------------------------------------------------------------------ helpers

    def status(self) -> dict[str, Any] | None:
        try:
            done = self.guest.ssh("meter status --json", timeout_s=300, check=False)
            return json.loads(done.stdout)
        except (json.JSONDecodeError, subprocess.TimeoutExpired):
            return None

    def wait_metering(self, timeout_s: float = BOOT_TIMEOUT_S, booting: bool = True) -> float:
        """Seconds from qemu's start (``booting``; else from now) until ``meter status`` says metering."""
        since = self.guest.started if booting else time.monotonic()
        ssh_s = self.guest.wait_ssh(timeout_s)
        deadline = since + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.status()
            if last and last.get("state") in METERING:
                if booting:
                    self.figures.setdefault("boot_to_ssh_s", []).append(round(ssh_s, 1))
                return time.monotonic() - since
            time.sleep(5)
        raise Failed(f"not metering {timeout_s:.0f} s after boot; last status: {json.dumps(last)[:600]}; "
                     f"journal: {self.guest.ssh('journalctl -u meter -n 15 --no-pager', check=False).stdout}")

    def boot(self) -> float:
        self.guest.start()
        took = self.wait_metering()
        self.figures.setdefault("boot_to_metering_s", []).append(round(took, 1))
        return took

    def power_cycle(self) -> float:
        self.guest.kill()
        return self.boot()

    def mbpoll(self, *args: str) -> list[str]:
        done = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(self.guest.ports.modbus), "-a", "1", "-0", "-1",
                               "-o", "5", *args, "127.0.0.1"], capture_output=True, text=True, timeout=60)
        # mbpoll prints one "[REFERENCE]: <tab>VALUE" line per value read
        values = [m.group(1) for m in (re.match(r"\[\d+\]:\s+(\S+)", line) for line in done.stdout.splitlines()) if m]
        check(done.returncode == 0 and values != [], f"mbpoll {' '.join(args)}: {done.stdout[-300:]} {done.stderr}")
        return values

    def energy_wh(self) -> int:
        words = [int(v, 16) for v in self.mbpoll("-t", "4:hex", "-r", "3203", "-c", "4")]
        return struct.unpack(">q", struct.pack(">4H", *words))[0]

    def image(self, version: str, broken: bool = False) -> Path:
        """A signed firmware image of this tree at ``version`` (same wheels and aarch64 extensions as the
        system image); ``broken``: its upgrade service raises at start, so the slot never reports healthy."""
        tree = self.build / "image-test" / f"src-{version}"
        shutil.rmtree(tree, ignore_errors=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.so", ".*")
        for d in ("firmware", "hal", "metrology", "tools", "boards"):
            shutil.copytree(REPO / d, tree / d, ignore=ignore)
        for f in ("pyproject.toml", "setup.py", "requirements.lock", "Makefile", "README.md"):
            shutil.copy(REPO / f, tree / f)
        if broken:
            svc = tree / "firmware/services/upgrade.py"
            text = svc.read_text()
            marker = "    def setup(self) -> None:\n"
            check(marker in text, "firmware/services/upgrade.py has no setup() to break")
            svc.write_text(text.replace(marker, marker + "        raise RuntimeError('image-test: broken build')\n", 1))
        out = self.build / "image-test" / f"openmeter-{version}.img"
        build_image(tree, out, version=version, boards=DEFAULT_BOARDS, deps=str(self.build / "image" / "wheels"),
                    extensions=self.build / "image" / "ext")
        sign_image(out, load_private_key(self.build / "keys" / "dev-image.key"))
        return out

    def install(self, image: Path, wait: bool = True) -> dict[str, Any]:
        self.guest.ssh("mkdir -p /var/lib/openmeter/incoming")
        t0 = time.monotonic()
        self.guest.scp(image, f"/var/lib/openmeter/incoming/{image.name}")
        self.figures[f"copy_{image.stem}_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        done = self.guest.ssh(f"meter image install {'--wait ' if wait else ''}"
                              f"/var/lib/openmeter/incoming/{image.name}", timeout_s=2 * EMULATED_HEALTH_DEADLINE + 900,
                              check=False)
        self.figures[f"install_{image.stem}_s"] = round(time.monotonic() - t0, 1)
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError) as exc:
            raise Failed(f"meter image install: {done.stdout[-500:]} {done.stderr[-800:]}") from exc

    def slots(self) -> dict[str, Any]:
        return json.loads(self.guest.ssh("meter image status").stdout)

    # ------------------------------------------------------------------ checks

    def t_boot(self) -> str:
        self.guest.prepare()
        self.guest.configure(EMULATED_SETTINGS, "emulated CPU, tens of times slower than a CM4")
        took = self.boot()
        first = self.guest.ssh("test -f /var/lib/openmeter/.firstboot-done && ls /etc/ssh/ssh_host_ed25519_key.pub "
                               "/var/lib/openmeter/web/selfsigned.pem && cat /etc/machine-id")
        check(len(first.stdout.split()) == 3, f"first-boot secrets missing: {first.stdout}")
        return f"metering {took:.0f} s after power-on (SSH after {self.figures['boot_to_ssh_s'][0]:.0f} s)"

    def t_modbus(self) -> str:
        volts = [float(v) for v in self.mbpoll("-B", "-t", "4:float", "-r", "3027", "-c", "3")]
        check(all(100 < v < 300 for v in volts), f"V A-N, B-N, C-N: {volts}")
        e0 = self.energy_wh()
        time.sleep(20)
        e1 = self.energy_wh()
        check(e1 > e0 >= 0, f"delivered energy did not grow in 20 s: {e0} -> {e1} Wh")
        self.figures["volts"] = volts
        return f"V {', '.join(f'{v:.1f}' for v in volts)}; energy {e0} -> {e1} Wh in 20 s"

    def t_https(self) -> str:
        port = self.guest.ports.https
        code = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-L",
                               f"https://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60).stdout
        check(code == "200", f"GET https://127.0.0.1:{port}/ answered {code}")
        served = subprocess.run(f"openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | "
                                "openssl x509 -noout -fingerprint -sha256", shell=True, capture_output=True,
                                text=True, timeout=60).stdout.strip()
        made = self.guest.ssh("openssl x509 -noout -fingerprint -sha256 -in /var/lib/openmeter/web/selfsigned.pem",
                              check=False).stdout.strip()
        check(served != "" and served == made, f"served certificate {served!r} is not the one made on the unit {made!r}")
        return f"200, certificate made on the unit ({served.split('=')[-1][:23]}...)"

    def t_bacnet(self) -> str:
        who_is = bytes([0x81, 0x0A, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08])    # BVLC unicast, NPDU, Who-Is
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for _ in range(6):
                s.sendto(who_is, ("127.0.0.1", self.guest.ports.bacnet))
                try:
                    data = s.recv(1500)
                except TimeoutError:
                    continue
                # ... APDU: 0x10 (unconfirmed request) 0x00 (I-Am), 0xC4 object identifier tag
                i = data.find(bytes([0x10, 0x00, 0xC4]))
                if i >= 0:
                    oid = int.from_bytes(data[i + 3:i + 7], "big")
                    return f"I-Am from device {oid & 0x3FFFFF}"
        raise Failed("no I-Am answered 6 Who-Is in 30 s")

    def t_memory(self) -> str:
        services = {n: v["pid"] for n, v in (self.status() or {}).get("services", {}).items() if v.get("pid")}
        check(len(services) >= 5, f"meter status names too few running services: {services}")
        # The services hold a capability, so only root reads their smaps_rollup: the image's sudo rule.
        done = self.guest.ssh("sudo -n /usr/local/sbin/meter-pss")
        measured = json.loads(done.stdout)
        by_pid = {row["pid"]: row["pss_kib"] for row in measured["processes"]}
        missing = sorted(n for n, pid in services.items() if not by_pid.get(pid))
        check(not missing, f"no PSS for the services {missing} (meter-pss: {done.stdout[:400]})")
        pss = {n: by_pid[pid] for n, pid in services.items()}
        self.figures["pss_kib"] = pss
        self.figures["pss_others_kib"] = {row["cmdline"][:60]: row["pss_kib"] for row in measured["processes"]
                                          if row["pid"] not in services.values()}
        self.figures["pss_total_mib"] = round(measured["total_kib"] / 1024, 1)
        refused = self.guest.ssh("sudo -n /usr/local/sbin/meter-pss --all; sudo -n /bin/cat /etc/shadow",
                                 check=False)
        check(refused.returncode != 0 and "root:" not in refused.stdout,
              f"the meter account runs more than meter-pss as root: {refused.stdout[-200:]}")
        return (f"total {self.figures['pss_total_mib']} MiB ({len(measured['processes'])} processes): "
                + ", ".join(f"{k} {v // 1024}" for k, v in pss.items()))

    def t_upgrade(self) -> str:
        new = bump(self.version, 1)
        result = self.install(self.image(new))
        check(result.get("outcome") == "committed", f"install of {new}: {result}")
        slots = self.slots()
        running = self.status() or {}
        good = slots.get("good")
        check(good is not None and slots.get("current") == good and slots.get("trial") is None
              and slots["slots"][good]["version"] == new, f"the committed slot is not {new}: {slots}")
        check(running.get("version") == new, f"the running meter is {running.get('version')}, not {new}")
        steps = self.step_times(result.get("attempt", ""))
        self.figures[f"install_steps_{new}_s"] = steps
        # the same wheels as the slot before: none installed again, numpy's files are that slot's own
        old = slots["slots"][next(s for s in slots["slots"] if s != good)]
        site = "venv/lib/python3.11/site-packages/numpy/__init__.py"
        inodes = self.guest.ssh(f"stat -c %i /opt/openmeter/slots/{good}/{site} /opt/openmeter/slots/"
                                f"{'a' if good == 'b' else 'b'}/{site}", check=False).stdout.split()
        check(len(inodes) == 2 and inodes[0] == inodes[1],
              f"numpy in the new slot is not the previous slot's ({old.get('version')}) installed file: {inodes}")
        return (f"{self.version} -> {new} committed in {self.figures[f'install_openmeter-{new}_s']:.0f} s "
                f"({', '.join(f'{k} {v:.0f} s' for k, v in steps.items())}), numpy shared with the previous slot, "
                "metering")

    def step_times(self, attempt: str) -> dict[str, float]:
        """Seconds from each of an attempt's rows in the upgrade log to the next (the last: to its outcome)."""
        rows = [r for r in self.log_rows(40) if r.get("attempt") == attempt]
        out: dict[str, float] = {}
        for row, after in zip(rows, rows[1:]):
            name = row.get("message") if row.get("event") == "step" else row.get("event")
            out[str(name)] = round(float(after["ts"]) - float(row["ts"]), 1)
        return out

    def t_fallback(self) -> str:
        before = (self.status() or {}).get("version")
        bad = bump(self.version, 2)
        result = self.install(self.image(bad, broken=True))
        check(result.get("outcome") == "rolled_back", f"install of broken {bad}: {result}")
        self.wait_metering(timeout_s=300, booting=False)
        running = self.status() or {}
        check(running.get("version") == before, f"after the fallback the meter runs {running.get('version')}, "
                                                f"not {before}")
        slots = self.slots()
        check(slots.get("current") == slots.get("good") and slots.get("trial") is None
              and slots["slots"][slots["good"]]["version"] == before,
              f"after the fallback the slots are not back on {before}: {slots}")
        return f"broken {bad} rolled back ({result.get('message', '')[:80]}); {before} metering again"

    def log_rows(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` rows of the upgrade log, oldest first."""
        rows = []
        for line in self.guest.ssh(f"meter image log -n {n}", check=False).stdout.strip().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def last_log_row(self) -> dict[str, Any]:
        rows = self.log_rows(1)
        return rows[-1] if rows else {}

    def t_power_cut(self) -> str:
        good = (self.status() or {}).get("version")
        e0 = self.energy_wh()
        time.sleep(5)                       # more than [revenue] persist_interval: e0 is on the data partition
        new = bump(self.version, 3)
        img = self.image(new)
        self.guest.ssh("mkdir -p /var/lib/openmeter/incoming")
        self.guest.scp(img, f"/var/lib/openmeter/incoming/{img.name}")
        self.guest.ssh(f"nohup meter image install /var/lib/openmeter/incoming/{img.name} >/dev/null 2>&1 &")
        # Cut while the new slot's venv is made or read back (before anything is switched): its 'deps' step
        # (the running slot's files linked) or, if that was over by the look, its 'verify' step.
        deadline = time.monotonic() + 600
        row: dict[str, Any] = {}
        while time.monotonic() < deadline:
            row = self.last_log_row()
            if row.get("version") == new and row.get("event") == "step" and row.get("message") != "extract":
                break
            time.sleep(0.5)
        at = row.get("message")
        check(at in CUT_STEPS, f"the install was not cut before its switch (last row {row})")
        took = self.power_cycle()
        rows = self.log_rows(6)
        cut = [r for r in rows if r.get("attempt") == row.get("attempt")]
        check(cut != [] and cut[-1].get("message") == at,
              f"the cut install's last row in the upgrade log is not its {at!r} step: {rows}")
        after = rows[rows.index(cut[-1]) + 1:]
        check(any(r.get("event") == "recovered" for r in after),
              f"no 'recovered' row: the boot guard did not tidy the interrupted install: {rows}")
        e1 = self.energy_wh()
        running = self.status() or {}
        slots = self.slots()
        leftovers = self.guest.ssh("ls -a /opt/openmeter/slots", check=False).stdout.split()
        check(running.get("version") == good, f"after the power cut the meter runs {running.get('version')}, not {good}")
        check(slots.get("current") == slots.get("good") and slots.get("trial") is None
              and slots["slots"][slots["good"]]["version"] == good, f"after the power cut the slots moved: {slots}")
        check(e1 >= e0, f"delivered energy went backwards over the power cut: {e0} -> {e1} Wh")
        check(not any(n.startswith((".staging", ".trash")) for n in leftovers),
              f"the interrupted install's staging is left in the slots: {leftovers}")
        self.figures["power_cut_at"] = at
        return (f"cut at the {at!r} step of {new}; committed {good} metering {took:.0f} s after power-on; "
                f"energy {e0} -> {e1} Wh")

    def t_hil(self) -> str:
        done = self.guest.ssh("meter hil run --output /var/lib/openmeter/hil-report.md", timeout_s=1800, check=False)
        report = self.guest.ssh("cat /var/lib/openmeter/hil-report.md", check=False).stdout
        check("passed" in report, f"meter hil run wrote no report (exit {done.returncode}): {done.stderr[-600:]}")
        (self.build / "image-test" / "hil-report.md").write_text(report)
        return report.strip().splitlines()[-1][:120]


def bump(version: str, patch: int) -> str:
    major, minor, micro = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{micro + patch}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make image-test", description=__doc__.split("\n")[0])
    p.add_argument("--build", default=str(REPO / "build"))
    p.add_argument("--only", default="", help="comma-separated checks to run (default: all)")
    args = p.parse_args(argv)
    build = Path(args.build).resolve()
    t = ImageTest(build / f"openmeter-cm4-{tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['version']}.img",
                  build / "image-test", build)
    if not t.guest.image.exists():
        print(f"make image-test: {t.guest.image} does not exist; run `make image` first", file=sys.stderr)
        return 1
    checks: list[tuple[str, Callable[[], str]]] = [
        ("boot", t.t_boot), ("modbus", t.t_modbus), ("https", t.t_https), ("bacnet", t.t_bacnet),
        ("memory", t.t_memory), ("upgrade", t.t_upgrade), ("fallback", t.t_fallback),
        ("power_cut", t.t_power_cut), ("hil", t.t_hil)]
    only = {c for c in args.only.split(",") if c}
    # a stopped test stops its emulator too (the finally below)
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    passed = failed = 0
    start = time.monotonic()
    try:
        for name, fn in checks:
            if only and name not in only and name != "boot":
                continue
            t0 = time.monotonic()
            try:
                msg = fn()
                passed += 1
                print(f"PASSED {name} ({time.monotonic() - t0:.0f} s): {msg}", flush=True)
            except (Failed, RuntimeError, subprocess.SubprocessError, OSError) as exc:
                failed += 1
                print(f"FAILED {name} ({time.monotonic() - t0:.0f} s): {exc}", flush=True)
                if name == "boot":
                    print(f"console:\n{t.guest.tail(40)}", flush=True)
                    break
    finally:
        t.guest.kill()
    t.figures["image_test_s"] = round(time.monotonic() - start, 1)
    (build / "image-test").mkdir(parents=True, exist_ok=True)
    (build / "image-test" / "figures.json").write_text(json.dumps(t.figures, indent=2) + "\n")
    print(f"make image-test: {passed} passed, {failed} failed in {time.monotonic() - start:.0f} s")
    print(json.dumps(t.figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
