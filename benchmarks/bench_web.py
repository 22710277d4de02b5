"""Web: requests per second of GET /api/readings, against a bare Starlette app on the same uvicorn and TLS; and
the weight of the pages (KB a browser loads for the live page).

The meter's web app runs in its own process over a real measurement snapshot (the point map's layout,
republished ten times a second) with a logged-in session: each request passes the rate limit, the session, the
authorization point and the snapshot read. The bare app answers a constant JSON of the same size with nothing
else. Both get the same HTTPS keep-alive clients from this process, so the client side costs the same; the
ratio is the price of the meter's checks. Target: at least 50 % of the bare rate. Page weight: the HTML, script
and style of the live page as served, raw and gzip-compressed (what a proxy or a later server version could
send); target under 64 KB raw.
"""
from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLIENTS = 4
ROUNDS = 2                 # alternating measurement windows per server
DURATION_S = float(os.environ.get("BENCH_WEB_SECONDS", "5"))
PUBLISH_HZ = 10.0
TARGET_RATIO = 0.5
TARGET_PAGE_KB = 64.0
USER, PASSWORD = "bench", "bench-pw-1"
PAGE_ASSETS = ("/", "/static/app.js", "/static/charts.js", "/static/pq.js", "/static/style.css")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(base: Path, port: int):  # type: ignore[no-untyped-def]
    from firmware.config import meter_schema

    return meter_schema().load({"meter": {"data_dir": str(base / "var"), "run_dir": str(base / "run")},
                                "web": {"bind_address": "127.0.0.1", "https_port": port, "rate": 10000,
                                        "burst": 10000, "max_connections_per_address": 64}})


# ---------------------------------------------------------------------------- servers (child processes)

def _serve(kind: str, base: Path, port: int) -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from firmware.web.app import build_app
    from firmware.web.context import WebContext
    from firmware.web.server import ConnectionLimits, bind, make_server, serve

    config = _config(base, port)
    ctx = WebContext.from_config(config, base / "meter.toml", base / "run")
    ctx.certs.reload()
    if kind == "ours":
        app = build_app(ctx, ["metrology", "web"])
    else:
        body = json.loads((base / "readings.json").read_text())
        app = Starlette(routes=[Route("/api/readings", lambda request: JSONResponse(body))])
    server = make_server(app, bind("127.0.0.1", port, "https_port"), ConnectionLimits(64, 64, 10.0),
                         ctx.certs.context)
    asyncio.run(serve(server))


# ---------------------------------------------------------------------------- client side

def _client(port: int, cafile: Path, cookie: str) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    conn.connect()
    return conn


def _get(conn: http.client.HTTPSConnection, path: str, cookie: str) -> bytes:
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {data[:200]!r}")
    return data


def _rate(port: int, cafile: Path, cookie: str, seconds: float) -> float:
    counts = [0] * CLIENTS
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        conn = _client(port, cafile, cookie)
        while time.monotonic() < stop:
            _get(conn, "/api/readings", cookie)
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def _wait(port: int, cafile: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"web benchmark server exited with {proc.returncode}")
        if cafile.exists():
            try:
                _client(port, cafile, "").close()
                return
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError("web benchmark server did not start within 60 s")


def _login(port: int, cafile: Path) -> str:
    conn = _client(port, cafile, "")
    conn.request("POST", "/api/session", body=json.dumps({"user": USER, "password": PASSWORD}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.getheader("set-cookie", "").split(";")[0]


def main() -> None:
    import numpy as np

    from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
    from firmware.ipc.snapshot import Snapshot
    from firmware.points import snapshot_layout
    from firmware.security.privileges import Privilege
    from firmware.security.users import UserStore

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        base = Path(tmp)
        (base / "run").mkdir()
        users = UserStore(base / "var")
        users.add(USER, PASSWORD, frozenset({Privilege.READ}))
        users.close()
        layout = snapshot_layout()
        snap = Snapshot.create(shm_name(instance_name(base / "run"), MEASUREMENTS), layout)
        rng = np.random.default_rng(1)
        stop = threading.Event()

        def publish() -> None:
            while not stop.is_set():
                snap.publish({name: rng.normal(230.0, 1.0, size) if size > 1 else float(rng.normal(230.0, 1.0))
                              for name, size in layout})
                stop.wait(1.0 / PUBLISH_HZ)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        cafile = base / "var" / "web" / "selfsigned.pem"
        results: dict[str, float] = {"ours": 0.0, "bare": 0.0}
        page_raw = page_gz = 0
        procs: list[subprocess.Popen[bytes]] = []
        try:
            ports = {}
            for kind in ("ours", "bare"):      # the bare app answers the body ours gave (read at its start)
                ports[kind] = _free_port()
                procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.bench_web", "--serve", kind,
                                               str(base), str(ports[kind])]))
                _wait(ports[kind], cafile, procs[-1])
                if kind == "ours":
                    cookie = _login(ports[kind], cafile)
                    conn = _client(ports[kind], cafile, cookie)
                    (base / "readings.json").write_bytes(_get(conn, "/api/readings", cookie))
                    for path in PAGE_ASSETS:
                        data = _get(conn, path, "")
                        page_raw += len(data)
                        page_gz += len(gzip.compress(data, 9))
                    conn.close()
            # Alternating windows, best of each: a busy neighbour on the machine hits both alike.
            for _ in range(ROUNDS):
                for kind in ("ours", "bare"):
                    rate = _rate(ports[kind], cafile, cookie if kind == "ours" else "", DURATION_S / ROUNDS)
                    results[kind] = max(results[kind], rate)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            stop.set()
            publisher.join()
            snap.close()
            snap.unlink()
    ratio = results["ours"] / results["bare"]
    print(f"GET /api/readings, {CLIENTS} HTTPS keep-alive clients, {DURATION_S:g} s each in {ROUNDS} alternating "
          "windows (best window)")
    print(f"  meter web app   {results['ours']:8.0f} requests/s")
    print(f"  bare Starlette  {results['bare']:8.0f} requests/s (same uvicorn, TLS and answer size)")
    print(f"  ratio           {ratio:8.2f}   (target >= {TARGET_RATIO:g}: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")
    print(f"page weight of the live page ({len(PAGE_ASSETS)} files): {page_raw / 1024:.1f} KB raw, "
          f"{page_gz / 1024:.1f} KB gzip (target < {TARGET_PAGE_KB:g} KB raw: "
          f"{'met' if page_raw / 1024 < TARGET_PAGE_KB else 'MISSED'})")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
