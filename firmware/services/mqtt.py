"""The MQTT publisher service: readings, energy registers, interval records and events to a broker.

``firmware.mqtt.collect`` turns the measurement snapshot and the log stores into messages, which go to
the outbox (``data_dir/mqtt.db``) first, and ``firmware.mqtt.link`` sends the outbox to the broker in
order, removing each message when the broker acknowledged it. So nothing is lost while the broker is
away (up to ``[mqtt] store_depth`` messages; beyond it the oldest are dropped and counted), nothing
goes out of order, and each message carries its ``seq``. Topics and payloads: docs/fleet.md.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from firmware.ipc import names
from firmware.mqtt import topics
from firmware.mqtt.collect import Collector
from firmware.mqtt.link import Link
from firmware.service import Service, command, main
from firmware.storage.outbox import Outbox

OUTBOX_DB = "mqtt.db"       # under data_dir
LOOP_S = 0.1                # idle wait between steps: the latency of a new record or acknowledgement
STATS_S = 0.5               # the queue is counted this often (a COUNT over up to store_depth rows)


class MqttService(Service):
    name = "mqtt"

    def setup(self) -> None:
        m = self.config["mqtt"]
        self.m = m
        self.outbox = Outbox(self.ctx.data_dir / OUTBOX_DB, m.store_depth)
        serial = self.config["meter"].serial_number
        self.collector = Collector(self.config, self.ctx.data_dir, self.ctx.shm_name(names.MEASUREMENTS),
                                   self.outbox.cursor, serial)
        client_id = m.client_id or f"openmeter-{topics.meter_id(serial)}"
        status = topics.topic(m.payload, m.topic_prefix, self.collector.meter, "status")
        self.link = Link(m, self.outbox, client_id, status)
        self.link.start()
        self._stats_at = 0.0
        scheme = "mqtts" if m.tls else "mqtt"
        self.endpoints = [f"{scheme}://{m.host}:{m.port} as {client_id}"]

    def step(self) -> None:
        messages, cursors = self.collector.collect()
        if messages or cursors:
            self.outbox.put(messages, cursors)
        sent = self.link.pump()
        now = time.monotonic()
        if now >= self._stats_at:
            self._stats_at = now + STATS_S
            self.heartbeat(**self.stats())
        else:
            self.heartbeat()
        if not sent:
            self.stopping.wait(LOOP_S)

    def stats(self) -> dict[str, Any]:
        return {"connected": self.link.connected.is_set(), "queued": self.outbox.count(),
                "inflight": self.link.inflight, "dropped": self.outbox.dropped, **self.link.stats,
                **self.collector.counts}

    def teardown(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            deadline = time.monotonic() + 1.0       # let the acks of what is in flight arrive
            while link.inflight and link.connected.is_set() and time.monotonic() < deadline:
                link.pump()
                time.sleep(0.01)
            link.pump()
            link.stop()
        for name in ("collector", "outbox"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def dump_config(self) -> dict[str, Any]:
        m = self.config["mqtt"]
        return {"broker": f"{m.host}:{m.port}", "tls": m.tls, "payload": m.payload, "qos": m.qos}

    @command("stats")
    def cmd_stats(self, user: str = "") -> dict[str, Any]:
        return self.stats()


if __name__ == "__main__":
    sys.exit(main(MqttService))
