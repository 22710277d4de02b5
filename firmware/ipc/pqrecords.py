"""Records of the PQ events ring (``names.PQ_EVENTS``): metrology writes, the recorder reads.

A record is one of ``KINDS``: ``start`` (an event began: trigger captures now), ``event`` (a finished event with
its measurements), ``hsrms`` (the half-cycle RMS values of a batch of cycles, for high-speed RMS bursts),
``aggregate`` (a 3-s, 10-min or 2-h interval with its flags). An ``event``'s metadata is
``metrology.events.PqEvent.as_dict``; fields are only added to it (``stats``, the min/max/avg during the event),
so a reader takes an older record without them. Layout: u32 length of a JSON header, the header ``{"k": kind, "m": metadata, "a": [[name, shape],
...]}``, then each array as little-endian float64 in that order: arrays cost no JSON encoding in metrology.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Mapping

import numpy as np

from firmware.ipc.ring import Ring
from hal.errors import IPCError

KINDS = ("start", "event", "hsrms", "aggregate")
SLOT_SIZE = 16384          # a 10-min aggregate (harmonics and interharmonics, no angles) is about 12 kB
# Interval values not sent (so not stored): an aggregate's harmonic angles are only its last window's; reports
# use 3-s values for harmonics, not interharmonics (IEEE 519)
NOT_SENT: dict[str, tuple[str, ...]] = {"3s": ("h_angle", "h_inter"), "10min": ("h_angle",), "2h": ("h_angle",)}
_LEN = struct.Struct("<I")


def encode(kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> bytes:
    if kind not in KINDS:
        raise IPCError(f"pq record kind {kind!r} is not one of {KINDS}")
    arrays = arrays or {}
    parts = [np.ascontiguousarray(a, dtype="<f8") for a in arrays.values()]
    header = json.dumps({"k": kind, "m": dict(meta), "a": [[n, list(p.shape)] for n, p in zip(arrays, parts)]},
                        separators=(",", ":"), default=_plain).encode()
    return b"".join([_LEN.pack(len(header)), header, *(p.tobytes() for p in parts)])


def decode(data: bytes | memoryview) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    buf = bytes(data)
    if len(buf) < _LEN.size:
        raise IPCError("pq record shorter than its header length")
    (n,) = _LEN.unpack_from(buf, 0)
    try:
        header = json.loads(buf[_LEN.size:_LEN.size + n])
    except ValueError as exc:
        raise IPCError(f"pq record header is not JSON: {exc}") from None
    at = _LEN.size + n
    arrays: dict[str, np.ndarray] = {}
    for name, shape in header.get("a", []):
        count = int(np.prod(shape)) if shape else 1
        if at + 8 * count > len(buf):
            raise IPCError(f"pq record {header.get('k')!r}: array {name!r} runs past the record")
        arrays[name] = np.frombuffer(buf, dtype="<f8", count=count, offset=at).reshape(shape)
        at += 8 * count
    return str(header.get("k")), dict(header.get("m", {})), arrays


def _plain(x: Any) -> Any:
    """JSON for numpy scalars (and NaN stays NaN: json writes it as NaN, which json reads back)."""
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def create_ring(name: str, records: int) -> Ring:
    """The ring of ``records`` slots (``[pq] ring_records``)."""
    return Ring.create(name, SLOT_SIZE, records)


def hsrms_record(end_ns: np.ndarray, urms: np.ndarray, end_index: float) -> bytes:
    """Urms(1/2) of every derived signal (n, 11), each stamped with its window's end; times relative to the
    first, so float64 keeps them to the nanosecond. ``end_index``: the sample index metrology has measured up to
    (the recorder reads the samples ring no further ahead than that, so its captures wait for it)."""
    t0 = int(end_ns[0])
    return encode("hsrms", {"t0_ns": t0, "end_index": float(end_index)},
                  {"dt_ns": (end_ns - t0).astype(np.float64), "urms": urms})


def aggregate_record(item: Any) -> bytes:
    """A ``metrology.intervals.Interval`` of kind 3s, 10min or 2h."""
    meta = {"kind": item.kind, "start_ns": int(item.start_ns), "end_ns": int(item.end_ns),
            "duration_s": float(item.duration_s), "cycles": int(item.cycles), "flagged": bool(item.flagged),
            "gap": bool(item.gap)}
    skip = NOT_SENT.get(item.kind, ())
    return encode("aggregate", meta, {k: np.asarray(v, dtype=np.float64) for k, v in item.values.items()
                                      if k not in skip})


def feed_records(result: Any) -> list[bytes]:
    """The records of one ``metrology.pipeline.FeedResult``, in the order the recorder needs them: the half-cycle
    values, then events that started or ended, then the aggregates that closed."""
    out = []
    if result.urms_half is not None and result.half_end_ns is not None and result.cycles is not None:
        out.append(hsrms_record(result.half_end_ns, result.urms_half, float(result.cycles.end[-1])))
    for ev in result.events:
        out.append(encode("start", vars(ev)) if not hasattr(ev, "as_dict") else encode("event", ev.as_dict()))
    for item in (*result.three_s, *result.ten_min, *result.two_h):
        out.append(aggregate_record(item))
    return out
