"""The BACnet side of the comms service: the device's applications on BACnet/IP and MS/TP, and the services
bacpypes3 leaves to the device (DeviceCommunicationControl, ReinitializeDevice, TimeSynchronization,
ReadRange on the trend logs).

RP, RPM, WP, Who-Is/I-Am, Who-Has/I-Have and SubscribeCOV are bacpypes3's; writes reach the device's one
write path through the objects (``objects.py``). Each link gets its own application with its own copy of
the objects (a bacpypes3 object belongs to one application); ``BacnetDevice`` keeps all copies current.
"""
from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import time
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from bacpypes3.apdu import (
    APDU,
    AbortPDU,
    DeviceCommunicationControlRequest,
    ReadRangeACK,
    ReadPropertyMultipleACK,
    ReadRangeRequest,
    ReinitializeDeviceRequest,
    RejectPDU,
    SimpleAckPDU,
    TimeSynchronizationRequest,
    UTCTimeSynchronizationRequest,
    WritePropertyRequest,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint
from bacpypes3.basetypes import DateTime, LogRecord, LogRecordLogDatum, ResultFlags
from bacpypes3.constructeddata import SequenceOf
from bacpypes3.errors import DecodingError, RejectException
from bacpypes3.ipv4.link import NormalLinkLayer
from bacpypes3.pdu import IPv4Address
from bacpypes3.primitivedata import Date, Time

from firmware.comms.bacnet.live import REFRESH_INTERVAL_S
from firmware.comms.bacnet.device import EVENT_DEVICE_CONTROL, EVENT_LOCKOUT, EVENT_REFUSED, BacnetDevice, refuse
from firmware.comms.bacnet.objects import MeterTrendLog
from firmware.comms.bacnet.screen import screen
from firmware.comms.bacnet.trendlog import Record, records_per_apdu
from firmware.comms.modbus.feed import SnapshotFeed
from firmware.config import Config
from firmware.ipc.snapshot import Snapshot
from firmware.web.limits import RateLimiter

log = logging.getLogger("comms.bacnet")

REINITIALIZE_STATES = ("coldstart", "warmstart")
# COV subscriptions the device keeps, all clients together: each costs a notification per change, and a
# subscription may be indefinite (lifetime 0), so a hostile client must not be able to add them without end.
MAX_COV_SUBSCRIPTIONS = 128
# One client (address) may hold this many of them, and none lasts longer than MAX_COV_LIFETIME_S (an indefinite
# one, lifetime 0, included): a client that wants more renews, one that went away frees its places.
MAX_COV_PER_CLIENT = 16
MAX_COV_LIFETIME_S = 3600
# Answers that can be many times the size of their request (ReadPropertyMultiple, ReadRange) over UDP, whose
# source address anyone can forge: per address, AMPLIFIED_BURST at once then AMPLIFIED_PER_S a second; more are
# dropped, so the meter cannot be used to flood a forged address (at most ~1.5 KB x this a second).
AMPLIFIED_BURST, AMPLIFIED_PER_S = 20, 10


def ip_link_address(bind_address: str, prefix: int, port: int) -> IPv4Address:
    """The BACnet/IP link's address. Bound to one address, the stack opens a second socket on that network's
    broadcast address (Linux delivers broadcasts only there). Bound to every interface (0.0.0.0), the one
    socket receives the broadcasts too, and a second one on "0.0.0.<broadcast>" cannot be bound: the stack
    would wait for it forever and never send (no I-Am): the wildcard is its own network (/32)."""
    if ip_address(bind_address).is_unspecified:
        prefix = 32
    return IPv4Address(f"{bind_address}/{prefix}:{port}")


class MeterApplication(Application):
    """bacpypes3's application with the device-management services and ReadRange answered by the meter."""

    meter: BacnetDevice
    # Communication control state (Clause 16.1): bacpypes3 0.0.110's own "disable" filter fails on every
    # incoming PDU, so this application drops requests itself and leaves the stack's flag to initiation.
    dcc_disabled = False
    amplified: RateLimiter | None = None

    async def response(self, apdu: APDU) -> None:
        if isinstance(apdu, (ReadPropertyMultipleACK, ReadRangeACK)):
            if self.amplified is None:
                self.amplified = RateLimiter(AMPLIFIED_PER_S, AMPLIFIED_BURST)
            if self.amplified.allow(str(apdu.pduDestination)):
                self.meter.counters["amplified_dropped"] = self.meter.counters.get("amplified_dropped", 0) + 1
                return
        await super().response(apdu)

    async def indication(self, apdu: Any) -> None:
        if self.dcc_disabled and not isinstance(apdu, (DeviceCommunicationControlRequest,
                                                       ReinitializeDeviceRequest)):
            return                        # disabled: only DCC and RD are answered
        await super().indication(apdu)

    async def do_WritePropertyRequest(self, apdu: WritePropertyRequest) -> None:
        """A value the property cannot hold (a CharacterString for a REAL) is an Error PROPERTY /
        INVALID_DATA_TYPE (Clause 15.9.1.3.1), not a Reject: the request itself is well formed."""
        try:
            await super().do_WritePropertyRequest(apdu)
        except (RejectException, DecodingError, TypeError, ValueError):
            self.meter.counters["refused"] += 1
            raise refuse("invalidDataType") from None

    async def do_SubscribeCOVRequest(self, apdu: Any) -> None:
        cancel = apdu.issueConfirmedNotifications is None and apdu.lifetime is None
        detections = getattr(self, "_cov_detections", {})
        subscriptions = [c for d in detections.values() for c in d.cov_subscriptions]
        renewal = any(c.client_addr == apdu.pduSource and c.proc_id == apdu.subscriberProcessIdentifier
                      and c.obj_id == apdu.monitoredObjectIdentifier for c in subscriptions)
        mine = sum(1 for c in subscriptions if c.client_addr == apdu.pduSource)
        if not cancel and not renewal and (len(subscriptions) >= MAX_COV_SUBSCRIPTIONS
                                           or mine >= MAX_COV_PER_CLIENT):
            raise refuse("noSpaceToAddListElement", "resources")
        if not cancel and (not apdu.lifetime or apdu.lifetime > MAX_COV_LIFETIME_S):
            apdu.lifetime = MAX_COV_LIFETIME_S
        watched = self.get_object_id(apdu.monitoredObjectIdentifier)
        if watched is not None:
            self.meter.current(watched)       # the first notification carries the latest values
        await super().do_SubscribeCOVRequest(apdu)
        if self.meter.wakeup is not None:
            self.meter.wakeup.set()           # refreshed each second from now on

    async def do_DeviceCommunicationControlRequest(self, apdu: DeviceCommunicationControlRequest) -> None:
        self._check_password(apdu.password, "DeviceCommunicationControl")
        self.meter._authorize("communication_control", str(apdu.enableDisable), revenue=False)
        state = str(apdu.enableDisable)
        self.dcc_disabled = state == "disable"
        self.asap.dccEnableDisable = "enable" if state == "enable" else "disableInitiation"
        self.meter.event(EVENT_DEVICE_CONTROL, "communication_control", state, minutes=int(apdu.timeDuration or 0))
        if state != "enable" and apdu.timeDuration:
            asyncio.get_running_loop().call_later(int(apdu.timeDuration) * 60.0, self._enable)
        log.info("bacnet: communication control %s for %s min", state, apdu.timeDuration or "unlimited")
        await self.response(SimpleAckPDU(context=apdu))

    def _enable(self) -> None:
        self.dcc_disabled = False
        self.asap.dccEnableDisable = "enable"

    def _check_password(self, given: Any, what: str) -> None:
        """The [bacnet] password, through the guard that holds guessing to one a second and locks it out."""
        password = self.meter.config["bacnet"].password
        if not password:
            # no password: nobody on the network may silence or restart the device
            self.meter.event(EVENT_REFUSED, "password_invalid", what, reason="[bacnet] password is not set")
            raise refuse("serviceRequestDenied", "services")
        verdict = self.meter.password_guard.check(None if given is None else str(given), password, what)
        if not verdict.ok:
            log.info("bacnet: %s", verdict.reason)
            if verdict.locked_now:
                self.meter.event(EVENT_LOCKOUT, "password_lockout", what, reason=verdict.reason)
            else:
                self.meter.event(EVENT_REFUSED, "password_invalid", what, reason=verdict.reason)
            raise refuse("passwordFailure", "security")

    async def do_ReinitializeDeviceRequest(self, apdu: ReinitializeDeviceRequest) -> None:
        self._check_password(apdu.password, "ReinitializeDevice")
        state = str(apdu.reinitializedStateOfDevice)
        if state not in REINITIALIZE_STATES:
            raise refuse("optionalFunctionalityNotSupported", "services")
        self.meter._authorize("reinitialize", state, revenue=False)
        await self.response(SimpleAckPDU(context=apdu))
        # A cold or warm start re-initialises the BACnet device inside the comms service (configuration read
        # again, communication control ended); Modbus, served by the same process, goes on.
        log.info("bacnet: reinitialize (%s) requested", state)
        self.meter.event(EVENT_DEVICE_CONTROL, "reinitialize", state)
        asyncio.get_running_loop().call_later(0.2, self.meter.reinitialize)

    async def do_TimeSynchronizationRequest(self, apdu: TimeSynchronizationRequest) -> None:
        await self.meter.set_time(_local_to_utc(apdu.time))

    async def do_UTCTimeSynchronizationRequest(self, apdu: UTCTimeSynchronizationRequest) -> None:
        await self.meter.set_time(_utc_seconds(apdu.time))

    async def do_ReadRangeRequest(self, apdu: ReadRangeRequest) -> None:
        obj = self.get_object_id(apdu.objectIdentifier)
        if obj is None:
            raise refuse("unknownObject", "object")
        if not isinstance(obj, MeterTrendLog) or str(apdu.propertyIdentifier) != "log-buffer":
            raise refuse("propertyIsNotAList")
        if apdu.propertyArrayIndex is not None:
            raise refuse("propertyIsNotAnArray")
        store = self.meter.trends[obj.objectIdentifier[1]]
        limit = records_per_apdu(min(int(self.device_object.maxApduLengthAccepted),
                                     _client_max_apdu(apdu)))
        rng = apdu.range
        if rng is None:
            records, more = store.all(limit)
        elif rng.byPosition is not None:
            records, more = store.by_position(int(rng.byPosition.referenceIndex), int(rng.byPosition.count), limit)
        elif rng.bySequenceNumber is not None:
            records, more = store.by_sequence(int(rng.bySequenceNumber.referenceSequenceNumber),
                                              int(rng.bySequenceNumber.count), limit)
        elif rng.byTime is not None:
            records, more = store.by_time(_local_to_utc(rng.byTime.referenceTime), int(rng.byTime.count), limit)
        else:
            raise refuse("invalidParameterDataType", "services")
        kept = store.count()
        oldest = store.total() - kept + 1
        first_item = bool(records) and records[0].sequence == oldest
        last_item = bool(records) and records[-1].sequence == store.total()
        flags = ResultFlags([int(first_item), int(last_item), int(more)])
        items = SequenceOf(LogRecord)([_log_record(r) for r in records])
        ack = ReadRangeACK(objectIdentifier=apdu.objectIdentifier, propertyIdentifier=apdu.propertyIdentifier,
                           resultFlags=flags, itemCount=len(records), itemData=items, context=apdu)
        if records and (rng is None or rng.byTime is not None or rng.bySequenceNumber is not None):
            ack.firstSequenceNumber = records[0].sequence
        await self.response(ack)


class MeterServiceAccessPoint(ApplicationServiceAccessPoint):
    """bacpypes3's service access point, with the confirmed requests it would drop (malformed, segmented, a
    service the device does not execute) answered by Reject or Abort (``screen.py``)."""

    meter_app: MeterApplication | None = None

    async def confirmation(self, pdu: Any) -> None:
        answer = screen(bytes(pdu.pduData))
        if answer is None:
            await super().confirmation(pdu)
            return
        app = self.meter_app
        if app is not None:
            app.meter.counters["rejected"] = app.meter.counters.get("rejected", 0) + 1
        if answer.invoke_id < 0 or (app is not None and app.dcc_disabled):
            return
        reply: APDU = (AbortPDU(srv=True, invoke_id=answer.invoke_id, reason=answer.reason) if answer.abort
                       else RejectPDU(invoke_id=answer.invoke_id, reason=answer.reason))
        reply.pduDestination = pdu.pduSource
        await self.request(reply)


def _client_max_apdu(apdu: ReadRangeRequest) -> int:
    # Clause 20.1.2.5: the encoded maximum the requester accepts
    return {0: 50, 1: 128, 2: 206, 3: 480, 4: 1024, 5: 1476}.get(int(getattr(apdu, "apduMaxResp", 3) or 0), 480)


def _log_record(record: Record) -> LogRecord:
    t = time.localtime(record.ts)
    stamp = DateTime(date=Date((t.tm_year - 1900, t.tm_mon, t.tm_mday, (t.tm_wday + 1))),
                     time=Time((t.tm_hour, t.tm_min, t.tm_sec, int((record.ts % 1) * 100))))
    return LogRecord(timestamp=stamp, logDatum=LogRecordLogDatum(realValue=record.value),
                     statusFlags=[0, 0, 0, 0])


def _fields(value: Any) -> tuple[int, int, int, int, int, int, int]:
    date, tod = value.date, value.time
    if 255 in (date[0], date[1], date[2]) or 255 in (tod[0], tod[1], tod[2]):
        raise refuse("invalidParameterDataType", "services")
    hundredths = 0 if tod[3] == 255 else tod[3]
    return date[0] + 1900, date[1], date[2], tod[0], tod[1], tod[2], hundredths


def _local_to_utc(value: Any) -> float:
    """TimeSynchronization carries the device's local time (Clause 16.7)."""
    y, mo, d, h, mi, s, cs = _fields(value)
    return time.mktime((y, mo, d, h, mi, s, 0, 0, -1)) + cs / 100.0


def _utc_seconds(value: Any) -> float:
    y, mo, d, h, mi, s, cs = _fields(value)
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + cs / 100.0


class BacnetApp:
    """What the comms service runs: the device, its applications, and the task that refreshes the subscribed
    objects and logs the trend records (it sleeps until one of them is due)."""

    def __init__(self, config: Config, config_path: Path, snapshot: Snapshot, control_socket: Path,
                 data_dir: Path, command_timeout_s: float = 5.0) -> None:
        self.config = config
        self.device = BacnetDevice(config, config_path, control_socket, data_dir, command_timeout_s)
        self.feed = SnapshotFeed(snapshot)
        self.device.pull = self._poll
        self.apps: list[MeterApplication] = []
        self._task: asyncio.Task[None] | None = None
        self.endpoints: list[str] = []

    def _application(self) -> MeterApplication:
        app = MeterApplication.from_object_list(self.device.build_objects())
        app.meter = self.device
        # the stack's own access point, given the screening of malformed requests (same state, one more step)
        app.asap.__class__ = MeterServiceAccessPoint
        app.asap.meter_app = app    # type: ignore[attr-defined]
        self.apps.append(app)
        return app

    async def start(self) -> list[str]:
        section = self.config["bacnet"]
        self._poll()
        if section.ip_enabled:
            app = self._application()
            address = ip_link_address(section.bind_address, section.ip_prefix, section.ip_port)
            link = NormalLinkLayer(address)
            app.link_layers[app.device_object.objectIdentifier] = link
            app.nsap.bind(link, address=address)
            self.endpoints.append(f"bacnet-ip:{section.bind_address}:{section.ip_port}")
        if section.mstp_enabled:
            from firmware.comms.bacnet.mstp.link import MstpLinkLayer

            app = self._application()
            mstp = MstpLinkLayer(section.mstp_port, section.mstp_baud, section.mstp_mac, section.max_master,
                                 section.max_info_frames, rs485=section.mstp_rs485)
            await mstp.start()
            self.device.max_master_listeners.append(mstp.set_max_master)
            app.link_layers[app.device_object.objectIdentifier] = mstp
            app.nsap.bind(mstp, address=mstp.address)
            self.endpoints.append(f"bacnet-mstp:{section.mstp_port}@{section.mstp_baud}/mac{section.mstp_mac}")
        self.device.wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())
        return self.endpoints

    def _poll(self) -> None:
        values = self.feed.poll()
        self.device.update(values, self.feed.updated_ns, force=False)

    async def _refresh_loop(self) -> None:
        wakeup = self.device.wakeup
        assert wakeup is not None
        while True:
            wait_s = REFRESH_INTERVAL_S
            try:
                self._poll()
                self.device.tick(time.time())
                wait_s = self.device.next_wake_s(time.time())
            except Exception:   # noqa: BLE001 - a fault in one refresh must not stop the device's values for good
                log.exception("bacnet: refresh failed")
            wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wakeup.wait(), wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for app in self.apps:
            app.close()
        self.device.close()

    def stats(self) -> dict[str, Any]:
        return {**self.device.counters, "endpoints": self.endpoints}
