"""The embedding cache shared by every run and process: (space, sha256 of text) → vector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from embed_assets.lib.store.base import _PAGE, Space, StoreBase, _page_params


class CacheQueries(StoreBase):
    def stage_cached_vectors(
        self, space: Space, chunks: Sequence[tuple[str, str, datetime]]
    ) -> set[str]:
        """Stage (see `start_vector_stage`), inside the server, the cached vectors of these
        pending chunks (chunk_id, content_hash, row_time); return the hashes found. Entries found
        are marked used, at most once a day, so that a sync of cached texts does not rewrite
        every cache row. The vectors never travel to the client and back: that round trip was
        most of a cached sync's embeddings step."""
        # A key lookup per chunk (LATERAL ... LIMIT 1): a join hashed the whole cache to disk.
        return {
            row[0]
            for row in self.execute(
                self._sql(
                    _PAGE
                    + ", touched AS (UPDATE {cache} SET used_at = now() WHERE model = %(model)s "
                    "  AND dimensions = %(dims)s AND used_at < now() - interval '1 day' "
                    "  AND content_hash IN (SELECT content_hash FROM page)) "
                    "INSERT INTO _stage_vectors (chunk_id, content_hash, row_time, embedding) "
                    "SELECT p.chunk_id, p.content_hash, p.row_time, k.embedding FROM page p "
                    "CROSS JOIN LATERAL (SELECT embedding FROM {cache} k WHERE k.model = %(model)s "
                    "  AND k.dimensions = %(dims)s AND k.content_hash = p.content_hash LIMIT 1) k "
                    "RETURNING content_hash",
                    cache=self.shared("embedding_cache"),
                ),
                {**_page_params(chunks), "model": space.model, "dims": space.dimensions},
            ).fetchall()
        }

    def cache_put(self, space: Space, vectors: Mapping[str, np.ndarray]) -> None:
        with self.transaction():
            self.execute(
                "CREATE TEMP TABLE _stage_cache (content_hash text, embedding vector) "
                "ON COMMIT DROP"
            )
            with self.conn.cursor().copy(
                "COPY _stage_cache FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "vector"])
                for row in vectors.items():
                    copy.write_row(row)
            self.execute(
                self._sql(
                    "INSERT INTO {cache} (model, dimensions, content_hash, embedding) "
                    "SELECT %s, %s, content_hash, embedding FROM _stage_cache "
                    "ON CONFLICT DO NOTHING",
                    cache=self.shared("embedding_cache"),
                ),
                (space.model, space.dimensions),
            )

    def cache_count(self, hits: int, misses: int) -> None:
        self.execute(
            self._sql(
                "UPDATE {counters} SET hits = hits + %s, misses = misses + %s",
                counters=self.shared("cache_counters"),
            ),
            (hits, misses),
        )

    def cache_evict(self, max_entries: int, max_age_days: float | None) -> int:
        """Drop entries unused for longer than max_age_days, then the least recently used ones
        beyond max_entries."""
        cache = self.shared("embedding_cache")
        evicted = 0
        if max_age_days:
            evicted += self.execute(
                self._sql(
                    "DELETE FROM {cache} WHERE used_at < now() - make_interval(secs => %s)",
                    cache=cache,
                ),
                (max_age_days * 86400,),
            ).rowcount
        excess = (
            self.execute(self._sql("SELECT count(*) FROM {cache}", cache=cache)).fetchone()[0]
            - max_entries
        )
        if excess > 0:
            evicted += self.execute(
                self._sql(
                    "DELETE FROM {cache} WHERE ctid IN "
                    "(SELECT ctid FROM {cache} ORDER BY used_at, content_hash LIMIT %s)",
                    cache=cache,
                ),
                (excess,),
            ).rowcount
        return evicted

    def cache_stats(self) -> dict:
        entries, hits, misses = self.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {cache}), hits, misses FROM {counters}",
                cache=self.shared("embedding_cache"),
                counters=self.shared("cache_counters"),
            )
        ).fetchone()
        asked = hits + misses
        return {
            "entries": entries,
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / asked, 4) if asked else 0.0,
        }

    def cache_clear(self) -> int:
        """Empty the cache and its counters; returns the entries removed."""
        with self.transaction():
            removed = self.execute(
                self._sql("DELETE FROM {cache}", cache=self.shared("embedding_cache"))
            ).rowcount
            self.execute(
                self._sql(
                    "UPDATE {counters} SET hits = 0, misses = 0",
                    counters=self.shared("cache_counters"),
                )
            )
        return removed
