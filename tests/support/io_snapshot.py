"""The io snapshot as the io service publishes it, written by a test that drives the revenue side directly."""
from __future__ import annotations

import math
import uuid

from firmware.io import CHANNELS, LAYOUT
from firmware.ipc.snapshot import Snapshot


class IoSnapshotWriter:
    """Digital inputs 1..``count`` (off, nothing counted); ``set`` counts an activation on each off-to-on."""

    def __init__(self, count: int = 4) -> None:
        self.name = f"test-io-{uuid.uuid4().hex[:10]}.io"
        self.snapshot = Snapshot.create(self.name, LAYOUT)
        self.state = [0.0] * count + [math.nan] * (CHANNELS - count)
        self.activations = [0.0] * count + [math.nan] * (CHANNELS - count)
        self.counts = [0.0] * count + [math.nan] * (CHANNELS - count)
        self.publish()

    def set(self, number: int, on: bool) -> None:
        if on and not self.state[number - 1]:
            self.activations[number - 1] += 1
        if not on and self.state[number - 1]:
            self.counts[number - 1] += 1          # pulse mode: a whole pulse counts when it ends
        self.state[number - 1] = 1.0 if on else 0.0
        self.publish()

    def publish(self, **extra: float) -> None:
        self.snapshot.publish({"di_state": self.state, "di_activations": self.activations, "di_count": self.counts,
                               **extra})

    def close(self) -> None:
        self.snapshot.close()
        self.snapshot.unlink()
