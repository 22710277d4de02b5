"""The io service's persisted counts: input pulses, output pulses and each energy pulser's origin.

Written with ``firmware.storage.records.RecordStore`` (two alternating slots, sequence and CRC, fsync'd), so
a kill or a power loss at any instant leaves the last complete record. The service writes a record before it
publishes a changed count (inputs) and as soon as it has started a pulse (outputs): a count anyone has seen
is on disk, and an output pulse is never given twice; at most the one pulse in flight at a kill is cut short.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from firmware.io.inputs import InputChannel
from firmware.io.outputs import EnergyPulser, OutputChannel
from firmware.storage.records import RecordStore


class CountStore:
    def __init__(self, directory: str | Path, name: str) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.store = RecordStore(directory, name)
        self.writes = 0
        self.power_up_seen = 0         # the last power-up the power-up alarm was raised for (firmware.powerup)

    def load(self) -> dict[str, Any]:
        rec = self.store.load()
        return json.loads(rec.payload) if rec is not None else {}

    def restore(self, inputs: dict[int, InputChannel], outputs: dict[int, OutputChannel]) -> None:
        doc = self.load()
        self.power_up_seen = int(doc.get("power_up_seen", 0))
        for key, saved in doc.get("inputs", {}).items():
            ch = inputs.get(int(key))
            if ch is not None:
                ch.count, ch.activations = int(saved["count"]), int(saved["activations"])
        for key, saved in doc.get("outputs", {}).items():
            out = outputs.get(int(key))
            if out is None:
                continue
            out.pulses = int(saved["pulses"])
            out.level = bool(saved.get("level", False))
            pulser = saved.get("pulser")
            if out.pulser is not None and pulser is not None and pulser["kt"] == out.pulser.kt:
                # the same Kt: carry on from the origin; a changed Kt starts a new origin at the next reading
                origin = pulser["origin"]
                out.pulser = EnergyPulser(out.pulser.kt, math.nan if origin is None else float(origin),
                                          int(pulser["given"]))

    def save(self, inputs: dict[int, InputChannel], outputs: dict[int, OutputChannel]) -> None:
        doc = {"inputs": {str(n): {"count": c.count, "activations": c.activations} for n, c in inputs.items()},
               "outputs": {str(n): {"pulses": o.pulses, "level": o.level,
                                    "pulser": None if o.pulser is None else {
                                        "kt": o.pulser.kt, "given": o.pulser.given,
                                        "origin": o.pulser.origin if math.isfinite(o.pulser.origin) else None}}
                           for n, o in outputs.items()}, "power_up_seen": self.power_up_seen}
        self.store.save(json.dumps(doc, sort_keys=True).encode())
        self.writes += 1
