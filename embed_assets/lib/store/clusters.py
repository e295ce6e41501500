"""The cluster index of a space: members, clusters, centroids, and the operator's edits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from psycopg.types.json import Jsonb

from embed_assets.lib.store.base import Space, StoreBase, _vectors


class ClusterQueries(StoreBase):
    # Members are repositories, represented by the vector of their first chunk (name,
    # description, language, topics): README chunks would pull a repository towards its prose.
    def cluster_changes(self, space: Space) -> tuple[list[tuple[str, str, np.ndarray]], list[str]]:
        """(key, content_hash, vector) of repositories that are new or whose vector changed
        since they were clustered, and the members whose vector is gone. Members an operator
        removed stay out."""
        changed = self.execute(
            self._sql(
                "SELECT c.key, e.content_hash, vector_send(e.embedding) FROM {table} e "
                "JOIN {chunks} c USING (chunk_id) WHERE c.position = 0 AND NOT EXISTS ("
                "  SELECT 1 FROM {members} m WHERE m.space = %(space)s AND m.key = "
                "c.key "
                "  AND (m.content_hash = e.content_hash OR m.removed)) ORDER BY c.key",
                table=self.t(space.table),
                chunks=self.t("chunks"),
                members=self.t("cluster_members"),
            ),
            {"space": space.name},
            binary=True,
        ).fetchall()
        gone = [
            row[0]
            for row in self.execute(
                self._sql(
                    "SELECT m.key FROM {members} m WHERE m.space = %(space)s AND NOT EXISTS ("
                    "  SELECT 1 FROM {table} e JOIN {chunks} c USING (chunk_id) "
                    "  WHERE c.key = m.key AND c.position = 0)",
                    table=self.t(space.table),
                    chunks=self.t("chunks"),
                    members=self.t("cluster_members"),
                ),
                {"space": space.name},
            ).fetchall()
        ]
        vectors = _vectors([row[2] for row in changed], space.dimensions)
        return [
            (name, content_hash, vector)
            for (name, content_hash, _), vector in zip(changed, vectors, strict=True)
        ], gone

    def cluster_vectors(self, space: Space) -> tuple[list[str], list[str], np.ndarray]:
        """Every repository to cluster (operator removals left out): names, content hashes and
        first-chunk vectors, for a full re-cluster."""
        rows = self.execute(
            self._sql(
                "SELECT c.key, e.content_hash, vector_send(e.embedding) FROM {table} e "
                "JOIN {chunks} c USING (chunk_id) WHERE c.position = 0 AND NOT EXISTS ("
                "  SELECT 1 FROM {members} m WHERE m.space = %s AND m.key = c.key "
                "  AND m.removed) ORDER BY c.key",
                table=self.t(space.table),
                chunks=self.t("chunks"),
                members=self.t("cluster_members"),
            ),
            (space.name,),
            binary=True,
        ).fetchall()
        return (
            [r[0] for r in rows],
            [r[1] for r in rows],
            _vectors([r[2] for r in rows], space.dimensions),
        )

    def cluster_centroids(self, space: Space) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, member vector sums, sizes) of the space's clusters."""
        rows = self.execute(
            self._sql(
                "SELECT cluster_id, vector_send(vector_sum), size FROM {clusters} WHERE space = %s "
                "ORDER BY cluster_id",
                clusters=self.t("clusters"),
            ),
            (space.name,),
            binary=True,
        ).fetchall()
        sums = _vectors([r[1] for r in rows], space.dimensions)
        return (
            np.array([r[0] for r in rows], dtype=np.int64),
            sums,
            np.array([r[2] for r in rows], dtype=np.int64),
        )

    def cluster_meta(self, space: Space) -> dict:
        """next_id, full_at and the baseline figures of the last full clustering."""
        row = self.execute(
            self._sql(
                "SELECT next_id, full_at, baseline FROM {meta} WHERE space = %s",
                meta=self.t("cluster_meta"),
            ),
            (space.name,),
        ).fetchone()
        return dict(zip(("next_id", "full_at", "baseline"), row or (None, None, None), strict=True))

    def cluster_assignments(self, space: Space) -> dict[str, int]:
        """Current cluster of every member an operator did not remove."""
        return dict(
            self.execute(
                self._sql(
                    "SELECT key, cluster_id FROM {members} WHERE space = %s AND NOT removed",
                    members=self.t("cluster_members"),
                ),
                (space.name,),
            ).fetchall()
        )

    def write_cluster_members(
        self,
        space: Space,
        rows: Sequence[tuple[str, str, int]],
        gone: Sequence[str],
        *,
        replace_all: bool,
    ) -> None:
        """Upsert (key, content_hash, cluster_id) and drop the members in `gone`; a full
        re-cluster (`replace_all`) first drops every member an operator did not remove."""
        members = self.t("cluster_members")
        if replace_all:
            self.execute(
                self._sql(
                    "DELETE FROM {members} WHERE space = %s AND NOT removed", members=members
                ),
                (space.name,),
            )
        self.execute(
            self._sql("DELETE FROM {members} WHERE space = %s AND key = ANY(%s)", members=members),
            (space.name, list(gone)),
        )
        self.execute(
            "CREATE TEMP TABLE _stage_members (key text, content_hash text, cluster_id bigint)"
        )
        with self.conn.cursor().copy("COPY _stage_members FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.execute(
            self._sql(
                "INSERT INTO {members} (space, key, content_hash, cluster_id) "
                "SELECT %s, key, content_hash, cluster_id FROM _stage_members "
                "ON CONFLICT (space, key) DO UPDATE SET content_hash = "
                "excluded.content_hash, "
                "cluster_id = excluded.cluster_id",
                members=members,
            ),
            (space.name,),
        )
        self.execute("DROP TABLE _stage_members")

    def cluster_contents(
        self, space: Space, cluster_ids: Sequence[int]
    ) -> list[tuple[int, str, np.ndarray, str]]:
        """(cluster_id, key, vector, text) of every member of these clusters."""
        rows = self.execute(
            self._sql(
                "SELECT m.cluster_id, m.key, vector_send(e.embedding), c.text FROM {members} "
                "m "
                "JOIN {chunks} c ON c.key = m.key AND c.position = 0 "
                "JOIN {table} e USING (chunk_id) "
                "WHERE m.space = %s AND NOT m.removed AND m.cluster_id = ANY(%s) "
                "ORDER BY m.cluster_id, m.key",
                members=self.t("cluster_members"),
                chunks=self.t("chunks"),
                table=self.t(space.table),
            ),
            (space.name, list(cluster_ids)),
            binary=True,
        ).fetchall()
        vectors = _vectors([row[2] for row in rows], space.dimensions)
        return [
            (cid, name, vector, text)
            for (cid, name, _, text), vector in zip(rows, vectors, strict=True)
        ]

    def write_clusters(
        self,
        space: Space,
        clusters: Sequence[dict],
        members: Sequence[tuple],
        dropped: Sequence[int],
    ) -> None:
        """Store computed clusters (cluster_id, size, vector_sum, label, representative,
        mean_similarity) and member figures (key, similarity), and drop
        the clusters in `dropped`."""
        table = self.t("clusters")
        self.execute(
            self._sql(
                "DELETE FROM {clusters} WHERE space = %s AND cluster_id = ANY(%s)", clusters=table
            ),
            (space.name, list(dropped)),
        )
        columns = ("cluster_id", "size", "vector_sum", "label", "representative", "mean_similarity")
        self.execute(
            "CREATE TEMP TABLE _stage_clusters (cluster_id bigint, size integer, "
            "vector_sum vector, label text, representative text, mean_similarity real)"
        )
        with self.conn.cursor().copy(
            "COPY _stage_clusters FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "vector", "text", "text", "float4"])
            for cluster in clusters:
                copy.write_row([cluster[c] for c in columns])
        self.execute(
            self._sql(
                "INSERT INTO {clusters} (space, cluster_id, size, vector_sum, label, "
                "representative, "
                "mean_similarity) SELECT %s, cluster_id, size, vector_sum, label, representative, "
                "mean_similarity FROM _stage_clusters "
                "ON CONFLICT (space, cluster_id) DO UPDATE SET size = excluded.size, "
                "vector_sum = excluded.vector_sum, label = excluded.label, "
                "representative = excluded.representative, "
                "mean_similarity = excluded.mean_similarity, updated_at = now()",
                clusters=table,
            ),
            (space.name,),
        )
        self.execute("DROP TABLE _stage_clusters")
        self.execute("CREATE TEMP TABLE _stage_member_figures (key text, similarity real)")
        with self.conn.cursor().copy("COPY _stage_member_figures FROM STDIN") as copy:
            for row in members:
                copy.write_row(row)
        self.execute(
            self._sql(
                "UPDATE {members} m SET similarity = f.similarity FROM _stage_member_figures f "
                "WHERE m.space = %s AND m.key = f.key",
                members=self.t("cluster_members"),
            ),
            (space.name,),
        )
        self.execute("DROP TABLE _stage_member_figures")

    def write_cluster_meta(self, space: Space, next_id: int, baseline: dict | None) -> None:
        """The next free cluster id and, after a full clustering, its figures as the baseline
        that drift is measured against."""
        meta = self.t("cluster_meta")
        if baseline is None:
            self.execute(
                self._sql(
                    "INSERT INTO {meta} (space, next_id) VALUES (%s, %s) ON CONFLICT (space) "
                    "DO UPDATE SET next_id = greatest({meta}.next_id, excluded.next_id)",
                    meta=meta,
                ),
                (space.name, next_id),
            )
        else:
            self.execute(
                self._sql(
                    "INSERT INTO {meta} (space, next_id, full_at, baseline) VALUES (%s, %s, now(), "
                    "%s) "
                    "ON CONFLICT (space) DO UPDATE SET full_at = now(), baseline = "
                    "excluded.baseline, "
                    "next_id = greatest({meta}.next_id, excluded.next_id)",
                    meta=meta,
                ),
                (space.name, next_id, Jsonb(baseline)),
            )

    def cluster_label_background(
        self, space: Space, exclude: Sequence[int], clusters: int, per_cluster: int
    ) -> dict[int, list[str]]:
        """Texts of a fixed sample of other clusters (their members nearest the centroid), so
        that labels computed for a few clusters still weigh terms against many."""
        rows = self.execute(
            self._sql(
                "SELECT k.cluster_id, c.text FROM ("
                "  SELECT cluster_id FROM {clusters} WHERE space = %(space)s "
                "  AND NOT (cluster_id = ANY(%(exclude)s)) ORDER BY hashtext(cluster_id::text), "
                "  cluster_id LIMIT %(clusters)s) k "
                "CROSS JOIN LATERAL (SELECT m.key FROM {members} m WHERE m.space = %(space)s "
                "  AND m.cluster_id = k.cluster_id AND NOT m.removed "
                "  ORDER BY m.similarity DESC NULLS LAST, m.key LIMIT %(per_cluster)s) m "
                "JOIN {chunks} c ON c.key = m.key AND c.position = 0",
                clusters=self.t("clusters"),
                members=self.t("cluster_members"),
                chunks=self.t("chunks"),
            ),
            {
                "space": space.name,
                "exclude": list(exclude),
                "clusters": clusters,
                "per_cluster": per_cluster,
            },
        ).fetchall()
        texts: dict[int, list[str]] = {}
        for cluster, text in rows:
            texts.setdefault(cluster, []).append(text)
        return texts

    def list_clusters(
        self, space: Space, limit: int, members: int, group: str | None = None
    ) -> list[dict]:
        """Largest first, each with up to `members` member names, most similar first. `group`:
        only the clusters of this group_by value (a cluster's members share one)."""
        in_group = (
            self._sql(
                "AND EXISTS (SELECT 1 FROM {members} g JOIN {rows} r USING (key) "
                "  WHERE g.space = k.space AND g.cluster_id = k.cluster_id "
                "  AND r.group_key = %(group)s)",
                members=self.t("cluster_members"),
                rows=self.t("rows"),
            )
            if group is not None
            else self._sql("")
        )
        rows = self.execute(
            self._sql(
                "SELECT k.cluster_id, k.size, k.label, k.representative, r.note, r.resolved_at, "
                "  ARRAY(SELECT m.key FROM {members} m WHERE m.space = k.space "
                "        AND m.cluster_id = k.cluster_id AND NOT m.removed "
                "        ORDER BY m.similarity DESC NULLS LAST, m.key LIMIT %(members)s) "
                "FROM {clusters} k LEFT JOIN {resolutions} r "
                "  ON r.space = k.space AND r.cluster_id = k.cluster_id "
                "WHERE k.space = %(space)s {in_group} "
                "ORDER BY k.size DESC, k.cluster_id LIMIT %(limit)s",
                clusters=self.t("clusters"),
                members=self.t("cluster_members"),
                resolutions=self.t("cluster_resolutions"),
                in_group=in_group,
            ),
            {"space": space.name, "limit": limit, "members": members, "group": group},
        ).fetchall()
        keys = ("cluster_id", "size", "label", "representative", "note", "resolved_at", "members")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def cluster_members(self, space: Space, cluster_id: int) -> list[dict]:
        """Members, most similar to the centroid first, each with its near-duplicates: the rows
        the duplicate layer paired it with (`duplicate_pairs`, at the near-duplicate bound)."""
        rows = self.execute(
            self._sql(
                "SELECT m.key, m.similarity, ARRAY(SELECT CASE WHEN p.key = m.key THEN p.other "
                "  ELSE p.key END AS other FROM {pairs} p WHERE p.space = m.space "
                "  AND (p.key = m.key OR p.other = m.key) ORDER BY other) FROM {members} m "
                "WHERE m.space = %s AND m.cluster_id = %s AND NOT m.removed "
                "ORDER BY m.similarity DESC NULLS LAST, m.key",
                members=self.t("cluster_members"),
                pairs=self.t("duplicate_pairs"),
            ),
            (space.name, cluster_id),
        ).fetchall()
        return [
            {
                "key": n,
                "similarity": None if s is None else round(float(s), 4),
                "near_duplicate_of": list(d or []),
            }
            for n, s, d in rows
        ]

    def remove_cluster_member(self, space: Space, key: str) -> int | None:
        """Take a repository out of its cluster for good; returns the cluster it left."""
        row = self.execute(
            self._sql(
                "UPDATE {members} m SET removed = true, cluster_id = NULL FROM {members} old "
                "WHERE m.space = %s AND m.key = %s AND old.space = m.space "
                "AND old.key = m.key RETURNING old.cluster_id",
                members=self.t("cluster_members"),
            ),
            (space.name, key),
        ).fetchone()
        return row[0] if row else None

    def resolve_cluster(self, space: Space, cluster_id: int, note: str) -> bool:
        exists = self.execute(
            self._sql(
                "SELECT 1 FROM {clusters} WHERE space = %s AND cluster_id = %s",
                clusters=self.t("clusters"),
            ),
            (space.name, cluster_id),
        ).fetchone()
        if exists:
            self.execute(
                self._sql(
                    "INSERT INTO {resolutions} (space, cluster_id, note) VALUES (%s, %s, %s) "
                    "ON CONFLICT (space, cluster_id) DO UPDATE SET note = excluded.note, "
                    "resolved_at = now()",
                    resolutions=self.t("cluster_resolutions"),
                ),
                (space.name, cluster_id, note),
            )
        return bool(exists)

    # -- groups (a table collection's group_by) -----------------------------------------------
    def row_groups(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The group of each of these rows."""
        return dict(
            self.execute(
                self._sql(
                    "SELECT key, group_key FROM {rows} WHERE key = ANY(%s)", rows=self.t("rows")
                ),
                (list(keys),),
            ).fetchall()
        )

    def cluster_groups(self, space: Space) -> dict[int, str | None]:
        """The group of each cluster: its members' (one, since clusters stay in their group)."""
        return dict(
            self.execute(
                self._sql(
                    "SELECT DISTINCT ON (m.cluster_id) m.cluster_id, r.group_key FROM {members} m "
                    "JOIN {rows} r USING (key) WHERE m.space = %s AND m.cluster_id IS NOT NULL",
                    members=self.t("cluster_members"),
                    rows=self.t("rows"),
                ),
                (space.name,),
            ).fetchall()
        )
