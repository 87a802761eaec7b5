"""Attribution maps already computed, kept in memory per process, bounded by count and bytes.

    cache = MapCache(max_entries=256, max_bytes=32 * MB)
    cache.get(key) or cache.put(key, result, nbytes)

A key names everything the map depends on (run, method, target, the method's parameters),
and a run never changes, so an entry is never stale; it only leaves when newer ones need
the room (least recently used first). A run that has expired is refused by the router
before the cache is asked. Each worker keeps its own cache: a miss only costs the
computation again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import Depends, Request

MB = 1024 * 1024


class MapCache:
    def __init__(self, max_entries: int = 256, max_bytes: int = 32 * MB):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        """Keep value (about nbytes large); one larger than the whole budget is not kept."""
        if nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self.bytes -= self._entries.pop(key)[1]
            self._entries[key] = (value, nbytes)
            self.bytes += nbytes
            while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self.bytes -= size


async def get_map_cache(request: Request) -> MapCache:
    return request.app.state.map_cache


MapCacheDep = Annotated[MapCache, Depends(get_map_cache)]
