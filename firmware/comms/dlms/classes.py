"""What each interface class's attributes read, and its writes and methods (IEC 62056-6-2 §4)."""
from __future__ import annotations

from typing import Any

from firmware.comms.dlms import axdr
from firmware.comms.dlms.axdr import Typed
from firmware.comms.dlms.objects import (
    ACTION_DENIED,
    ASSOCIATION_LN,
    CLOCK,
    DATA,
    DEMAND_REGISTER,
    EXTENDED_REGISTER,
    PROFILE_GENERIC,
    READ_WRITE_DENIED,
    REGISTER,
    SCOPE_VIOLATED,
    SCRIPT_TABLE,
    TYPE_UNMATCHED,
    UNAVAILABLE,
    AccessError,
    Context,
    CosemObject,
    date_time_of,
    octets,
    scaled,
    scaler_unit,
)

CLOCK_BASE_CRYSTAL = 1


def _identity(obj: CosemObject, values: dict[str, Any]) -> Typed:
    v = values.get(obj.point)
    if isinstance(v, str):
        return octets(v)
    if isinstance(v, bytes):
        return Typed(axdr.OCTET_STRING, v[:255])
    return scaled(obj, v)


def read_data(obj: CosemObject, attr: int, ctx: Context) -> Typed:
    values = ctx.values()
    if attr == 2:
        return _identity(obj, values)
    raise AccessError(UNAVAILABLE)


def read_register(obj: CosemObject, attr: int, ctx: Context) -> Typed:
    if attr == 3:
        return scaler_unit(obj)
    values = ctx.values()
    if attr == 2:
        return scaled(obj, values.get(obj.point))
    if obj.class_id == EXTENDED_REGISTER:
        if attr == 4:
            return Typed(axdr.NULL, None)
        if attr == 5:
            return date_time_of(values.get(obj.time_point))
    raise AccessError(UNAVAILABLE)


def read_demand(obj: CosemObject, attr: int, ctx: Context, period_s: int) -> Typed:
    """Demand register: the current average is the predicted demand, the last average the completed one."""
    values = ctx.values()
    if attr == 2:
        return scaled(obj, values.get(obj.point + "_predicted", values.get(obj.point)))
    if attr == 3:
        return scaled(obj, values.get(obj.point))
    if attr == 4:
        return scaler_unit(obj)
    if attr == 5:
        return Typed(axdr.NULL, None)
    if attr in (6, 7):
        now = ctx.now().timestamp()
        start = now - now % period_s if period_s else now
        return date_time_of(start)
    if attr == 8:
        return Typed(axdr.DOUBLE_LONG_UNSIGNED, period_s)
    if attr == 9:
        return Typed(axdr.LONG_UNSIGNED, 1)
    raise AccessError(UNAVAILABLE)


def read_clock(attr: int, ctx: Context) -> Typed:
    if attr == 2:
        return Typed(axdr.OCTET_STRING, axdr.date_time(ctx.now()))
    if attr == 3:
        return Typed(axdr.LONG, 0)                      # the meter keeps UTC; local time is the head-end's
    if attr == 4:
        return Typed(axdr.UNSIGNED, 0)
    if attr in (5, 6):
        return Typed(axdr.OCTET_STRING, axdr.date_time(None))
    if attr == 7:
        return Typed(axdr.INTEGER, 0)
    if attr == 8:
        return Typed(axdr.BOOLEAN, 0)
    if attr == 9:
        return Typed(axdr.ENUM, CLOCK_BASE_CRYSTAL)
    raise AccessError(UNAVAILABLE)


def write_clock(attr: int, value: Typed, ctx: Context) -> None:
    if attr != 2:
        raise AccessError(READ_WRITE_DENIED)
    try:
        when = axdr.as_datetime(value)
    except axdr.DecodeError:
        raise AccessError(TYPE_UNMATCHED) from None
    ctx.set_time(when)


def run_script(obj: CosemObject, method: int, params: Typed | None, ctx: Context) -> None:
    if method != 1 or params is None:
        raise AccessError(ACTION_DENIED)
    try:
        script = axdr.as_int(params)
    except axdr.DecodeError:
        raise AccessError(TYPE_UNMATCHED) from None
    command = obj.scripts.get(script)
    if command is None:
        raise AccessError(SCOPE_VIOLATED)
    ctx.run(command)


def read_plain(obj: CosemObject, attr: int, ctx: Context, period_s: int) -> Typed:
    """Attribute 2 and on of Data, Register, Extended and Demand register, Clock and Script table."""
    if obj.class_id == DATA:
        return read_data(obj, attr, ctx)
    if obj.class_id in (REGISTER, EXTENDED_REGISTER):
        return read_register(obj, attr, ctx)
    if obj.class_id == DEMAND_REGISTER:
        return read_demand(obj, attr, ctx, period_s)
    if obj.class_id == CLOCK:
        return read_clock(attr, ctx)
    if obj.class_id == SCRIPT_TABLE and attr == 2:
        return Typed(axdr.ARRAY, [Typed(axdr.STRUCTURE, [Typed(axdr.LONG_UNSIGNED, i), Typed(axdr.ARRAY, [])])
                                  for i in sorted(obj.scripts)])
    if obj.class_id in (PROFILE_GENERIC, ASSOCIATION_LN):
        raise AccessError(READ_WRITE_DENIED)
    raise AccessError(UNAVAILABLE)
