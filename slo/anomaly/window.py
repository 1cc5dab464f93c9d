"""A bounded trailing window kept sorted, for O(log n) search and O(1) median per point."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable


class SortedWindow:
    """The last ``size`` values, both in arrival order (``ring``) and sorted (``sorted``)."""

    __slots__ = ("ring", "size", "sorted")

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self.size = size
        self.ring: deque[float] = deque(maxlen=size)
        self.sorted: list[float] = []
        for value in values:
            self.push(value)

    def __len__(self) -> int:
        return len(self.ring)

    def push(self, value: float) -> None:
        """Append a value, dropping the oldest once the window is full."""
        ring = self.ring
        srt = self.sorted
        if len(ring) == self.size:
            old = ring[0]
            ring.append(value)  # the oldest leaves
            if value == old and value:  # the same number (a zero may differ in its sign)
                return
            i = bisect_left(srt, old)
            # Replace in place when the new value sorts into the old one's slot (common
            # for stable series): one write instead of two memmoves.
            if (i == 0 or srt[i - 1] <= value) and (i + 1 == len(srt) or value <= srt[i + 1]):
                srt[i] = value
                return
            del srt[i]
        else:
            ring.append(value)
        insort(srt, value)

    def median(self) -> float:
        """Median of the values (mean of the two middle ones for an even count)."""
        srt = self.sorted
        n = len(srt)
        h = n >> 1
        return srt[h] if n & 1 else (srt[h - 1] + srt[h]) * 0.5

    def chronological(self) -> list[float]:
        """The values, oldest first."""
        return list(self.ring)

    def shift(self, delta: float, keep_newest: int) -> None:
        """Add ``delta`` to every value except the ``keep_newest`` most recent ones."""
        ring = self.ring
        for i in range(max(len(ring) - keep_newest, 0)):
            ring[i] += delta
        self.sorted = sorted(ring)
