"""The repositories source kind's tables: the source table (the loading contract), the normalised
repositories and the rejected rows; their DDL and change triggers are in `schema.py`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

import psycopg
from psycopg import sql

from embed_assets.lib.store.base import StoreBase, _columns, _row_of, by_month, upserted_by_month

NAME_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"  # GitHub's owner/name, as the loader checks it

# Columns whose change alters the embedded text (or the row's partition); others (stars, url) do not
# log a change, so that they never cause a run.
TEXT_COLUMNS = ("description", "language", "topics", "readme", "created_at")
SOURCE_COLUMNS = (
    "full_name",
    "description",
    "language",
    "stars",
    "topics",
    "url",
    "readme",
    "created_at",
)


def _written(column: str, old: str, new: str, given: Collection[str], replace: bool):
    """The value a load leaves in `column` of a stored row: as stored when the load does not give
    the column; as given when it replaces; else the given value, unless that is empty (NULL, no
    topics), which keeps the stored one."""
    stored, offered = sql.Identifier(old, column), sql.Identifier(new, column)
    if column not in given:
        return stored
    if replace or column == "created_at":
        return offered
    if column == "topics":
        offered = sql.SQL("nullif({}, '{{}}'::text[])").format(offered)
    return sql.SQL("coalesce({}, {})").format(offered, stored)


class RepositoryQueries(StoreBase):
    def upsert_source(
        self,
        rows: Sequence[Sequence],
        *,
        given: Collection[str] = SOURCE_COLUMNS,
        replace: bool = True,
        prune_keeping: Sequence[str] | None = None,
    ) -> dict:
        """Insert or update rows (tuples in SOURCE_COLUMNS order) keyed by full_name, in one
        statement: {"inserted", "updated", "unchanged", "deleted", "changed": {column: rows}}.

        `given`: the columns the load has; the others of a stored row are kept (a new row gets
        NULL, and the time in its tuple, the load time). Of the given ones, `replace` writes the
        values as they are; else an empty value (NULL, no topics) keeps the stored one.
        `prune_keeping`: delete, in the same transaction, every source row neither upserted nor
        named there. A row equal to the stored one is left alone, so that it logs no change and
        keeps its updated_at."""
        changed = dict.fromkeys(SOURCE_COLUMNS[1:], 0)
        counts = {"inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0, "changed": changed}
        if not rows and prune_keeping is None:
            return counts
        unknown = set(given) - set(SOURCE_COLUMNS)
        if unknown:
            raise ValueError(f"not source columns: {', '.join(sorted(unknown))}")
        written = [c for c in SOURCE_COLUMNS[1:] if c in given]
        with self.transaction():
            self.execute(
                self._sql(
                    "CREATE TEMP TABLE _stage_source (LIKE {source} INCLUDING DEFAULTS) ON COMMIT "
                    "DROP",
                    source=self.source,
                )
            )
            with self.conn.cursor().copy(
                sql.SQL("COPY _stage_source ({}) FROM STDIN").format(_columns(SOURCE_COLUMNS))
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            if written:
                figures = self.execute(self._upsert_statement(written, given, replace)).fetchone()
                inserted, updated = figures[0], figures[1]
                changed.update(zip(written, figures[2:], strict=True))
            else:  # only names: new rows are inserted, stored ones have nothing to change
                inserted = self.execute(
                    self._sql(
                        "INSERT INTO {source} (full_name, created_at) "
                        "SELECT full_name, created_at FROM _stage_source "
                        "ON CONFLICT (full_name) DO NOTHING",
                        source=self.source,
                    )
                ).rowcount
                updated = 0
            if prune_keeping is not None:
                counts["deleted"] = self.execute(
                    self._sql(
                        "DELETE FROM {source} s WHERE s.full_name <> ALL(%s) AND NOT EXISTS "
                        "(SELECT 1 FROM _stage_source n WHERE n.full_name = s.full_name)",
                        source=self.source,
                    ),
                    (list(prune_keeping),),
                ).rowcount
        self.analyze_if_grown(
            self.settings.source_table,
            inserted + updated + counts["deleted"],
            ("full_name", "created_at", "row_hash"),
        )
        counts.update(inserted=inserted, updated=updated, unchanged=len(rows) - inserted - updated)
        return counts

    def _upsert_statement(
        self, written: list[str], given: Collection[str], replace: bool
    ) -> sql.Composed:
        """The upsert of the staged rows, and per written column how many stored rows it
        changed: the rows it updated, their new values against the old ones, which the
        statement's snapshot still holds."""
        new_values = [_written(c, "s", "excluded", given, replace) for c in written]
        return self._sql(
            "WITH upserted AS (INSERT INTO {source} AS s ({cols}) SELECT {cols} FROM _stage_source "
            "  ON CONFLICT (full_name) DO UPDATE SET {assignments}, updated_at = now() "
            "  WHERE {old} IS DISTINCT FROM ROW({new}) "
            "  RETURNING s.full_name, (xmax = 0) AS inserted, {returned}) "
            "SELECT (SELECT count(*) FILTER (WHERE inserted) FROM upserted), "
            "  (SELECT count(*) FILTER (WHERE NOT inserted) FROM upserted), {counts} "
            "FROM upserted u JOIN {source} o ON o.full_name = u.full_name WHERE NOT u.inserted",
            source=self.source,
            cols=_columns(SOURCE_COLUMNS),
            assignments=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), value)
                for c, value in zip(written, new_values, strict=True)
            ),
            old=_row_of("s", written),
            new=sql.SQL(", ").join(new_values),
            returned=sql.SQL(", ").join(sql.Identifier("s", c) for c in written),
            counts=sql.SQL(", ").join(
                sql.SQL("count(*) FILTER (WHERE {} IS DISTINCT FROM {})").format(
                    sql.Identifier("o", c), sql.Identifier("u", c)
                )
                for c in written
            ),
        )

    def source_months(self, start: datetime, end: datetime) -> Counter:
        """Source rows of [start, end) by month (UTC) of their created_at."""
        return self._count_by_month(self.source, sql.Identifier("created_at"), start, end)

    def count_source(self, start: datetime | None = None, end: datetime | None = None) -> int:
        if start is None:
            return self.execute(
                self._sql("SELECT count(*) FROM {source}", source=self.source)
            ).fetchone()[0]
        return self.execute(
            self._sql(
                "SELECT count(*) FROM {source} WHERE created_at >= %s AND created_at < %s",
                source=self.source,
            ),
            (start, end),
        ).fetchone()[0]

    # -- repositories ------------------------------------------------------------------------
    def sync_repositories(self, start: datetime, end: datetime) -> dict:
        """In one transaction, for the source rows of [start, end): normalise and upsert those
        that changed, record the invalid ones in `rejected_rows` with the reason, and delete
        repositories whose source row is gone, moved out of the window or is now invalid.

        Source rows may come from any writer, so the rules are applied here, in SQL, for every
        row: `owner/name` names, no negative stars, trimmed text with empty as NULL, lower-case
        de-duplicated topics. Rows already stored (or rejected) as they are cost one hash compare.
        """
        params = {"start": start, "end": end, "name_pattern": NAME_PATTERN}
        with self.transaction():
            # Rows written with triggers off (a restore, replication) lack the hash: the row
            # trigger computes it on this no-op update, and the change log ignores it.
            self.execute(
                self._sql(
                    "UPDATE {source} SET row_hash = NULL WHERE row_hash IS NULL "
                    "AND created_at >= %(start)s AND created_at < %(end)s",
                    source=self.source,
                ),
                params,
            )
            self.execute(
                self._sql(
                    _CHANGED_SOURCE_ROWS,
                    source=self.source,
                    cols=sql.SQL(", ").join(sql.Identifier("s", c) for c in SOURCE_COLUMNS),
                    repositories=self.t("repositories"),
                    rejected=self.t("rejected_rows"),
                ),
                params,
            )
            changed = by_month(
                self.execute("SELECT date_trunc('month', created_at, 'UTC') FROM _changed")
            )
            self.execute(
                self._sql(
                    "DELETE FROM {rejected} WHERE full_name IN (SELECT full_name FROM _changed); "
                    "INSERT INTO {rejected} (full_name, row_time, source_hash, reason) "
                    "SELECT full_name, created_at, source_hash, reason FROM _changed "
                    "WHERE reason IS NOT NULL",
                    rejected=self.t("rejected_rows"),
                )
            )
            rejected = self.execute(
                "SELECT full_name, reason, date_trunc('month', created_at, 'UTC') FROM _changed "
                "WHERE reason IS NOT NULL ORDER BY full_name"
            ).fetchall()
            result = self.execute(
                self._sql(_UPSERT_REPOSITORIES, repositories=self.t("repositories"))
            ).fetchall()
            deleted = by_month(
                self.execute(
                    self._sql(
                        "DELETE FROM {repositories} r WHERE r.row_time >= %(start)s "
                        "AND r.row_time < %(end)s "
                        "AND (NOT EXISTS (SELECT 1 FROM {source} s WHERE s.full_name = r.full_name "
                        "  AND s.created_at >= %(start)s AND s.created_at < %(end)s) "
                        "  OR r.full_name IN (SELECT full_name FROM _changed WHERE reason IS NOT "
                        "NULL)) RETURNING date_trunc('month', r.row_time, 'UTC')",
                        repositories=self.t("repositories"),
                        source=self.source,
                    ),
                    params,
                )
            )
            self.execute(
                self._sql(
                    "DELETE FROM {rejected} j WHERE j.row_time >= %(start)s AND j.row_time < "
                    "%(end)s "
                    "AND NOT EXISTS (SELECT 1 FROM {source} s WHERE s.full_name = j.full_name "
                    "  AND s.row_hash = j.source_hash)",
                    rejected=self.t("rejected_rows"),
                    source=self.source,
                ),
                params,
            )
        self.analyze_if_grown(
            "repositories",
            len(result) + deleted.total(),
            ("full_name", "row_time", "source_hash", "text_hash"),
        )
        upserted = upserted_by_month(result)
        return {
            "changed": changed,
            "added": upserted.added,
            "updated": upserted.updated,
            "deleted": deleted,
            "rejected": rejected,
        }

    def repositories_to_chunk(self, start: datetime, end: datetime, chunker: str) -> list[dict]:
        """Repositories in [start, end) whose text, time or chunking differs from their chunks'."""
        cur = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            self._sql(
                "SELECT r.full_name, r.description, r.language, r.topics, r.readme, r.row_time, "
                "r.text_hash FROM {repositories} r "
                "WHERE r.row_time >= %(start)s AND r.row_time < %(end)s AND NOT EXISTS ("
                "  SELECT 1 FROM {chunks} c WHERE c.chunk_id = r.full_name || '#0' "
                "  AND c.text_hash = r.text_hash AND c.chunker = %(chunker)s "
                "  AND c.row_time = r.row_time)",
                repositories=self.t("repositories"),
                chunks=self.t("chunks"),
            ),
            {"start": start, "end": end, "chunker": chunker},
        ).fetchall()

    def changed_repositories(
        self, start: datetime, end: datetime, since: datetime, limit: int
    ) -> list[dict]:
        """A few repositories of [start, end) written at or after `since`, for a preview."""
        cur = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            self._sql(
                "SELECT full_name, language, stars, description FROM {repositories} "
                "WHERE row_time >= %s AND row_time < %s AND updated_at >= %s "
                "ORDER BY updated_at DESC, full_name LIMIT %s",
                repositories=self.t("repositories"),
            ),
            (start, end, since, limit),
        ).fetchall()


_CHANGED_SOURCE_ROWS = """
CREATE TEMP TABLE _changed ON COMMIT DROP AS
SELECT {cols}, s.row_hash AS source_hash,
    CASE WHEN s.full_name !~ %(name_pattern)s
         THEN 'full_name: not an ''owner/name'' repository name: ' ||
         quote_literal(left(s.full_name, 80))
         WHEN s.stars < 0 THEN 'stars: negative: ' || s.stars
    END AS reason
FROM {source} s
WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
AND NOT EXISTS (SELECT 1 FROM {repositories} r
                WHERE r.full_name = s.full_name AND r.source_hash = s.row_hash)
AND NOT EXISTS (SELECT 1 FROM {rejected} j
                WHERE j.full_name = s.full_name AND j.source_hash = s.row_hash)
"""

_UPSERT_REPOSITORIES = """
INSERT INTO {repositories} AS r (full_name, description, language, stars, topics, url, readme,
                                 row_time, source_hash, text_hash)
SELECT full_name, description, language, stars, topics, url, readme, created_at, source_hash,
       md5(ROW(description, language, topics, readme)::text)
FROM (
    SELECT c.full_name, c.stars, c.created_at, c.source_hash,
        nullif(btrim(c.description, E' \\t\\r\\n'), '') AS description,
        nullif(btrim(c.language, E' \\t\\r\\n'), '') AS language,
        nullif(btrim(c.readme, E' \\t\\r\\n'), '') AS readme,
        coalesce(nullif(btrim(c.url), ''), 'https://github.com/' || c.full_name) AS url,
        ARRAY(SELECT topic FROM (
                SELECT lower(btrim(t)) AS topic, min(i) AS first FROM unnest(c.topics)
                WITH ORDINALITY AS u(t, i) WHERE btrim(t) <> '' GROUP BY 1) q
              ORDER BY first) AS topics
    FROM _changed c WHERE c.reason IS NULL
) normalised
ON CONFLICT (full_name) DO UPDATE SET
    description = excluded.description, language = excluded.language, stars = excluded.stars,
    topics = excluded.topics, url = excluded.url, readme = excluded.readme,
    row_time = excluded.row_time, source_hash = excluded.source_hash,
    text_hash = excluded.text_hash, updated_at = now()
RETURNING (xmax = 0), date_trunc('month', r.row_time, 'UTC')
"""
