"""A thread-safe LRU map bounded in bytes: the in-process prediction cache, seen models and graphs use it.

Keys and values come from clients, so an entry cap alone bounds nothing (one
graph can be 1,000× another): each entry is weighed by ``sizeof`` and the
least recently used go once the total passes ``max_bytes``.  An entry larger
than the whole budget is not kept at all.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

ENTRY_OVERHEAD_BYTES = 200  # dict slot, key object, bookkeeping


class LRU(Generic[T]):
    def __init__(self, max_bytes: int, sizeof: Callable[[T], int] = sys.getsizeof) -> None:
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> T | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: str, value: T) -> None:
        size = self._sizeof(value) + len(key) + ENTRY_OVERHEAD_BYTES
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def __len__(self) -> int:
        return len(self._items)
