"""Master reset, factory defaults and device wipe (ION7400 "Master reset", "Factory defaults"; a wipe before the
meter leaves service): run by the supervisor, which stops every service, changes the data directory and the
configuration, logs it, and starts the services again (a wipe leaves the meter stopped).

- **master reset**: every recorded and accumulated value: the revenue registers with their load profile and
  self-reads, the recorder's data recorders, PQ events and aggregates, the waveform captures, the disturbance
  counters, the io counts, the BACnet trend logs and the time events. The configuration, the users and the event
  log stay: the reset itself is an event in it.
- **factory defaults**: the configuration goes back to the defaults (a versioned save, in its history); the
  options that only describe this installation's paths ([meter] data_dir, run_dir, the revenue-lock file)
  are kept, so the meter still finds its data. The data stay.
- **device wipe**: everything under the data directory (registers, logs, users, certificates, the event log)
  and the configuration file with its history and seal; the meter stops and starts next time as from the
  factory (user1 with the factory password).

Each needs the master privilege (the control gate) and is refused while the revenue lock is engaged.
"""
from __future__ import annotations

import logging
import queue
import shutil
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from firmware.storage.eventlog import EVENTS_DB, Event, EventLog
from hal.errors import AccessDenied

log = logging.getLogger("supervisor")

EVENT_PRIORITY = 255            # High: a reset that clears billed or recorded values
TIMEOUT_S = 120.0               # the answer waits this long for every service to stop and start again
# What a master reset removes, under data_dir (files, directories, and SQLite's -wal/-shm beside a database)
MASTER_RESET_PATHS = ("revenue", "recorder.db", "waveforms", "pq_counters.json", "io", "bacnet", "time.db")
# [section] option kept by factory defaults: where this meter's data, sockets and lock switch are
KEPT_BY_FACTORY_DEFAULTS = (("meter", "data_dir"), ("meter", "run_dir"), ("upgrade", "revenue_lock_file"),
                            ("revenue.inputs", "sim_dir"))
ACTIONS = {"master_reset": "clear every recorded and accumulated value",
           "factory_defaults": "set the configuration back to the defaults",
           "device_wipe": "erase the data directory and the configuration, then stop"}


def _remove(path: Path) -> bool:
    found = False
    for p in [path, *path.parent.glob(path.name + "-*")]:      # recorder.db-wal, recorder.db-shm
        if p.is_dir():
            shutil.rmtree(p)
            found = True
        elif p.exists():
            p.unlink()
            found = True
    return found


def master_reset(data_dir: Path) -> list[str]:
    return [name for name in MASTER_RESET_PATHS if _remove(data_dir / name)]


def factory_defaults(config_path: Path, current: Any, user: str) -> int:
    """Save the defaults (keeping the installation's paths); the new configuration version."""
    from firmware.config.store import ConfigStore

    document: dict[str, Any] = {}
    for section, option in KEPT_BY_FACTORY_DEFAULTS:
        node = document
        for part in section.split("."):
            node = node.setdefault(part, {})
        node[option] = getattr(current[section], option)
    store = ConfigStore(config_path, locked=lambda _cfg: False)     # the lock was checked before
    return store.save(document, user, "factory defaults").version


def device_wipe(data_dir: Path, config_path: Path) -> list[str]:
    removed = []
    if data_dir.is_dir():
        for p in sorted(data_dir.iterdir()):
            if p.name != EVENTS_DB and not p.name.startswith(EVENTS_DB + "-"):
                _remove(p)
                removed.append(p.name)
    for p in config_path.parent.glob(config_path.name + "*"):        # meter.toml, .history.jsonl, .seal
        p.unlink()
        removed.append(p.name)
    return removed


def run(action: str, supervisor: Any, user: str) -> dict[str, Any]:
    """Carry out ``action`` with every service stopped (the supervisor's main loop calls this)."""
    from firmware.lockstate import revenue_locked

    config = supervisor.config
    if revenue_locked(config):
        raise AccessDenied(f"{action.replace('_', ' ')} refused: the meter is revenue-locked; release the "
                           "revenue-lock switch first")
    data_dir = Path(config.meter.data_dir)
    supervisor.stop_services()
    result: dict[str, Any] = {"action": action}
    try:
        if action == "master_reset":
            result["cleared"] = master_reset(data_dir)
        elif action == "factory_defaults":
            result["config_version"] = factory_defaults(supervisor.config_path, config, user)
        else:
            result["removed"] = device_wipe(data_dir, supervisor.config_path)
    finally:
        # from_config: the event also goes to the syslog collector, which is all that keeps a wipe on record
        events = EventLog.from_config(config)
        events.record(Event(EVENT_PRIORITY, "supervisor", action, ACTIONS[action], user,
                            {k: v for k, v in result.items() if k != "action"}))
        events.close()
        if action == "device_wipe":                 # the event log goes last, once it has said who wiped
            for p in data_dir.glob(EVENTS_DB + "*"):
                p.unlink()
    log.warning("%s by %s: %s", action, user or "?", result)
    if action == "device_wipe":
        supervisor.request_stop()
    else:
        supervisor.start_services()
    return result


class Requests:
    """The control commands (served on control threads) queued for the supervisor's main loop, which owns the
    services; each answer waits for its result."""

    def __init__(self, supervisor: Any) -> None:
        self.supervisor = supervisor
        self.queue: queue.SimpleQueue[tuple[str, str, Future[Any]]] = queue.SimpleQueue()

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {action: self._handler(action) for action in ACTIONS}

    def _handler(self, action: str) -> Callable[..., Any]:
        def handle(user: str = "") -> Any:
            done: Future[Any] = Future()
            self.queue.put((action, user, done))
            self.supervisor._wake()
            return done.result(timeout=TIMEOUT_S)
        return handle

    def drain(self) -> None:
        """Carry out the queued requests (the main loop's thread)."""
        while not self.queue.empty():
            action, user, done = self.queue.get()
            try:
                done.set_result(run(action, self.supervisor, user))
            except Exception as exc:  # noqa: BLE001 - the caller gets the reason
                done.set_exception(exc)
