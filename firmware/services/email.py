"""The e-mail service: alarm mails and the scheduled load-profile mail, over SMTP with STARTTLS.

Alarms come from the measurement snapshot (a status point of ``compose.ALARM_POINTS`` turning active)
and from the records of the log stores (load-profile events such as an outage, time set or energy
mismatch; time events such as a step or lost sync; records of the meter's event log at or above
``[email] min_priority``). Each mail is queued in ``data_dir/email.db`` with
the read positions of its sources, then a sender thread hands it to the server, ``[email] retries``
more times at ``retry_interval`` doubling, each SMTP operation within ``[email] timeout`` (60 s); the
attempts and the next retry time are kept with the mail in the outbox, so a restart neither resets the count
nor sends early. A mail that still fails is logged and given up. Sending never blocks the heartbeats. Beyond
``max_mails_per_hour`` alarms, the rest are summarised in one mail once the hour allows.
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from typing import Any

from firmware import feeds
from firmware.alerts import compose
from firmware.alerts.mailer import MailError, send
from firmware.ipc import names
from firmware.ipc.snapshot import Snapshot
from firmware.service import Service, command, main
from firmware.storage.outbox import Outbox
from hal.errors import IPCError

OUTBOX_DB = "email.db"       # under data_dir
OUTBOX_DEPTH = 10000
OUTBOX_TABLE = "mail"
LOG_MAIL_MAX_RECORDS = 20000
HOUR_S = 3600.0


class EmailService(Service):
    name = "email"
    step_interval_s = 0.5

    def setup(self) -> None:
        self.e = self.config["email"]
        self.meter = self.config["meter"].name + " " + self.config["meter"].serial_number
        self.outbox = Outbox(self.ctx.data_dir / OUTBOX_DB, OUTBOX_DEPTH, table=OUTBOX_TABLE)
        self.lp = feeds.load_profile(self.ctx.data_dir)
        self.lp_log = feeds.load_profile(self.ctx.data_dir)
        self.tev = feeds.time_events(self.ctx.data_dir)
        self.evl = feeds.event_log(self.ctx.data_dir)
        self.snapshot: Snapshot | None = None
        self.status: dict[str, float] = {}
        self.alarm_times: deque[float] = deque()
        self.held: list[str] = []
        now = time.time()
        if self.e.log_mail_interval and self.outbox.cursor("logmail_at", 0.0) == 0.0:
            self.outbox.put([], {"logmail_at": now})
        self.counters = {"queued": 0, "sent": 0, "failed_attempts": 0, "given_up": 0, "held": 0}
        self._wake = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="smtp", daemon=True)
        self._sender.start()
        self.endpoints = [f"smtp://{self.e.host}:{self.e.port}{' starttls' if self.e.starttls else ''}"]

    # ------------------------------------------------------------------ collecting (service thread)

    def step(self) -> None:
        now = time.time()
        docs: list[dict[str, Any]] = []
        cursors: dict[str, float] = {}
        if self.e.alarms:
            docs += self._status_alarms(now)
            docs += self._record_alarms(cursors)
            docs = self._limit(now, docs)
        due = self.outbox.cursor("logmail_at", now) + self.e.log_mail_interval
        if self.e.log_mail_interval and now >= due:
            after = int(self.outbox.cursor("logmail", 0))
            records = self.lp_log.read(after, LOG_MAIL_MAX_RECORDS)
            if records:
                docs.append(compose.load_profile_mail(self.meter, now, records))
                cursors["logmail"] = records[-1]["id"]
            cursors["logmail_at"] = now
        if docs or cursors:
            self.outbox.put([(now, "mail", compose.encode(d), 0, False) for d in docs], cursors)
            self.counters["queued"] += len(docs)
            if docs:
                self._wake.set()
        self.heartbeat(**self.counters, pending=self.outbox.count())
        self.stopping.wait(self.step_interval_s)

    def _status_alarms(self, now: float) -> list[dict[str, Any]]:
        if self.snapshot is None:
            try:
                self.snapshot = Snapshot.attach(self.ctx.shm_name(names.MEASUREMENTS))
            except (IPCError, OSError, ValueError):
                return []
        snap = self.snapshot.read()
        out = []
        for name, (active, what) in compose.ALARM_POINTS.items():
            value = snap.get(name, math.nan)
            if not isinstance(value, float) or math.isnan(value):
                continue
            before = self.status.get(name)
            self.status[name] = value
            # time_synced is 0 at every start until the first sync: only a fall from 1 is an alarm
            if value == active and before != active and (before is not None or name != "time_synced"):
                out.append(compose.alarm(self.meter, now, what, {"point": name, "value": value}))
        return out

    def _record_alarms(self, cursors: dict[str, float]) -> list[dict[str, Any]]:
        out = []
        for rec in self.lp.read(int(self.outbox.cursor("lp", 0)), 500):
            cursors["lp"] = rec["id"]
            if rec["kind"] != feeds.LP_INTERVAL_KIND:
                what = f"load-profile {rec['kind']} {rec['event'] or ''}".strip()
                out.append(compose.alarm(self.meter, rec["ts"], what, {"record": rec["id"], "start": rec["start"],
                                                                       "end": rec["end_ts"], **rec["info"]}))
        for rec in self.tev.read(int(self.outbox.cursor("time", 0)), 500):
            cursors["time"] = rec["id"]
            if rec["event"] in compose.TIME_ALARMS:
                out.append(compose.alarm(self.meter, rec["ts"], f"time {rec['event']}",
                                         {"offset_s": rec["offset"], **rec["info"]}))
        for rec in self.evl.read(int(self.outbox.cursor("events", 0)), 500):
            cursors["events"] = rec["id"]
            if rec["priority"] >= self.e.min_priority:
                what = f"{rec['source']} {rec['cause']} {rec['effect'] or ''}".strip()
                out.append(compose.alarm(self.meter, rec["ts"], what,
                                         {"priority": rec["priority"], "user": rec["user"], **(rec["detail"] or {})}))
        return out

    def _limit(self, now: float, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        while self.alarm_times and now - self.alarm_times[0] > HOUR_S:
            self.alarm_times.popleft()
        out = []
        if self.held and len(self.alarm_times) < self.e.max_mails_per_hour:
            out.append(compose.summary(self.meter, now, self.held))
            self.alarm_times.append(now)
            self.held = []
        for d in docs:
            if len(self.alarm_times) < self.e.max_mails_per_hour:
                out.append(d)
                self.alarm_times.append(now)
            else:
                self.held.append(d["subject"])
                self.counters["held"] += 1
        return out

    # ------------------------------------------------------------------ sending (sender thread)

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            next_due = self._send_due()
            self._wake.wait(max(0.05, min(next_due - time.time(), 1.0)))
            self._wake.clear()

    def _send_due(self) -> float:
        """Send every queued mail whose time has come; the time of the next retry."""
        next_due = time.time() + 1.0
        for msg in self.outbox.pending(0, 50):
            if self.stopping.is_set():
                break
            n = msg.attempts
            if time.time() < msg.next_at:
                next_due = min(next_due, msg.next_at)
                continue
            try:
                send(self.e, compose.to_message(compose.decode(msg.body), self.e.sender, self.e.recipients, msg.ts))
            except MailError as exc:
                self.counters["failed_attempts"] += 1
                if n >= self.e.retries:
                    self.log.error("mail %r given up after %d attempts: %s",
                                   compose.decode(msg.body)["subject"], n + 1, exc)
                    self.counters["given_up"] += 1
                    self.outbox.ack([msg.id])
                else:
                    retry = time.time() + self.e.retry_interval * 2 ** n
                    self.outbox.defer(msg.id, n + 1, retry)
                    self.log.warning("mail not sent (attempt %d of %d, next in %.0f s): %s", n + 1,
                                     self.e.retries + 1, retry - time.time(), exc)
                    next_due = min(next_due, retry)
                continue
            self.outbox.ack([msg.id])
            self.counters["sent"] += 1
        return next_due

    def teardown(self) -> None:
        self.stopping.set()
        self._wake.set()
        sender = getattr(self, "_sender", None)
        if sender is not None:
            sender.join(self.e.timeout + 1)
        for name in ("lp", "lp_log", "tev", "evl", "outbox", "snapshot"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()

    def dump_config(self) -> dict[str, Any]:
        e = self.config["email"]
        return {"server": f"{e.host}:{e.port}", "starttls": e.starttls, "recipients": list(e.recipients)}

    @command("test")
    def cmd_test(self, user: str = "") -> dict[str, Any]:
        """Queue a test mail now (what a commissioning engineer sends to check the settings)."""
        now = time.time()
        self.outbox.put([(now, "mail", compose.encode(compose.alarm(self.meter, now, "test mail", {"user": user})),
                          0, False)])
        self._wake.set()
        return {"queued": True}


if __name__ == "__main__":
    sys.exit(main(EmailService))
