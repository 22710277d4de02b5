"""Handlers that act: login and logout, resets, firmware upgrade upload, service restarts.

Resets are the catalogue's commands the web carries (``web = True`` in ``firmware/catalogue/table.py``), sent as
the logged-in user; the security core decides the privilege and the revenue lock first, and the owning service
checks the lock again. An upgrade image is streamed to ``data_dir/web/uploads`` under ``[web] max_upload`` and
handed to the upgrade service's ``install``, which checks the signature, manifest, every payload hash, version,
board and lock before it answers: a refusal comes back with its reason (409 while another install is in
progress, 422 for anything wrong with the image) and that file is deleted. An accepted image stays while its
install reads it; the next accepted upload removes it.
"""
from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from firmware.catalogue import Command, commands
from firmware.control import ControlError
from firmware.security.authorize import OPERATIONS, blocked_by_revenue_lock
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.errors import IPCError

RESET_PRIORITY = 64                # Low band: a reset changes billed or recorded values
UPLOAD_PREFIX = "upload-"
UPLOAD_SUFFIX = ".img"


RESETS: dict[str, Command] = {c.name: c for c in commands() if c.web}


async def resets(ctx: WebContext, call: Call) -> Any:
    when_locked = ctx.config["revenue"].demand_reset_when_locked
    return {"resets": [{"name": name, "description": c.description, "operation": c.op, "takes": c.value_arg or None,
                        "privilege": OPERATIONS[c.op].privilege.value,
                        "revenue": blocked_by_revenue_lock(c.op, when_locked)} for name, c in RESETS.items()]}


async def reset(ctx: WebContext, call: Call) -> Any:
    command = RESETS[call.params["name"]]
    assert call.identity is not None
    ctx.authorize(call.identity, command.op)
    args: dict[str, Any] = dict(command.protocol_args)
    if command.value_arg:
        # a command that sets something (time_set: the UTC seconds) takes the value; the page sends its clock
        if call.params.get("value") is None:
            raise ApiError(400, f"{call.params['name']}: give the value to set as ?value= ({command.description})")
        args[command.value_arg] = call.params["value"]
    try:
        result = await ctx.control(call.user, command.control, **args)
    except ControlError as exc:
        raise ApiError(403 if exc.kind == "AccessDenied" else 409, f"{call.params['name']}: {exc}") from None
    except IPCError as exc:
        raise ApiError(503, f"{call.params['name']}: {exc}") from None
    ctx.record(RESET_PRIORITY, call.params["name"], command.description, call.user)
    return {"done": call.params["name"], "result": result}


# ---------------------------------------------------------------------- upgrade

def _clear_uploads(ctx: WebContext, keep: Path) -> None:
    """Remove the images of earlier, finished installs. Called once ``keep``'s install was accepted: the
    upgrade service runs one install at a time, so no other image on disk is still being installed, and
    uploads still being received or checked (``ctx.uploads``) are left to their own requests."""
    for old in ctx.upload_dir.glob(f"{UPLOAD_PREFIX}*{UPLOAD_SUFFIX}"):
        if old != keep and old not in ctx.uploads:
            old.unlink(missing_ok=True)


def _refusal_reason(exc: ControlError) -> str:
    """The installer's reason (``busy``, ``damaged``, ...) from its "refused (reason): ..." message."""
    text = str(exc)
    if text.startswith("refused (") and ")" in text:
        return text[len("refused ("):text.index(")")]
    return ""


async def upgrade_upload(ctx: WebContext, call: Call) -> Any:
    """The body was streamed to ``call.body`` (a path) by the app; hand it to the installer."""
    path: Path = call.body
    try:
        try:
            answer = await ctx.control(call.user, "upgrade.install", path=str(path.resolve()))
        except ControlError as exc:
            path.unlink(missing_ok=True)
            ctx.record(RESET_PRIORITY, "upgrade_refused", str(exc)[:200], call.user)
            if _refusal_reason(exc) == "busy":
                raise ApiError(409, f"firmware image not taken, another install is in progress: {exc}") from None
            raise ApiError(422, f"firmware image refused: {exc}") from None
        except IPCError as exc:
            path.unlink(missing_ok=True)
            raise ApiError(503, f"firmware image not installed: {exc}") from None
    finally:
        ctx.uploads.discard(path)
    _clear_uploads(ctx, keep=path)
    return answer


def upload_path(ctx: WebContext) -> Path:
    ctx.upload_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.upload_dir / f"{UPLOAD_PREFIX}{secrets.token_hex(8)}{UPLOAD_SUFFIX}"
    ctx.uploads.add(path)
    return path


async def _upgrade_call(ctx: WebContext, call: Call, cmd: str, **args: Any) -> Any:
    try:
        return await ctx.control(call.user, cmd, **args)
    except ControlError as exc:
        raise ApiError(404 if "unknown" in str(exc) else 409, str(exc)) from None
    except IPCError as exc:
        raise ApiError(503, f"the upgrade service did not answer: {exc}") from None


async def upgrade_status(ctx: WebContext, call: Call) -> Any:
    return await _upgrade_call(ctx, call, "upgrade.status")


async def upgrade_progress(ctx: WebContext, call: Call) -> Any:
    return await _upgrade_call(ctx, call, "upgrade.progress", attempt=call.params["attempt"])


async def upgrade_log(ctx: WebContext, call: Call) -> Any:
    return {"log": await _upgrade_call(ctx, call, "upgrade.log", n=call.params["n"])}


# ---------------------------------------------------------------------- services

async def service_restart(ctx: WebContext, call: Call) -> Any:
    name = call.params["name"]
    if name == "web":
        # The answer would be lost with the process; say so and let the supervisor do it.
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(
            ctx.control(call.user, "restart", service=name)))
        return {"restarting": name, "note": "the web service restarts: log in again in a few seconds"}
    try:
        return {"restarting": name, "result": await ctx.control(call.user, "restart", service=name)}
    except ControlError as exc:
        raise ApiError(404, str(exc)) from None
    except IPCError as exc:
        raise ApiError(503, str(exc)) from None
