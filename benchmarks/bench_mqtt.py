"""MQTT: 1,000 simulated meters through one mosquitto on this machine, and the store-and-forward drain.

Fleet: ``METERS`` MQTT connections (as many meters), each publishing its 1-s readings message (the body
the meter's service sends, QoS 1), for ``FLEET_S`` seconds, from ``WORKERS`` processes driving their
connections with paho's external loop; a head-end subscriber counts what arrives and its latency. The
baseline in the same run is the same message rate from one connection: the ratio shows what a thousand
sessions cost the broker. Targets: every message delivered, p99 latency under 1 s.

Drain: a backlog of ``BACKLOG`` messages in the meter's outbox (what an outage leaves) sent by the meter's
link (QoS 2, acknowledged before removal from disk) against bare paho publishing the same messages from
memory at QoS 2. Target: the meter's drain at least 0.5x bare paho.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import selectors
import statistics
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt

from firmware.mqtt import topics
from firmware.mqtt.link import Link
from firmware.storage.outbox import Outbox

METERS = 1000
WORKERS = 2
FLEET_S = 10.0
BACKLOG = 20000
POINTS = ("v_an", "v_bn", "v_cn", "i_a", "i_b", "i_c", "p_total", "q_total", "s_total", "pf_total", "frequency")
TARGET_P99_S = 1.0
TARGET_DRAIN_RATIO = 0.5


def _body(meter: int, t: float) -> bytes:
    values = {p: 230.0 + meter * 1e-3 for p in POINTS}
    return topics.with_seq(topics.body("json", "readings", t, values, {"sent": time.time()}), int(t))


# ------------------------------------------------------------------------------------------- fleet

def _fleet_worker(port: int, first: int, count: int, duration_s: float, start_at: float, sent: Any) -> None:
    sel = selectors.DefaultSelector()
    clients = []
    for m in range(first, first + count):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{m}", clean_session=True)
        c.connect("127.0.0.1", port, 60)
        sel.register(c.socket(), selectors.EVENT_READ, c)
        clients.append((m, c))
    # meters publish spread over the second, as a fleet's clocks are
    offsets = [(i / count) for i in range(count)]
    while time.time() < start_at:
        for key, _ in sel.select(0.01):
            key.data.loop_read()
    end = start_at + duration_s
    tick = 0
    while True:
        now = time.time()
        second = int(now - start_at)
        if now >= end:
            break
        due_upto = (now - start_at) - second
        while tick < (second + 1) * count and offsets[tick % count] <= due_upto + (second - tick // count):
            m, c = clients[tick % count]
            c.publish(f"bench/{m}/readings", _body(m, now), qos=1)
            if c.want_write():
                c.loop_write()
            tick += 1
        for key, _ in sel.select(0.002):
            key.data.loop_read()
        for _, c in clients:
            if c.want_write():
                c.loop_write()
    deadline = time.time() + 5
    while time.time() < deadline and any(len(c._out_messages) for _, c in clients):
        for key, _ in sel.select(0.01):
            key.data.loop_read()
    for _, c in clients:
        c.loop_misc()
        c.disconnect()
    with sent.get_lock():
        sent.value += tick


class _HeadEnd:
    def __init__(self, port: int, pattern: str) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-head-end")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 60)
        self.client.subscribe(pattern, qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        i = msg.payload.find(b'"sent":')
        sent = float(msg.payload[i + 7: msg.payload.index(b",", i)]) if i >= 0 else now
        with self.lock:
            self.count += 1
            self.latencies.append(now - sent)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _fleet(port: int, meters: int, workers: int) -> tuple[float, int, int, float, float]:
    head = _HeadEnd(port, "bench/+/readings")
    ctx = mp.get_context("fork")
    start_at = time.time() + 2.0 + meters / 500
    per = meters // workers
    sent = ctx.Value("q", 0)
    procs = [ctx.Process(target=_fleet_worker, args=(port, w * per, per, FLEET_S, start_at, sent))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(FLEET_S + 60)
    time.sleep(1.0)
    head.stop()
    offered = sent.value
    lat = sorted(head.latencies)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    return head.count / FLEET_S, head.count, offered, p50, p99


# ------------------------------------------------------------------------------------------- drain

def _drain_ours(port: int, tmp: Path) -> float:
    m = SimpleNamespace(host="127.0.0.1", port=port, keepalive=30, username="", password="", tls=False, ca_file="",
                        cert_file="", key_file="", max_inflight=100)
    outbox = Outbox(tmp / "drain.db", BACKLOG * 2)
    now = time.time()
    body = topics.body("json", "readings", now, {p: 230.0 for p in POINTS})
    outbox.put([(now, "drain/ours/readings", body, 2, False)] * BACKLOG)
    link = Link(m, outbox, "bench-drain-ours", "drain/ours/status")
    link.start()
    link.connected.wait(10)
    t0 = time.perf_counter()
    while outbox.count() and time.perf_counter() - t0 < 120:
        if not link.pump():
            time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    link.stop()
    outbox.close()
    return BACKLOG / elapsed


def _drain_bare(port: int) -> float:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-drain-bare")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(c, u, mid, reason=None, props=None):
        acked[0] += 1
        if acked[0] == BACKLOG:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    time.sleep(0.3)
    now = time.time()
    body = topics.body("json", "readings", now, {p: 230.0 for p in POINTS})
    t0 = time.perf_counter()
    for i in range(BACKLOG):
        client.publish("drain/bare/readings", topics.with_seq(body, i + 1), qos=2)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return BACKLOG / elapsed


def main() -> dict[str, float]:
    from tests.support.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker", extra=["max_connections -1"])
        try:
            fleet = _fleet(broker.port, METERS, WORKERS)
            single = _single(broker.port)
            ours = _drain_ours(broker.port, Path(tmp))
            bare = _drain_bare(broker.port)
        finally:
            broker.stop()
    rate, got, offered, p50, p99 = fleet
    s_rate, s_got, s_offered, s_p50, s_p99 = single
    print(f"fleet: {METERS} meters x 1 readings message/s for {FLEET_S:g} s through one mosquitto "
          f"({WORKERS} publisher processes, {os.cpu_count()} cores)")
    print(f"{'publishers':<26}{'msg/s':>10}{'delivered':>12}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'one connection (baseline)':<26}{s_rate:>10.0f}{s_got:>6}/{s_offered:<5}{s_p50 * 1e3:>10.1f}"
          f"{s_p99 * 1e3:>10.1f}")
    print(f"{f'{METERS} connections':<26}{rate:>10.0f}{got:>6}/{offered:<5}{p50 * 1e3:>10.1f}{p99 * 1e3:>10.1f}")
    ratio = rate / s_rate if s_rate else float("nan")
    ok = got == offered and p99 < TARGET_P99_S
    print(f"ratio {METERS} connections / one: {ratio:.2f}; {'meets' if ok else 'MISSES'} the target "
          f"(all delivered, p99 < {TARGET_P99_S:g} s)")
    drain_ratio = ours / bare
    print(f"drain of a {BACKLOG}-message backlog at QoS 2: meter's outbox link {ours:.0f} msg/s, bare paho "
          f"{bare:.0f} msg/s, ratio {drain_ratio:.2f} ({'meets' if drain_ratio >= TARGET_DRAIN_RATIO else 'MISSES'} "
          f"{TARGET_DRAIN_RATIO:g}); an hour of 1-s readings drains in {3600 / ours:.1f} s")
    return {"fleet_rate": rate, "fleet_p99_s": p99, "fleet_ratio": ratio, "drain_ratio": drain_ratio}


def _single(port: int) -> tuple[float, int, int, float, float]:
    """The baseline: the fleet's message rate from one connection (one process, one session)."""
    head = _HeadEnd(port, "bench/+/readings")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-single")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    time.sleep(0.3)
    t0 = time.time()
    n = 0
    while n < int(FLEET_S) * METERS:
        due = int((time.time() - t0) * METERS)
        while n < min(due, int(FLEET_S) * METERS):
            client.publish(f"bench/{n % METERS}/readings", _body(n % METERS, time.time()), qos=1)
            n += 1
        time.sleep(0.001)
    time.sleep(1.0)
    client.disconnect()
    client.loop_stop()
    head.stop()
    lat = sorted(head.latencies)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    return head.count / FLEET_S, head.count, n, p50, p99


if __name__ == "__main__":
    main()
