"""The sample block: what acquisition writes to the samples ring and metrology reads from it.

One block is a fixed header followed by ``n_frames`` frames of seven int32 ADC codes in the
ADE9000 burst order IA, VA, IB, VB, IC, VC, IN. Codes stay integers on the ring so that no
precision is lost between the chip and the pipeline; the calibration travels with them, per channel:
``scale`` is the physical value at the meter's input terminals (V or A, secondary side) of one
code after gain calibration, ``offset`` the calibrated offset in those units (subtracted), and
``phase_deg`` the calibrated phase correction at the nominal frequency (positive advances the
channel; metrology applies it as a time shift when it resamples).

A block whose ``flags`` has ``GAP`` set follows a discontinuity: ``lost_frames`` frames were
never delivered before ``first_index``. Consumers must treat it as a gap, never splice.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from hal.ade9000_stream import FLAG_CHIP_RESET, FLAG_GAP
from hal.board import CHANNELS

N_CHANNELS = len(CHANNELS)
MAGIC = 0x534D504C  # "SMPL"
FORMAT_VERSION = 2

# FLAG_GAP: frames were lost before this block (count in lost_frames); FLAG_CHIP_RESET: the ADC was
# re-initialised before this block. Both are the bits the driver sets on its own blocks (hal.ade9000_stream).
FLAG_SIMULATED = 1 << 2    # samples come from the simulated ADE9000

# magic, version, channels, n_frames, flags, first_index, timestamp_ns, sample_rate_hz, lost_frames,
# scale[7], offset[7], phase_deg[7]
_HEADER = struct.Struct("<IHHII QqdQ 7d 7d 7d")
_ZEROS = (0.0,) * N_CHANNELS
HEADER_SIZE = _HEADER.size


def block_size(n_frames: int) -> int:
    """Bytes needed on the ring for a block of ``n_frames`` frames."""
    return HEADER_SIZE + 4 * N_CHANNELS * n_frames


def physical(codes: np.ndarray, scale: tuple[float, ...], offset: tuple[float, ...]) -> np.ndarray:
    """Codes (n, 7) of blocks that share one calibration -> float64 V and A at the input terminals."""
    return codes * np.asarray(scale, dtype=np.float64) - np.asarray(offset, dtype=np.float64)


@dataclass
class SampleBlock:
    first_index: int            # index of the first frame since acquisition started (monotonic, gaps counted)
    timestamp_ns: int           # CLOCK_REALTIME of the first frame, ns
    sample_rate_hz: float       # nominally 32000
    codes: np.ndarray           # int32, shape (n_frames, 7), burst order
    scale: tuple[float, ...]    # physical units per code, per channel
    flags: int = 0
    lost_frames: int = 0
    offset: tuple[float, ...] = _ZEROS
    phase_deg: tuple[float, ...] = _ZEROS

    @property
    def n_frames(self) -> int:
        return int(self.codes.shape[0])

    @property
    def gap(self) -> bool:
        return bool(self.flags & FLAG_GAP)

    @property
    def restarts(self) -> bool:
        """Frames were lost or the ADC re-initialised before this block: measurement restarts here."""
        return bool(self.flags & (FLAG_GAP | FLAG_CHIP_RESET))

    def physical(self) -> np.ndarray:
        """float64 (n_frames, 7) in V and A at the input terminals, gain and offset calibrated."""
        return physical(self.codes, self.scale, self.offset)

    def encode(self) -> bytes:
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        if codes.ndim != 2 or codes.shape[1] != N_CHANNELS:
            raise ValueError(f"codes must have shape (n, {N_CHANNELS}), got {codes.shape}")
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, N_CHANNELS, codes.shape[0], self.flags, self.first_index,
                              self.timestamp_ns, self.sample_rate_hz, self.lost_frames, *self.scale, *self.offset,
                              *self.phase_deg)
        return header + codes.tobytes()

    def encode_into(self, buffer: memoryview) -> int:
        """Write the block into ``buffer`` (e.g. a ring slot); returns bytes written."""
        codes = np.ascontiguousarray(self.codes, dtype="<i4")
        n = codes.shape[0]
        _HEADER.pack_into(buffer, 0, MAGIC, FORMAT_VERSION, N_CHANNELS, n, self.flags, self.first_index,
                          self.timestamp_ns, self.sample_rate_hz, self.lost_frames, *self.scale, *self.offset,
                          *self.phase_deg)
        end = HEADER_SIZE + codes.nbytes
        buffer[HEADER_SIZE:end] = codes.reshape(-1).view(np.uint8).data
        return end

    @classmethod
    def decode(cls, data: bytes | memoryview) -> SampleBlock:
        if len(data) < HEADER_SIZE:
            raise ValueError(f"sample block too short: {len(data)} bytes")
        (magic, version, channels, n, flags, first, ts, rate, lost, *cal) = _HEADER.unpack_from(data, 0)
        if magic != MAGIC or version != FORMAT_VERSION or channels != N_CHANNELS:
            raise ValueError(f"not a sample block (magic {magic:#x}, version {version}, channels {channels})")
        need = HEADER_SIZE + 4 * N_CHANNELS * n
        if len(data) < need:
            raise ValueError(f"sample block truncated: {len(data)} of {need} bytes")
        codes = np.frombuffer(data, dtype="<i4", count=n * N_CHANNELS, offset=HEADER_SIZE).reshape(n, N_CHANNELS)
        k = N_CHANNELS
        return cls(first, ts, rate, codes.copy(), tuple(cal[:k]), flags, lost, tuple(cal[k:2 * k]),
                   tuple(cal[2 * k:]))
