"""What the web's handlers share: the configuration, where the meter's state is, sessions, limits, the control
socket. One ``WebContext`` per web service process."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.config import Config
from firmware.config.store import ConfigStore
from firmware.control import ControlClient
from firmware.feeds import event_log, kept_events, load_profile
from firmware.ipc.names import MEASUREMENTS, instance_name, shm_name
from firmware.security.authorize import Identity
from firmware.storage.eventlog import Event, EventLog
from firmware.storage.feed import LogFeed
from firmware.web.auth import WebAuth
from firmware.web.certs import Certificates, cert_dir
from firmware.web.limits import RateLimiter
from firmware.web.readings import Measurements
from hal.errors import AccessDenied, StorageError

log = logging.getLogger("web")

LOGIN_BURST = 5              # login attempts an address may make at once before [web] login_rate applies
CONTROL_TIMEOUT_S = 30.0     # an install check reads the whole image; the supervisor forwards with 30 s too
SOURCE = "web"               # the event log's source of what this service records


@dataclass
class WebContext:
    config: Config
    config_path: Path
    run_dir: Path
    data_dir: Path
    measurements: Measurements
    auth: WebAuth
    certs: Certificates
    limiter: RateLimiter
    login_limiter: RateLimiter
    events: LogFeed
    kept_events: LogFeed
    profile: LogFeed
    upload_dir: Path
    uploads: set[Path] = field(default_factory=set)     # images being received or checked: never cleared away
    streams: int = 0
    stream_addresses: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)     # the OpenAPI document of the route table
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    counters: dict[str, int] = field(default_factory=lambda: {"requests": 0, "refused_429": 0, "errors_500": 0,
                                                               "logins": 0, "logins_refused": 0})
    _event_log: EventLog | None = None

    @classmethod
    def from_config(cls, config: Config, config_path: Path, run_dir: Path) -> WebContext:
        web = config["web"]
        data_dir = Path(config.meter.data_dir)
        addresses = [web.bind_address]
        return cls(config=config, config_path=Path(config_path), run_dir=Path(run_dir), data_dir=data_dir,
                   measurements=Measurements(shm_name(instance_name(run_dir), MEASUREMENTS)),
                   auth=WebAuth(config),
                   certs=Certificates(cert_dir(config), config.meter.name, addresses),
                   limiter=RateLimiter(web.rate, web.burst),
                   login_limiter=RateLimiter(web.login_rate / 60.0, LOGIN_BURST),
                   events=event_log(data_dir), kept_events=kept_events(data_dir), profile=load_profile(data_dir),
                   upload_dir=data_dir / "web" / "uploads")

    @property
    def web(self) -> Any:
        return self.config["web"]

    @property
    def store(self) -> ConfigStore:
        return ConfigStore(self.config_path)

    async def control(self, user: str, cmd: str, **args: Any) -> Any:
        """A command on the meter's control socket, as ``user`` (the owning service checks it again)."""
        client = ControlClient(self.run_dir / "control.sock", timeout_s=CONTROL_TIMEOUT_S, user=user)
        return await asyncio.to_thread(client.call, cmd, **args)

    def authorize(self, identity: Identity, operation: str) -> None:
        """The security core's decision; a refusal is recorded as a security event and raised (AccessDenied)."""
        try:
            self.auth.authorize(identity, operation)
        except AccessDenied as exc:
            self.auth.refuse(identity, operation, exc)
            raise

    def event_log(self) -> EventLog:
        """The meter's event log, opened on first use (writes, the unread counter)."""
        if self._event_log is None:
            self._event_log = EventLog.from_config(self.config)
        return self._event_log

    def record(self, priority: int, cause: str, effect: str, user: str, **detail: Any) -> None:
        """Write an event to the meter's event log; a log that cannot be written is logged, never fatal here."""
        try:
            self.event_log().record(Event(priority, SOURCE, cause, effect, user, detail))
        except StorageError as exc:
            log.error("event log: %s (event %s by %s not recorded)", exc, cause, user)

    def close(self) -> None:
        self.measurements.close()
        self.auth.close()
        self.events.close()
        self.kept_events.close()
        self.profile.close()
        if self._event_log is not None:
            self._event_log.close()

