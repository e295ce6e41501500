"""Near-duplicate groups of a space: rows whose first-chunk vectors are within a cosine bound.

`duplicate_rows` records each row whose vector was compared with the others (its content hash, so
that a changed text is compared again) and the group it ended in; `duplicate_pairs` holds the pairs
found at the bound, once each (key < other). Groups are the connected components of the pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from embed_assets.lib.store.base import Space, StoreBase

# Candidates the HNSW index hands back per row: neighbours past the first few are rarely within
# a near-duplicate bound, and other rows' README chunks (position > 0) take some of the places.
_CANDIDATES = 40


class DuplicateQueries(StoreBase):
    def duplicate_changes(self, space: Space) -> tuple[list[str], list[str]]:
        """Rows whose first-chunk vector was never compared or changed since (operator removals
        from the cluster index included: a duplicate is a duplicate), and compared rows whose
        first chunk is gone."""
        changed = self.execute(
            self._sql(
                "SELECT c.key FROM {table} e JOIN {chunks} c USING (chunk_id) "
                "WHERE c.position = 0 AND NOT EXISTS (SELECT 1 FROM {rows} d "
                "  WHERE d.space = %(space)s AND d.key = c.key "
                "  AND d.content_hash = e.content_hash) ORDER BY c.key",
                table=self.t(space.table),
                chunks=self.t("chunks"),
                rows=self.t("duplicate_rows"),
            ),
            {"space": space.name},
        ).fetchall()
        gone = self.execute(
            self._sql(
                "SELECT d.key FROM {rows} d WHERE d.space = %(space)s AND NOT EXISTS ("
                "  SELECT 1 FROM {table} e JOIN {chunks} c USING (chunk_id) "
                "  WHERE c.key = d.key AND c.position = 0) ORDER BY d.key",
                table=self.t(space.table),
                chunks=self.t("chunks"),
                rows=self.t("duplicate_rows"),
            ),
            {"space": space.name},
        ).fetchall()
        return [r[0] for r in changed], [r[0] for r in gone]

    def nearest_duplicates(
        self, space: Space, keys: Sequence[str], bound: float
    ) -> list[tuple[str, str, float]]:
        """(key, other, cosine) for each of these rows and every other row at least `bound`
        similar to it (first chunks).

        With no group_by, the space's HNSW index gives each row its nearest candidates. With one,
        the rows of the same group are compared exactly (through the group's index on `rows`):
        pgvector 0.6.2 has no iterative index scans, so a filtered index scan would hand back the
        nearest rows of every group and keep few or none of this one's."""
        grouped = self.table_spec is not None and self.table_spec.group_by is not None
        first_chunks = self._sql(
            "SELECT c.key, e.embedding FROM {table} e JOIN {chunks} c USING (chunk_id) "
            "WHERE c.position = 0",
            table=self.t(space.table),
            chunks=self.t("chunks"),
        )
        if grouped:
            neighbours = self._sql(
                "SELECT o.key, 1 - cosine_distance(o.embedding, s.embedding) AS similarity "
                "FROM {rows} r JOIN ({first}) o USING (key) "
                "WHERE r.group_key IS NOT DISTINCT FROM s.group_key AND o.key <> s.key",
                rows=self.t("rows"),
                first=first_chunks,
            )
            origin = self._sql(
                "SELECT f.key, f.embedding, r.group_key FROM ({first}) f "
                "JOIN {rows} r USING (key) WHERE f.key = ANY(%(keys)s)",
                rows=self.t("rows"),
                first=first_chunks,
            )
        else:
            if self._ef_search != 2 * _CANDIDATES:
                self.execute(
                    sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(2 * _CANDIDATES))
                )
                self._ef_search = 2 * _CANDIDATES
            # The index orders the vectors alone: a join or a filter inside the LIMIT makes the
            # planner sort a scan of everything instead. Each candidate's chunk is then looked up
            # by its key (a lateral lookup, fenced by OFFSET 0 so that the planner cannot make it
            # a scan of all chunks per row), and other rows' later chunks drop out.
            neighbours = self._sql(
                "SELECT c.key, 1 - n.distance AS similarity FROM ("
                "  SELECT e.chunk_id, e.embedding <=> s.embedding AS distance FROM {table} e "
                "  ORDER BY e.embedding <=> s.embedding LIMIT %(candidates)s) n "
                "CROSS JOIN LATERAL (SELECT c.key FROM {chunks} c WHERE c.chunk_id = n.chunk_id "
                "  AND c.position = 0 OFFSET 0) c WHERE c.key <> s.key",
                table=self.t(space.table),
                chunks=self.t("chunks"),
            )
            origin = self._sql(
                "SELECT * FROM ({first}) f WHERE f.key = ANY(%(keys)s)", first=first_chunks
            )
        rows = self.execute(
            self._sql(
                "SELECT s.key, n.key, n.similarity FROM ({origin}) s "
                "CROSS JOIN LATERAL ({neighbours}) n WHERE n.similarity >= %(bound)s",
                origin=origin,
                neighbours=neighbours,
            ),
            {"keys": list(keys), "bound": bound, "candidates": _CANDIDATES},
        ).fetchall()
        return [(key, other, float(similarity)) for key, other, similarity in rows]

    def write_duplicate_scan(
        self,
        space: Space,
        compared: Sequence[str],
        gone: Sequence[str],
        pairs: Sequence[tuple[str, str, float]],
    ) -> None:
        """The pairs of the rows just compared replace theirs (and those of rows gone); the
        compared rows are recorded with their current content hash."""
        rows, pair_table = self.t("duplicate_rows"), self.t("duplicate_pairs")
        touched = [*compared, *gone]
        self.execute(
            self._sql(
                "DELETE FROM {pairs} WHERE space = %(space)s "
                "AND (key = ANY(%(keys)s) OR other = ANY(%(keys)s))",
                pairs=pair_table,
            ),
            {"space": space.name, "keys": touched},
        )
        self.execute(
            self._sql("DELETE FROM {rows} WHERE space = %s AND key = ANY(%s)", rows=rows),
            (space.name, list(gone)),
        )
        self.execute(
            self._sql(
                "INSERT INTO {rows} (space, key, content_hash) "
                "SELECT %(space)s, c.key, e.content_hash FROM {table} e "
                "JOIN {chunks} c USING (chunk_id) WHERE c.position = 0 AND c.key = ANY(%(keys)s) "
                "ON CONFLICT (space, key) DO UPDATE SET content_hash = excluded.content_hash",
                rows=rows,
                table=self.t(space.table),
                chunks=self.t("chunks"),
            ),
            {"space": space.name, "keys": list(compared)},
        )
        once = {(min(a, b), max(a, b)): s for a, b, s in pairs}
        self.execute("CREATE TEMP TABLE _stage_pairs (key text, other text, similarity real)")
        with self.conn.cursor().copy("COPY _stage_pairs FROM STDIN") as copy:
            for (key, other), similarity in once.items():
                copy.write_row((key, other, similarity))
        self.execute(
            self._sql(
                "INSERT INTO {pairs} (space, key, other, similarity) "
                "SELECT %s, key, other, similarity FROM _stage_pairs ON CONFLICT DO NOTHING",
                pairs=pair_table,
            ),
            (space.name,),
        )
        self.execute("DROP TABLE _stage_pairs")

    def duplicate_pairs(self, space: Space) -> list[tuple[str, str, float]]:
        return [
            (key, other, float(similarity))
            for key, other, similarity in self.execute(
                self._sql(
                    "SELECT key, other, similarity FROM {pairs} WHERE space = %s "
                    "ORDER BY key, other",
                    pairs=self.t("duplicate_pairs"),
                ),
                (space.name,),
            ).fetchall()
        ]

    def write_duplicate_groups(self, space: Space, group_of: dict[str, str]) -> None:
        """Each compared row's group (the smallest key of its group; none for a row with no
        duplicate)."""
        self.execute("CREATE TEMP TABLE _stage_groups (key text, duplicate_group text)")
        with self.conn.cursor().copy("COPY _stage_groups FROM STDIN") as copy:
            for key, group in group_of.items():
                copy.write_row((key, group))
        self.execute(
            self._sql(
                "UPDATE {rows} d SET duplicate_group = g.duplicate_group FROM ("
                "  SELECT d2.key, s.duplicate_group FROM {rows} d2 "
                "  LEFT JOIN _stage_groups s USING (key) WHERE d2.space = %(space)s) g "
                "WHERE d.space = %(space)s AND d.key = g.key "
                "AND d.duplicate_group IS DISTINCT FROM g.duplicate_group",
                rows=self.t("duplicate_rows"),
            ),
            {"space": space.name},
        )
        self.execute("DROP TABLE _stage_groups")

    def list_duplicate_groups(
        self, space: Space, limit: int, group: str | None = None
    ) -> list[dict]:
        """Largest first: each group's id (its smallest key), size, and members with the
        similarity of their closest duplicate, most similar first. `group`: only the rows of this
        group_by value."""
        in_group = (
            self._sql(
                "AND d.key IN (SELECT key FROM {rows} WHERE group_key = %(group)s)",
                rows=self.t("rows"),
            )
            if group is not None
            else self._sql("")
        )
        rows = self.execute(
            self._sql(
                "SELECT d.duplicate_group, count(*) AS size, array_agg(d.key ORDER BY "
                "  best.similarity DESC, d.key), array_agg(best.similarity ORDER BY "
                "  best.similarity DESC, d.key) "
                "FROM {rows} d CROSS JOIN LATERAL (SELECT max(p.similarity) AS similarity "
                "  FROM {pairs} p WHERE p.space = d.space AND (p.key = d.key OR p.other = d.key)) "
                "  best "
                "WHERE d.space = %(space)s AND d.duplicate_group IS NOT NULL {in_group} "
                "GROUP BY d.duplicate_group ORDER BY size DESC, d.duplicate_group "
                "LIMIT %(limit)s",
                rows=self.t("duplicate_rows"),
                pairs=self.t("duplicate_pairs"),
                in_group=in_group,
            ),
            {"space": space.name, "limit": limit, "group": group},
        ).fetchall()
        return [
            {
                "group": group_id,
                "size": size,
                "members": [
                    {"key": key, "similarity": round(float(similarity), 4)}
                    for key, similarity in zip(keys, similarities, strict=True)
                ],
            }
            for group_id, size, keys, similarities in rows
        ]

    def clear_duplicates(self, space: Space) -> None:
        for table in ("duplicate_pairs", "duplicate_rows"):
            self.execute(
                self._sql("DELETE FROM {table} WHERE space = %s", table=self.t(table)),
                (space.name,),
            )

    def duplicate_summary(self, space: Space) -> dict[str, int]:
        groups, rows = self.execute(
            self._sql(
                "SELECT count(DISTINCT duplicate_group), count(duplicate_group) FROM {rows} "
                "WHERE space = %s",
                rows=self.t("duplicate_rows"),
            ),
            (space.name,),
        ).fetchone()
        return {"duplicate_groups": groups, "rows_in_duplicate_groups": rows}
