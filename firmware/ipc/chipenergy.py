"""The chip-energy record: one EGYRDY interval of the ADE9000's own accumulators, on the ``chip_intervals`` ring.

Acquisition writes one record per energy interval the chip latched (``acquisition.energy_interval``, 1 s by
default); metrology reads them to fill the energy of lost samples and to cross-check the two energy paths.

Frame indices are those of the sample stream (``SampleBlock.first_index``), so a record says exactly which
samples its energy belongs to: ``[start_index, end_index)``. The chip's interval boundaries are located to
within one waveform page (16 frames, 0.5 ms) from the interrupt that reported them; the interval length is
the chip's own (EGY_TIME + 1 DSP samples), exact. Energies are at the meter's input terminals (secondary side,
before PT/CT ratios), per phase A, B, C: Wh and varh signed (positive delivered / inductive), VAh positive.

``epoch`` identifies one run of the acquisition service: frame indices restart with it, so records of
another epoch never combine with samples of this one. The chip's accumulators add up from its reset and are
read without resetting, so a record holds everything since the previous one: when EGYRDY interrupts went
unserved, one record spans several intervals (``interval_s`` says how long) and no energy is missing.
``FLAG_MISSED`` (a span between two records whose energy is unknown) is kept in the format for readers of
older records; this acquisition no longer writes it. ``FLAG_CHIP_RESET`` marks the first interval after a chip
re-initialisation.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = 0x59474E45  # "ENGY"
FORMAT_VERSION = 1
FLAG_MISSED = 1 << 0
FLAG_CHIP_RESET = 1 << 1

# magic, version, flags, epoch, start_index, end_index, timestamp_ns, interval_s, wh[3], varh[3], vah[3]
_RECORD = struct.Struct("<IHH Qqqqd 3d3d3d")
RECORD_SIZE = _RECORD.size
RING_SLOTS = 512        # 8.5 min at 1-s intervals: a reader stalled that long still loses nothing


@dataclass
class ChipEnergyRecord:
    epoch: int
    start_index: int
    end_index: int
    timestamp_ns: int          # CLOCK_REALTIME of end_index
    interval_s: float          # the chip's interval length (end_index - start_index frames)
    wh: np.ndarray             # float64 (3,), per phase, signed
    varh: np.ndarray           # float64 (3,), per phase, signed
    vah: np.ndarray            # float64 (3,), per phase
    flags: int = 0

    def encode(self) -> bytes:
        return _RECORD.pack(MAGIC, FORMAT_VERSION, self.flags, self.epoch, self.start_index, self.end_index,
                            self.timestamp_ns, self.interval_s, *np.asarray(self.wh, float),
                            *np.asarray(self.varh, float), *np.asarray(self.vah, float))

    @classmethod
    def decode(cls, data: bytes | memoryview) -> ChipEnergyRecord:
        if len(data) < RECORD_SIZE:
            raise ValueError(f"chip-energy record too short: {len(data)} of {RECORD_SIZE} bytes")
        magic, version, flags, epoch, start, end, ts, interval_s, *vals = _RECORD.unpack_from(data, 0)
        if magic != MAGIC or version != FORMAT_VERSION:
            raise ValueError(f"not a chip-energy record (magic {magic:#x}, version {version})")
        v = np.asarray(vals, dtype=np.float64)
        return cls(epoch, start, end, ts, interval_s, v[0:3].copy(), v[3:6].copy(), v[6:9].copy(), flags)
