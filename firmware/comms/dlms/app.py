"""The DLMS side of the comms service: the COSEM model built from the catalogue and the configuration, the
values read from the measurement snapshot, the records from the meter's stores, commands and clock sets sent
to their owning service through the control socket after the one authorization point, and the servers (TCP
wrapper, HDLC on a serial port)."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from firmware import feeds
from firmware.catalogue import command as catalogue_command
from firmware.comms.dlms.hdlc_server import HdlcSerialServer
from firmware.comms.dlms.keys import InvocationCounter, load_keys
from firmware.comms.dlms.model import build_model
from firmware.comms.dlms.objects import EVENT_LOG_LN, LOAD_PROFILE_LN, AccessError
from firmware.comms.dlms.profiles import event_log, load_profile
from firmware.comms.dlms.session import Server, Session
from firmware.comms.dlms.wrapper import Limits, WrapperServer
from firmware.comms.modbus.app import identity_from_config
from firmware.config import Config
from firmware.control import ControlClient, ControlError
from firmware.ipc.snapshot import Snapshot
from firmware.lockstate import file_lock_state
from firmware.security.audit import SecurityAudit
from firmware.upgrade.image import SIGNATURE_BYTES, SIGNATURE_DIR
from firmware.upgrade.slots import SlotLayout
from firmware.security.authorize import Access, Identity, decide

log = logging.getLogger("comms.dlms")

INTERFACE = "dlms"
TEMPORARY_FAILURE, READ_WRITE_DENIED = 2, 3


def running_signature(config: Config) -> bytes:
    """The running image's first signature (``signatures/<keyid>.sig`` of the current slot, sorted by key id);
    empty when the firmware does not run from an installed image (a source tree)."""
    upgrade = config["upgrade"]
    layout = SlotLayout(upgrade.root, upgrade.state_dir)
    slot = layout.current()
    if slot is None:
        return b""
    try:
        files = sorted((layout.slot_path(slot) / SIGNATURE_DIR).glob("*.sig"))
        return files[0].read_bytes()[:SIGNATURE_BYTES] if files else b""
    except OSError:
        return b""


class MeterContext:
    """What the COSEM objects read and do (``firmware.comms.dlms.objects.Context``)."""

    def __init__(self, config: Config, snapshot: Snapshot, control_socket: Path, data_dir: Path) -> None:
        self.config = config
        self.snapshot = snapshot
        self.static: dict[str, Any] = {**identity_from_config(config).register_values(),
                                       "firmware_signature": running_signature(config)}
        self.control = ControlClient(control_socket, timeout_s=config["dlms"].command_timeout, user=INTERFACE)
        self.identity = Identity.master(INTERFACE, INTERFACE)
        self.lp_feed = feeds.load_profile(data_dir)
        self.event_feed = feeds.event_log(data_dir)
        self.lock = threading.Lock()          # the record feeds' SQLite connections are used by one thread at a time
        self._values: dict[str, Any] = {}
        self._count: int | None = None
        self.counters = {"time_sets": 0, "commands": 0, "refused": 0}

    def values(self) -> dict[str, Any]:
        """The snapshot's values and the identity texts, decoded once per publish however many requests come."""
        with self.lock:
            data, _updated_ns, count = self.snapshot.read_array()
            if count != self._count:
                out: dict[str, Any] = dict(self.static)
                for name, (start, size) in self.snapshot.layout.offsets.items():
                    out.setdefault(name, float(data[start]) if size == 1 else data[start:start + size])
                self._values, self._count = out, count
            return self._values

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def _authorize(self, operation: str) -> None:
        locked = bool(self.values().get("revenue_locked")) or file_lock_state(self.config["upgrade"].revenue_lock_file)
        decision = decide(self.identity, operation, INTERFACE, revenue_locked=locked, resets_when_locked=False,
                          access=Access(self.config["dlms"].access))
        if not decision.allowed:
            self.counters["refused"] += 1
            log.info("dlms: %s refused: %s", operation, decision.reason)
            raise AccessError(READ_WRITE_DENIED, decision.reason)

    def _call(self, control: str, **args: Any) -> None:
        try:
            self.control.call(control, **args)
        except ControlError as exc:
            log.info("dlms: %s not carried out: %s", control, exc)
            raise AccessError(READ_WRITE_DENIED if exc.kind == "AccessDenied" else TEMPORARY_FAILURE,
                              str(exc)) from None
        except OSError as exc:
            raise AccessError(TEMPORARY_FAILURE, str(exc)) from None

    def set_time(self, when: datetime) -> None:
        cmd = catalogue_command("time_set")
        self._authorize(cmd.op)
        control, args = cmd.bind({cmd.value_arg: when.timestamp(), **dict(cmd.protocol_args)})
        self._call(control, **args)
        self.counters["time_sets"] += 1

    def run(self, name: str) -> None:
        cmd = catalogue_command(name)
        self._authorize(cmd.op)
        args = dict(cmd.protocol_args)
        for a in cmd.args:
            if a.name == "source" and "protocol" in (a.choices or ()):
                args.setdefault("source", "protocol")
        control, bound = cmd.bind(args)
        self._call(control, **bound)
        self.counters["commands"] += 1

    def profile(self, since_ts: float | None, until_ts: float | None, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.lp_feed.read_range(since_ts, until_ts, limit)
        return [r for r in rows if since_ts is None or float(r.get("end_ts") or 0) >= since_ts]

    def events(self, since_ts: float | None, until_ts: float | None, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            return self.event_feed.read_range(since_ts, until_ts, limit)

    def close(self) -> None:
        with self.lock:
            self.lp_feed.close()
            self.event_feed.close()


class DlmsApp:
    def __init__(self, config: Config, snapshot: Snapshot, control_socket: Path, data_dir: Path) -> None:
        section = config["dlms"]
        self.config = config
        self.ctx = MeterContext(config, snapshot, control_socket, data_dir)
        lp = config["revenue.load_profile"]
        model = build_model(tuple(lp.channels))
        objects = model.by_key()
        by_ln = {o.ln: o for o in model.objects}
        profiles = {
            LOAD_PROFILE_LN: load_profile(by_ln[LOAD_PROFILE_LN], model.lp_channels, self.ctx.profile,
                                          int(lp.interval) * 60, int(lp.depth)),
            EVENT_LOG_LN: event_log(by_ln[EVENT_LOG_LN], self.ctx.events, int(config["events"].depth)),
        }
        demand_s = int(config["revenue"].demand_interval) * 60
        self.audit = SecurityAudit.from_config(config, source=INTERFACE)
        self.server = Server(objects, profiles, self.ctx, load_keys(data_dir), InvocationCounter(data_dir),
                             bool(section.lls), lambda: demand_s, self._refused)
        self.tcp: WrapperServer | None = None
        if section.tcp_enabled:
            self.tcp = WrapperServer(self.session, section.bind_address, section.tcp_port,
                                     Limits(section.max_connections, section.max_connections_per_address,
                                            section.inactivity_timeout, section.frame_timeout))
        hdlc = config["dlms.hdlc"]
        self.hdlc: HdlcSerialServer | None = None
        if hdlc.enabled:
            self.hdlc = HdlcSerialServer(self.session, hdlc.port, hdlc.baud, hdlc.framing, hdlc.physical_address,
                                         section.inactivity_timeout, hdlc.inter_frame_timeout, hdlc.rs485)

    def session(self, client_sap: int, server_sap: int, peer: str) -> Session:
        return Session(self.server, client_sap, server_sap, peer)

    def _refused(self, peer: str, why: str) -> None:
        """A failed authentication of the management client: a security event (repeats are counted into it)."""
        self.ctx.counters["refused"] += 1
        self.audit.record("login_invalid", INTERFACE, f"{why} (from {peer})", {"peer": peer, "interface": INTERFACE})

    async def start(self) -> list[str]:
        endpoints = []
        if self.tcp is not None:
            await self.tcp.start()
            endpoints.append(f"dlms-tcp:{self.tcp.host}:{self.tcp.port}")
        if self.hdlc is not None:
            await self.hdlc.start()
            endpoints.append(f"dlms-hdlc:{self.hdlc.port}")
        return endpoints

    async def stop(self) -> None:
        if self.tcp is not None:
            await self.tcp.stop()
        if self.hdlc is not None:
            await self.hdlc.stop()
        self.ctx.close()
        self.audit.close()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.ctx.counters)
        if self.tcp is not None:
            out["tcp"] = self.tcp.stats()
        if self.hdlc is not None:
            out["hdlc"] = self.hdlc.stats()
        return out
