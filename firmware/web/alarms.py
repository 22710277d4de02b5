"""Alarms and digital I/O on the web: the io service's active and historic alarms with acknowledgement, the
inputs' states and counts, the outputs' states and forcing. Each call goes to the io service over the control
socket as the logged-in user; acknowledging is ``alarm_ack`` and forcing an output ``output_force``, decided
by the security core before the call is sent."""
from __future__ import annotations

from typing import Any

from firmware.control import ControlError
from firmware.web.api import ApiError, Call
from firmware.web.context import WebContext
from hal.errors import IPCError

EVENT_PRIORITY = 64            # Low band: an output forced from the web changes what the meter drives


async def _io(ctx: WebContext, call: Call, cmd: str, **args: Any) -> Any:
    try:
        return await ctx.control(call.user, cmd, **args)
    except ControlError as exc:
        raise ApiError(403 if exc.kind == "AccessDenied" else 409, str(exc)) from None     # names the command
    except IPCError as exc:
        raise ApiError(503, f"the io service did not answer ({exc}); is it running ([io] enabled)?") from None


async def alarms(ctx: WebContext, call: Call) -> Any:
    return await _io(ctx, call, "io.alarms")


async def acknowledge(ctx: WebContext, call: Call) -> Any:
    assert call.identity is not None
    ctx.authorize(call.identity, "alarm_ack")
    ids = call.body.get("ids") if call.body else None
    return await _io(ctx, call, "io.ack", **({"ids": ids} if ids is not None else {}))


async def io_status(ctx: WebContext, call: Call) -> Any:
    return await _io(ctx, call, "io.status")


async def force(ctx: WebContext, call: Call) -> Any:
    assert call.identity is not None
    ctx.authorize(call.identity, "output_force")
    number, state = call.params["number"], call.body["state"]
    answer = await _io(ctx, call, "io.force", output=number, state=state)
    ctx.record(EVENT_PRIORITY, "output_forced", f"do{number} {answer.get('old')} -> {state}", call.user)
    return answer
