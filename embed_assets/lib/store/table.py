"""The `table` source kind's SQL: any table or view of the project's database, schema-qualified.

Its rows are kept in the collection's `rows` table: the key (as text: the column's value, or a JSON
array of the values of a key of several columns), the row's time, a hash of the columns the
collection reads, the template's columns (`fields`), the metadata columns and the group. A row
whose template columns are unchanged keeps its text hash, so a metadata-only change re-embeds
nothing; its metadata is refreshed all the same.

Change capture: statement triggers on a table write the keys of inserted rows, of updated rows
whose read columns changed (other columns are ignored) and of deleted rows to `source_changes`;
a view, or a table the project may not alter, is polled instead (`changed_months_by_hash`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime

import psycopg
from psycopg import sql

from embed_assets.lib.store.base import StoreBase, TableSpec, by_month, upserted_by_month

# The row time of every row of an unpartitioned collection (`partitions: none`).
UNPARTITIONED_TIME = "2000-01-01T00:00:00+00:00"


def _key(spec: TableSpec, alias: str) -> sql.Composable:
    if len(spec.key) == 1:
        return sql.SQL("{}::text").format(sql.Identifier(alias, spec.key[0]))
    return sql.SQL("jsonb_build_array({})::text").format(
        sql.SQL(", ").join(sql.Identifier(alias, c) for c in spec.key)
    )


def _time(spec: TableSpec, alias: str) -> sql.Composable:
    if spec.time_column is None:
        return sql.SQL("{}::timestamptz").format(sql.Literal(UNPARTITIONED_TIME))
    return sql.SQL("{}::timestamptz").format(sql.Identifier(alias, spec.time_column))


def _timed(spec: TableSpec, alias: str) -> sql.Composable:
    """Whether a row has a time (a row with none is in no partition, and logs no change)."""
    if spec.time_column is None:
        return sql.SQL("true")
    return sql.SQL("{} IS NOT NULL").format(sql.Identifier(alias, spec.time_column))


def _hash(spec: TableSpec, alias: str) -> sql.Composable:
    return sql.SQL("md5(ROW({})::text)").format(
        sql.SQL(", ").join(sql.Identifier(alias, c) for c in spec.watched)
    )


def _object(columns: tuple[str, ...], alias: str) -> sql.Composable:
    if not columns:
        return sql.SQL("'{}'::jsonb")
    return sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(alias, c)) for c in columns
        )
    )


def _group(spec: TableSpec, alias: str) -> sql.Composable:
    if spec.group_by is None:
        return sql.SQL("NULL::text")
    return sql.SQL("{}::text").format(sql.Identifier(alias, spec.group_by))


class TableQueries(StoreBase):
    # -- the declaration, checked against the database -----------------------------------------
    def relation_columns(self, schema: str, name: str) -> dict[str, str] | None:
        """Column -> type of a table or view, None when there is no such relation."""
        rows = self.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), c.relkind FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (schema, name),
        ).fetchall()
        return {column: kind for column, kind, _ in rows} if rows else None

    def is_view(self, schema: str, name: str) -> bool:
        row = self.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (schema, name),
        ).fetchone()
        return row is not None and row[0] in ("v", "m")

    def key_is_unique(self, spec: TableSpec) -> bool:
        """A table: a primary key or unique index on exactly the key's columns. A view: no two
        rows share a key now (a scan; views have no constraints to ask)."""
        if not self.is_view(spec.schema, spec.table):
            return bool(
                self.execute(
                    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s AND i.indisunique "
                    "AND i.indpred IS NULL AND (SELECT array_agg(a.attname::text "
                    "ORDER BY a.attname) FROM pg_attribute a "
                    "WHERE a.attrelid = c.oid AND a.attnum = ANY(i.indkey)) "
                    "= (SELECT array_agg(k ORDER BY k) FROM unnest(%s::text[]) k)",
                    (spec.schema, spec.table, list(spec.key)),
                ).fetchone()
            )
        duplicates = self.execute(
            self._sql(
                "SELECT count(*) - count(DISTINCT {key}) FROM {source} s",
                key=_key(spec, "s"),
                source=self._table_source(spec),
            )
        ).fetchone()[0]
        return duplicates == 0

    def _table_source(self, spec: TableSpec) -> sql.Composed:
        return sql.Identifier(spec.schema, spec.table)

    # -- DDL -------------------------------------------------------------------------------------
    def install_table_source(self, spec: TableSpec) -> None:
        """The `rows` table, and, for change_detection: triggers, the triggers on the source
        table (replaced, so that a declaration reading other columns watches those). Inside the
        schema transaction."""
        self.execute(self._sql(_ROWS_DDL, rows=self.t("rows")))
        source = self._table_source(spec)
        names = {op: sql.Identifier(self._trigger_name(op)) for op in _OPS}
        for op in _OPS:
            self.execute(
                self._sql(
                    "DROP TRIGGER IF EXISTS {name} ON {source}", name=names[op], source=source
                )
            )
        if not spec.triggers:
            return
        self.execute(
            self._sql(
                _TRIGGER_DDL,
                changes=self.t("source_changes"),
                source=source,
                log_insert=self.t("log_source_insert"),
                log_update=self.t("log_source_update"),
                log_delete=self.t("log_source_delete"),
                insert_trigger=names["insert"],
                update_trigger=names["update"],
                delete_trigger=names["delete"],
                key_n=_key(spec, "n"),
                key_o=_key(spec, "o"),
                time_n=_time(spec, "n"),
                time_o=_time(spec, "o"),
                watched_n=_hash(spec, "n"),
                watched_o=_hash(spec, "o"),
                timed_n=_timed(spec, "n"),
                timed_o=_timed(spec, "o"),
            )
        )

    def _trigger_name(self, op: str) -> str:
        """Named after the collection's schema, short (a table may feed several collections,
        and names past 63 characters are cut)."""
        return f"embed_assets_{op}_{hashlib.sha1(self.schema.encode()).hexdigest()[:12]}"

    def has_table_triggers(self, spec: TableSpec) -> bool:
        return self.execute(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND t.tgname LIKE %s",
            (spec.schema, spec.table, self._trigger_name("%")),
        ).fetchone()[0] == len(_OPS)

    def log_every_table_row(self, spec: TableSpec) -> None:
        """A source filled before its triggers existed: every row is a change to read."""
        self.execute(
            self._sql(
                "INSERT INTO {changes} (key, row_time, op) SELECT {key}, {time}, 'insert' "
                "FROM {source} s WHERE {time} IS NOT NULL",
                changes=self.t("source_changes"),
                key=_key(spec, "s"),
                time=_time(spec, "s"),
                source=self._table_source(spec),
            )
        )

    # -- rows --------------------------------------------------------------------------------
    def sync_table_rows(self, spec: TableSpec, start: datetime, end: datetime) -> dict:
        """In one transaction, for the source rows of [start, end): upsert those whose read
        columns changed (a hash compare for the others), and delete rows gone from the window.
        `text_changed` counts the rows whose template columns changed."""
        params = {"start": start, "end": end}
        source = self._table_source(spec)
        with self.transaction():
            self.execute(
                self._sql(
                    "CREATE TEMP TABLE _changed ON COMMIT DROP AS "
                    "SELECT {key} AS key, {time} AS row_time, {hash} AS source_hash, "
                    "{fields} AS fields, {metadata} AS metadata, {group} AS group_key "
                    "FROM {source} s WHERE {time} >= %(start)s AND {time} < %(end)s "
                    "AND NOT EXISTS (SELECT 1 FROM {rows} r WHERE r.key = {key} "
                    "AND r.source_hash = {hash})",
                    key=_key(spec, "s"),
                    time=_time(spec, "s"),
                    hash=_hash(spec, "s"),
                    fields=_object(spec.columns, "s"),
                    metadata=_object(spec.metadata, "s"),
                    group=_group(spec, "s"),
                    source=source,
                    rows=self.t("rows"),
                ),
                params,
            )
            text_changed = self.execute(
                self._sql(
                    "SELECT count(*) FROM _changed c JOIN {rows} r USING (key) "
                    "WHERE r.text_hash <> md5(c.fields::text)",
                    rows=self.t("rows"),
                )
            ).fetchone()[0]
            result = self.execute(self._sql(_UPSERT_ROWS, rows=self.t("rows"))).fetchall()
            deleted = by_month(
                self.execute(
                    self._sql(
                        "DELETE FROM {rows} r WHERE r.row_time >= %(start)s "
                        "AND r.row_time < %(end)s "
                        "AND NOT EXISTS (SELECT 1 FROM {source} s WHERE {key} = r.key "
                        "AND {time} >= %(start)s AND {time} < %(end)s) "
                        "RETURNING date_trunc('month', r.row_time, 'UTC')",
                        rows=self.t("rows"),
                        source=source,
                        key=_key(spec, "s"),
                        time=_time(spec, "s"),
                    ),
                    params,
                )
            )
        self.analyze_if_grown(
            "rows", len(result) + deleted.total(), ("key", "row_time", "source_hash")
        )
        upserted = upserted_by_month(result)
        return {
            "changed": upserted.added + upserted.updated,
            "added": upserted.added,
            "updated": upserted.updated,
            "text_changed": text_changed,
            "deleted": deleted,
        }

    def table_source_months(self, spec: TableSpec, start: datetime, end: datetime) -> Counter:
        """Source rows of [start, end) by month (UTC) of their time."""
        relation = self._sql("{source} s", source=self._table_source(spec))
        return self._count_by_month(relation, _time(spec, "s"), start, end)

    def count_table_source(
        self, spec: TableSpec, start: datetime | None = None, end: datetime | None = None
    ) -> int:
        window = sql.SQL("")
        if start is not None:
            window = sql.SQL(" AND {time} >= %(start)s AND {time} < %(end)s").format(
                time=_time(spec, "s")
            )
        return self.execute(
            self._sql(
                "SELECT count(*) FROM {source} s WHERE {time} IS NOT NULL{window}",
                source=self._table_source(spec),
                time=_time(spec, "s"),
                window=window,
            ),
            {"start": start, "end": end},
        ).fetchone()[0]

    def table_rows_to_chunk(self, start: datetime, end: datetime, chunker: str) -> list[dict]:
        """Rows of [start, end) whose text, time or chunking differs from their chunks'."""
        cur = self.conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            self._sql(
                "SELECT r.key, r.fields, r.row_time, r.text_hash FROM {rows} r "
                "WHERE r.row_time >= %(start)s AND r.row_time < %(end)s AND NOT EXISTS ("
                "  SELECT 1 FROM {chunks} c WHERE c.chunk_id = r.key || '#0' "
                "  AND c.text_hash = r.text_hash AND c.chunker = %(chunker)s "
                "  AND c.row_time = r.row_time)",
                rows=self.t("rows"),
                chunks=self.t("chunks"),
            ),
            {"start": start, "end": end, "chunker": chunker},
        ).fetchall()

    def changed_months_by_hash(self, spec: TableSpec) -> tuple[list[datetime], str]:
        """Months (UTC) where the source and the stored rows differ (a row added, changed in a
        read column, moved or gone), and a fingerprint of the difference: the poll of a view,
        one scan of each side."""
        months, fingerprint = self.execute(
            self._sql(
                "WITH src AS (SELECT date_trunc('month', {time}, 'UTC') AS m, {key} AS k, "
                "  {hash} AS h FROM {source} s WHERE {time} IS NOT NULL), "
                "kept AS (SELECT date_trunc('month', row_time, 'UTC') AS m, key AS k, "
                "  source_hash AS h FROM {rows}), "
                "diff AS ((SELECT * FROM src EXCEPT SELECT * FROM kept) "
                "  UNION ALL (SELECT * FROM kept EXCEPT SELECT * FROM src)) "
                "SELECT coalesce(array_agg(DISTINCT m), '{{}}'), "
                "md5(coalesce(string_agg(k || h, ',' ORDER BY k, h), '')) FROM diff",
                time=_time(spec, "s"),
                key=_key(spec, "s"),
                hash=_hash(spec, "s"),
                source=self._table_source(spec),
                rows=self.t("rows"),
            )
        ).fetchone()
        return sorted(months), fingerprint[:12]


_OPS = ("insert", "update", "delete")

_ROWS_DDL = """
CREATE TABLE IF NOT EXISTS {rows} (
    key text PRIMARY KEY,
    row_time timestamptz NOT NULL,
    source_hash text NOT NULL,
    text_hash text NOT NULL,
    fields jsonb NOT NULL,
    metadata jsonb NOT NULL,
    group_key text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rows_row_time ON {rows} (row_time);
CREATE INDEX IF NOT EXISTS rows_group_key ON {rows} (group_key);
"""

# text_hash: of the template's columns only, so that a metadata change keeps the chunks.
_UPSERT_ROWS = """
INSERT INTO {rows} AS r (key, row_time, source_hash, text_hash, fields, metadata, group_key)
SELECT key, row_time, source_hash, md5(fields::text), fields, metadata, group_key FROM _changed
ON CONFLICT (key) DO UPDATE SET
    row_time = excluded.row_time, source_hash = excluded.source_hash,
    text_hash = excluded.text_hash, fields = excluded.fields, metadata = excluded.metadata,
    group_key = excluded.group_key, updated_at = now()
RETURNING (xmax = 0), date_trunc('month', r.row_time, 'UTC')
"""

# Each statement runs by EXECUTE, planned afresh for the transition tables of this statement:
# a cached plan made for a 1-row update joined a later 10,000-row one by nested loop (a minute).
TRIGGER_VERSION = "execute"  # part of the schema mark: a store with older triggers gets these

_TRIGGER_DDL = """
CREATE OR REPLACE FUNCTION {log_insert}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$INSERT INTO {changes} (key, row_time, op)
    SELECT {key_n}, {time_n}, 'insert' FROM new_rows n WHERE {timed_n}$q$;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION {log_update}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only changes to the columns the collection reads are logged.
    EXECUTE $q$INSERT INTO {changes} (key, row_time, op)
    SELECT {key_n}, {time_n}, 'update' FROM new_rows n WHERE {timed_n} AND NOT EXISTS (
        SELECT 1 FROM old_rows o WHERE {key_o} = {key_n} AND {watched_o} = {watched_n})$q$;
    -- A row that moved to another time (or took another key) leaves its old partition.
    EXECUTE $q$INSERT INTO {changes} (key, row_time, op)
    SELECT {key_o}, {time_o}, 'delete' FROM old_rows o WHERE {timed_o} AND NOT EXISTS (
        SELECT 1 FROM new_rows n WHERE {key_n} = {key_o} AND {time_n} = {time_o})$q$;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION {log_delete}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$INSERT INTO {changes} (key, row_time, op)
    SELECT {key_o}, {time_o}, 'delete' FROM old_rows o WHERE {timed_o}$q$;
    RETURN NULL;
END $$;
CREATE TRIGGER {insert_trigger} AFTER INSERT ON {source}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {log_insert}();
CREATE TRIGGER {update_trigger} AFTER UPDATE ON {source}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {log_update}();
CREATE TRIGGER {delete_trigger} AFTER DELETE ON {source}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {log_delete}();
"""
