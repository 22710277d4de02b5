"""E-mail alerts against an aiosmtpd server on loopback: STARTTLS (certificate verified) and AUTH before
any mail, alarm mails from status points and recorded events, the scheduled load-profile mail with its
CSV, retries while the server is away, and no plain-text send to a server without STARTTLS."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from firmware.config import meter_schema
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.points import snapshot_layout
from firmware.revenue.engine import REVENUE_DB, REVENUE_SUBDIR
from firmware.revenue.loadprofile import COLUMNS as LP_COLUMNS
from firmware.revenue.loadprofile import TABLE as LP_TABLE
from firmware.revenue.loadprofile import record
from firmware.service import ServiceContext, instance_name
from firmware.services.email import OUTBOX_DB, OUTBOX_TABLE, EmailService
from firmware.storage.eventlog import Event, EventLog
from firmware.storage.logstore import LogStore
from firmware.storage.outbox import Outbox
from firmware.timesync import EVENTS_COLUMNS, EVENTS_DB, EVENTS_TABLE
from tests.support.certs import make_cert

DEADLINE_S = 20.0


class Inbox:
    """aiosmtpd handler: what arrived, and whether the session was encrypted and authenticated."""

    def __init__(self) -> None:
        self.mails: list[tuple[Message, bool, bool, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.mails.append((message_from_bytes(envelope.content, policy=policy.default), session.ssl is not None,
                               bool(session.authenticated), list(envelope.rcpt_tos)))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [m["Subject"] for m, *_ in self.mails]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"meter" and auth_data.password == b"s3cret"
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(inbox: Inbox, port: int, cert: tuple[Path, Path] | None) -> Controller:
    kwargs = {}
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs = {"tls_context": ctx, "require_starttls": True, "auth_require_tls": True,
                  "authenticator": authenticator}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5, **kwargs)
    controller.start()
    return controller


class Rig:
    def __init__(self, tmp_path: Path, port: int, cert: Path | None, **email_opts) -> None:
        self.config = meter_schema().load({
            "meter": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run"),
                      "serial_number": "SIM-7", "name": "feeder-3"},
            "email": {"enabled": True, "port": port, "ca_file": str(cert or ""), "username": "meter",
                      "password": "s3cret", "sender": "meter@example.net",
                      "recipients": ["ops@example.net", "billing@example.net"], "retry_interval": 1.0,
                      "timeout": 5.0, **email_opts}})
        run_dir = tmp_path / "run"
        run_dir.mkdir(exist_ok=True)
        self.ctx = ServiceContext("email", self.config, Path("none.toml"), Path("boards/sim.toml"), run_dir,
                                  tmp_path / "data", instance_name(run_dir))
        self.snapshot = Snapshot.create(self.ctx.shm_name(names.MEASUREMENTS), snapshot_layout())
        self.lp = LogStore(tmp_path / "data" / REVENUE_SUBDIR / REVENUE_DB, LP_TABLE, LP_COLUMNS, 1000)
        self.tev = LogStore(tmp_path / "data" / EVENTS_DB, EVENTS_TABLE, EVENTS_COLUMNS, 1000)
        self.svc = EmailService(self.ctx)
        self.svc.step_interval_s = 0.05
        self.svc.setup()
        self.thread = threading.Thread(target=self.svc.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.svc.stop()
        self.thread.join(10)
        self.svc.teardown()
        self.lp.close()
        self.tev.close()
        self.snapshot.close()
        self.snapshot.unlink()


def wait_for(cond, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {DEADLINE_S} s")


@pytest.fixture
def cert(tmp_path):
    return make_cert(tmp_path)


def test_alarms_over_starttls_with_login(tmp_path, cert):
    inbox, port = Inbox(), free_port()
    server = start_server(inbox, port, cert)
    rig = Rig(tmp_path, port, cert[0], log_mail_interval=0)
    try:
        rig.snapshot.publish({"revenue_fault": 0.0, "time_synced": 1.0, "alarm_active": 0.0})
        time.sleep(0.3)
        assert inbox.mails == []
        rig.snapshot.publish({"revenue_fault": 1.0, "time_synced": 0.0})
        rig.lp.append(1.7e9, record("outage", "outage", 1.7e9 - 60, 1.7e9, [0.0]))
        rig.lp.append(1.7e9 + 900, record("interval", "", 1.7e9, 1.7e9 + 900, [1.0]))   # not an alarm
        rig.tev.append(1.7e9, {"event": "step", "offset": -5.0, "info": {"source": "ntp1"}})
        rig.tev.append(1.7e9, {"event": "slew", "offset": 0.02, "info": {}})            # routine
        events = EventLog(tmp_path / "data", cutoff=5)
        events.record(Event(200, "pq", "sag", "Va 41 % for 0.12 s", detail={"residual_pct": 41.0}))
        events.record(Event(70, "alarms", "over_thd_v", "picked up"))                     # Low: not mailed
        events.close()
        wait_for(lambda: len(inbox.mails) == 5, "five alarm mails")
        time.sleep(0.3)
        subjects = sorted(inbox.subjects())
        assert subjects == sorted(["[feeder-3 SIM-7] revenue registers unavailable",
                                   "[feeder-3 SIM-7] the clock lost synchronisation to its time source",
                                   "[feeder-3 SIM-7] load-profile outage outage",
                                   "[feeder-3 SIM-7] time step",
                                   "[feeder-3 SIM-7] pq sag Va 41 % for 0.12 s"])
        for msg, encrypted, authenticated, rcpts in inbox.mails:
            assert encrypted, "sent before STARTTLS"
            assert authenticated
            assert rcpts == ["ops@example.net", "billing@example.net"]
            assert msg["From"] == "meter@example.net"
        step = next(m for m, *_ in inbox.mails if m["Subject"].endswith("time step"))
        assert "offset_s: -5.0" in step.get_content() and "source: ntp1" in step.get_content()
        sag = next(m for m, *_ in inbox.mails if "pq sag" in m["Subject"])
        assert "priority: 200" in sag.get_content() and "residual_pct: 41.0" in sag.get_content()
        assert rig.svc.outbox.count() == 0 and rig.svc.counters["sent"] == 5
    finally:
        rig.close()
        server.stop()


def test_retries_until_the_server_is_back_and_log_mail(tmp_path, cert):
    inbox, port = Inbox(), free_port()
    rig = Rig(tmp_path, port, cert[0], log_mail_interval=1.0, retries=5)
    server = None
    try:
        for i in range(3):
            rig.lp.append(1.7e9 + 900 * (i + 1), record("interval", "", 1.7e9 + 900 * i, 1.7e9 + 900 * (i + 1),
                                                        [float(i), 2.0]))
        wait_for(lambda: rig.svc.counters["failed_attempts"] >= 2, "failed attempts while the server is away")
        assert inbox.mails == [] and rig.svc.outbox.count() >= 1
        server = start_server(inbox, port, cert)
        wait_for(lambda: any("load profile" in s for s in inbox.subjects()), "the load-profile mail")
        msg = next(m for m, *_ in inbox.mails if "load profile" in m["Subject"])
        assert "3 records" in msg["Subject"]
        (csv_part,) = [p for p in msg.iter_attachments()]
        assert csv_part.get_content_type() == "text/csv"
        rows = csv_part.get_content().splitlines()
        assert rows[0] == "record,kind,event,start_utc,end_utc,status,values"
        assert rows[1:] == ["1,interval,,2023-11-14 22:13:20 UTC,2023-11-14 22:28:20 UTC,0,0.0 2.0",
                            "2,interval,,2023-11-14 22:28:20 UTC,2023-11-14 22:43:20 UTC,0,1.0 2.0",
                            "3,interval,,2023-11-14 22:43:20 UTC,2023-11-14 22:58:20 UTC,0,2.0 2.0"]
    finally:
        rig.close()
        if server is not None:
            server.stop()


def _given_up_unsent(tmp_path: Path, server_cert: tuple[Path, Path] | None, ca_file: Path | None) -> None:
    inbox, port = Inbox(), free_port()
    server = start_server(inbox, port, server_cert)
    rig = Rig(tmp_path, port, ca_file, retries=0, log_mail_interval=0)
    try:
        rig.svc.cmd_test(user="commissioning")
        wait_for(lambda: rig.svc.counters["given_up"] == 1, "the mail given up")
        assert inbox.mails == []
    finally:
        rig.close()
        server.stop()


def test_no_plain_text_send_without_starttls(tmp_path):
    _given_up_unsent(tmp_path, None, None)                    # the server offers no STARTTLS


def test_wrong_certificate_is_refused(tmp_path, cert):
    (tmp_path / "other").mkdir()
    _given_up_unsent(tmp_path, cert, make_cert(tmp_path / "other")[0])


def test_retry_count_and_next_time_survive_a_restart(tmp_path, cert):
    """A sender that restarts (a crash loop, a power cycle) goes on counting: retries=2 means three attempts
    in all, however many times the service starts in between, and never one before its retry time."""
    port = free_port()                                        # nothing listens: every attempt fails
    rig = Rig(tmp_path, port, cert[0], retries=2, log_mail_interval=0, retry_interval=1.0)
    try:
        rig.svc.cmd_test(user="commissioning")
        wait_for(lambda: rig.svc.counters["failed_attempts"] >= 1, "the first failed attempt")
    finally:
        rig.close()
    outbox = Outbox(tmp_path / "data" / OUTBOX_DB, 10, table=OUTBOX_TABLE)
    (pending,) = outbox.pending()
    outbox.close()
    assert pending.attempts == 1 and pending.next_at > time.time() - 0.5
    attempts = 1
    for _ in range(3):                                        # restarts until the mail is given up
        rig = Rig(tmp_path, port, cert[0], retries=2, log_mail_interval=0, retry_interval=1.0)
        try:
            time.sleep(0.3)
            assert rig.svc.counters["failed_attempts"] == 0   # the retry time is kept: not tried at once
            wait_for(lambda r=rig: r.svc.counters["failed_attempts"] >= 1, "the next attempt")
            attempts += rig.svc.counters["failed_attempts"]
            if rig.svc.counters["given_up"]:
                break
        finally:
            rig.close()
    assert attempts == 3 and rig.svc.counters["given_up"] == 1
