"""The broker link: paho-mqtt with a persistent session, fed from the outbox in id order.

At most ``max_inflight`` messages are out unacknowledged; each is removed from the outbox only when the
broker acknowledged it (PUBACK for QoS 1, PUBCOMP for QoS 2). While the broker is away nothing is sent
and everything stays queued on disk. A reconnection keeps the session (``clean_session`` false): paho
sends the unacknowledged messages again with their packet ids, so with QoS 2 a broker that kept the
session (mosquitto ``persistence true``) delivers each exactly once; then the queue carries on in order.
A restart of the service starts sending again from the oldest message not acknowledged.

paho runs its network loop on its own thread; its callbacks only record what happened (acks, connection
state) in thread-safe queues, and the service's thread does everything else.
"""
from __future__ import annotations

import collections
import logging
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt

from firmware.mqtt import topics
from firmware.storage.outbox import Outbox

log = logging.getLogger("mqtt")
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
STATUS_SLACK = 8          # room in paho's queue for the retained status messages beside the data


def make_client(m: Any, client_id: str, status_topic: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311)
    if m.username:
        client.username_pw_set(m.username, m.password or None)
    if m.tls:
        client.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None, keyfile=m.key_file or None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.will_set(status_topic, b'{"online":false}', qos=1, retain=True)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.max_inflight_messages_set(m.max_inflight)
    client.max_queued_messages_set(m.max_inflight + STATUS_SLACK)
    return client


class Link:
    def __init__(self, m: Any, outbox: Outbox, client_id: str, status_topic: str) -> None:
        self.m = m
        self.outbox = outbox
        self.status_topic = status_topic
        self.client = make_client(m, client_id, status_topic)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.connected = threading.Event()
        self._acked: collections.deque[int] = collections.deque()      # mids, from paho's thread
        self._inflight: dict[int, int] = {}                             # mid -> outbox id (service thread)
        self.last_sent = 0
        self.stats = {"sent": 0, "acked": 0, "connects": 0, "disconnects": 0}
        self.last_error = ""

    # ------------------------------------------------------------------ paho's thread

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("MQTT %s:%d: %s", self.m.host, self.m.port, self.last_error)
            return
        self.stats["connects"] += 1
        log.info("MQTT connected to %s:%d (session present: %s)", self.m.host, self.m.port,
                 bool(getattr(flags, "session_present", False)))
        client.publish(self.status_topic, b'{"online":true}', qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self.connected.is_set():
            self.stats["disconnects"] += 1
            log.warning("MQTT connection to %s:%d lost (%s); queueing until it is back", self.m.host,
                        self.m.port, reason)
        self.connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any = None, properties: Any = None) -> None:
        self._acked.append(mid)

    # ------------------------------------------------------------------ service thread

    def start(self) -> None:
        self.client.connect_async(self.m.host, self.m.port, int(self.m.keepalive))
        self.client.loop_start()

    def pump(self) -> int:
        """Remove acknowledged messages from the outbox and send more while there is room; messages sent."""
        done = []
        while self._acked:
            mid = self._acked.popleft()
            oid = self._inflight.pop(mid, None)
            if oid is not None:
                done.append(oid)
        if done:
            self.outbox.ack(done)
            self.stats["acked"] += len(done)
        if not self.connected.is_set():
            return 0
        room = self.m.max_inflight - len(self._inflight)
        if room <= 0:
            return 0
        sent = 0
        for msg in self.outbox.pending(self.last_sent, room):
            info = self.client.publish(msg.topic, topics.with_seq(msg.body, msg.id), qos=msg.qos, retain=msg.retain)
            # NO_CONN: the connection dropped just now; paho keeps the message and sends it on reconnection
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                break             # paho's queue is full: this one is sent on a later pump
            self._inflight[info.mid] = msg.id
            self.last_sent = msg.id
            sent += 1
        self.stats["sent"] += sent
        return sent

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def stop(self, timeout_s: float = 2.0) -> None:
        try:
            if self.connected.is_set():
                self.client.publish(self.status_topic, b'{"online":false}', qos=1, retain=True).wait_for_publish(
                    timeout_s)
            self.connected.clear()              # a disconnection we asked for is not worth a warning
            self.client.disconnect()
        except (RuntimeError, ValueError, OSError):
            pass
        self.client.loop_stop()
