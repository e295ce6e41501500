"""Emptying one collection's store (`embed-assets reset`): what it holds of its source, its
chunks, vectors, cluster index and change log. Never the embedding cache every collection shares,
nor the budgets, nor a table collection's own table, which the next sync reads again."""

from __future__ import annotations

from psycopg import sql

from embed_assets.lib.store.base import Space, StoreBase

# Every collection's own tables of derived data; `spaces` stays, so the active one stays active.
_GENERIC = (
    "source_changes",
    "chunks",
    "embedding_failures",
    "clusters",
    "cluster_members",
    "cluster_resolutions",
    "cluster_meta",
    "duplicate_rows",
    "duplicate_pairs",
)
# The repositories kind's: the rows it was loaded with, and the GitHub pages they came from
# (kept ETags would answer "not modified" to the next GitHub load, which would then load nothing).
_REPOSITORIES = ("repositories", "rejected_rows", "github_etags")


class ResetQueries(StoreBase):
    def reset_counts(self) -> dict[str, int]:
        """What a reset would delete: source rows (a repositories collection's own), rows,
        chunks and vectors."""
        counts = self.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {rows}), (SELECT count(*) FROM {chunks})",
                rows=self.rows,
                chunks=self.t("chunks"),
            )
        ).fetchone()
        vectors = sum(
            self.execute(self._sql("SELECT count(*) FROM {t}", t=self.t(table))).fetchone()[0]
            for table in self._vector_tables()
        )
        found = {"rows": counts[0], "chunks": counts[1], "vectors": vectors}
        if self.table_spec is None:
            (source,) = self.execute(
                self._sql("SELECT count(*) FROM {source}", source=self.source)
            ).fetchone()
            found = {"source_rows": source} | found
        return found

    def _vector_tables(self) -> list[str]:
        names = self.execute(
            self._sql("SELECT name FROM {spaces} ORDER BY name", spaces=self.t("spaces"))
        ).fetchall()
        tables = [Space(name, "", 0).table for (name,) in names]
        present = self.execute(
            "SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(format('%%I.%%I', %s::text, t)) "
            "IS NOT NULL",
            (tables, self.schema),
        ).fetchall()
        return [t for (t,) in present]

    def reset(self) -> dict[str, int]:
        """Empty the collection's store in one transaction (concurrent runs wait, or make it
        wait); returns what it held (`reset_counts`). A table collection's rows are logged
        again as changes, so that the next sync rebuilds everything from its table."""
        with self.transaction():
            counts = self.reset_counts()
            own = self.table_spec is None
            tables = [*_GENERIC, *(_REPOSITORIES if own else ("rows",)), *self._vector_tables()]
            names = [self.t(table) for table in tables]
            if own:
                names.append(self.source)
            # TRUNCATE fires no DELETE triggers, and keeps the change log's id sequence, so that
            # a reader's position (the sensor's cursor) stays behind every new change.
            self.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(names)))
            spec = self.table_spec
            if spec is not None and spec.triggers:
                self.log_every_table_row(spec)
        return counts
