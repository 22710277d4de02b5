"""Which channel of a recording feeds which input of the meter (IA VA IB VB IC VC IN).

A channel map given by the user (``VA=NAME,IA=3,IN=-``: a channel by its name or its number An counted
from 1, ``-`` for none) is taken first. The other inputs are found by name (``VA``, ``Va``, ``UA``,
``VAN``, ``V1``, ``ILA``, ``IL1``, ``I4``, ``IN``, with or without a bay or feeder prefix such as
``HV IR``) or by the ``ph`` field (A/B/C/N, R/S/T, 1/2/3, L1/L2/L3) together with the unit (V, kV, mV,
A, kA, mA). A name that says line to line (``U12``, ``VAB``, ``U32``) is never taken for a phase input,
whatever its ``ph`` field says. When more than one channel fits an input (two bays, a residual and a
neutral current) the recording is refused with the candidates listed, so that a channel map chooses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hal.board import CHANNELS as ORDER
from hal.comtrade.cfg import AnalogChannel, fail
from hal.comtrade.reader import Comtrade
from hal.errors import ComtradeError

_PHASE_ALIASES = {"a": "A", "r": "A", "1": "A", "l1": "A", "b": "B", "s": "B", "2": "B", "l2": "B",
                  "c": "C", "t": "C", "3": "C", "l3": "C", "n": "N", "4": "N", "0": "N"}
_VOLT_UNITS = ("v", "kv", "mv")
_AMP_UNITS = ("a", "ka", "ma")
_PREFIX = r"(?:.*?[\s_\-:./]+)?"
_NAME_RE = re.compile(r"^\s*" + _PREFIX + r"(?P<kind>[VUI])\s*[-_ ]?\s*L?(?P<phase>[ABCNRST1234]|L[123])"
                      r"\s*(?:-?N)?\s*$", re.I)
_LINE_LINE_RE = re.compile(r"^\s*" + _PREFIX + r"[VU]\s*[-_ ]?\s*L?(?P<p1>[ABCRST123])\s*[-_]?\s*L?(?P<p2>[ABCRST123])"
                           r"\s*$", re.I)


@dataclass
class Mapping:
    index: list[int | None]         # per meter input (ORDER), the analog channel (from 0) or None
    how: list[str]                  # "map", "name", "ph" or "" per input

    def names(self, rec: Comtrade) -> list[str]:
        return [rec.analogs[k].name if k is not None else "" for k in self.index]

    def describe(self, rec: Comtrade) -> str:
        parts = []
        for name, k, how in zip(ORDER, self.index, self.how):
            if k is None:
                parts.append(f"{name}=-")
            else:
                ch = rec.analogs[k]
                parts.append(f"{name}=#{k + 1} {ch.name!r} ({ch.unit or 'no unit'}, by {how})")
        return ", ".join(parts)


def _kind_of_unit(unit: str) -> str:
    u = unit.strip().lower()
    return "V" if u in _VOLT_UNITS else "I" if u in _AMP_UNITS else ""


def line_to_line(ch: AnalogChannel) -> bool:
    m = _LINE_LINE_RE.match(ch.name)
    return m is not None and _PHASE_ALIASES.get(m["p1"].lower()) != _PHASE_ALIASES.get(m["p2"].lower())


def identify(ch: AnalogChannel) -> tuple[str, str] | None:
    """(the meter input it fits, 'name' or 'ph'), or None if it is not a phase or neutral quantity."""
    if line_to_line(ch):
        return None
    kind = _kind_of_unit(ch.unit)
    m = _NAME_RE.match(ch.name)
    if m:
        named = "I" if m["kind"].upper() == "I" else "V"
        phase = _PHASE_ALIASES.get(m["phase"].lower(), "")
        if phase and (not kind or kind == named):
            return named + phase, "name"
    phase = _PHASE_ALIASES.get(ch.phase.strip().lower(), "")
    return (kind + phase, "ph") if kind and phase else None


def parse_channel_map(text: str) -> dict[str, str]:
    """``VA=NAME,IA=3,IN=-`` into {input: NAME, number or '-'}; inputs checked, channels checked by ``resolve``."""
    out: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip().upper()
        if not sep or key not in ORDER:
            raise ComtradeError(f"channel map: {part.strip()!r} is not INPUT=CHANNEL with INPUT one of "
                                f"{', '.join(ORDER)}")
        if key in out:
            raise ComtradeError(f"channel map: {key} given twice")
        out[key] = value.strip() or "-"
    return out


def _channel(rec: Comtrade, key: str, value: str) -> int | None:
    if value == "-":
        return None
    if value.isdigit():
        k = int(value)
        if not 1 <= k <= len(rec.analogs):
            raise fail(rec.source, f"channel map {key}={value}: the recording has analog channels 1 to "
                                   f"{len(rec.analogs)}")
        return k - 1
    exact = [c.index for c in rec.analogs if c.name == value]
    found = exact or [c.index for c in rec.analogs if c.name.strip().lower() == value.lower()]
    if not found:
        names = ", ".join(repr(c.name) for c in rec.analogs)
        raise fail(rec.source, f"channel map {key}={value}: no analog channel of that name; there are {names}")
    if len(found) > 1:
        raise fail(rec.source, f"channel map {key}={value}: channels " + ", ".join(f"#{k + 1}" for k in found)
                   + " have that name; give the number instead")
    return found[0]


def resolve(rec: Comtrade, channel_map: dict[str, str] | None = None) -> Mapping:
    channel_map = channel_map or {}
    index: list[int | None] = [None] * len(ORDER)
    how = [""] * len(ORDER)
    taken: dict[int, str] = {}
    for key, value in channel_map.items():
        k = _channel(rec, key, value)
        if k is None:
            how[ORDER.index(key)] = "map"
            continue
        ch = rec.analogs[k]
        unit_kind = _kind_of_unit(ch.unit)
        if unit_kind and unit_kind != key[0]:
            raise fail(rec.source, f"channel map {key}={value}: channel #{k + 1} {ch.name!r} is in {ch.unit}; "
                                   f"{key} is a {'voltage' if key[0] == 'V' else 'current'} input")
        if k in taken:
            raise fail(rec.source, f"channel map: channel #{k + 1} {ch.name!r} given for both {taken[k]} and {key}")
        taken[k] = key
        index[ORDER.index(key)], how[ORDER.index(key)] = k, "map"
    candidates: dict[str, list[tuple[int, str]]] = {}
    for ch in rec.analogs:
        ident = identify(ch)
        if ident and ident[0] in ORDER and ch.index not in taken:
            candidates.setdefault(ident[0], []).append((ch.index, ident[1]))
    for j, key in enumerate(ORDER):
        if key in channel_map or key not in candidates:
            continue
        found = candidates[key]
        if len(found) > 1:
            listed = ", ".join(f"#{k + 1} {rec.analogs[k].name!r} (line {rec.analogs[k].line}, by {h})"
                               for k, h in found)
            raise fail(rec.source, f"{key} is ambiguous: {listed}; choose one with --channel-map {key}=NAME "
                                   f"or {key}=NUMBER ({key}=- for none)")
        index[j], how[j] = found[0]
    if all(index[ORDER.index(k)] is None for k in ("VA", "VB", "VC", "IA", "IB", "IC")):
        names = ", ".join(f"#{c.index + 1} {c.name} ({c.phase or 'no ph'}, {c.unit or 'no unit'})"
                          for c in rec.analogs)
        raise fail(rec.source, f"no phase voltage or current channel recognised among: {names}; name them VA/IA... "
                               "or set ph to A/B/C/N and uu to V/kV/A/kA, or give --channel-map VA=NAME,IA=NAME,...")
    return Mapping(index, how)


def meter_channels(rec: Comtrade, channel_map: dict[str, str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(n, 7) secondary values in the order IA VA IB VB IC VC IN, and which source channel fed each."""
    mapping = resolve(rec, channel_map)
    return values_of(rec, mapping), mapping.names(rec)


def values_of(rec: Comtrade, mapping: Mapping) -> np.ndarray:
    out = np.zeros((len(rec.times_s), len(ORDER)))
    for j, k in enumerate(mapping.index):
        if k is not None:
            out[:, j] = np.nan_to_num(rec.secondary(k))
    return out
