"""The web service: the HTTPS pages and JSON API (firmware.web), and in the default mode a plain-HTTP port that
only redirects to HTTPS.

On first start it makes a self-signed certificate (``[web] cert_dir``); an uploaded one replaces it while it is
there. Values come from the measurement snapshot, logs from their stores, commands go through the control
socket as the logged-in user; logins and privileges are the security core's. The servers run on one asyncio loop
in the main thread, beside a task that sends the heartbeats, so a stuck loop stops them and the supervisor
restarts the service. Not started when ``[web] mode`` is ``disabled`` (firmware.services.registry).
"""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from firmware.service import HEARTBEAT_INTERVAL_S, Service, command, main
from firmware.services.registry import SERVICES
from firmware.web.app import build_app, redirect_app
from firmware.web.context import WebContext
from firmware.web.server import ConnectionLimits, bind, make_server, serve


def _url(scheme: str, address: str, port: int) -> str:
    host = "127.0.0.1" if address == "0.0.0.0" else f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}/"


class WebService(Service):
    name = "web"

    def setup(self) -> None:
        web = self.config["web"]
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.web = WebContext.from_config(self.config, self.ctx.config_path, self.ctx.run_dir)
        info = self.web.certs.reload()
        self.log.info("HTTPS certificate: %s (%s), valid until %s, sha256 %s", info.kind, info.subject,
                      info.not_after, info.sha256)
        self.limits = ConnectionLimits(web.max_connections, web.max_connections_per_address, web.header_timeout)
        app = build_app(self.web, [s.name for s in SERVICES])
        self.servers = [make_server(app, bind(web.bind_address, web.https_port, "https_port"), self.limits,
                                    self.web.certs.context)]
        self.endpoints = [_url("https", web.bind_address, web.https_port)]
        if web.mode == "https-redirect":
            self.servers.append(make_server(redirect_app(web.https_port),
                                            bind(web.bind_address, web.http_port, "http_port"), self.limits, None))
            self.endpoints.append(_url("http", web.bind_address, web.http_port) + " (redirects to HTTPS)")

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        tasks = [asyncio.ensure_future(serve(s)) for s in self.servers]
        try:
            while not self.stopping.is_set():
                failed = [t for t in tasks if t.done()]
                if failed:
                    failed[0].result()          # a server that ended by itself: its error stops the service
                    raise RuntimeError("a web server stopped by itself")
                self.heartbeat(True, **self.stats())        # the servers' tasks answer; this one only beats
                await asyncio.sleep(HEARTBEAT_INTERVAL_S)
        finally:
            self.web.stopping.set()
            for s in self.servers:
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {**self.web.counters, "streams": self.web.streams,
                "connections": sum(self.limits.open.values()), "connections_refused": self.limits.refused,
                "head_timeouts": self.limits.head_timeouts}

    def teardown(self) -> None:
        for server in getattr(self, "servers", []):
            for sock in server.sockets_in_use:
                sock.close()             # closed by uvicorn when it served; not when setup failed after binding
        if hasattr(self, "web"):
            self.web.close()
        if hasattr(self, "loop"):
            self.loop.close()

    def dump_config(self) -> dict[str, Any]:
        web = self.config["web"]
        return {"mode": web.mode, "https_port": web.https_port,
                "http_port": web.http_port if web.mode == "https-redirect" else None}

    @command("stats")
    def cmd_stats(self, user: str = "") -> dict[str, Any]:
        return self.stats()


if __name__ == "__main__":
    sys.exit(main(WebService))
