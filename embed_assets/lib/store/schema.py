"""Creating the project's tables, triggers and functions, once per version of the DDL below."""

from __future__ import annotations

import hashlib

from psycopg import sql

from embed_assets.lib.store.base import StoreBase, StoreError, _ensured, _ensured_lock, _row_of
from embed_assets.lib.store.repositories import TEXT_COLUMNS
from embed_assets.lib.store.table import TRIGGER_VERSION

MIN_PGVECTOR = (0, 5)
SCHEMA_MARK = "embed_assets schema v10"  # change when the DDL below changes
# v10 (after v8; v9 was never released) adds each chunk's `words` (full-text search) and the
# near-duplicate tables (`duplicate_rows`, `duplicate_pairs`), and drops the readers' `cursors`:
# a v8 store gains them in place.
# v8 keys the generic tables by the collection's key: the columns v7 named after repositories.
_V7_KEY_COLUMNS = ("source_changes", "chunks", "cluster_members")


class SchemaQueries(StoreBase):
    def ensure_schema(self) -> None:
        """Create what is missing. A schema marked with the current version and whose source
        table has its triggers is left alone: every process start would otherwise take DDL locks."""
        if self._schema_is_current():
            return
        version = self.execute(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        if version is None:
            raise StoreError(
                "the pgvector extension is not available on this PostgreSQL server; "
                "install pgvector >= 0.5 (https://github.com/pgvector/pgvector)"
            )
        with self.transaction():
            # DDL by two processes at once would race on the catalog: serialise it.
            self.execute("SELECT pg_advisory_xact_lock(hashtext('embed_assets.ensure_schema'))")
            self.execute("CREATE EXTENSION IF NOT EXISTS vector")
            installed = self.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]
            if tuple(int(p) for p in installed.split(".")[:2]) < MIN_PGVECTOR:
                raise StoreError(
                    f"pgvector {installed} is installed; embed_assets needs >= 0.5 "
                    "(HNSW indexes): ALTER EXTENSION vector UPDATE"
                )
            if self.table_spec is None:
                self._install_repositories()
            else:
                self._install_table()
            self.execute(
                sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                    sql.Identifier(self.schema), sql.Literal(self._mark())
                )
            )

    def _install_repositories(self) -> None:
        self._upgrade_from_v7()
        had_trigger = self._has_change_triggers()
        self.execute(
            self._sql(
                _GENERIC_DDL + _SHARED_DDL + _REPOSITORIES_DDL,
                **self._generic_tables(),
                source=self.source,
                repositories=self.t("repositories"),
                rejected=self.t("rejected_rows"),
                etags=self.t("github_etags"),
            )
        )
        self.execute(
            self._sql(
                _TRIGGER_DDL,
                source=self.source,
                changes=self.t("source_changes"),
                log_insert=self.t("log_source_insert"),
                log_update=self.t("log_source_update"),
                log_delete=self.t("log_source_delete"),
                set_hash=self.t("set_source_row_hash"),
                text_old=_row_of("o", TEXT_COLUMNS),
                text_new=_row_of("n", TEXT_COLUMNS),
            )
        )
        if not had_trigger:
            # A source table filled before the triggers existed: hash and log what it holds.
            self.execute(self._sql("UPDATE {source} SET row_hash = NULL", source=self.source))
            self.execute(
                self._sql(
                    "INSERT INTO {changes} (key, row_time, op) "
                    "SELECT full_name, created_at, 'insert' FROM {source}",
                    changes=self.t("source_changes"),
                    source=self.source,
                )
            )

    def _install_table(self) -> None:
        spec = self.table_spec
        self.execute(self._sql(_GENERIC_DDL + _SHARED_DDL, **self._generic_tables()))
        if spec.kind == "files":
            self.install_files_table()
        had_triggers = self.has_table_triggers(spec)
        self.install_table_source(spec)
        if spec.triggers and not had_triggers:
            self.log_every_table_row(spec)

    def _generic_tables(self) -> dict[str, sql.Composable]:
        return {
            "schema": sql.Identifier(self.schema),
            "shared_schema": sql.Identifier(self.settings.schema),
            "changes": self.t("source_changes"),
            "chunks": self.t("chunks"),
            "spaces": self.t("spaces"),
            "cursors": self.t("cursors"),
            "failures": self.t("embedding_failures"),
            "cache": self.shared("embedding_cache"),
            "counters": self.shared("cache_counters"),
            "clusters": self.t("clusters"),
            "members": self.t("cluster_members"),
            "resolutions": self.t("cluster_resolutions"),
            "meta": self.t("cluster_meta"),
            "duplicate_rows": self.t("duplicate_rows"),
            "duplicate_pairs": self.t("duplicate_pairs"),
        }

    def _mark(self) -> str:
        """The schema's version, and for a table collection what its triggers watch: another
        declaration (other columns read) installs them again."""
        if self.table_spec is None:
            return SCHEMA_MARK
        described = repr(self.table_spec) + TRIGGER_VERSION
        digest = hashlib.sha1(described.encode()).hexdigest()[:12]
        return f"{SCHEMA_MARK} table {digest}"

    def _upgrade_from_v7(self) -> None:
        """In place, inside the schema transaction: renames only, so vectors, the cache and
        clusters are kept and nothing is re-embedded. The trigger functions are replaced
        after, by the DDL that follows."""
        for table in _V7_KEY_COLUMNS:
            named_as_v7 = self.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name = 'full_name'",
                (self.schema, table),
            ).fetchone()
            if named_as_v7:
                self.execute(
                    self._sql(
                        "ALTER TABLE {table} RENAME COLUMN full_name TO key", table=self.t(table)
                    )
                )
        self.execute(
            self._sql(
                "ALTER INDEX IF EXISTS {old} RENAME TO chunks_key", old=self.t("chunks_full_name")
            )
        )

    def _schema_is_current(self) -> bool:
        mark = self.execute(
            "SELECT obj_description(to_regnamespace(%s), 'pg_namespace')", (self.schema,)
        ).fetchone()[0]
        if mark != self._mark():
            return False
        if self.table_spec is None:
            return self._has_change_triggers()
        return not self.table_spec.triggers or self.has_table_triggers(self.table_spec)

    def _has_change_triggers(self) -> bool:
        return (
            self.execute(
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND t.tgname LIKE 'embed_assets_%%'",
                (self.schema, self.settings.source_table),
            ).fetchone()[0]
            == 4
        )

    def drop_schema(self) -> None:
        self.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
        )
        with _ensured_lock:
            _ensured.clear()


# Every collection's own tables, in its schema.
_GENERIC_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {changes} (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    row_time timestamptz NOT NULL,
    op text NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {chunks} (
    chunk_id text PRIMARY KEY,
    key text NOT NULL,
    position integer NOT NULL,
    row_time timestamptz NOT NULL,
    text text NOT NULL,
    content_hash text NOT NULL,
    text_hash text NOT NULL,
    chunker text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS chunks_row_time ON {chunks} (row_time);
CREATE INDEX IF NOT EXISTS chunks_key ON {chunks} (key);
-- v10, hybrid search: the words of each chunk, kept by the server with the chunk's text (a v8
-- store gets the column filled for its chunks by this ALTER).
ALTER TABLE {chunks} ADD COLUMN IF NOT EXISTS words tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED;
CREATE INDEX IF NOT EXISTS chunks_words ON {chunks} USING gin (words);
CREATE TABLE IF NOT EXISTS {spaces} (
    name text PRIMARY KEY,
    model text NOT NULL,
    dimensions integer NOT NULL,
    active boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS spaces_one_active ON {spaces} (active) WHERE active;
ALTER TABLE {spaces} ADD COLUMN IF NOT EXISTS written_at timestamptz;
CREATE TABLE IF NOT EXISTS {failures} (
    space text NOT NULL,
    chunk_id text NOT NULL,
    content_hash text NOT NULL,
    reason text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, chunk_id)
);
CREATE TABLE IF NOT EXISTS {clusters} (
    space text NOT NULL,
    cluster_id bigint NOT NULL,
    size integer NOT NULL,
    vector_sum vector NOT NULL,
    label text NOT NULL,
    representative text NOT NULL,
    mean_similarity real NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, cluster_id)
);
CREATE TABLE IF NOT EXISTS {members} (
    space text NOT NULL,
    key text NOT NULL,
    content_hash text NOT NULL,
    cluster_id bigint,
    similarity real,
    near_duplicate_of text[] NOT NULL DEFAULT '{{}}',  -- unused since v10: see duplicate_pairs
    removed boolean NOT NULL DEFAULT false,
    PRIMARY KEY (space, key)
);
CREATE INDEX IF NOT EXISTS cluster_members_cluster ON {members} (space, cluster_id);
CREATE TABLE IF NOT EXISTS {resolutions} (
    space text NOT NULL,
    cluster_id bigint NOT NULL,
    note text NOT NULL,
    resolved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space, cluster_id)
);
CREATE TABLE IF NOT EXISTS {meta} (
    space text PRIMARY KEY,
    next_id bigint NOT NULL,
    full_at timestamptz,
    baseline jsonb
);
CREATE TABLE IF NOT EXISTS {duplicate_rows} (
    space text NOT NULL,
    key text NOT NULL,
    content_hash text NOT NULL,
    duplicate_group text,
    PRIMARY KEY (space, key)
);
CREATE INDEX IF NOT EXISTS duplicate_rows_group ON {duplicate_rows} (space, duplicate_group)
    WHERE duplicate_group IS NOT NULL;
CREATE TABLE IF NOT EXISTS {duplicate_pairs} (
    space text NOT NULL,
    key text NOT NULL,
    other text NOT NULL,
    similarity real NOT NULL,
    PRIMARY KEY (space, key, other)
);
CREATE INDEX IF NOT EXISTS duplicate_pairs_other ON {duplicate_pairs} (space, other);
-- A run's rows step takes what it handled out of the log; readers keep no positions here.
DROP TABLE IF EXISTS {cursors};
"""

# The embedding cache every collection shares, in the settings' schema.
_SHARED_DDL = """
CREATE SCHEMA IF NOT EXISTS {shared_schema};
CREATE TABLE IF NOT EXISTS {cache} (
    model text NOT NULL,
    dimensions integer NOT NULL,
    content_hash text NOT NULL,
    embedding vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, dimensions, content_hash)
);
CREATE INDEX IF NOT EXISTS embedding_cache_used_at ON {cache} (used_at);
CREATE TABLE IF NOT EXISTS {counters} (
    hits bigint NOT NULL DEFAULT 0,
    misses bigint NOT NULL DEFAULT 0
);
INSERT INTO {counters} SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM {counters});
"""

# The repositories source kind's tables (its triggers: _TRIGGER_DDL).
_REPOSITORIES_DDL = """
CREATE TABLE IF NOT EXISTS {source} (
    full_name text PRIMARY KEY,
    description text,
    language text,
    stars bigint,
    topics text[] NOT NULL DEFAULT '{{}}',
    url text,
    readme text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    row_hash text
);
CREATE INDEX IF NOT EXISTS source_created_at ON {source} (created_at);
CREATE TABLE IF NOT EXISTS {repositories} (
    full_name text PRIMARY KEY,
    description text,
    language text,
    stars bigint,
    topics text[] NOT NULL,
    url text NOT NULL,
    readme text,
    row_time timestamptz NOT NULL,
    source_hash text NOT NULL,
    text_hash text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS repositories_row_time ON {repositories} (row_time);
CREATE TABLE IF NOT EXISTS {rejected} (
    full_name text PRIMARY KEY,
    row_time timestamptz NOT NULL,
    source_hash text NOT NULL,
    reason text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {etags} (
    url text PRIMARY KEY,
    etag text NOT NULL,
    body jsonb NOT NULL,
    next_url text,
    fetched_at timestamptz NOT NULL DEFAULT now()
);
"""

_TRIGGER_DDL = """
CREATE OR REPLACE FUNCTION {set_hash}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Kept by the database so that finding changed rows is a comparison, not a hash per row.
    NEW.row_hash := md5(ROW(NEW.description, NEW.language, NEW.stars, NEW.topics, NEW.url,
                            NEW.readme, NEW.created_at AT TIME ZONE 'UTC')::text);
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER embed_assets_row_hash BEFORE INSERT OR UPDATE ON {source}
    FOR EACH ROW EXECUTE FUNCTION {set_hash}();
CREATE OR REPLACE FUNCTION {log_insert}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {changes} (key, row_time, op)
    SELECT full_name, created_at, 'insert' FROM new_rows;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION {log_update}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only changes to what is embedded (or to the row's time) are logged: stars never cause a run.
    INSERT INTO {changes} (key, row_time, op)
    SELECT n.full_name, n.created_at, 'update' FROM new_rows n
    LEFT JOIN old_rows o ON o.full_name = n.full_name
    WHERE o.full_name IS NULL OR {text_old} IS DISTINCT FROM {text_new};
    -- A row that moved to another time (or was renamed) leaves its old partition.
    INSERT INTO {changes} (key, row_time, op)
    SELECT o.full_name, o.created_at, 'delete' FROM old_rows o
    LEFT JOIN new_rows n ON n.full_name = o.full_name
    WHERE n.full_name IS NULL OR n.created_at IS DISTINCT FROM o.created_at;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION {log_delete}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {changes} (key, row_time, op)
    SELECT full_name, created_at, 'delete' FROM old_rows;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER embed_assets_log_insert AFTER INSERT ON {source}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {log_insert}();
CREATE OR REPLACE TRIGGER embed_assets_log_update AFTER UPDATE ON {source}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {log_update}();
CREATE OR REPLACE TRIGGER embed_assets_log_delete AFTER DELETE ON {source}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {log_delete}();
"""
