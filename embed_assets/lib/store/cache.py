"""The embedding cache shared by every run and process: (space, sha256 of text) → vector."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from embed_assets.lib.store.base import Space, StoreBase, _vectors


class CacheQueries(StoreBase):
    def cache_get(self, space: Space, content_hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors of these texts. Entries found are marked used, at most once a day, so
        that a sync of cached texts does not rewrite every cache row."""
        rows = self.execute(self._sql(
            "SELECT content_hash, vector_send(embedding), used_at < now() - interval '1 day' "
            "FROM {cache} WHERE model = %(model)s AND dimensions = %(dims)s "
            "AND content_hash IN (SELECT unnest(%(h)b::text[]))", cache=self.t("embedding_cache")),
            {"model": space.model, "dims": space.dimensions, "h": list(content_hashes)},
            binary=True).fetchall()
        stale = [content_hash for content_hash, _, old in rows if old]
        if stale:
            self.execute(self._sql(
                "UPDATE {cache} SET used_at = now() WHERE model = %(model)s "
                "AND dimensions = %(dims)s AND content_hash IN (SELECT unnest(%(h)b::text[]))",
                cache=self.t("embedding_cache")),
                {"model": space.model, "dims": space.dimensions, "h": stale})
        return dict(zip((row[0] for row in rows), _vectors([row[1] for row in rows],
                                                           space.dimensions)))

    def cache_put(self, space: Space, vectors: Mapping[str, np.ndarray]) -> None:
        with self.transaction():
            self.execute("CREATE TEMP TABLE _stage_cache (content_hash text, embedding vector) "
                         "ON COMMIT DROP")
            with self.conn.cursor().copy("COPY _stage_cache FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "vector"])
                for row in vectors.items():
                    copy.write_row(row)
            self.execute(self._sql(
                "INSERT INTO {cache} (model, dimensions, content_hash, embedding) "
                "SELECT %s, %s, content_hash, embedding FROM _stage_cache "
                "ON CONFLICT DO NOTHING", cache=self.t("embedding_cache")),
                (space.model, space.dimensions))

    def cache_count(self, hits: int, misses: int) -> None:
        self.execute(self._sql(
            "UPDATE {counters} SET hits = hits + %s, misses = misses + %s",
            counters=self.t("cache_counters")), (hits, misses))

    def cache_evict(self, max_entries: int, max_age_days: float | None) -> int:
        """Drop entries unused for longer than max_age_days, then the least recently used ones
        beyond max_entries."""
        cache = self.t("embedding_cache")
        evicted = 0
        if max_age_days:
            evicted += self.execute(self._sql(
                "DELETE FROM {cache} WHERE used_at < now() - make_interval(secs => %s)",
                cache=cache), (max_age_days * 86400,)).rowcount
        excess = self.execute(self._sql("SELECT count(*) FROM {cache}", cache=cache)).fetchone()[0] \
            - max_entries
        if excess > 0:
            evicted += self.execute(self._sql(
                "DELETE FROM {cache} WHERE ctid IN "
                "(SELECT ctid FROM {cache} ORDER BY used_at, content_hash LIMIT %s)",
                cache=cache), (excess,)).rowcount
        return evicted

    def cache_stats(self) -> dict:
        entries, hits, misses = self.execute(self._sql(
            "SELECT (SELECT count(*) FROM {cache}), hits, misses FROM {counters}",
            cache=self.t("embedding_cache"), counters=self.t("cache_counters"))).fetchone()
        asked = hits + misses
        return {"entries": entries, "hits": hits, "misses": misses,
                "hit_rate": round(hits / asked, 4) if asked else 0.0}

    def cache_clear(self) -> int:
        """Empty the cache and its counters; returns the entries removed."""
        with self.transaction():
            removed = self.execute(self._sql("DELETE FROM {cache}",
                                             cache=self.t("embedding_cache"))).rowcount
            self.execute(self._sql("UPDATE {counters} SET hits = 0, misses = 0",
                                   counters=self.t("cache_counters")))
        return removed
