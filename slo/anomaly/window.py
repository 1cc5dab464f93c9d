"""A bounded trailing window kept sorted, for O(log n) search and O(1) median per point."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable


class SortedWindow:
    """The last ``size`` values, both in arrival order (``ring``) and sorted (``sorted``)."""

    __slots__ = ("_pos", "ring", "size", "sorted")

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self.size = size
        self.ring: list[float] = []
        self.sorted: list[float] = []
        self._pos = 0
        for value in values:
            self.push(value)

    def __len__(self) -> int:
        return len(self.ring)

    def push(self, value: float) -> None:
        """Append a value, dropping the oldest once the window is full."""
        ring = self.ring
        srt = self.sorted
        if len(ring) < self.size:
            ring.append(value)
            insort(srt, value)
            return
        pos = self._pos
        old = ring[pos]
        ring[pos] = value
        pos += 1
        self._pos = 0 if pos == self.size else pos
        i = bisect_left(srt, old)
        # Replace in place when the new value sorts into the old one's slot (common for
        # stable series): one write instead of two memmoves.
        if (i == 0 or srt[i - 1] <= value) and (i + 1 == len(srt) or value <= srt[i + 1]):
            srt[i] = value
            return
        del srt[i]
        insort(srt, value)

    def median(self) -> float:
        """Median of the values (mean of the two middle ones for an even count)."""
        srt = self.sorted
        n = len(srt)
        h = n >> 1
        return srt[h] if n & 1 else (srt[h - 1] + srt[h]) * 0.5

    def chronological(self) -> list[float]:
        """The values, oldest first."""
        return self.ring[self._pos :] + self.ring[: self._pos]

    def shift(self, delta: float, keep_newest: int) -> None:
        """Add ``delta`` to every value except the ``keep_newest`` most recent ones."""
        values = self.chronological()
        cut = max(len(values) - keep_newest, 0)
        shifted = [v + delta for v in values[:cut]] + values[cut:]
        self.ring = shifted
        self.sorted = sorted(shifted)
        self._pos = 0  # chronological order: the oldest is next to go
