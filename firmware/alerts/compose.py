"""What the e-mail service mails: alarms (status points that became active, events that were recorded)
and the scheduled load-profile mail with its CSV attachment. Queued mails are JSON in the outbox and
become ``EmailMessage`` objects only when sent."""
from __future__ import annotations

import csv
import io
import json
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Iterable, Mapping

# status points whose rise to 1 (or, for time_synced, fall to 0) is an alarm
ALARM_POINTS = {"alarm_active": (1.0, "an alarm is active"), "revenue_fault": (1.0, "revenue registers unavailable"),
                "pq_event_active": (1.0, "a sag, swell or interruption is in progress"),
                "time_synced": (0.0, "the clock lost synchronisation to its time source")}
# time events worth a mail (the others are routine)
TIME_ALARMS = ("step", "unsync", "clock_set", "time_set")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def alarm(meter: str, ts: float, what: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    lines = [f"Meter {meter}: {what}", f"Time: {_utc(ts)}", ""]
    lines += [f"{k}: {v}" for k, v in detail.items()]
    return {"subject": f"[{meter}] {what}", "text": "\n".join(lines) + "\n", "attachments": []}


def summary(meter: str, ts: float, held: list[str]) -> dict[str, Any]:
    text = f"Meter {meter}: {len(held)} alarms held back by [email] max_mails_per_hour:\n\n" + "\n".join(held)
    return {"subject": f"[{meter}] {len(held)} further alarms", "text": text + "\n", "attachments": []}


def load_profile_mail(meter: str, ts: float, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["record", "kind", "event", "start_utc", "end_utc", "status", "values"])
    n = 0
    for r in records:
        n += 1
        w.writerow([r["id"], r["kind"], r["event"] or "", _utc(r["start"]), _utc(r["end_ts"]), r["status"],
                    " ".join("" if v is None else repr(v) for v in r["data"])])
    return {"subject": f"[{meter}] load profile, {n} records to {_utc(ts)}",
            "text": f"Meter {meter}: {n} load-profile records since the last mail, attached as CSV.\n",
            "attachments": [{"name": f"{meter}-load-profile-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(ts))}.csv",
                             "type": "text/csv", "content": buf.getvalue()}]}


def to_message(doc: Mapping[str, Any], sender: str, recipients: Iterable[str], ts: float) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = doc["subject"]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(ts, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(doc["text"])
    for att in doc.get("attachments", []):
        maintype, _, subtype = att["type"].partition("/")
        msg.add_attachment(att["content"].encode(), maintype=maintype, subtype=subtype, filename=att["name"])
    return msg


def encode(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    return json.loads(text)
