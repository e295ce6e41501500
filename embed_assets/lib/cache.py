"""The embedding cache: content-addressed by (model, dimensions, sha256 of the text).

Two levels: an in-process LRU in front of a Postgres table that every run and every process
shares. The LRU holds the vectors this process computed; hits from the table are staged for the
run's write inside the server and never come to the client. A vector is written to the table as
soon as the provider returns it, so a run that fails
later does not pay for it again. The table is bounded by a number of entries (least recently used
go first) and optionally by age.

A provider that computes a vector faster than the cache reads one back (the offline provider,
`cache_vectors = False`) does not use the cache at all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from embed_assets.lib.store import Space, Store


class LRU:
    """A thread-safe least-recently-used map with a maximum size."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# One per process: runs executed in the same process (the CLI's sync, a test session) share it.
MEMORY = LRU(max_entries=100_000)


class EmbeddingCache:
    def __init__(
        self,
        store: Store,
        space: Space,
        *,
        max_entries: int,
        max_age_days: float | None = None,
        memory: LRU = MEMORY,
        used: bool = True,
    ):
        """`used` False (a provider whose vectors are not worth caching): nothing is looked up,
        stored or counted."""
        self.store = store
        self.used = used
        self.space = space
        self.max_entries = max_entries
        self.max_age_days = max_age_days
        self.memory = memory
        self.scope = (store.conn.info.dsn, store.schema)
        self.hits = 0
        self.misses = 0

    def _key(self, content_hash: str) -> tuple:
        # The memory sits in front of one database's table: two databases (or schemas) in one
        # process must not answer for each other.
        return (self.scope, self.space.model, self.space.dimensions, content_hash)

    def stage_hits(self, chunks: Sequence[tuple[str, str, datetime]]) -> set[str]:
        """Stage the cached vectors of these pending chunks (chunk_id, content_hash, row_time)
        for the run's write: from the in-process LRU first, then from the table, inside the
        server (so table hits do not enter the LRU). Returns the hashes found; each distinct hash
        asked for is a hit or a miss."""
        if not self.used or not chunks:
            return set()
        wanted = {content_hash for _, content_hash, _ in chunks}
        memory = {h: v for h in wanted if (v := self.memory.get(self._key(h))) is not None}
        if memory:
            self.store.stage_vectors(
                (chunk_id, h, row_time, memory[h])
                for chunk_id, h, row_time in chunks
                if h in memory
            )
        rest = [chunk for chunk in chunks if chunk[1] not in memory]
        found = set(memory) | (self.store.stage_cached_vectors(self.space, rest) if rest else set())
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors or not self.used:
            return
        self.store.cache_put(self.space, vectors)
        for content_hash, vector in vectors.items():
            self.memory.put(self._key(content_hash), vector)

    def finish(self) -> int:
        """Record this run's hits and misses and apply the bounds; returns entries evicted."""
        if not self.used:
            return 0
        self.store.cache_count(self.hits, self.misses)
        return self.store.cache_evict(self.max_entries, self.max_age_days)
