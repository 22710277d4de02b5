"""Structured logging: stdout (journald on the device) and a rotating file per process.

Each log file starts with a line giving the firmware version and the configuration version, so
a file read on its own says what produced it. Records carry structured fields through
``extra={"fields": {...}}``; the JSON format writes them as keys, the text format as key=value.
Under systemd (JOURNAL_STREAM set) text lines get a ``<N>`` priority prefix that journald reads.

Writing is decoupled from the caller: records go into a bounded queue drained by a thread, so a
stalled stdout (a full pipe, a slow journald) never stalls the supervisor or the acquisition loop;
when the queue is full, records are dropped and counted. A message repeated from one place more
than ``RATE_LIMIT_BURST`` times in ``RATE_LIMIT_WINDOW_S`` is suppressed for the rest of the window,
and the next one that passes says how many were suppressed.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

QUEUE_DEPTH = 10000
RATE_LIMIT_WINDOW_S = 10.0
RATE_LIMIT_BURST = 20
_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str, journald: bool) -> None:
        super().__init__()
        self.process_name = process_name
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        extra = ""
        if isinstance(fields, dict) and fields:
            extra = " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
        text = f"{record.levelname.lower():7s} {self.process_name}/{record.name}: {record.getMessage()}{extra}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.journald:
            return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{text}"
        stamp = _dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp} {text}"


class HeaderedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file whose every file (the first and each after rotation) opens with a header line."""

    def __init__(self, filename: str | Path, header: str, **kwargs: Any) -> None:
        self.header = header
        super().__init__(filename, **kwargs)

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        if stream.tell() == 0:
            stream.write(self.header + "\n")
            stream.flush()
        return stream


class RateLimit(logging.Filter):
    """At most RATE_LIMIT_BURST records per (logger, message template) per window; counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[tuple[str, str], list[float | int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= RATE_LIMIT_WINDOW_S:
                suppressed = int(window[2]) if window else 0
                self._windows[key] = [now, 1, 0]
                if len(self._windows) > 1000:
                    self._windows = {k: w for k, w in self._windows.items() if now - w[0] < RATE_LIMIT_WINDOW_S}
                if suppressed:
                    record.msg = f"{record.msg} (and {suppressed} more like it suppressed)"
                return True
            if window[1] < RATE_LIMIT_BURST:
                window[1] += 1
                return True
            window[2] += 1
            return False


class DroppingQueueHandler(logging.Handler):
    """Hands records to a writer thread; never blocks the caller. ``dropped`` counts what did not fit."""

    def __init__(self, handlers: list[logging.Handler]) -> None:
        super().__init__()
        self.queue: queue.Queue[logging.LogRecord | None] = queue.Queue(QUEUE_DEPTH)
        self.handlers = handlers
        self.dropped = 0
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg = record.getMessage()
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        while True:
            record = self.queue.get()
            if record is None:
                return
            for handler in self.handlers:
                if record.levelno >= handler.level:
                    with contextlib.suppress(Exception):
                        handler.handle(record)

    def close(self) -> None:
        """Write what is queued (bounded wait), then close the real handlers."""
        # a process forked from this one (a service the supervisor starts) has the handler but not its writer
        # thread, nor any lock that thread held on the queue: it only closes the real handlers
        if self._thread.is_alive():
            try:
                self.queue.put(None, timeout=1.0)
                self._thread.join(timeout=2.0)
            except queue.Full:
                pass
        for handler in self.handlers:
            handler.close()
        super().close()


def configure_logging(config: Any, process_name: str, data_dir: str | Path | None = None) -> None:
    """Set up the root logger for one process from the ``[log]`` section."""
    from firmware import __version__

    section = config.log
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(section.level.upper())
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(JsonFormatter(process_name) if section.format == "json"
                        else TextFormatter(process_name, journald))
    writers: list[logging.Handler] = [stdout]
    if section.file and data_dir is not None:
        log_dir = Path(data_dir) / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"log": process_name, "firmware_version": __version__,
                             "config_version": config.version,
                             "opened": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        handler = HeaderedRotatingFileHandler(log_dir / f"{process_name}.log", header,
                                              maxBytes=section.file_max_bytes, backupCount=section.file_count)
        handler.setFormatter(JsonFormatter(process_name))
        writers.append(handler)
    front = DroppingQueueHandler(writers)
    front.addFilter(RateLimit())
    root.addHandler(front)
