"""The MQTT publisher against mosquitto on loopback: every load-profile record, time event, reading and
energy message arrives once, in order, through a broker restart mid-stream (store-and-forward), and a
publisher restart resends only what the broker never acknowledged."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware import feeds
from firmware.config import meter_schema
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.revenue.engine import REVENUE_DB, REVENUE_SUBDIR
from firmware.revenue.loadprofile import COLUMNS as LP_COLUMNS
from firmware.revenue.loadprofile import TABLE as LP_TABLE
from firmware.revenue.loadprofile import record
from firmware.service import ServiceContext, instance_name
from firmware.services.mqtt import MqttService
from firmware.storage.eventlog import Event, EventLog
from firmware.storage.logstore import LogStore
from firmware.timesync import EVENTS_COLUMNS, EVENTS_DB, EVENTS_TABLE
from tests.support.certs import make_cert
from tests.support.mosquitto import Mosquitto, mosquitto_path

DEADLINE_S = 30.0


class Subscriber:
    """A fleet head-end: persistent session, QoS 2, every message kept with its topic."""

    def __init__(self, port: int, pattern: str = "openmeter/#", tls_ca: Path | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="head-end", clean_session=False)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        if login:
            self.client.username_pw_set(*login)
        self.client.on_connect = lambda c, u, f, r, p=None: c.subscribe(pattern, qos=2)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port, 10)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def data(self, kind: str | None = None) -> list[dict]:
        with self.lock:
            return [p for t, p in self.messages if "seq" in p and (kind is None or t.endswith("/" + kind))]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Rig:
    def __init__(self, tmp_path: Path, port: int, **mqtt_opts) -> None:
        self.tmp = tmp_path
        self.config = meter_schema().load({
            "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run"),
                      "serial_number": "SIM-42"},
            "mqtt": {"enabled": True, "port": port, "keepalive": 5, "energy_interval": 1.0, **mqtt_opts}})
        self.run_dir = tmp_path / "run"
        self.run_dir.mkdir(exist_ok=True)
        self.ctx = ServiceContext("mqtt", self.config, Path("none.toml"), Path("boards/sim.toml"), self.run_dir,
                                  tmp_path / "data", instance_name(self.run_dir))
        self.snapshot = Snapshot.create(self.ctx.shm_name(names.MEASUREMENTS), snapshot_layout())
        self.lp = LogStore(tmp_path / "data" / REVENUE_SUBDIR / REVENUE_DB, LP_TABLE, LP_COLUMNS, 100000)
        self.tev = LogStore(tmp_path / "data" / EVENTS_DB, EVENTS_TABLE, EVENTS_COLUMNS, 1000)
        self.n_lp = 0
        self.svc: MqttService | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.svc = MqttService(self.ctx)
        self.svc.setup()
        self.thread = threading.Thread(target=self.svc.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.svc is not None:
            self.svc.stop()
            self.thread.join(10)
            self.svc.teardown()
            self.svc = None

    def write_records(self, n: int) -> None:
        """n load-profile records as the revenue registers write them (every 10th an event)."""
        rows = []
        for _ in range(n):
            self.n_lp += 1
            t = 1.7e9 + 900 * self.n_lp
            kind = "event" if self.n_lp % 10 == 0 else "interval"
            rows.append((t, record(kind, "freeze" if kind == "event" else "", t - 900, t, [self.n_lp * 1.5, 2.0])))
        self.lp.append_many(rows)

    def publish_second(self, i: int) -> None:
        self.snapshot.publish({"v_an": 230.0 + i * 0.01, "i_a": 5.0, "wh_delivered": 1000.0 + i, "frequency": 50.0})

    def close(self) -> None:
        self.stop()
        self.lp.close()
        self.tev.close()
        self.snapshot.close()
        self.snapshot.unlink()


def wait_for(cond, what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def check_once_in_order(sub: Subscriber) -> list[int]:
    """Every seq arrived, first arrivals in order, and a repeat (a broker re-delivery across its restart,
    which subscribers drop by seq) is an exact copy of the first; returns the distinct seqs."""
    first: dict[int, dict] = {}
    order = []
    for p in sub.data():
        if p["seq"] in first:
            assert p == first[p["seq"]], f"seq {p['seq']} arrived twice with different contents"
            continue
        first[p["seq"]] = p
        order.append(p["seq"])
    assert order == sorted(order), "out of order"
    assert order == list(range(order[0], order[0] + len(order))), "a gap in seq: a message was lost"
    return order


@pytest.fixture
def broker(tmp_path):
    mosquitto_path()
    b = Mosquitto(tmp_path / "broker")
    yield b
    b.stop()


def test_broker_restart_mid_stream_loses_nothing_and_keeps_order(tmp_path, broker):
    sub = Subscriber(broker.port)
    rig = Rig(tmp_path, broker.port)
    try:
        rig.start()
        wait_for(lambda: rig.svc.link.connected.is_set(), "publisher connected")
        for i in range(30):                                   # 3 s of stream before the restart
            rig.write_records(20)
            rig.publish_second(i)
            time.sleep(0.1)
        broker.stop()                                         # the broker goes away mid-stream
        for i in range(30, 50):                               # 2 s of records queue on disk meanwhile
            rig.write_records(20)
            rig.publish_second(i)
            time.sleep(0.1)
        wait_for(lambda: rig.svc.outbox.count() > 300, "records queued while the broker is away")
        rig.tev.append(time.time(), {"event": "step", "offset": -5.0, "info": {"source": "127.0.0.1"}})
        events_log = EventLog(tmp_path / "data", cutoff=5)
        events_log.record(Event(200, "pq", "sag", "Va 41 %", detail={"duration_s": 0.12}))
        events_log.close()
        broker.start()
        for i in range(50, 70):
            rig.write_records(20)
            rig.publish_second(i)
            time.sleep(0.1)
        total_lp = rig.n_lp
        wait_for(lambda: len(sub.data("intervals")) + len(sub.data("events")) >= total_lp + 2 and
                 rig.svc.outbox.count() == 0, "every record delivered")
        time.sleep(0.5)
        seqs = check_once_in_order(sub)
        assert rig.svc.link.stats["disconnects"] >= 1 and rig.svc.link.stats["connects"] >= 2
        records = {p["record"] for p in sub.data("intervals") + sub.data("events")
                   if p.get("kind") not in ("time", "event_log")}
        assert sorted(records) == list(range(1, total_lp + 1))
        events = list({p["seq"]: p for p in sub.data("events")}.values())
        assert sum(1 for p in events if p["kind"] == "event") == total_lp // 10
        step = [p for p in events if p["kind"] == "time"]
        assert len(step) == 1 and step[0]["event"] == "step" and step[0]["values"]["offset"] == -5.0
        (sag,) = [p for p in events if p["kind"] == "event_log"]
        assert sag["event"] == "sag" and sag["values"]["priority"] == 200
        assert sag["info"] == {"source": "pq", "effect": "Va 41 %", "user": "", "duration_s": 0.12}
        interval = sub.data("intervals")[0]
        assert interval["values"]["data"] == [1.5, 2.0] and interval["end"] - interval["start"] == 900
        readings = sub.data("readings")
        assert len(readings) >= 4 and readings[-1]["values"]["v_an"] == pytest.approx(230.0 + 0.69, abs=0.2)
        assert readings[0]["values"]["p_total"] is None        # not published: null, not NaN
        energy = sub.data("energy")
        assert energy and "wh_delivered" in energy[-1]["values"]
        assert rig.svc.outbox.dropped == 0
        assert len(seqs) == rig.svc.link.stats["acked"]
        # the meter itself sent each message once per connection: repeats, if any, are the broker's
        assert rig.svc.link.stats["sent"] == len(seqs)
    finally:
        rig.close()
        sub.stop()


def test_publisher_restart_resends_only_unacknowledged(tmp_path, broker):
    sub = Subscriber(broker.port)
    rig = Rig(tmp_path, broker.port, readings=False, energy=False)
    try:
        rig.write_records(50)
        rig.start()
        wait_for(lambda: len(sub.data()) == 50, "first 50 records")
        rig.stop()
        rig.write_records(50)                                 # written while the publisher is stopped
        rig.start()
        wait_for(lambda: len(sub.data()) == 100, "the next 50 records")
        time.sleep(0.5)
        seqs = check_once_in_order(sub)
        assert len(seqs) == 100
        assert [p["record"] for p in sub.data()] == list(range(1, 101))
        # the feed's position survived the restart with the queue: nothing was queued twice
        assert rig.svc.outbox.cursor("lp") == 100
    finally:
        rig.close()
        sub.stop()


def test_sparkplug_payload(tmp_path, broker):
    sub = Subscriber(broker.port, "spBv1.0/#")
    rig = Rig(tmp_path, broker.port, payload="sparkplug", readings=False, energy=False, intervals=True)
    try:
        rig.write_records(3)
        rig.start()
        wait_for(lambda: len(sub.data()) == 3, "3 records")
        topic, payload = sub.messages[-1]
        assert topic == "spBv1.0/openmeter/DDATA/SIM-42/intervals"
        assert payload["timestamp"] == int((1.7e9 + 2700) * 1000)
        assert payload["metrics"] == [{"name": "data", "value": [4.5, 2.0], "datatype": "DataSet"}]
        assert payload["properties"]["record"] == 3
    finally:
        rig.close()
        sub.stop()


def test_tls_and_credentials(tmp_path):
    mosquitto_path()
    cert, key = make_cert(tmp_path)
    passwords = tmp_path / "passwords"
    passwords.touch(mode=0o600)
    for user, password in (("meter-42", "pw-meter"), ("head-end", "pw-head")):
        subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True, capture_output=True)
    broker = Mosquitto(tmp_path / "broker", extra=[f"certfile {cert}", f"keyfile {key}", f"cafile {cert}",
                                                   f"password_file {passwords}"])
    broker.conf.write_text(broker.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    broker.restart()
    sub = Subscriber(broker.port, tls_ca=cert, login=("head-end", "pw-head"))
    rig = Rig(tmp_path, broker.port, readings=False, energy=False, tls=True, ca_file=str(cert),
              username="meter-42", password="pw-meter")
    try:
        rig.write_records(5)
        rig.start()
        wait_for(lambda: len(sub.data()) == 5, "5 records over TLS")
        assert rig.svc.endpoints[0].startswith("mqtts://127.0.0.1:")
        rig.stop()
        # a wrong password is refused by the broker: nothing is sent, everything stays queued
        rig.config = rig.ctx.config = meter_schema().load({**rig.config.to_dict(), "mqtt": {
            **rig.config["mqtt"].to_dict(), "password": "wrong"}})
        rig.write_records(3)
        rig.start()
        wait_for(lambda: "refused" in rig.svc.link.last_error, "the broker's refusal")
        time.sleep(0.5)
        assert len(sub.data()) == 5 and not rig.svc.link.connected.is_set()
        rig.svc.collector.collect()
        assert rig.svc.outbox.count() == 3
    finally:
        rig.close()
        sub.stop()
        broker.stop()


def test_feeds_read_nothing_before_the_stores_exist(tmp_path):
    assert feeds.load_profile(tmp_path).read(0) == [] and feeds.time_events(tmp_path).read(0) == []
