"""The queries behind the asset checks (embed_assets.lib.quality)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
from psycopg import sql

from embed_assets.lib.store.base import Space, StoreBase, _vectors
from embed_assets.lib.store.repositories import NAME_PATTERN


class CheckQueries(StoreBase):
    # The queries behind the asset checks (embed_assets.lib.quality). Each looks at the rows whose
    # row_time is in [start, end) and returns, per kind of problem found, (count, up to `limit`
    # example ids, the months (UTC) holding such rows), so that a check over a range of partitions
    # names the bad ones. Kinds with no row are absent.
    def _violations(
        self, bad_rows: str, params: Mapping, limit: int, **identifiers
    ) -> dict[str, tuple[int, list[str], list[datetime]]]:
        """`bad_rows` selects (kind, id, row_time) of the rows that break a rule (row_time NULL
        for rows of no month)."""
        rows = self.execute(
            self._sql(
                "SELECT kind, count(*), (array_agg(id ORDER BY id))[1:%(limit)s], "
                "array_remove(array_agg(DISTINCT date_trunc('month', row_time, 'UTC')), NULL) "
                "FROM (" + bad_rows + ") bad "
                "GROUP BY kind",
                **identifiers,
            ),
            {**params, "limit": limit},
        ).fetchall()
        return {kind: (count, list(ids), sorted(months)) for kind, count, ids, months in rows}

    def check_rejected_rows(self, start: datetime, end: datetime, limit: int) -> dict:
        return self._violations(
            "SELECT 'rejected' AS kind, full_name || ': ' || reason AS id, row_time FROM "
            "{rejected} "
            "WHERE row_time >= %(start)s AND row_time < %(end)s",
            {"start": start, "end": end},
            limit,
            rejected=self.t("rejected_rows"),
        )

    def check_repository_fields(self, start: datetime, end: datetime, limit: int) -> dict:
        """Stored repositories lacking what every row must have: an `owner/name` and a URL."""
        return self._violations(
            "SELECT CASE WHEN full_name !~ %(pattern)s THEN 'full_name' ELSE 'url' END AS kind, "
            "full_name AS id, row_time FROM {repositories} "
            "WHERE row_time >= %(start)s AND row_time < %(end)s "
            "AND (full_name !~ %(pattern)s OR coalesce(btrim(url), '') !~ '^https?://')",
            {"start": start, "end": end, "pattern": NAME_PATTERN},
            limit,
            repositories=self.t("repositories"),
        )

    def check_duplicate_names(self, start: datetime, end: datetime, limit: int) -> dict:
        """Repositories whose name differs from another's only by case (GitHub names are
        case-insensitive: the same repository twice)."""
        return self._violations(
            "SELECT 'duplicate' AS kind, r.full_name AS id, r.row_time FROM {repositories} r "
            "JOIN (SELECT lower(full_name) AS name FROM {repositories} GROUP BY 1 "
            "      HAVING count(*) > 1) d ON d.name = lower(r.full_name) "
            "WHERE r.row_time >= %(start)s AND r.row_time < %(end)s",
            {"start": start, "end": end},
            limit,
            repositories=self.t("repositories"),
        )

    def check_chunk_texts(self, start: datetime, end: datetime, max_chars: int, limit: int) -> dict:
        """Chunks with no visible text ('empty') or longer than max_chars ('oversized')."""
        return self._violations(
            "SELECT CASE WHEN btrim(text, E' \\t\\r\\n') = '' THEN 'empty' ELSE 'oversized' END "
            "AS kind, chunk_id || ': ' || length(text) || ' chars' AS id, row_time FROM {chunks} "
            "WHERE row_time >= %(start)s AND row_time < %(end)s "
            "AND (btrim(text, E' \\t\\r\\n') = '' OR length(text) > %(max_chars)s)",
            {"start": start, "end": end, "max_chars": max_chars},
            limit,
            chunks=self.t("chunks"),
        )

    def check_unchunked_repositories(self, start: datetime, end: datetime, limit: int) -> dict:
        """Rows (of any source kind) of the window with no chunk."""
        return self._violations(
            "SELECT 'unchunked' AS kind, {key} AS id, r.row_time FROM {rows} r "
            "WHERE r.row_time >= %(start)s AND r.row_time < %(end)s "
            "AND NOT EXISTS (SELECT 1 FROM {chunks} c WHERE c.key = {key})",
            {"start": start, "end": end},
            limit,
            rows=self.rows,
            key=sql.Identifier("r", self.rows_key),
            chunks=self.t("chunks"),
        )

    def check_stored_vectors(
        self,
        space: Space,
        start: datetime,
        end: datetime,
        zero: float,
        low: float,
        high: float,
        limit: int,
    ) -> dict:
        """One scan of the space's vectors: 'dimensions' (not the space's), 'not_finite' (NaN or
        inf norm), 'zero' (norm <= zero), 'norm' (outside [low, high])."""
        return self._violations(
            "SELECT CASE WHEN dims <> %(dims)s THEN 'dimensions' "
            "  WHEN NOT (norm < 'Infinity'::float8) THEN 'not_finite' "
            "  WHEN norm <= %(zero)s THEN 'zero' ELSE 'norm' END AS kind, "
            "  chunk_id || CASE WHEN dims <> %(dims)s THEN ': ' || dims || ' dimensions' "
            "  ELSE ': norm ' || round(norm::numeric, 6) END AS id, row_time "
            "FROM (SELECT chunk_id, row_time, vector_dims(embedding) AS dims, "
            "      vector_norm(embedding) AS norm FROM {table} "
            "      WHERE row_time >= %(start)s AND row_time < %(end)s) v "
            "WHERE dims <> %(dims)s OR NOT (norm < 'Infinity'::float8) OR norm <= %(zero)s "
            "OR norm < %(low)s OR norm > %(high)s",
            {
                "start": start,
                "end": end,
                "dims": space.dimensions,
                "zero": zero,
                "low": low,
                "high": high,
            },
            limit,
            table=self.t(space.table),
        )

    def check_refused_vectors(
        self, space: Space, start: datetime, end: datetime, limit: int
    ) -> dict:
        """Current chunks whose vector was refused before it was stored, by reason."""
        return self._violations(
            "SELECT CASE WHEN f.reason LIKE '%%not finite%%' THEN 'not_finite' "
            "  WHEN f.reason LIKE '%%zero vector%%' THEN 'zero' ELSE 'other' END AS kind, "
            "  f.chunk_id || ': ' || f.reason AS id, c.row_time "
            "FROM {failures} f JOIN {chunks} c ON c.chunk_id = f.chunk_id "
            "AND c.content_hash = f.content_hash WHERE f.space = %(space)s "
            "AND c.row_time >= %(start)s AND c.row_time < %(end)s",
            {"start": start, "end": end, "space": space.name},
            limit,
            failures=self.t("embedding_failures"),
            chunks=self.t("chunks"),
        )

    def check_coverage(self, space: Space, start: datetime, end: datetime, limit: int) -> dict:
        """Chunks with no vector of their current text: 'refused' (validation refused it and
        recorded why) or 'missing' (nothing explains it)."""
        return self._violations(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM {failures} f WHERE f.space = %(space)s "
            "  AND f.chunk_id = c.chunk_id AND f.content_hash = c.content_hash) "
            "  THEN 'refused' ELSE 'missing' END AS kind, c.chunk_id AS id, c.row_time "
            "FROM {chunks} c WHERE c.row_time >= %(start)s AND c.row_time < %(end)s "
            "AND NOT EXISTS (SELECT 1 FROM {table} e WHERE e.chunk_id = c.chunk_id "
            "  AND e.content_hash = c.content_hash)",
            {"start": start, "end": end, "space": space.name},
            limit,
            failures=self.t("embedding_failures"),
            chunks=self.t("chunks"),
            table=self.t(space.table),
        )

    def check_orphan_vectors(
        self, space: Space, start: datetime, end: datetime, limit: int
    ) -> dict:
        """Vectors whose chunk no longer exists."""
        return self._violations(
            "SELECT 'orphan' AS kind, e.chunk_id AS id, e.row_time FROM {table} e "
            "WHERE e.row_time >= %(start)s AND e.row_time < %(end)s "
            "AND NOT EXISTS (SELECT 1 FROM {chunks} c WHERE c.chunk_id = e.chunk_id)",
            {"start": start, "end": end},
            limit,
            table=self.t(space.table),
            chunks=self.t("chunks"),
        )

    # The cluster index's checks look at the whole active space (the asset is not partitioned);
    # row_time, where there is one, is the repository's, to name the months holding bad rows.
    def check_cluster_assignment(self, space: Space, limit: int) -> dict:
        """Repositories with a first-chunk vector in the space that an operator did not remove
        and that are not in a cluster: 'unassigned' (no member row, or one with no cluster),
        'unknown_cluster' (their cluster does not exist) or 'stale' (assigned with a vector that
        has since changed)."""
        return self._violations(
            "SELECT CASE WHEN m.cluster_id IS NULL THEN 'unassigned' "
            "  WHEN k.cluster_id IS NULL THEN 'unknown_cluster' ELSE 'stale' END AS kind, "
            "  c.key AS id, c.row_time "
            "FROM {table} e JOIN {chunks} c USING (chunk_id) "
            "LEFT JOIN {members} m ON m.space = %(space)s AND m.key = c.key "
            "LEFT JOIN {clusters} k ON k.space = m.space AND k.cluster_id = m.cluster_id "
            "WHERE c.position = 0 AND NOT coalesce(m.removed, false) "
            "AND (m.cluster_id IS NULL OR k.cluster_id IS NULL OR m.content_hash <> "
            "e.content_hash)",
            {"space": space.name},
            limit,
            table=self.t(space.table),
            chunks=self.t("chunks"),
            members=self.t("cluster_members"),
            clusters=self.t("clusters"),
        )

    def check_cluster_members(self, space: Space, limit: int) -> dict:
        """Clusters that are 'empty' (size 0 or no member) or whose recorded size is not their
        member count ('size_mismatch')."""
        return self._violations(
            "SELECT CASE WHEN k.size <= 0 OR coalesce(n.members, 0) = 0 THEN 'empty' "
            "  ELSE 'size_mismatch' END AS kind, 'cluster ' || k.cluster_id || ': size ' || k.size "
            "  || ', ' || coalesce(n.members, 0) || ' members' AS id, NULL::timestamptz AS "
            "row_time "
            "FROM {clusters} k LEFT JOIN (SELECT cluster_id, count(*) AS members FROM {members} "
            "  WHERE space = %(space)s AND NOT removed GROUP BY cluster_id) n USING (cluster_id) "
            "WHERE k.space = %(space)s AND (k.size <= 0 OR coalesce(n.members, 0) <> k.size)",
            {"space": space.name},
            limit,
            clusters=self.t("clusters"),
            members=self.t("cluster_members"),
        )

    def cluster_size_figures(self, space: Space, largest: int) -> dict:
        """Members (the clusters' sizes summed), clusters, singletons, and the `largest` clusters
        as (cluster_id, size, label), largest first."""
        members, clusters, singletons = self.execute(
            self._sql(
                "SELECT coalesce(sum(size), 0), count(*), count(*) FILTER (WHERE size = 1) "
                "FROM {clusters} WHERE space = %s",
                clusters=self.t("clusters"),
            ),
            (space.name,),
        ).fetchone()
        top = self.execute(
            self._sql(
                "SELECT cluster_id, size, label FROM {clusters} WHERE space = %s "
                "ORDER BY size DESC, cluster_id LIMIT %s",
                clusters=self.t("clusters"),
            ),
            (space.name, largest),
        ).fetchall()
        return {
            "members": int(members),
            "clusters": clusters,
            "singletons": singletons,
            "largest": [tuple(row) for row in top],
        }

    def sample_vectors(self, space: Space, n: int) -> list[tuple[str, str, np.ndarray]]:
        """(chunk_id, key, vector) of n chunks picked by a hash of their id: the same
        sample every time for the same vectors, spread over the whole space."""
        rows = self.execute(
            self._sql(
                "SELECT e.chunk_id, c.key, vector_send(e.embedding) FROM (SELECT chunk_id, "
                "embedding "
                "  FROM {table} ORDER BY hashtext(chunk_id), chunk_id LIMIT %s) e "
                "JOIN {chunks} c USING (chunk_id) ORDER BY hashtext(e.chunk_id), e.chunk_id",
                table=self.t(space.table),
                chunks=self.t("chunks"),
            ),
            (n,),
            binary=True,
        ).fetchall()
        vectors = _vectors([row[2] for row in rows], space.dimensions)
        return [
            (chunk_id, name, vector)
            for (chunk_id, name, _), vector in zip(rows, vectors, strict=True)
        ]
