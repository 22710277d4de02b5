"""The BACnet device: the S4100 objects (their values from the measurement snapshot, ``live.py``), and every
write and command decided in one place.

``BacnetDevice.write`` takes every WriteProperty of every object and link; ``BacnetDevice.command``
runs AV1's command codes in their owning service through the control socket (the catalogue's commands with a
``bacnet_av1`` code, ``firmware/catalogue/table.py``). Each write and command passes ``_authorize`` first: the one
place that says yes or no to a change from BACnet.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from bacpypes3.errors import ExecutionError

from firmware.comms.bacnet import objects as bo
from firmware.comms.bacnet.live import LiveObjects
from firmware.comms.bacnet.objects import as_real, device_instance, plain, refuse
from firmware.comms.bacnet.model import Model, load_model
from firmware.comms.bacnet.settings import (
    OutOfRange,
    plan_write,
    subinterval_changes,
)
from firmware.catalogue import Command, commands
from firmware.comms.bacnet.trendlog import TrendLogs, datetime_to_epoch
from firmware.config import Config, RESTARTS_FOR
from firmware.config.sections.bacnet import MAX_DEVICE_INSTANCE
from firmware.config.store import ConfigStore
from firmware.control import ControlClient, ControlError
from firmware.lockstate import file_lock_state
from firmware.security.audit import AGGREGATED
from firmware.security.authorize import Access, decide, operation_for_command
from firmware.security.guard import PasswordGuard
from firmware.security.protocol_user import protocol_user
from firmware.storage.eventlog import Event, EventLog
from firmware.web.limits import RateLimiter
from hal.errors import AccessDenied, ConfigError

log = logging.getLogger("comms.bacnet")

USER = "bacnet"
INTERFACE = "bacnet"
# The device's own operation names -> the authorization point's ("configure" and "command" are decided per
# change and per command).
_SECURITY_OPERATIONS = {"configure": "config_set", "clear": "config_set", "time_set": "time_set",
                        "communication_control": "communication_control", "reinitialize": "restart"}
# AV1 command codes (seed 003, AV1) and the catalogue command each runs: 30078 "clear all energy accumulators
# to 0", 21211 "begin new Demand Sub-Interval ... and log another data value on TL1-TL3", 21212 "reset Max Demand
# values", 16498 "clear pulse counters to 0". A code the S4100 defines and no command names would be None.
AV1_COMMANDS: dict[int, Command | None] = {
    **dict.fromkeys((30078, 21211, 21212, 16498)), **{c.bacnet_av1: c for c in commands() if c.bacnet_av1 is not None}}
DEMAND_SYNC_CODE = 21211
# Codes that change revenue data (their command's revenue-lock rule is not "allowed"): run only with [bacnet]
# revenue_commands, and never while revenue-locked.
REVENUE_CODES = frozenset(code for code, c in AV1_COMMANDS.items() if c is not None and c.revenue_lock != "allowed")
# Device properties the S4100 lets a client write (PICS "Writable Properties"), with their [bacnet] option.
DEVICE_WRITABLE = {"objectIdentifier": "device_instance", "objectName": "device_name", "location": "location",
                   "maxMaster": "max_master"}
MAX_TEXT_CHARS = 64                  # S4100: Location "limited to 64 characters"
# Saved changes over BACnet, all clients together (each is a new configuration version, an fsynced file, a
# history line and an event): SAVE_BURST at once, then one every 60/SAVES_PER_MIN s; more are DEVICE_BUSY.
SAVE_BURST, SAVES_PER_MIN = 20, 6
# Event-log priorities (SPEC §5 bands: Info 1-63, Low 64-127, Medium 128-191): a change made over BACnet is
# information; a refusal by the revenue lock or a wrong password is a security event, as an invalid login (128).
EVENT_CHANGE, EVENT_COMMAND, EVENT_DEVICE_CONTROL, EVENT_REFUSED, EVENT_LOCKOUT = 20, 30, 64, 128, 255
# Operations that are property writes (refused as WRITE_ACCESS_DENIED); the others are services.
WRITE_OPERATIONS = ("configure", "command", "clear")
MAX_COV_INCREMENT = 1e9
TREND_WRITABLE = ("enable", "stopWhenFull", "logDeviceObjectProperty", "logInterval", "recordCount",
                  "startTime", "stopTime")


class BacnetDevice(LiveObjects):
    def __init__(self, config: Config, config_path: Path, control_socket: Path, data_dir: Path,
                 command_timeout_s: float = 5.0, model: Model | None = None) -> None:
        self.config = config
        self.store = ConfigStore(config_path)
        self._config_stamp: tuple[int, int, int] | None = None     # the file as last read (mtime, size, inode)
        self.model = model or load_model()
        self.control = ControlClient(control_socket, timeout_s=command_timeout_s, user=USER)
        self.sets: list[bo.ObjectSet] = []
        self.values: Mapping[str, Any] = {}
        self.updated_ns = 0
        self.revenue_locked = False
        self.user = protocol_user(config, INTERFACE)
        section = config["bacnet"]
        self.trends = TrendLogs(data_dir, [tl.instance for tl in self.model.trend_logs],
                                bo.TREND_LOG_BUFFER_SIZE, section.trend_log_stop_when_full)
        self.counters = {"writes": 0, "refused": 0, "commands": 0, "time_sets": 0, "trend_records": 0}
        self.restart: Callable[[str], None] = self._restart_service
        # MS/TP nodes to tell of a new Max_Master (the links register themselves)
        self.max_master_listeners: list[Callable[[int], None]] = []
        self.events = EventLog.from_config(config)
        security = config["security"]
        self.save_limiter = RateLimiter(SAVES_PER_MIN / 60.0, SAVE_BURST)
        self.password_guard = PasswordGuard(Path(data_dir) / "bacnet_password.json", security.lockout_attempts,
                                            security.lockout_duration)

    # ------------------------------------------------------------------ authorization

    def _authorize(self, operation: str, target: str, revenue: bool) -> None:
        """The one decision on a write or command from BACnet: ``firmware.security.authorize`` with interface
        "bacnet", as the user ``[security] bacnet_user`` (everyone while security is off), the access mode
        ``[bacnet] access`` and the revenue lock the snapshot shows.

        ``revenue``: a configuration change that touches sealed (metrology or revenue) settings."""
        name = _SECURITY_OPERATIONS.get(operation, operation)
        if operation == "configure" and revenue:
            name = "config_set_sealed"
        elif operation == "command":
            name = operation_for_command(target)
        user = self.user
        # the switch itself as well as the snapshot: a stale snapshot must not open the lock for BACnet; and no
        # revenue reset over BACnet while locked, whatever [revenue] demand_reset_when_locked allows elsewhere
        locked = self.revenue_locked or file_lock_state(self.config["upgrade"].revenue_lock_file)
        reason = ("security is enabled and no BACnet user is configured ([security] bacnet_user)" if user is None
                  else decide(user, name, INTERFACE, revenue_locked=locked, resets_when_locked=False,
                              access=Access(self.config["bacnet"].access)).reason)
        if not reason:
            return
        self.counters["refused"] += 1
        log.info("bacnet: %s of %s refused: %s", operation, target, reason)
        self.event(EVENT_REFUSED, f"{operation}_refused", target, reason=reason)
        if operation in WRITE_OPERATIONS:
            raise refuse("writeAccessDenied")
        raise refuse("serviceRequestDenied", "services")

    def event(self, priority: int, cause: str, effect: str, **detail: Any) -> None:
        """One record in the meter's event log, from source "bacnet" as user "bacnet"; a refusal repeating one
        before it is counted into that record (anyone on the network can cause them at will)."""
        self.events.record(Event(priority, INTERFACE, cause, effect, USER, detail),
                           aggregate=cause in AGGREGATED or cause.endswith("_refused"))

    # ------------------------------------------------------------------ writes

    async def write(self, obj: Any, attr: str, value: Any, index: int | None, priority: int | None) -> None:
        """WriteProperty of any object: refused (WRITE_ACCESS_DENIED, VALUE_OUT_OF_RANGE) or applied."""
        await self._reload()
        try:
            if isinstance(obj, bo.MeterAnalogValue) and attr == "presentValue":
                await self._write_av(obj, value)
            elif isinstance(obj, bo.MeterDevice) and attr in DEVICE_WRITABLE:
                await self._write_device(attr, value)
            elif isinstance(obj, bo.MeterTrendLog) and attr in TREND_WRITABLE:
                await self._write_trend(obj, attr, value)
            elif isinstance(obj, (bo.MeterAnalogInput, bo.MeterAnalogValue)) and attr == "covIncrement":
                await self._write_cov_increment(obj, value)
            else:
                raise refuse("writeAccessDenied")
        except ExecutionError:
            self.counters["refused"] += 1
            raise
        self.counters["writes"] += 1
        self.update(None, self.updated_ns)

    async def _reload(self) -> None:
        """Read the configuration again when the file changed (another interface saved): writes are planned and
        judged unchanged against what is saved, not against what this device read before."""
        with contextlib.suppress(OSError, ConfigError):
            st = os.stat(self.store.path)
            if (st.st_mtime_ns, st.st_size, st.st_ino) != self._config_stamp:
                self.config = await asyncio.to_thread(self.store.load)
                self._config_stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _write_av(self, obj: bo.MeterAnalogValue, value: Any) -> None:
        instance = obj.objectIdentifier[1]
        av = self.model.analog_values[instance - 1]
        number = float(value)
        if av.setting == "command":
            await self.command(number)
            return
        try:
            changes = plan_write(av.setting, number, self.config)
        except OutOfRange as exc:
            log.info("bacnet: AV%d write of %g refused: %s", instance, number, exc)
            raise refuse("valueOutOfRange") from None
        # the value it reads (as a REAL) is no change, though the setting it is kept as may round apart
        unchanged = as_real(number) == as_real(self.settings()[av.setting])
        await self._save(changes, f"AV{instance} {av.name} = {number:g}", unchanged)

    async def _write_cov_increment(self, obj: Any, value: Any) -> None:
        kind = "AI" if isinstance(obj, bo.MeterAnalogInput) else "AV"
        instance = obj.objectIdentifier[1]
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= MAX_COV_INCREMENT:
            raise refuse("valueOutOfRange")
        key = f"{kind}{instance}"
        table = [e.to_dict() for e in self.config["bacnet"].cov_increment if e.object != key]
        if as_real(number) != as_real(self.cov_increment(kind, instance)):
            table.append({"object": key, "increment": number})
        await self._save({"bacnet": {"cov_increment": table}}, f"{key} COV_Increment = {number:g}")
        for objs in self.sets:
            (objs.analog_inputs if kind == "AI" else objs.analog_values)[instance].store(
                "covIncrement", self.cov_increment(kind, instance))

    async def _save(self, changes: dict[str, dict[str, Any]], what: str, unchanged: bool = False) -> None:
        """Authorize and save ``changes``; a value written as it is (``unchanged``, or equal to the option's)
        makes no new configuration version and restarts nothing."""
        sealed = any(self.store.schema.section(s).rule(o).locked for s, options in changes.items() for o in options)
        self._authorize("configure", what, revenue=sealed)
        if unchanged or all(plain(getattr(self.config[s], o)) == plain(v) for s, options in changes.items()
                            for o, v in options.items()):
            self.counters["unchanged"] = self.counters.get("unchanged", 0) + 1
            log.debug("bacnet: %s: unchanged", what)
            return
        wait = self.save_limiter.allow(INTERFACE)
        if wait:
            self.counters["refused"] += 1
            reason = (f"more than {SAVE_BURST} changes at once, then one every {60 / SAVES_PER_MIN:g} s, are "
                      f"refused; try again in {wait:.0f} s")
            log.info("bacnet: %s refused: %s", what, reason)
            self.event(EVENT_REFUSED, "configure_refused", "rate limit", reason=reason)
            raise refuse("deviceBusy", "device")
        try:
            self.config = await asyncio.to_thread(self.store.update, changes, USER, f"BACnet write: {what}")
        except AccessDenied as exc:
            log.info("bacnet: %s refused: %s", what, exc)
            raise refuse("writeAccessDenied") from None
        except ConfigError as exc:
            log.info("bacnet: %s refused: %s", what, exc)
            raise refuse("valueOutOfRange") from None
        log.info("bacnet: %s saved as configuration version %d", what, self.config.version)
        self.event(EVENT_CHANGE, "config_change", what, version=self.config.version, changes=changes)
        for service in sorted({svc for s in changes for svc in RESTARTS_FOR.get(s, ())}):
            self.restart(service)
        for instance, store in self.trends.items():
            store.set_stop_when_full(self.config["bacnet"].trend_log_stop_when_full[instance - 1])

    def reinitialize(self) -> None:
        """ReinitializeDevice: the configuration read again, communication control ended on every link."""
        try:
            self.config = self.store.load()
        except ConfigError as exc:
            log.warning("bacnet: reinitialize keeps the running configuration: %s", exc)
        self.user = protocol_user(self.config, INTERFACE)
        for objs in self.sets:
            app = objs.device._app
            if app is not None and hasattr(app, "dcc_disabled"):
                app._enable()
        self.update(None, self.updated_ns)

    def _restart_service(self, service: str) -> None:
        """A saved metrology or revenue setting takes effect when its service starts again."""
        try:
            self.control.call("restart", service=service)
        except (ControlError, OSError) as exc:
            log.warning("bacnet: the new settings wait for %s to restart (the supervisor did not answer: %s)",
                        service, exc)

    async def _write_device(self, attr: str, value: Any) -> None:
        option = DEVICE_WRITABLE[attr]
        if attr == "objectIdentifier":
            kind, number = value
            if str(kind) != "device" or not 1 <= int(number) <= MAX_DEVICE_INSTANCE:
                raise refuse("valueOutOfRange")
            new: Any = int(number)
        elif attr == "maxMaster":
            # 1-127 (S4100 PICS); never below this node's own MS/TP address, which it must poll past
            lowest = self.config["bacnet"].mstp_mac if self.config["bacnet"].mstp_enabled else 1
            if not max(1, lowest) <= int(value) <= 127:
                raise refuse("valueOutOfRange")
            new = int(value)
        else:
            new = str(value)
            if not new or len(new) > MAX_TEXT_CHARS:
                raise refuse("valueOutOfRange")
        await self._save({"bacnet": {option: new}}, f"Device {attr} = {new}")
        if attr == "maxMaster":
            for listener in self.max_master_listeners:
                listener(new)
        for objs in self.sets:
            objs.device.store(attr, ("device", new) if attr == "objectIdentifier" else new)
            if attr == "objectIdentifier":
                app = objs.device._app
                if app is not None:
                    app.objectIdentifier.pop(next(k for k, v in app.objectIdentifier.items() if v is objs.device))
                    app.objectIdentifier[objs.device.objectIdentifier] = objs.device

    async def _write_trend(self, obj: bo.MeterTrendLog, attr: str, value: Any) -> None:
        instance = obj.objectIdentifier[1]
        index = instance - 1
        section = self.config["bacnet"]
        if attr == "logInterval":
            try:
                changes = subinterval_changes(float(value), self.config)
            except OutOfRange:
                raise refuse("valueOutOfRange") from None
            await self._save({"revenue": changes}, f"TL{instance} Log_Interval = {int(value)}")
        elif attr == "recordCount":
            if int(value) != 0:
                raise refuse("valueOutOfRange")   # Clause 12.25.18: only 0 may be written (clears the buffer)
            self._authorize("clear", f"TL{instance}", revenue=False)
            self.trends[instance].clear()
            self.event(EVENT_CHANGE, "trend_log_cleared", f"TL{instance}")
        elif attr in ("startTime", "stopTime"):
            self._authorize("configure", f"TL{instance} {attr}", revenue=False)
            start, stop = self.trends.window[instance]
            stamp = datetime_to_epoch(value)
            self.trends.window[instance] = (stamp, stop) if attr == "startTime" else (start, stamp)
            for objs in self.sets:
                objs.trend_logs[instance].store(attr, value)
        elif attr == "logDeviceObjectProperty":
            ref_kind, ref_instance = value.objectIdentifier
            ref_device = value.deviceIdentifier
            if (str(ref_kind) != "analog-input" or int(ref_instance) not in self.model.loggable
                    or str(value.propertyIdentifier) != "present-value"
                    or (ref_device is not None and tuple(ref_device)[1] != device_instance(self.config))):
                raise refuse("valueOutOfRange")
            await self._save({"bacnet": {"trend_log_inputs": _replace(section.trend_log_inputs, index,
                                                                      int(ref_instance))}},
                             f"TL{instance} Log_DeviceObjectProperty = AI{ref_instance}")
            for objs in self.sets:
                objs.trend_logs[instance].store(attr, bo.log_reference(device_instance(self.config),
                                                                       int(ref_instance)))
        else:
            option = "trend_log_enabled" if attr == "enable" else "trend_log_stop_when_full"
            await self._save({"bacnet": {option: _replace(getattr(section, option), index, bool(value))}},
                             f"TL{instance} {attr} = {bool(value)}")
            for objs in self.sets:
                objs.trend_logs[instance].store(attr, bool(value))

    # ------------------------------------------------------------------ commands

    async def command(self, value: float) -> None:
        """AV1: run the command of a code, or refuse it (VALUE_OUT_OF_RANGE for a code the S4100 lacks)."""
        code = int(value) if math.isfinite(value) and value == int(value) else -1
        if code not in AV1_COMMANDS:
            raise refuse("valueOutOfRange")
        cmd = AV1_COMMANDS[code]
        if cmd is None:
            raise refuse("optionalFunctionalityNotSupported", "services")
        if code in REVENUE_CODES and not self.config["bacnet"].revenue_commands:
            reason = (f"AV1 {code} ({cmd.control}) changes revenue data; BACnet runs it only with [bacnet] "
                      "revenue_commands = true (a security setting)")
            self.counters["refused"] += 1
            log.info("bacnet: %s", reason)
            self.event(EVENT_REFUSED, "command_refused", cmd.control, reason=reason)
            raise refuse("writeAccessDenied")
        self._authorize("command", cmd.control, revenue=False)
        await self._run(cmd)
        if code == DEMAND_SYNC_CODE and self.settings()["subinterval_length"] == 0:
            self.log_trends(time.time())      # sync-to-comms: each 21211 also logs one record (seed 003, AV11)

    async def _run(self, cmd: Command) -> None:
        try:
            await asyncio.to_thread(self.control.call, cmd.control, **dict(cmd.protocol_args))
        except ControlError as exc:
            log.info("bacnet: %s refused: %s", cmd.control, exc)
            if exc.kind == "AccessDenied":
                self.event(EVENT_REFUSED, "command_refused", cmd.control, reason=str(exc))
                raise refuse("writeAccessDenied") from None
            raise refuse("operationalProblem", "device") from None
        except OSError as exc:
            log.warning("bacnet: %s failed: %s", cmd.control, exc)
            raise refuse("operationalProblem", "device") from None
        self.counters["commands"] += 1
        self.event(EVENT_COMMAND, "command", cmd.control)

    async def set_time(self, utc: float) -> None:
        """TimeSynchronization: to the time service, which applies it by [time] priority (source protocol)."""
        if not self.config["bacnet"].time_sync:
            log.info("bacnet: time synchronisation ignored ([bacnet] time_sync is off)")
            return
        try:
            self._authorize("time_set", "clock", revenue=False)
        except ExecutionError:
            return                            # unconfirmed: nothing to answer; the refusal is in the event log
        try:
            await asyncio.to_thread(self.control.call, "time.set", utc=utc, source="protocol")
            self.counters["time_sets"] += 1
        except (ControlError, OSError) as exc:
            log.info("bacnet: time synchronisation to %.3f not applied: %s", utc, exc)

    def close(self) -> None:
        self.trends.close()
        self.events.close()


def _replace(items: tuple[Any, ...], index: int, value: Any) -> list[Any]:
    out = list(items)
    out[index] = value
    return out
