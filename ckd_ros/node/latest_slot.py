"""Latest-wins hand-over from the executor thread to the inference worker.

One pending pair at most: a new pair replaces an unprocessed one (counted as dropped), so the
worker always starts on the newest pair and latency cannot grow with the input rate. Commands
(set/clear target) queue separately and always run before the next pair.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Optional, Tuple


class LatestSlot:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._commands: collections.deque = collections.deque()
        self._closed = False
        self.dropped = 0  # pairs replaced before the worker took them

    def put(self, item: Any) -> bool:
        """Offer a pair; returns True when it replaced a pending one."""
        with self._cond:
            if self._closed:
                return False
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._cond.notify()
            return replaced

    def put_command(self, command: Any) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._commands.append(command)
            self._cond.notify()
            return True

    def take(self, timeout: Optional[float] = None) -> Tuple[str, Any]:
        """('command', c) before ('pair', p); ('timeout', None) or ('closed', None) otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._commands or self._item is not None,
                                       timeout):
                return "timeout", None
            if self._closed:
                return "closed", None
            if self._commands:
                return "command", self._commands.popleft()
            item, self._item = self._item, None
            return "pair", item

    def clear(self) -> None:
        """Forget the pending pair (stream reset); commands stay."""
        with self._cond:
            self._item = None

    def close(self) -> list:
        """Wake the worker for good; returns commands that will never run (so callers can fail them)."""
        with self._cond:
            self._closed = True
            pending = list(self._commands)
            self._commands.clear()
            self._item = None
            self._cond.notify_all()
            return pending

    @property
    def closed(self) -> bool:
        return self._closed
