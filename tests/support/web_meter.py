"""A real meter with its web service on loopback for the web tests, and an HTTPS client for its API.

``WebMeter`` starts ``meter run --only acquisition,metrology,recorder,upgrade,time,io,web`` (or the services a
test names) on the simulated board with free ports, two users made through the security core (``alice``: master; ``reader``: read only) and an upgrade
area with a vendor key (tests/integration/upgrade_env.py), waits until the web answers and the measurement
snapshot is published, and stops everything at the end. ``WebClient`` speaks HTTPS to it, verifying the
meter's own self-signed certificate (read from its certificate directory), keeps the session cookie and sends
the CSRF token. A module's fixtures are ``running(WebMeter(...))`` and ``session(meter, "alice")``.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
from firmware.ipc.snapshot import Snapshot
from firmware.security.privileges import Privilege
from firmware.security.users import UserStore

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD_BYTES = 1 << 20      # the smallest [web] max_upload: a test image is far smaller, a test upload larger
STARTUP_TIMEOUT_S = 120.0        # four services on a loaded 2-core machine: imports and chip bring-up
USERS = {"alice": ("alice-pw-1", frozenset({Privilege.MASTER})),
         "reader": ("reader-pw-1", frozenset({Privilege.READ}))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebClient:
    def __init__(self, port: int, cafile: Path, timeout_s: float = 30.0, source: str = "127.0.0.1") -> None:
        self.port = port
        self.source = source          # another loopback address is another client for the per-address limits
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.timeout_s = timeout_s
        self.cookie = ""
        self.csrf = ""

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=self.timeout_s,
                                           source_address=(self.source, 0))

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                headers: dict[str, str] | None = None, csrf: bool = True) -> tuple[int, dict[str, str], Any]:
        """(status, headers with lower-case names, JSON answer or text)."""
        hdrs = dict(headers or {})
        if self.cookie:
            hdrs.setdefault("Cookie", self.cookie)
        if csrf and self.csrf and method != "GET":
            hdrs.setdefault("X-CSRF-Token", self.csrf)
        data = None
        if raw is not None:
            data = raw
            hdrs.setdefault("Content-Type", "application/octet-stream")
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = self.connection()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read()
            answer = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        return resp.status, answer, parsed

    def login(self, user: str, password: str, wait_s: float = 60.0) -> dict[str, Any]:
        """Log in; a 429 (this address's login allowance is spent) is waited out as Retry-After says."""
        deadline = time.monotonic() + wait_s
        while True:
            status, headers, answer = self.request("POST", "/api/session", {"user": user, "password": password})
            if status != 429 or time.monotonic() > deadline:
                break
            time.sleep(float(headers.get("retry-after", "1")))
        assert status == 200, answer
        self.cookie = headers["set-cookie"].split(";")[0]
        self.csrf = answer["csrf"]
        return answer


# Generous limits for the tests' own request rate; the limits themselves are tested with their own.
TEST_LIMITS = ('rate = 2000\nburst = 4000\nlogin_rate = 30\nheader_timeout = 2\nmax_connections_per_address = 64\n')


WEB_SERVICES = "acquisition,metrology,recorder,upgrade,time,io,web"


class WebMeter:
    def __init__(self, base: Path, limits: str = TEST_LIMITS, max_upload: int = MAX_UPLOAD_BYTES,
                 extra: str = "", services: str = WEB_SERVICES, ready_text: str = "") -> None:
        """``limits``: [web] lines in TOML (the defaults of the option table when empty); ``max_upload``: the
        largest image accepted, raised where a test needs an image whose install takes a while; ``extra``:
        further sections in TOML; ``services``: what ``--only`` runs; ``ready_text``: a line the meter's output
        must also have shown before it is ready (a protocol's listener)."""
        from tests.integration.upgrade_env import make_env

        self.base = base
        self.run_dir = base / "run"
        self.data_dir = base / "var"
        self.https_port, self.http_port = free_port(), free_port()
        self.upgrade = make_env(base / "upgrade")
        s = self.upgrade.settings
        self.config = base / "meter.toml"
        self.config.write_text(
            f'[meter]\nname = "web-test"\ndata_dir = "{self.data_dir}"\nrun_dir = "{self.run_dir}"\n'
            f'[web]\nbind_address = "127.0.0.1"\nhttps_port = {self.https_port}\nhttp_port = {self.http_port}\n'
            f'{limits}max_upload = {max_upload}\n'
            f'[upgrade]\nroot = "{s.root}"\nstate_dir = "{s.state_dir}"\ntrust_store = "{s.trust_store}"\n'
            f'revenue_lock_file = "{s.revenue_lock_file}"\n{extra}')
        users = UserStore(self.data_dir)
        for name, (password, privileges) in USERS.items():
            users.add(name, password, privileges)
        users.close()
        self.ready_text = ready_text
        self.services = services
        self.env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.start()

    def start(self) -> None:
        """Start `meter run` (again, after ``stop``: the same files, its output appended)."""
        self.log = open(self.base / "meter.out", "a+")  # noqa: SIM115 - the meter writes it while the tests read it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config), "--board",
             str(REPO / "boards" / "sim.toml"), "--only", self.services],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.snapshot: Snapshot | None = None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    @property
    def cert(self) -> Path:
        return self.data_dir / "web" / "selfsigned.pem"

    def client(self, source: str = "127.0.0.1") -> WebClient:
        return WebClient(self.https_port, self.cert, source=source)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            # read each time: the supervisor writes its token file (the names) only once it runs
            name = shm_name(instance_name(self.run_dir), MEASUREMENTS)
            assert self.proc.poll() is None, self.output()[-4000:]
            if self.cert.exists():
                try:
                    self.snapshot = self.snapshot or Snapshot.attach(name)
                    if self.snapshot.read_array()[2] >= 2 and self.ready_text in self.output():
                        status, _, _ = self.client().request("GET", "/api/openapi.json")
                        if status == 200:
                            return
                except Exception:  # noqa: BLE001 - polled until the meter answers
                    pass
            time.sleep(0.5)
        raise AssertionError(f"web meter not ready within {STARTUP_TIMEOUT_S} s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def meter(self, *args: str) -> subprocess.CompletedProcess:
        """`meter ARGS --config CONFIG` against this meter."""
        return subprocess.run([sys.executable, "-m", "firmware.cli", *args, "--config", str(self.config)],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def running(meter: WebMeter) -> Iterator[WebMeter]:
    """The meter once it is ready, stopped at the end whatever happened (a module fixture yields from it)."""
    try:
        meter.wait_ready()
        yield meter
    finally:
        meter.stop()


def session(meter: WebMeter, user: str = "alice", source: str = "127.0.0.1") -> WebClient:
    """A client logged in as ``user`` (of ``USERS``), kept for a module: logins are rate-limited per address."""
    client = meter.client(source)
    client.login(user, USERS[user][0])
    return client
