"""Bounded frame queues with a drop policy: the only place a pipeline drops frames."""

from __future__ import annotations

import threading
from collections import deque
from typing import Literal

from edgedeploy.errors import UserError
from edgedeploy.pipelines.stage import Frame

DropPolicy = Literal["latest", "block"]
DROP_POLICIES = ("latest", "block")


class FrameQueue:
    """A bounded FIFO. ``latest``: a put into a full queue pushes the oldest item out (counted in
    ``dropped``); ``block``: a put waits for room. The end marker is always accepted."""

    def __init__(self, maxsize: int, policy: DropPolicy = "block"):
        if maxsize < 1:
            raise UserError(f"queue size must be at least 1, got {maxsize}")
        if policy not in DROP_POLICIES:
            raise UserError(f"drop policy {policy!r} is not known; expected one of {DROP_POLICIES}")
        self.maxsize, self.policy = maxsize, policy
        self.dropped = 0
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Frame) -> Frame | None:
        """Add ``item``; return the frame pushed out to make room, if any."""
        with self._cond:
            pushed_out = None
            if not item.final:
                while len(self._items) >= self.maxsize and not self._closed:
                    if self.policy == "latest":
                        pushed_out = self._items.popleft()
                        self.dropped += 1
                        break
                    self._cond.wait(0.1)
            self._items.append(item)
            self._cond.notify_all()
            return pushed_out

    def get(self, timeout: float = 0.1) -> Frame | None:
        """The oldest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake and release every waiter (the pipeline is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
