"""The generic tables every collection has: its chunks, and the change log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from psycopg import sql

from embed_assets.lib.store.base import StoreBase, by_month

_MONTH_OF_C = sql.SQL("date_trunc('month', c.row_time, 'UTC')")
CHUNK_COLUMNS = (
    "chunk_id",
    "key",
    "position",
    "row_time",
    "text",
    "content_hash",
    "text_hash",
    "chunker",
)


class RowQueries(StoreBase):
    def count_in_window(self, table: str, start: datetime, end: datetime) -> int:
        return self.execute(
            self._sql(
                "SELECT count(*) FROM {table} WHERE row_time >= %s AND row_time < %s",
                table=self.t(table),
            ),
            (start, end),
        ).fetchone()[0]

    def count_by_month(self, table: str, start: datetime, end: datetime) -> Counter:
        """Rows of `table` in [start, end), by month (UTC) of their row_time."""
        return self._count_by_month(self.t(table), sql.Identifier("row_time"), start, end)

    # -- chunks ------------------------------------------------------------------------------
    def write_chunks(
        self, start: datetime, end: datetime, keys: Sequence[str], rows: Sequence[Sequence]
    ) -> dict[str, Counter]:
        """In one transaction: upsert the chunks of the rows `keys` (CHUNK_COLUMNS order), delete
        their chunks that no longer exist (shorter text), and delete chunks of [start, end) whose
        row is gone from the window. Counts by month; `updated` counts chunks whose text
        changed."""
        with self.transaction():
            self._stage("chunks", CHUNK_COLUMNS, rows)
            updated = by_month(
                self.execute(
                    self._sql(
                        "SELECT date_trunc('month', s.row_time, 'UTC') FROM _stage_chunks s "
                        "JOIN {chunks} c USING (chunk_id) WHERE c.content_hash <> s.content_hash",
                        chunks=self.t("chunks"),
                    )
                )
            )
            upserted = self._upsert_from_stage("chunks", CHUNK_COLUMNS, "chunk_id")
            deleted = by_month(
                self.execute(
                    self._sql(
                        "DELETE FROM {chunks} c WHERE c.key IN (SELECT unnest(%b::text[])) "
                        "AND NOT EXISTS (SELECT 1 FROM _stage_chunks s "
                        "WHERE s.chunk_id = c.chunk_id) RETURNING {month}",
                        chunks=self.t("chunks"),
                        month=_MONTH_OF_C,
                    ),
                    (list(keys),),
                )
            )
            deleted += by_month(
                self.execute(
                    self._sql(
                        "DELETE FROM {chunks} c WHERE c.row_time >= %(start)s "
                        "AND c.row_time < %(end)s "
                        "AND NOT EXISTS (SELECT 1 FROM {rows} r WHERE {rows_key} = c.key "
                        "  AND r.row_time = c.row_time) RETURNING {month}",
                        chunks=self.t("chunks"),
                        rows=self.rows,
                        rows_key=sql.Identifier("r", self.rows_key),
                        month=_MONTH_OF_C,
                    ),
                    {"start": start, "end": end},
                )
            )
        self.analyze_if_grown(
            "chunks",
            (upserted.added + upserted.updated + deleted).total(),
            ("chunk_id", "key", "row_time", "content_hash"),
        )
        return {"added": upserted.added, "updated": updated, "deleted": deleted}

    # -- what needs a run --------------------------------------------------------------------
    def logged_change_months(self) -> list[datetime]:
        """Months (UTC) of the changes in the log: those no run's rows step has handled yet."""
        return [
            row[0]
            for row in self.execute(
                self._sql(
                    "SELECT DISTINCT date_trunc('month', row_time, 'UTC') FROM {changes}",
                    changes=self.t("source_changes"),
                )
            )
        ]

    @contextmanager
    def handling_changes(self, start: datetime, end: datetime) -> Iterator[None]:
        """One transaction that handles the logged changes of [start, end): the ids visible when
        it begins are deleted when it commits. Whatever the block reads of the source is read
        after them, so each deleted change is handled; a change committed meanwhile stays in the
        log for the next run. A sync and the sensor's runs share the log: whichever run handles
        a change first, the other finds it gone."""
        with self.transaction():
            ids = [
                row[0]
                for row in self.execute(
                    self._sql(
                        "SELECT id FROM {changes} WHERE row_time >= %s AND row_time < %s",
                        changes=self.t("source_changes"),
                    ),
                    (start, end),
                )
            ]
            yield
            self.execute(
                self._sql(
                    "DELETE FROM {changes} WHERE id = ANY(%s)", changes=self.t("source_changes")
                ),
                (ids,),
            )

    def read_change_log(
        self, position: int, gaps: Sequence[tuple[int, int]], limit: int | None
    ) -> tuple[list[tuple[int, datetime]], int, int]:
        """(id, month (UTC) of the row) of the changes after `position` or inside `gaps`, oldest
        first, and, from the same snapshot, the oldest transaction id still running and this
        reader's own transaction id (see embed_assets.lib.changes)."""
        with self.conn.transaction():
            self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            rows = self.execute(
                self._sql(
                    "SELECT id, date_trunc('month', row_time, 'UTC') FROM {changes} "
                    "WHERE id > %(position)s OR id <@ %(gaps)s::int8multirange ORDER BY id LIMIT "
                    "%(limit)s",
                    changes=self.t("source_changes"),
                ),
                {
                    "position": position,
                    "limit": limit,
                    "gaps": "{" + ",".join(f"[{lo},{hi}]" for lo, hi in gaps) + "}",
                },
            ).fetchall()
            # After the read: this transaction's own id is above that of every writer whose
            # change the read could not see yet.
            oldest, own = self.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
                "pg_current_xact_id()::text::bigint"
            ).fetchone()
        return rows, oldest, own
