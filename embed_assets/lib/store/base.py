"""What every part of the store shares: the connection, identifiers in the project's schema,
staging."""

from __future__ import annotations

import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from embed_assets.lib.errors import UsageError
from embed_assets.lib.settings import Settings

# (url or dsn, schema, source table, table collection) already created in this process: skips a
# catalog query per open.
_ensured: set[tuple] = set()
_ensured_lock = threading.Lock()


class StoreError(UsageError):
    pass


@dataclass(frozen=True)
class Space:
    name: str
    model: str
    dimensions: int

    @property
    def table(self) -> str:
        return f"embeddings_{self.name}"


@dataclass(frozen=True)
class TableSpec:
    """A `table` collection as the store needs it: where its own tables are (`store_schema`), the
    source relation, and which of its columns are the key, the time, the template's, the
    metadata and the group. `triggers`: exact change capture by triggers, else polling."""

    store_schema: str
    schema: str
    table: str
    key: tuple[str, ...]
    time_column: str | None
    columns: tuple[str, ...]
    metadata: tuple[str, ...] = ()
    group_by: str | None = None
    triggers: bool = True
    # "files": the relation is the collection's own `files` table, filled by scanning a folder.
    kind: str = "table"

    @property
    def watched(self) -> tuple[str, ...]:
        """Every column the collection reads: a change to any other one is ignored."""
        time = (self.time_column,) if self.time_column else ()
        group = (self.group_by,) if self.group_by else ()
        return tuple(dict.fromkeys((*self.key, *time, *self.columns, *self.metadata, *group)))


@dataclass(frozen=True)
class Upserted:
    added: Counter  # rows inserted, by month (UTC) of their row_time
    updated: Counter


def month_of(moment: datetime) -> datetime:
    """The start (UTC) of the month holding `moment`, as the store's date_trunc gives it."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def by_month(rows: Iterable[Sequence]) -> Counter:
    """How many rows fall in each month: rows whose last column is a month (UTC)."""
    return Counter(row[-1] for row in rows)


def upserted_by_month(rows: Iterable[Sequence]) -> Upserted:
    """`RETURNING (xmax = 0), <month>` rows as the months' inserted and updated counts."""
    rows = list(rows)
    return Upserted(by_month(r for r in rows if r[0]), by_month(r for r in rows if not r[0]))


def _columns(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


class StoreBase:
    """`table`: the store of a `table` collection (its tables in `table.store_schema`); None: of
    the repositories collection, in the settings' schema. The embedding cache is in the
    settings' schema either way: one cache for every collection."""

    def __init__(
        self, conn: psycopg.Connection, settings: Settings, table: TableSpec | None = None
    ):
        self.conn = conn
        self.settings = settings
        self.table_spec = table
        self.schema = table.store_schema if table else settings.schema
        # The normalised rows, and their key column, that chunks are made of.
        self.rows_table, self.rows_key = ("rows", "key") if table else ("repositories", "full_name")
        self._ef_search: int | None = None  # hnsw.ef_search as set on this connection

    # -- identifiers -------------------------------------------------------------------------
    def t(self, name: str) -> sql.Composed:
        return sql.Identifier(self.schema, name)

    def shared(self, name: str) -> sql.Composed:
        """A table every collection shares (the embedding cache)."""
        return sql.Identifier(self.settings.schema, name)

    @property
    def rows(self) -> sql.Composed:
        return self.t(self.rows_table)

    @property
    def source(self) -> sql.Composed:
        return self.t(self.settings.source_table)

    def _sql(self, template: str, **identifiers) -> sql.Composed:
        return sql.SQL(template).format(**identifiers)

    def _count_by_month(
        self, relation: sql.Composable, time: sql.Composable, start: datetime, end: datetime
    ) -> Counter:
        """Rows of `relation` whose `time` falls in [start, end), by month (UTC)."""
        query = self._sql(
            "SELECT date_trunc('month', {time}, 'UTC'), count(*) FROM {relation} "
            "WHERE {time} >= %s AND {time} < %s GROUP BY 1",
            relation=relation,
            time=time,
        )
        return Counter(dict(self.execute(query, (start, end)).fetchall()))

    def execute(self, query, params=None, *, binary: bool = False) -> psycopg.Cursor:
        """`binary` for results holding vectors: pgvector parses the text format in Python, ~50x
        slower than reading the binary one."""
        return self.conn.execute(query, params, binary=binary)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """A session advisory lock on `name`, held until exit or until the connection ends."""
        self.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        try:
            yield
        finally:
            self._unlock("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    @contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """Whether the session advisory lock on `name` was free (then held until exit)."""
        taken = self.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (name,)).fetchone()[0]
        try:
            yield taken
        finally:
            if taken:
                self._unlock("SELECT pg_advisory_unlock(hashtext(%s))", (name,))

    def _unlock(self, query: str, params: tuple) -> None:
        try:
            self.execute(query, params)
        except psycopg.Error:
            pass  # the connection is gone, and its locks with it: keep the first error

    @contextmanager
    def window_lock(self, work: str, start: datetime, end: datetime) -> Iterator[None]:
        """Hold `work` (a step, with its space) on every month of [start, end) against other
        runs: a second run over an overlapping window waits, then finds nothing left to do, so
        no text is embedded twice. Months are locked in order (no deadlock between two ranges);
        the locks are the session's, so a killed run's connection releases them."""
        key = f"{self.schema}.{work}"
        first, last = start.year * 12 + start.month - 1, end.year * 12 + end.month - 1
        month_start = end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        months = list(range(first, last if end == month_start else last + 1))
        self.execute(
            "SELECT count(pg_advisory_lock(hashtext(%s), m)) FROM "
            "(SELECT unnest(%s::int[]) AS m ORDER BY 1) ordered",
            (key, months),
        )
        try:
            yield
        finally:
            self._unlock(
                "SELECT count(pg_advisory_unlock(hashtext(%s), m)) FROM unnest(%s::int[]) m",
                (key, months),
            )

    def clock(self) -> datetime:
        return self.execute("SELECT now()").fetchone()[0]

    # -- helpers -----------------------------------------------------------------------------
    def analyze_if_grown(self, table: str, changed: int, columns: Sequence[str]) -> None:
        """Refresh planner statistics after a bulk change (a first load, a large backfill), so
        that the next diff is a hash anti-join, not 24K index probes planned for an empty table;
        autovacuum would get there, but only a minute later."""
        rows = self.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
            (f'"{self.schema}"."{table}"',),
        ).fetchone()
        if changed >= 1000 and changed > 0.1 * max(rows[0] if rows else 0, 0):
            # Only the columns the diffs join and filter on: sampling texts and vectors is slow.
            self.execute(sql.SQL("ANALYZE {} ({})").format(self.t(table), _columns(columns)))

    def _stage(self, name: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
        self.execute(
            self._sql(
                "CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP",
                stage=sql.Identifier(f"_stage_{name}"),
                table=self.t(name),
            )
        )
        with self.conn.cursor().copy(
            self._sql(
                "COPY {stage} ({cols}) FROM STDIN",
                stage=sql.Identifier(f"_stage_{name}"),
                cols=_columns(columns),
            )
        ) as copy:
            for row in rows:
                copy.write_row(row)

    def _upsert_from_stage(self, name: str, columns: Sequence[str], key: str) -> Upserted:
        """Insert staged rows, update those that differ, leave equal ones untouched."""
        others = [c for c in columns if c != key]
        result = self.execute(
            self._sql(
                "INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage} "
                "ON CONFLICT ({key}) DO UPDATE SET {assignments}, updated_at = now() "
                "WHERE {old} IS DISTINCT FROM {new} "
                "RETURNING (xmax = 0), date_trunc('month', t.row_time, 'UTC')",
                table=self.t(name),
                stage=sql.Identifier(f"_stage_{name}"),
                cols=_columns(columns),
                key=sql.Identifier(key),
                assignments=sql.SQL(", ").join(
                    sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in others
                ),
                old=_row_of("t", others),
                new=_row_of("excluded", others),
            )
        ).fetchall()
        return upserted_by_month(result)


class _ArrayBinaryDumper(Dumper):
    """A float array in pgvector's binary form (int16 dimensions, int16 unused, big-endian
    float4s). pgvector's own dumper builds a `Vector` object per value first, which was half the
    cost of staging 24K cached vectors."""

    format = Format.BINARY
    _header = struct.Struct(">HH")

    def dump(self, obj: np.ndarray) -> bytes:
        if obj.ndim != 1:
            raise ValueError(f"a vector must be a 1-D array, got shape {obj.shape}")
        return self._header.pack(len(obj), 0) + obj.astype(">f4", copy=False).tobytes()


def register_array_dumper(conn: psycopg.Connection) -> None:
    """After pgvector's `register_vector`: numpy arrays sent as `vector` (COPY columns set to
    `vector`, `%b` parameters) use `_ArrayBinaryDumper`."""
    oid = conn.adapters.types["vector"].oid
    conn.adapters.register_dumper(np.ndarray, type("", (_ArrayBinaryDumper,), {"oid": oid}))


# A page of pending chunks (chunk_id, content_hash, row_time) as a relation `page`, sent as three
# arrays (`_page_params`) so that one statement works on the whole page inside the server.
_PAGE = (
    "WITH page (chunk_id, content_hash, row_time) AS (SELECT * FROM unnest("
    "%(ids)b::text[], %(hashes)b::text[], %(times)b::timestamptz[]))"
)


def _page_params(chunks: Sequence[tuple[str, str, datetime]]) -> dict:
    return {
        "ids": [c[0] for c in chunks],
        "hashes": [c[1] for c in chunks],
        "times": [c[2] for c in chunks],
    }


def _vectors(blobs: Sequence[bytes], dimensions: int) -> np.ndarray:
    """Vectors selected as `vector_send(...)`: pgvector's binary form (two int16 headers, then
    big-endian float4s), decoded all at once: a Python object per vector cost a third of a
    cached sync and most of an incremental clustering."""
    if not blobs:
        return np.empty((0, dimensions), dtype=np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 4 + 4 * dimensions)
    return raw[:, 4:].copy().view(">f4").astype(np.float32)


def _row_of(alias: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns))
