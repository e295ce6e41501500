"""The generic tables every collection has: its chunks, and the change log with its readers'
cursors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from psycopg import sql

from embed_assets.lib.store.base import StoreBase

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

    # -- chunks ------------------------------------------------------------------------------
    def write_chunks(
        self, start: datetime, end: datetime, keys: Sequence[str], rows: Sequence[Sequence]
    ) -> dict[str, int]:
        """In one transaction: upsert the chunks of the rows `keys` (CHUNK_COLUMNS order), delete
        their chunks that no longer exist (shorter text), and delete chunks of [start, end) whose
        row is gone from the window. `updated` counts chunks whose text changed."""
        with self.transaction():
            self._stage("chunks", CHUNK_COLUMNS, rows)
            updated = self.execute(
                self._sql(
                    "SELECT count(*) FROM _stage_chunks s JOIN {chunks} c USING (chunk_id) "
                    "WHERE c.content_hash <> s.content_hash",
                    chunks=self.t("chunks"),
                )
            ).fetchone()[0]
            upserted = self._upsert_from_stage("chunks", CHUNK_COLUMNS, "chunk_id")
            deleted = self.execute(
                self._sql(
                    "DELETE FROM {chunks} c WHERE c.key IN (SELECT unnest(%b::text[])) "
                    "AND NOT EXISTS (SELECT 1 FROM _stage_chunks s WHERE s.chunk_id = c.chunk_id)",
                    chunks=self.t("chunks"),
                ),
                (list(keys),),
            ).rowcount
            deleted += self.execute(
                self._sql(
                    "DELETE FROM {chunks} c WHERE c.row_time >= %(start)s AND c.row_time < %(end)s "
                    "AND NOT EXISTS (SELECT 1 FROM {rows} r WHERE {rows_key} = c.key "
                    "  AND r.row_time = c.row_time)",
                    chunks=self.t("chunks"),
                    rows=self.rows,
                    rows_key=sql.Identifier("r", self.rows_key),
                ),
                {"start": start, "end": end},
            ).rowcount
        self.analyze_if_grown(
            "chunks",
            upserted.added + upserted.updated + deleted,
            ("chunk_id", "key", "row_time", "content_hash"),
        )
        return {"added": upserted.added, "updated": updated, "deleted": deleted}

    # -- what needs a run --------------------------------------------------------------------
    def cursor(self, name: str) -> str | None:
        """A reader's position in the change log (embed_assets.lib.changes.ChangeCursor's text)."""
        row = self.execute(
            self._sql(
                "SELECT coalesce(state, position::text) FROM {cursors} WHERE name = %s",
                cursors=self.t("cursors"),
            ),
            (name,),
        ).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, position: int, state: str) -> None:
        """Never moves a cursor back (two syncs ending in either order)."""
        self.execute(
            self._sql(
                "INSERT INTO {cursors} AS c (name, position, state) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = "
                "excluded.state "
                "WHERE c.position <= excluded.position",
                cursors=self.t("cursors"),
            ),
            (name, position, state),
        )

    def cursor_states(self) -> list[str]:
        """Every reader's position in the change log."""
        return [
            row[0]
            for row in self.execute(
                self._sql(
                    "SELECT coalesce(state, position::text) FROM {cursors}",
                    cursors=self.t("cursors"),
                )
            )
        ]

    def prune_change_log(self, through: int) -> int:
        """Drop the changes with ids up to `through`: every reader has read them."""
        return self.execute(
            self._sql("DELETE FROM {changes} WHERE id <= %s", changes=self.t("source_changes")),
            (through,),
        ).rowcount

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
