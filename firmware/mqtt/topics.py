"""Topic layout and payloads of what the meter publishes (docs/fleet.md documents them from here).

``json``: ``<prefix>/<meter>/<kind>`` with one JSON object. ``sparkplug``: the Sparkplug B topic namespace
``spBv1.0/<prefix>/DDATA/<meter>/<kind>`` with a Sparkplug-style body (``timestamp`` in ms, ``metrics``
list of name/value/datatype), JSON-encoded rather than protobuf. Every data message carries ``seq``: the
meter's store-and-forward sequence number, one higher for each message the meter queued, never reused; a
subscriber drops any ``seq`` it has seen and can tell a gap (messages the bounded store dropped) from
nothing.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

KINDS = ("readings", "energy", "intervals", "events", "status")
SPARKPLUG_NAMESPACE = "spBv1.0"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def meter_id(serial_number: str) -> str:
    """The meter's topic level: its serial number with anything but [A-Za-z0-9_.-] replaced by '_'."""
    return _UNSAFE.sub("_", serial_number) or "meter"


def topic(fmt: str, prefix: str, meter: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    if fmt == "sparkplug" and kind != "status":
        return f"{SPARKPLUG_NAMESPACE}/{prefix.replace('/', '_')}/DDATA/{meter}/{kind}"
    return f"{prefix}/{meter}/{kind}"


def _clean(value: Any) -> Any:
    """JSON has no NaN: a value not available is null; arrays element by element."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def body(fmt: str, kind: str, ts: float, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """The message body without ``seq`` (``with_seq`` adds it when the message is sent)."""
    if fmt == "sparkplug":
        metrics = [{"name": k, "value": _clean(v), "datatype": _datatype(v)} for k, v in values.items()]
        doc: dict[str, Any] = {"timestamp": int(round(ts * 1000)), "metrics": metrics}
        if extra:
            doc["properties"] = _clean(dict(extra))
    else:
        doc = {"ts": ts, **_clean(dict(extra or {})), "values": _clean(dict(values))}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False)


def _datatype(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    return "DataSet" if isinstance(value, (list, tuple, dict)) or hasattr(value, "tolist") else "String"


def with_seq(body_text: str, seq: int) -> bytes:
    """``{"seq": N, ...body}``: the sequence number goes first so a subscriber finds it cheaply."""
    return (f'{{"seq":{int(seq)},' + body_text[1:]).encode() if body_text != "{}" else \
        f'{{"seq":{int(seq)}}}'.encode()
