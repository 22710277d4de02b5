"""What the panel shows now, to tell whether a refresh would draw the same picture again.

A screen is drawn from its name, the mode, the clock and the points it reads from the measurement snapshot
(and from what does not change while the display service runs: labels, nominal values, nameplate, alarm
names). Drawing is a function of what it reads: when the screen, mode and clock are the same and every point
the last drawing read has the same value (NaN equal to NaN), drawing again would read the same points, take
the same branches and make the same picture, so it is not drawn. Points the screen does not read (energy on
the harmonics screen) change nothing.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Hashable

import numpy as np

_MISSING = object()


class Reads(Mapping[str, Any]):
    """The snapshot's values as a screen sees them, keeping each point it reads and the value it got."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.source = values
        self.read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            value = self.source[name]
        except KeyError:
            self.read[name] = _MISSING
            raise
        self.read[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.source)

    def __len__(self) -> int:
        return len(self.source)


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    return bool(a == b) or (a != a and b != b)      # NaN shows as NaN ("----") both times


class Shown:
    """The last picture drawn: its key (screen, mode, clock) and the points it read."""

    def __init__(self) -> None:
        self.key: Hashable | None = None
        self.read: dict[str, Any] = {}

    def recorder(self, values: Mapping[str, Any]) -> Reads:
        return Reads(values)

    def changed(self, key: Hashable, values: Mapping[str, Any]) -> bool:
        if key != self.key:
            return True
        return not all(_same(values.get(name, _MISSING), value) for name, value in self.read.items())

    def drawn(self, key: Hashable, reads: Reads) -> None:
        self.key, self.read = key, dict(reads.read)
