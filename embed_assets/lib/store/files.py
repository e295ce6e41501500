"""The `files` source kind's SQL: the state of a folder as the last scan saw it.

`files` holds one row per accepted file (its path relative to the root, name, suffix, size,
modification time, sha256 of its bytes and its text); it is the source relation of the
collection's table machinery (`table.py`), whose statement triggers on it log inserts, changes of
the columns read and deletes to `source_changes`, exactly as for a user's table. A scan writes
only what differs, so an unchanged folder logs nothing.

`rejected_files` holds the files that match but are not embedded (not UTF-8, over
`max_file_bytes`, unreadable, a symlink out of the root), with the reason and the size and time
that were seen, so that they are not read again until they change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from embed_assets.lib.store.base import StoreBase

FILE_COLUMNS = ("path", "name", "suffix", "size", "mtime", "mtime_ns", "sha256", "content")


@dataclass(frozen=True)
class Seen:
    """What the store holds of one path: its size and modification time (ns), and the sha256 of
    its bytes (None: the file is rejected)."""

    size: int
    mtime_ns: int
    sha256: str | None


class FileQueries(StoreBase):
    def install_files_table(self) -> None:
        """Inside the schema transaction, before the table machinery's triggers go on it."""
        self.execute(
            self._sql(_FILES_DDL, files=self.t("files"), rejected=self.t("rejected_files"))
        )

    def seen_files(self) -> dict[str, Seen]:
        """Every path the last scan recorded, accepted or rejected."""
        rows = self.execute(
            self._sql(
                "SELECT path, size, mtime_ns, sha256 FROM {files} UNION ALL "
                "SELECT path, size, mtime_ns, NULL FROM {rejected}",
                files=self.t("files"),
                rejected=self.t("rejected_files"),
            )
        ).fetchall()
        return {path: Seen(size, mtime_ns, sha) for path, size, mtime_ns, sha in rows}

    def write_scan(
        self,
        upserts: Sequence[tuple],
        touched: Sequence[tuple[str, int, datetime, int]],
        rejected: Sequence[tuple[str, int, int, str]],
        gone: Sequence[str],
    ) -> None:
        """In one transaction: files new or with new bytes (FILE_COLUMNS order), files whose
        bytes are the same but whose size or time moved (path, size, mtime, mtime_ns), files
        rejected now (path, size, mtime_ns, reason), and paths to forget (vanished, or now
        rejected, or accepted again). The triggers on `files` log the changes."""
        files, rejects = self.t("files"), self.t("rejected_files")
        with self.transaction():
            forget = list(gone) + [r[0] for r in rejected] + [u[0] for u in upserts]
            if forget:
                self.execute(
                    self._sql("DELETE FROM {rejects} WHERE path = ANY(%s)", rejects=rejects),
                    (forget,),
                )
            dropped = list(gone) + [r[0] for r in rejected]
            if dropped:
                self.execute(
                    self._sql("DELETE FROM {files} WHERE path = ANY(%s)", files=files), (dropped,)
                )
            if upserts:
                self._stage("files", FILE_COLUMNS, upserts)
                self.execute(
                    self._sql(
                        "INSERT INTO {files} AS f ({cols}) SELECT {cols} FROM _stage_files "
                        "ON CONFLICT (path) DO UPDATE SET {assign}",
                        files=files,
                        cols=sql.SQL(", ").join(map(sql.Identifier, FILE_COLUMNS)),
                        assign=sql.SQL(", ").join(
                            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c))
                            for c in FILE_COLUMNS[1:]
                        ),
                    )
                )
            if touched:
                self.execute(
                    self._sql(
                        "UPDATE {files} f SET size = t.size, mtime = t.mtime, "
                        "mtime_ns = t.mtime_ns FROM unnest(%s::text[], %s::bigint[], "
                        "%s::timestamptz[], %s::bigint[]) AS t (path, size, mtime, mtime_ns) "
                        "WHERE f.path = t.path",
                        files=files,
                    ),
                    [list(column) for column in zip(*touched, strict=True)],
                )
            if rejected:
                self.execute(
                    self._sql(
                        "INSERT INTO {rejects} (path, size, mtime_ns, reason) SELECT * FROM "
                        "unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[])",
                        rejects=rejects,
                    ),
                    [list(column) for column in zip(*rejected, strict=True)],
                )
        # After a first scan: planned for an empty table, touching every file's row would be
        # a nested loop over both sides (10,000 files: a minute).
        self.analyze_if_grown("files", len(upserts) + len(dropped), ("path",))

    def rejected_files(self, limit: int | None = None) -> list[tuple[str, str]]:
        """(path, reason) of the files not embedded, by path."""
        return self.execute(
            self._sql(
                "SELECT path, reason FROM {rejects} ORDER BY path LIMIT %s",
                rejects=self.t("rejected_files"),
            ),
            (limit,),
        ).fetchall()

    def count_rejected_files(self) -> int:
        return self.execute(
            self._sql("SELECT count(*) FROM {rejects}", rejects=self.t("rejected_files"))
        ).fetchone()[0]


_FILES_DDL = """
CREATE TABLE IF NOT EXISTS {files} (
    path text PRIMARY KEY,
    name text NOT NULL,
    suffix text NOT NULL,
    size bigint NOT NULL,
    mtime timestamptz NOT NULL,
    mtime_ns bigint NOT NULL,
    sha256 text NOT NULL,
    content text NOT NULL
);
CREATE TABLE IF NOT EXISTS {rejected} (
    path text PRIMARY KEY,
    size bigint NOT NULL,
    mtime_ns bigint NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
"""
