"""The replay queue: finished rollouts between the inference actors and the learner.

Bounded (a producer's `put` waits while it is full: back-pressure), versioned (each item
carries the weight version that produced it), and fresh: items more than
`max_staleness` versions older than the learner's are dropped and counted. On Ray the
items are stored rollouts (`engines.rollout.StoredRollout`: summaries and object
references, `ReplayQueueActor`), so rollouts go from the inference actor that made them
to the learner that reads them, never through the driver.

Items are taken once (`get`), or read as they come (`read`): every rank of the learner
reads an iteration's items, in the same order, each from where it is, while the rest are
still being played.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import ray

from .metrics import QueueMetrics


@dataclass
class QueueStats:
    size: int
    """Items waiting now."""
    put: int
    """Items accepted so far."""
    taken: int
    """Items handed to the learner so far."""
    dropped_stale: int
    """Items dropped for being more than `max_staleness` versions old."""


class ReplayQueue:
    """A bounded FIFO of (weight version, item); its methods are coroutines."""

    def __init__(self, capacity: int, max_staleness: int) -> None:
        if capacity < 1 or max_staleness < 0:
            raise ValueError("a replay queue needs capacity >= 1 and max_staleness >= 0")
        self.capacity = capacity
        self.max_staleness = max_staleness
        self._items: deque[tuple[int, object]] = deque()
        self._changed = asyncio.Condition()
        self._learner_version = 0
        self._put = self._taken = self._dropped = 0
        self._read: dict[int, list] = {}
        """Per iteration being read, its items taken so far, in order."""
        self._metrics = QueueMetrics()

    async def put(self, version: int, items: list) -> None:
        """Add items made with weights `version`, waiting for room as needed."""
        for item in items:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self._items) < self.capacity)
                self._items.append((version, item))
                self._put += 1
                self._metrics.depth.set(len(self._items))
                self._changed.notify_all()

    async def get(self, count: int, learner_version: int) -> list:
        """Exactly `count` items, oldest first, none staler than `max_staleness` versions
        behind `learner_version`; waits until there are enough."""
        if count > self.capacity:
            raise ValueError(f"cannot take {count} items from a queue of capacity {self.capacity}")
        async with self._changed:
            self._learner_version = max(self._learner_version, learner_version)
            self._drop_stale()
            await self._changed.wait_for(lambda: self._drop_stale() or len(self._items) >= count)
            taken = [self._items.popleft()[1] for _ in range(count)]
            self._taken += count
            self._metrics.depth.set(len(self._items))
            self._changed.notify_all()
            return taken

    async def read(self, iteration: int, start: int, count: int, learner_version: int) -> list:
        """Items `start`.. of the `count` taken for `iteration` (oldest first, none
        staler than `max_staleness` versions behind `learner_version`): at least one,
        and all taken so far; waits until there is one. Every reader of `iteration`
        reads the same items in the same order."""
        if not 0 <= start < count:
            raise ValueError(f"cannot read items from {start} of {count}")
        async with self._changed:
            self._learner_version = max(self._learner_version, learner_version)
            taken = self._read.setdefault(iteration, [])

            def more() -> bool:
                self._drop_stale()
                moved = min(count - len(taken), len(self._items))
                taken.extend(self._items.popleft()[1] for _ in range(moved))
                if moved:
                    self._taken += moved
                    self._metrics.depth.set(len(self._items))
                    self._changed.notify_all()  # room for producers
                return len(taken) > start

            await self._changed.wait_for(more)
            return taken[start:]

    async def set_learner_version(self, version: int) -> None:
        """Tell the queue the learner's version: stale items go at once, making room, and
        what was read for iterations up to `version` is forgotten."""
        async with self._changed:
            self._learner_version = max(self._learner_version, version)
            self._drop_stale()
            for iteration in [i for i in self._read if i <= version]:
                del self._read[iteration]
            self._changed.notify_all()

    async def reset(self, learner_version: int) -> int:
        """Drop every item and what was read, and set the learner's version back to
        `learner_version` (a learner relaunched from a checkpoint plays its iterations
        again); how many items were dropped. A producer waiting for room goes on."""
        async with self._changed:
            dropped = len(self._items)
            self._items.clear()
            self._read.clear()
            self._learner_version = learner_version
            self._metrics.depth.set(0)
            self._changed.notify_all()
            return dropped

    def stats(self) -> QueueStats:
        return QueueStats(len(self._items), self._put, self._taken, self._dropped)

    def _drop_stale(self) -> bool:
        """Drop items too old for the learner; False, so it can sit in a wait predicate."""
        oldest_allowed = self._learner_version - self.max_staleness
        kept = deque(entry for entry in self._items if entry[0] >= oldest_allowed)
        if len(kept) != len(self._items):
            self._dropped += len(self._items) - len(kept)
            self._metrics.dropped.inc(float(len(self._items) - len(kept)))
            self._metrics.depth.set(len(kept))
            self._items = kept
            self._changed.notify_all()
        return False


ReplayQueueActor = ray.remote(ReplayQueue)
"""The queue in its own (async) Ray actor; put stored rollouts in it, not rollouts."""
