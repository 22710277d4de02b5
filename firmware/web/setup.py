"""Handlers of the setup: the configuration (read, schema, validated write) and the web server's certificate.

A configuration write goes through the same store as ``meter config set`` (``firmware.config.store``): the
whole new configuration is validated, saved atomically as a new version with the user and reason, and the
refusal of a bad value carries the schema's own message (section, option, what is allowed). Sealed sections
(metrology, revenue) are refused by the store while the meter is revenue-locked. Settings take effect when
the services that read them restart.
"""
from __future__ import annotations

import asyncio
from typing import Any

from firmware.config import meter_schema
from firmware.config.schema import Bool, Duration, Enum, Float, Int, IPAddress, Kind, ListOf, Section, Str, Table
from firmware.security.authorize import OPERATIONS
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.errors import AccessDenied, ConfigError

# Sections whose change is a security setting (ION "Security Config Access"): users, lockout, syslog.
SECURITY_SECTIONS = ("security",)
CONFIG_CHANGE_PRIORITY = 20        # Info band: a configuration change is recorded, not an alarm
CERTIFICATE_PRIORITY = 64          # Low band: a certificate change alters what every client must trust


def _kind(kind: Kind) -> dict[str, Any]:
    """What a form needs to edit a value of this kind."""
    if isinstance(kind, Bool):
        return {"type": "boolean"}
    if isinstance(kind, Int):
        return {"type": "integer", "minimum": kind.min, "maximum": kind.max}
    if isinstance(kind, Float):
        return {"type": "number", "minimum": kind.min, "maximum": kind.max}
    if isinstance(kind, Duration):
        return {"type": "duration", "minimum": kind.min_s, "maximum": kind.max_s}
    if isinstance(kind, Enum):
        return {"type": "enum", "choices": list(kind.choices)}
    if isinstance(kind, (Str, IPAddress)):
        return {"type": "string"}
    if isinstance(kind, ListOf):
        return {"type": "list", "item": _kind(kind.item)}
    if isinstance(kind, Table):
        return {"type": "table"}
    choices = getattr(kind, "values", None) or getattr(kind, "choices", None)
    if choices:
        return {"type": "enum", "choices": list(choices)}
    return {"type": "value"}


def section_operation(section: Section) -> str:
    """The operation the authorization point decides on for a change of this section."""
    if section.name.split(".")[0] in SECURITY_SECTIONS:
        return "user_admin"
    return "config_set_sealed" if section.sealed else "config_set"


def _section_schema(sec: Section, values: dict[str, Any]) -> dict[str, Any]:
    operation = section_operation(sec)
    return {"name": sec.name, "doc": sec.doc, "sealed": sec.sealed, "operation": operation,
            "privilege": OPERATIONS[operation].privilege.value,
            "options": [{"name": o.name, "doc": o.doc, "unit": o.unit, "allowed": o.kind.allowed(),
                         "default": o.kind.to_toml(o.default), "value": values.get(o.name), **_kind(o.kind)}
                        for o in sec.options]}


async def config_read(ctx: WebContext, call: Call) -> Any:
    cfg = await asyncio.to_thread(ctx.store.load)
    meta = cfg["meta"]
    sections = [_section_schema(sec, cfg[sec.name].to_dict()) for sec in cfg.schema.sections if sec.name != "meta"]
    return {"version": cfg.version, "changed_by": meta.changed_by, "changed_at": meta.changed_at,
            "running_version": ctx.config.version, "sections": sections}


def _split(changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schema = meter_schema()
    out: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        section, dot, option = key.rpartition(".")
        if not dot:
            raise ApiError(400, f"'{key[:80]}' is not SECTION.OPTION (e.g. modbus.tcp_port)")
        try:
            sec = schema.section(section)
        except KeyError:
            raise ApiError(400, f"config: section [{section[:80]}] is not known; known sections: "
                                f"{', '.join(s.name for s in schema.sections if s.name != 'meta')}") from None
        if section == "meta" or option not in {o.name for o in sec.options}:
            raise ApiError(400, f"config: option '{option[:80]}' is not valid in section [{section}]; valid "
                                f"options: {', '.join(o.name for o in sec.options)}")
        out.setdefault(section, {})[option] = value
    return out


async def config_write(ctx: WebContext, call: Call) -> Any:
    changes = _split(call.body["changes"])
    if not changes:
        raise ApiError(400, "config: 'changes' is empty; give at least one SECTION.OPTION and its new value")
    schema = meter_schema()
    assert call.identity is not None
    for section in changes:
        ctx.authorize(call.identity, section_operation(schema.section(section)))
    reason = call.body.get("reason") or "changed on the web page"
    store = ctx.store
    try:
        old = await asyncio.to_thread(store.load)
        new = await asyncio.to_thread(store.update, changes, call.user, reason)
    except ConfigError as exc:
        raise ApiError(400, str(exc).replace("(new configuration)", "").replace("config : ", "config: ")) from None
    except AccessDenied as exc:
        raise ApiError(403, str(exc)) from None
    done: list[dict[str, Any]] = []
    for section, options in changes.items():
        for option in options:
            before, after = old[section].to_dict()[option], new[section].to_dict()[option]
            done.append({"option": f"{section}.{option}", "old": before, "new": after})
            if before != after:
                ctx.record(CONFIG_CHANGE_PRIORITY, "config_change", f"{section}.{option}: {before!r} -> {after!r}",
                           call.user, version=new.version, reason=reason)
    return {"version": new.version, "changes": done,
            "note": "saved; services read their settings when they start: restart the meter (or the service "
                    "concerned, on the diagnostics page) to apply them"}


# ---------------------------------------------------------------------- certificate

async def certificate(ctx: WebContext, call: Call) -> Any:
    return {"active": ctx.certs.active(), "certificate": ctx.certs.info().to_dict()}


async def _changed(ctx: WebContext, call: Call, what: str) -> Any:
    info = await asyncio.to_thread(ctx.certs.reload)
    ctx.record(CERTIFICATE_PRIORITY, "certificate_change", what, call.user, sha256=info.sha256, kind=info.kind)
    return {"active": info.kind, "certificate": info.to_dict(),
            "note": "new connections use it now; reload the page to see it in the browser"}


async def certificate_upload(ctx: WebContext, call: Call) -> Any:
    try:
        await asyncio.to_thread(ctx.certs.upload, call.body["certificate"].encode(), call.body["key"].encode())
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    return await _changed(ctx, call, "uploaded certificate installed")


async def certificate_regenerate(ctx: WebContext, call: Call) -> Any:
    await asyncio.to_thread(ctx.certs.regenerate)
    return await _changed(ctx, call, "self-signed certificate regenerated")


async def certificate_delete(ctx: WebContext, call: Call) -> Any:
    if not await asyncio.to_thread(ctx.certs.delete_custom):
        raise ApiError(404, "no uploaded certificate to delete; the self-signed certificate is in use")
    return await _changed(ctx, call, "uploaded certificate deleted; the self-signed certificate is in use")
