"""PQDIF logical records (IEEE 1159.3 clause 6) of what the recorder keeps: one container, one data source (the
meter with its channel definitions), then one observation per waveform capture, one per PQ event and one for
the 10-min values.

Channel definitions, in this order (``CHANNELS``): the seven capture inputs as waveforms (TIME in s from the
capture's start, VAL in primary V or A); the 10-min values (TIME as TIMESTAMPPQDIF, AVG: the 10-min value) of the
L-N voltages, phase currents, frequency and voltage THD per phase; and the PQ events as magnitude-duration values
(VAL: residual or highest voltage in % of Udin, DURATION in s; the observation's disturbance category says which).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from firmware.recorder.pqdif import ids
from firmware.recorder.pqdif.physical import Collection, Element, Vector, guid, real, text, uint, when

APPLICATION = "openmeter"


@dataclass(frozen=True)
class ChannelDef:
    name: str
    phase: int
    measured: int
    quantity_type: uuid.UUID
    # (value type, units, characteristic) per series; the first is the time axis
    series: tuple[tuple[uuid.UUID, int, uuid.UUID], ...]
    source: str = ""           # COMTRADE channel (waveforms) or 10-min value name[index] (trends)


_WAVE_TIME = (ids.ID_SERIES_VALUE_TYPE_TIME, ids.ID_QU_SECONDS, ids.ID_QC_NONE)
_LOG_TIME = (ids.ID_SERIES_VALUE_TYPE_TIME, ids.ID_QU_TIMESTAMP, ids.ID_QC_NONE)
_PHASE = {"A": ids.ID_PHASE_AN, "B": ids.ID_PHASE_BN, "C": ids.ID_PHASE_CN, "N": ids.ID_PHASE_NG}


def _wave(name: str) -> ChannelDef:
    volts = name.startswith("V")
    return ChannelDef(f"{name} waveform", _PHASE[name[1]], ids.ID_QM_VOLTAGE if volts else ids.ID_QM_CURRENT,
                      ids.ID_QT_WAVEFORM,
                      (_WAVE_TIME, (ids.ID_SERIES_VALUE_TYPE_VAL, ids.ID_QU_VOLTS if volts else ids.ID_QU_AMPS,
                                    ids.ID_QC_INSTANTANEOUS)), name)


def _trend(label: str, phase: int, measured: int, units: int, qc: uuid.UUID, source: str) -> ChannelDef:
    return ChannelDef(f"{label} 10-min", phase, measured, ids.ID_QT_VALUELOG,
                      (_LOG_TIME, (ids.ID_SERIES_VALUE_TYPE_AVG, units, qc)), source)


WAVE_CHANNELS = tuple(_wave(n) for n in ("VA", "VB", "VC", "IA", "IB", "IC", "IN"))
TREND_CHANNELS = (
    *(_trend(f"V {p}-N", _PHASE[p], ids.ID_QM_VOLTAGE, ids.ID_QU_VOLTS, ids.ID_QC_RMS, f"v_ln[{k}]")
      for k, p in enumerate("ABC")),
    *(_trend(f"I {p}", _PHASE[p], ids.ID_QM_CURRENT, ids.ID_QU_AMPS, ids.ID_QC_RMS, f"i[{k}]")
      for k, p in enumerate("ABC")),
    _trend("Frequency", ids.ID_PHASE_NONE, ids.ID_QM_VOLTAGE, ids.ID_QU_HERTZ, ids.ID_QC_FREQUENCY, "freq[0]"),
    *(_trend(f"THD V {p}-N", _PHASE[p], ids.ID_QM_VOLTAGE, ids.ID_QU_PERCENT, ids.ID_QC_TOTAL_THD, f"thd[{k}]")
      for k, p in enumerate("ABC")),
)
EVENT_CHANNEL = ChannelDef("PQ event", ids.ID_PHASE_NONE, ids.ID_QM_VOLTAGE, ids.ID_QT_MAGDUR,
                           ((ids.ID_SERIES_VALUE_TYPE_VAL, ids.ID_QU_PERCENT, ids.ID_QC_RMS),
                            (ids.ID_SERIES_VALUE_TYPE_DURATION, ids.ID_QU_SECONDS, ids.ID_QC_NONE)))
CHANNELS = (*WAVE_CHANNELS, *TREND_CHANNELS, EVENT_CHANNEL)
EVENT_INDEX = len(CHANNELS) - 1


def disturbance(kind: str, duration_s: float, nominal_hz: float) -> uuid.UUID:
    """IEEE 1159 category of a PQ event of the meter's ``kind`` and duration."""
    if kind == "transient":
        return ids.ID_DISTURB_1159_TRANSIENT
    if kind == "rvc":
        return ids.ID_DISTURB_1159_VOLTAGEFLUCTUATION
    what = {"sag": "SAG", "swell": "SWELL", "interruption": "INTERRUPT"}[kind]
    if duration_s > 60.0:
        band = "LONGDUR"
    elif duration_s > 3.0:
        band = "SHORTDUR_TEMP"
    elif duration_s > 30.0 / nominal_hz or kind == "interruption":
        band = "SHORTDUR_MOMENT"
    else:
        band = "SHORTDUR_INSTANT"
    return getattr(ids, f"ID_DISTURB_1159_{band}_{what}")


def container(file_name: str, created: float) -> tuple[uuid.UUID, list[Element]]:
    return ids.tagContainer, [
        Vector(ids.tagVersionInfo, ids.UINT4, ids.VERSION_INFO), text(ids.tagFileName, file_name),
        when(ids.tagCreation, created), text(ids.tagApplication, APPLICATION),
        uint(ids.tagCompressionStyleID, ids.ID_COMP_STYLE_NONE),
        uint(ids.tagCompressionAlgorithmID, ids.ID_COMP_ALG_NONE)]


def _channel_defn(c: ChannelDef, nominal: float | None) -> Collection:
    series = [Collection(ids.tagOneSeriesDefn, [
        guid(ids.tagValueTypeID, vt), uint(ids.tagQuantityUnitsID, units),
        guid(ids.tagQuantityCharacteristicID, qc), uint(ids.tagStorageMethodID, ids.ID_SERIES_METHOD_VALUES),
        *([real(ids.tagSeriesNominalQuantity, nominal)] if nominal and units == ids.ID_QU_VOLTS else [])])
        for vt, units, qc in c.series]
    return Collection(ids.tagOneChannelDefn, [
        text(ids.tagChannelName, c.name), uint(ids.tagPhaseID, c.phase),
        uint(ids.tagQuantityMeasuredID, c.measured), guid(ids.tagQuantityTypeID, c.quantity_type),
        Collection(ids.tagSeriesDefns, series)])


def data_source(name: str, serial: str, nominal_v: float) -> tuple[uuid.UUID, list[Element]]:
    return ids.tagRecDataSource, [
        guid(ids.tagDataSourceTypeID, ids.ID_DS_TYPE_MEASURE), guid(ids.tagVendorID, ids.ID_VENDOR_NONE),
        text(ids.tagNameDS, name), text(ids.tagSerialNumberDS, serial),
        Collection(ids.tagChannelDefns, [_channel_defn(c, nominal_v) for c in CHANNELS])]


def _series(values: Iterable[Any], ptype: int = ids.REAL8, base: float | None = None) -> Collection:
    items: list[Element] = []
    if base:
        items.append(real(ids.tagSeriesBaseQuantity, base))
    items.append(Vector(ids.tagSeriesValues, ptype, values))
    return Collection(ids.tagOneSeriesInstance, items)


def _instance(index: int, series: Sequence[Collection], extra: Sequence[Element] = ()) -> Collection:
    return Collection(ids.tagOneChannelInst, [uint(ids.tagChannelDefnIdx, index), *extra,
                                              Collection(ids.tagSeriesInstances, list(series))])


def _observation(name: str, created: float, start: float, trigger: int, channels: Sequence[Collection],
                 extra: Sequence[Element] = ()) -> tuple[uuid.UUID, list[Element]]:
    return ids.tagRecObservation, [
        text(ids.tagObservationName, name), when(ids.tagTimeCreate, created), when(ids.tagTimeStart, start),
        uint(ids.tagTriggerMethodID, trigger), *extra, Collection(ids.tagChannelInstances, list(channels))]


@dataclass(frozen=True)
class Capture:
    """A waveform capture in primary units: ``values`` (n, k) of the COMTRADE ``channels``, times from ``start``."""
    name: str
    start: float               # s since 1970
    trigger: float | None
    times_s: np.ndarray
    channels: tuple[str, ...]
    values: np.ndarray
    kind: str


def capture_observation(c: Capture, created: float) -> tuple[uuid.UUID, list[Element]]:
    index = {w.source: k for k, w in enumerate(WAVE_CHANNELS)}
    insts = [_instance(index[name], (_series(c.times_s), _series(c.values[:, j])))
             for j, name in enumerate(c.channels) if name in index]
    extra: list[Element] = [when(ids.tagTimeTriggered, c.trigger)] if c.trigger is not None else []
    method = ids.ID_TRIGGER_METH_EXTERNAL if c.kind in ("command", "alarm") else ids.ID_TRIGGER_METH_CHANNEL
    return _observation(f"waveform capture {c.name}", created, c.start, method, insts, extra)


def event_observation(ev: dict[str, Any], created: float, nominal_hz: float) -> tuple[uuid.UUID, list[Element]]:
    """A finished PQ event (``firmware.recorder.store.read_events``): its magnitude and duration."""
    detail = ev.get("detail", {})
    pct = float(detail.get("extreme_pct", math.nan))
    dur = float(ev["duration_s"])
    inst = _instance(EVENT_INDEX, (_series([pct]), _series([dur])))
    extra: list[Element] = [guid(ids.tagDisturbanceCategoryID, disturbance(ev["kind"], dur, nominal_hz)),
                            real(ids.tagCharactDuration, dur), real(ids.tagCharactMagnitude, pct),
                            when(ids.tagTimeTriggered, float(ev["ts"]))]
    chans = ",".join(detail.get("channels", []))
    return _observation(f"{ev['kind']} on {chans}" if chans else ev["kind"], created, float(ev["ts"]),
                        ids.ID_TRIGGER_METH_CHANNEL, [inst], extra)


def _pick(record: dict[str, Any], source: str) -> float:
    name, _, rest = source.partition("[")
    raw = record.get("values", {}).get(name)
    if raw is None:
        return math.nan
    arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    k = int(rest.rstrip("]"))
    return float(arr[k]) if k < arr.size else math.nan


def trend_observation(records: Sequence[dict[str, Any]], created: float) -> tuple[uuid.UUID, list[Element]]:
    """The 10-min values (``read_aggregates(..., "10min")``), one channel instance per trend channel; a value
    the meter does not have is NaN. Times are the intervals' ends."""
    ts = [float(r["ts"]) for r in records]
    first = len(WAVE_CHANNELS)
    insts = [_instance(first + k, (_series(ts, ids.TIMESTAMP), _series([_pick(r, c.source) for r in records])))
             for k, c in enumerate(TREND_CHANNELS)]
    return _observation("10-min values", created, ts[0] - 600.0, ids.ID_TRIGGER_METH_PERIODIC, insts)
