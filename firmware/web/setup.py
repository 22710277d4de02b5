"""Handlers of the setup: the configuration (read, schema, validated write) and the web server's certificate.

A configuration write goes through the same store as ``meter config set`` (``firmware.config.store``): the
whole new configuration is validated, saved atomically as a new version with the user and reason, and the
refusal of a bad value carries the schema's own message (section, option, what is allowed). Each option is
authorized by its rule in the schema (``Section.rule``): the privilege it needs; options naming a file,
directory or program on the meter are refused over the web whoever asks; the store refuses the revenue-locked
ones while the lock is engaged. Secret options are never read back. Settings take effect when the services
that read them restart; those of ``firmware.config.RESTARTS_FOR`` (metrology, revenue) are applied at once by
restarting their services, as over BACnet, so the chip's wiring follows metrology's whoever writes it.
"""
from __future__ import annotations

import asyncio
from typing import Any

from firmware.config import RESTARTS_FOR, meter_schema
from firmware.config.schema import (
    Bool,
    Duration,
    Enum,
    Float,
    Int,
    IPAddress,
    Kind,
    ListOf,
    Rule,
    Section,
    Str,
    Table,
)
from firmware.config.store import SECRET
from firmware.control import ControlError
from firmware.security.authorize import OPERATIONS, config_operation
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.errors import AccessDenied, ConfigError

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


def option_operation(rule: Rule) -> str:
    """The operation the authorization point decides on for a change of one option."""
    return config_operation(rule.privilege, rule.locked)


def _rule_fields(rule: Rule) -> dict[str, Any]:
    operation = option_operation(rule)
    return {"operation": operation, "privilege": OPERATIONS[operation].privilege.value,
            "revenue_locked": rule.locked, "web_writable": not rule.local, "secret": rule.secret}


def _shown(rule: Rule, value: Any) -> Any:
    """A value as a reader may see it: a secret only says whether it is set."""
    return (SECRET if value else "") if rule.secret else value


def _section_schema(sec: Section, values: dict[str, Any]) -> dict[str, Any]:
    return {"name": sec.name, "doc": sec.doc, "sealed": sec.sealed,
            "options": [{"name": o.name, "doc": o.doc, "unit": o.unit, "allowed": o.kind.allowed(),
                         "default": _shown(sec.rule(o.name), o.kind.to_toml(o.default)),
                         "value": _shown(sec.rule(o.name), values.get(o.name)), **_kind(o.kind),
                         **_rule_fields(sec.rule(o.name))}
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
    rules = [schema.section(section).rule(option) for section, options in changes.items() for option in options]
    local = [r.option for r in rules if r.local]
    if local:
        # a path set from the network could point anywhere (another meter's data, a system file)
        raise ApiError(403, f"config: {', '.join(local)} names a file, directory or program on the meter and cannot "
                            "be changed over the network; change it on the meter itself as root or the meter's "
                            f"account: meter config set {local[0]}=...")
    for operation in sorted({option_operation(r) for r in rules}):
        try:
            ctx.authorize(call.identity, operation)
        except AccessDenied as exc:
            which = ", ".join(r.option for r in rules if option_operation(r) == operation)
            raise AccessDenied(f"config: {which}: {exc}") from None
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
            rule = schema.section(section).rule(option)
            before = _shown(rule, old[section].to_dict()[option])
            after = _shown(rule, new[section].to_dict()[option])
            if rule.secret and old[section][option] != new[section][option]:
                before, after = "(previous)", SECRET
            done.append({"option": f"{section}.{option}", "old": before, "new": after})
            if before != after:
                ctx.record(CONFIG_CHANGE_PRIORITY, "config_change", f"{section}.{option}: {before!r} -> {after!r}",
                           call.user, version=new.version, reason=reason)
    restarted, waiting = await _restart_readers(ctx, call, old, new, changes)
    return {"version": new.version, "changes": done, "restarted": restarted, "note": _note(restarted, waiting)}


def _note(restarted: list[str], waiting: dict[str, str]) -> str:
    if waiting:
        first = next(iter(waiting))
        return f"saved; restart {', '.join(waiting)} to apply them ({first} was not restarted: {waiting[first]})"
    if restarted:
        return f"saved; {', '.join(restarted)} restarted to apply them"
    return ("saved; services read their settings when they start: restart the meter (or the service concerned, on "
            "the diagnostics page) to apply them")


async def _restart_readers(ctx: WebContext, call: Call, old: Any, new: Any,
                           changes: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Restart the services of ``RESTARTS_FOR`` whose sections changed; returns those restarted and, for those
    not, why (the user may not restart services, or the service does not run)."""
    services = sorted({svc for section in changes if old[section].to_dict() != new[section].to_dict()
                       for svc in RESTARTS_FOR.get(section, ())})
    restarted: list[str] = []
    waiting: dict[str, str] = {}
    for service in services:
        try:
            await ctx.control(call.user, "restart", service=service)
            restarted.append(service)
        except (ControlError, OSError) as exc:
            waiting[service] = str(exc)
    return restarted, waiting


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
