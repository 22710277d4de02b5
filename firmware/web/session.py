"""Handlers of the session (login, who am I, logout), the live-readings stream and the OpenAPI document."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from starlette.responses import JSONResponse, Response, StreamingResponse

from firmware.security.authorize import Identity
from firmware.web.api import ApiError, Call
from firmware.web.auth import COOKIE, LoginRefused, privilege_names
from firmware.web.context import WebContext
from hal.errors import IPCError

STREAM_POLL_S = 0.25           # how often a stream looks for a new publish (the snapshot is published each second)
STREAM_KEEPALIVE_S = 15.0      # a comment line this often keeps proxies and the browser from giving up
STREAMS_PER_ADDRESS = 2        # live pages one client address may hold open


def _cookie(token: str, max_age: int | None) -> str:
    # __Host- prefix: the browser only accepts it Secure, with Path=/ and no Domain.
    age = "; Max-Age=0" if max_age == 0 else ""
    return f"{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"


def _whoami(ctx: WebContext, token: str, identity: Identity) -> dict[str, Any]:
    return {"user": identity.user, "privileges": privilege_names(identity), "csrf": ctx.auth.csrf(token),
            "timeout_s": ctx.config["security"].session_timeout, "meter": ctx.config.meter.name,
            "checklist": ctx.auth.users.checklist()}


async def login(ctx: WebContext, call: Call) -> Any:
    # (the login rate limit was applied before the body was read: firmware.web.app)
    user, password = call.body["user"], call.body["password"]
    try:
        token, identity = await asyncio.to_thread(ctx.auth.login, user, password, call.address)
    except LoginRefused as exc:
        ctx.counters["logins_refused"] += 1
        raise ApiError(401, str(exc)) from None
    ctx.counters["logins"] += 1
    response = JSONResponse(_whoami(ctx, token, identity), headers={"cache-control": "no-store"})
    response.headers["set-cookie"] = _cookie(token, None)
    return response


async def whoami(ctx: WebContext, call: Call) -> Any:
    assert call.identity is not None
    return _whoami(ctx, call.request.state.token, call.identity)


async def logout(ctx: WebContext, call: Call) -> Any:
    ctx.auth.logout(call.request.state.token)
    response = JSONResponse({"logged_out": call.user})
    response.headers["set-cookie"] = _cookie("", 0)
    return response


async def openapi_document(ctx: WebContext, call: Call) -> Any:
    return ctx.document


async def stream(ctx: WebContext, call: Call) -> Response:
    """Server-sent events: the readings at each publish, for at most the session timeout (watching is not
    activity: the page asks the user before it goes on), or until the service stops."""
    mine = sum(1 for a in ctx.stream_addresses if a == call.address)
    if ctx.streams >= ctx.web.max_streams or mine >= STREAMS_PER_ADDRESS:
        raise ApiError(429, f"too many live streams open ({ctx.streams} of {ctx.web.max_streams}, {mine} from "
                            f"{call.address}); close another live page")
    try:
        first = ctx.measurements.readings()
    except IPCError as exc:
        raise ApiError(503, str(exc)) from None
    ends = time.monotonic() + ctx.config["security"].session_timeout
    ctx.streams += 1
    ctx.stream_addresses.append(call.address)

    async def events() -> AsyncIterator[bytes]:
        try:
            last, said = -1, time.monotonic()
            payload = first
            token = call.request.state.token
            # the stream ends with its session: logout, expiry, the user removed or changed
            while not ctx.stopping.is_set() and time.monotonic() < ends and ctx.auth.alive(token):
                if payload["count"] != last:
                    last, said = payload["count"], time.monotonic()
                    yield b"event: readings\ndata: " + json.dumps(payload).encode() + b"\n\n"
                elif time.monotonic() - said > STREAM_KEEPALIVE_S:
                    said = time.monotonic()
                    yield b": keep-alive\n\n"
                await asyncio.sleep(STREAM_POLL_S)
                try:
                    payload = ctx.measurements.readings()
                except IPCError:
                    continue
            yield b"event: end\ndata: {}\n\n"
        finally:
            ctx.streams -= 1
            ctx.stream_addresses.remove(call.address)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})
