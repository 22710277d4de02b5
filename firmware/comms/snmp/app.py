"""The SNMP side of the comms service: the agent's socket, its object tree fed from the measurement snapshot,
the engine's identity and secrets, and the notifications task."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from firmware.comms.modbus.app import MODEL_NAME, PRODUCT_NAME
from firmware.comms.modbus.feed import SnapshotFeed
from firmware.comms.snmp import ber, mib
from firmware.comms.snmp.agent import MAX_RESPONSE, Agent
from firmware.comms.snmp.keystore import SecretStore, start_engine
from firmware.comms.snmp.notify import Notifier
from firmware.comms.snmp.usm import AUTH_PROTOCOLS, UserKeys
from firmware.config import Config
from firmware.web.limits import RateLimiter

log = logging.getLogger("comms.snmp")

SYS_SERVICES = 72                  # applications (64) + end-to-end (8), RFC 3418
PRODUCT_ARC = 4                    # openMeterMIB.4: meterProducts; sysObjectID is meterProducts.1


def enterprise_of(config: Config) -> ber.Oid:
    return ber.oid(config["snmp"].enterprise_oid)


def system_getters(config: Config, enterprise: ber.Oid, uptime: Callable[[], int]) -> dict[ber.Oid, mib.Getter]:
    from firmware import __version__

    s, meter = config["snmp"], config["meter"]
    fixed = {
        1: mib.text(f"{PRODUCT_NAME} ({MODEL_NAME}), firmware {__version__}, serial {meter.serial_number}"),
        2: ber.encode_oid(mib.module_oid(enterprise) + (PRODUCT_ARC, 1)),
        4: mib.text(s.sys_contact), 5: mib.text(s.sys_name or meter.name), 6: mib.text(s.sys_location),
        7: ber.encode_int(SYS_SERVICES),
    }
    out: dict[ber.Oid, mib.Getter] = {mib.MIB2_SYSTEM + (arc, 0): _constant(value) for arc, value in fixed.items()}
    out[mib.SYS_UPTIME] = lambda: ber.encode_unsigned(uptime(), ber.TIMETICKS)
    return out


def _constant(value: bytes) -> mib.Getter:
    return lambda: value


class SnmpApp:
    def __init__(self, config: Config, data_dir: str | Path, feed: Any) -> None:
        self.config = config
        self.s = config["snmp"]
        self.data_dir = Path(data_dir)
        self.feed = feed
        self.enterprise = enterprise_of(config)
        self.objects = mib.meter_objects(self.enterprise)
        self.encoded: dict[ber.Oid, bytes | None] = {}
        self.counters = {name: 0 for name in mib.COUNTERS}
        self.agent: Agent | None = None
        self.notifier: Notifier | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self.endpoints: list[str] = []

    @classmethod
    def from_snapshot(cls, config: Config, data_dir: str | Path, snapshot: Any) -> "SnmpApp":
        return cls(config, data_dir, SnapshotFeed(snapshot))

    def refresh(self) -> None:
        values = self.feed.poll()
        if values is not None:
            self.update(values)

    def update(self, values: Mapping[str, Any]) -> None:
        mib.encode_values(self.objects, values, self.encoded)

    def _users(self, store: SecretStore, engine_id: bytes) -> dict[bytes, UserKeys]:
        users = {}
        for u in self.s.user:
            auth, priv = store.user(u.name)
            users[u.name.encode()] = UserKeys.make(u.name, AUTH_PROTOCOLS[u.auth], auth, priv, engine_id)
        return users

    async def start(self) -> list[str]:
        store = SecretStore(self.data_dir)
        engine_id, boots = start_engine(self.data_dir, self.enterprise[6])
        community = store.community(self.s.community).encode()
        users = self._users(store, engine_id)
        limiter = RateLimiter(self.s.rate, self.s.burst)
        self.encoded.update({o.oid + (0,): None for o in self.objects})
        agent = Agent(mib.Tree({}), self.counters, engine_id, boots, community if self.s.v2c else None, users,
                      limiter, self.refresh)
        entries: dict[ber.Oid, mib.Getter] = {}
        entries.update(system_getters(self.config, self.enterprise, agent.uptime_ticks))
        entries.update(mib.counters_getters(self.counters))
        entries.update({
            mib.SNMP_ENGINE + (1, 0): lambda: ber.encode_octets(engine_id),
            mib.SNMP_ENGINE + (2, 0): lambda: ber.encode_int(boots),
            mib.SNMP_ENGINE + (3, 0): lambda: ber.encode_int(agent.engine_time()),
            mib.SNMP_ENGINE + (4, 0): lambda: ber.encode_int(MAX_RESPONSE),
            mib.MIB2_SNMP + (30, 0): lambda: ber.encode_int(2),        # snmpEnableAuthenTraps: disabled
        })
        entries.update(mib.catalogue_getters(self.objects, self.encoded))
        agent.tree = mib.Tree(entries)
        self.refresh()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=(self.s.bind_address, self.s.port))
        self.transport = transport
        self.agent = agent
        self.notifier = Notifier(self.config, self.data_dir, self.enterprise, engine_id, boots, store.user,
                                 community, agent.uptime_ticks, agent.engine_time)
        self.notifier.transport = transport
        agent.notifier_input = self.notifier.on_message
        if self.notifier.destinations:
            self._task = loop.create_task(self.notifier.run())
        self.endpoints = [f"snmp:{self.s.bind_address}:{self.s.port}"]
        log.info("snmp: agent on udp %s:%d, engine %s, boots %d", self.s.bind_address, self.s.port,
                 engine_id.hex(), boots)
        return self.endpoints

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.notifier is not None:
            self.notifier.close()
        if self.transport is not None:
            self.transport.close()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoints": self.endpoints, **{k: v for k, v in self.counters.items() if v}}
        if self.agent is not None:
            out.update(self.agent.stats)
        if self.notifier is not None:
            out["notifications"] = dict(self.notifier.stats)
        return out
