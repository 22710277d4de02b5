"""Values of catalogue quantities by name, as every interface that reads them by name answers them.

One place says what a name may be and how a value travels: a quantity not in the catalogue is an error that says
where the names are listed; a value not available (NaN) is ``None`` (JSON null); an array point is a list, and
``name[i]`` picks one element.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

from firmware.catalogue import NOT_MEASURED
from firmware.points import points_by_name
from hal.errors import ConfigError
MAX_NAMES = 256                       # names one request may ask for
_ELEMENT = re.compile(r"([a-z][a-z0-9_]*)\[(\d+)\]")


def split_names(text: str | Iterable[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ConfigError("no point names given; `meter read --list` (or GET /api/points) lists them")
    if len(names) > MAX_NAMES:
        raise ConfigError(f"{len(names)} point names given; at most {MAX_NAMES} in one request")
    return names


def _one(value: Any) -> Any:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def pick(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``name -> value`` for each of ``names`` from ``values`` (a decoded measurement snapshot)."""
    points = points_by_name()
    out: dict[str, Any] = {}
    for name in names:
        base, index = name, None
        element = _ELEMENT.fullmatch(name)
        if element:
            base, index = element.group(1), int(element.group(2))
        point = points.get(base)
        if point is None or point.kind in NOT_MEASURED:
            raise ConfigError(f"{base!r} is not a quantity of the catalogue; `meter read --list` (or GET "
                              f"/api/points) lists them")
        if index is not None and not 0 <= index < point.size:
            raise ConfigError(f"{name}: {base} has elements 0..{point.size - 1}")
        value = values.get(base)
        if value is None:
            out[name] = None if point.size == 1 or index is not None else [None] * point.size
        elif point.size == 1:
            out[name] = _one(value)
        elif index is not None:
            out[name] = _one(value[index])
        else:
            out[name] = [_one(v) for v in value]
    return out
