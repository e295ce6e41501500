"""Embedding spaces: one pgvector table each, staged writes, the HNSW index and status (search:
`search.py`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
from psycopg import sql

from embed_assets.lib import hnsw
from embed_assets.lib.store.base import (
    _PAGE,
    Space,
    StoreBase,
    StoreError,
    _ensured,
    _ensured_lock,
    _page_params,
    by_month,
    upserted_by_month,
)


class VectorQueries(StoreBase):
    def ensure_space(self, space: Space) -> None:
        key = (self.conn.info.dsn, self.schema, space.table)
        if key in _ensured or self._space_exists(space):
            with _ensured_lock:
                _ensured.add(key)
            return
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(hashtext('embed_assets.ensure_schema'))")
            self.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {table} (chunk_id text PRIMARY KEY, "
                    "content_hash text NOT NULL, row_time timestamptz NOT NULL, "
                    "embedding vector({dims}) NOT NULL, embedded_at timestamptz NOT NULL DEFAULT "
                    "now()); "
                    "CREATE INDEX IF NOT EXISTS {hash_index} ON {table} (content_hash); "
                    "CREATE INDEX IF NOT EXISTS {time_index} ON {table} (row_time)",
                    table=self.t(space.table),
                    dims=sql.Literal(space.dimensions),
                    hash_index=sql.Identifier(f"{space.table}_content_hash"),
                    time_index=sql.Identifier(f"{space.table}_row_time"),
                )
            )
            self.execute(
                self._sql(
                    "INSERT INTO {spaces} (name, model, dimensions, active) "
                    "VALUES (%s, %s, %s, NOT EXISTS (SELECT 1 FROM {spaces} WHERE active)) "
                    "ON CONFLICT (name) DO NOTHING",
                    spaces=self.t("spaces"),
                ),
                (space.name, space.model, space.dimensions),
            )
        with _ensured_lock:
            _ensured.add(key)

    def _space_exists(self, space: Space) -> bool:
        row = self.execute(
            self._sql(
                "SELECT model, dimensions, to_regclass(%s) IS NOT NULL FROM {spaces} WHERE name = "
                "%s",
                spaces=self.t("spaces"),
            ),
            (f'"{self.schema}"."{space.table}"', space.name),
        ).fetchone()
        if row and (row[0], row[1]) != (space.model, space.dimensions):
            raise StoreError(
                f"embedding space {space.name!r} exists with model {row[0]!r} and "
                f"{row[1]} dimensions, not {space.model!r}/{space.dimensions}"
            )
        return bool(row and row[2])

    def active_space(self) -> Space | None:
        """The space searches and the cluster index use."""
        row = self.execute(
            self._sql(
                "SELECT name, model, dimensions FROM {spaces} WHERE active", spaces=self.t("spaces")
            )
        ).fetchone()
        return Space(*row) if row else None

    def written_space(self) -> Space | None:
        """The space the latest embeddings run wrote (a new model's while it fills), else the
        active one: what the embeddings checks look at."""
        row = self.execute(
            self._sql(
                "SELECT name, model, dimensions FROM {spaces} "
                "ORDER BY written_at DESC NULLS LAST, active DESC LIMIT 1",
                spaces=self.t("spaces"),
            )
        ).fetchone()
        return Space(*row) if row else None

    def list_spaces(self) -> list[dict]:
        """Every space with its counts: vectors, chunks still without one, whether it has its
        HNSW index."""
        spaces = self.execute(
            self._sql(
                "SELECT name, model, dimensions, active, created_at, written_at FROM {spaces} "
                "ORDER BY active DESC, created_at",
                spaces=self.t("spaces"),
            )
        ).fetchall()
        listed = []
        for name, model, dimensions, active, created_at, written_at in spaces:
            space = Space(name, model, dimensions)
            embeddings, pending = self.space_counts(space)
            indexed = self.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}"."{space.table}_hnsw"',)
            ).fetchone()[0]
            listed.append(
                {
                    "name": name,
                    "model": model,
                    "dimensions": dimensions,
                    "active": active,
                    "embeddings": embeddings,
                    "pending": pending,
                    "indexed": indexed,
                    "created_at": created_at,
                    "written_at": written_at,
                }
            )
        return listed

    def activate_space(self, name: str) -> None:
        """Make `name` the space searches use, in one transaction: no moment without one."""
        with self.transaction():
            if not self.execute(
                self._sql("SELECT 1 FROM {spaces} WHERE name = %s", spaces=self.t("spaces")),
                (name,),
            ).fetchone():
                raise StoreError(f"no embedding space {name!r} (see `embed-assets spaces`)")
            # Two statements: one would meet the one-active index in the middle of the update.
            self.execute(
                self._sql(
                    "UPDATE {spaces} SET active = false WHERE active AND name <> %s",
                    spaces=self.t("spaces"),
                ),
                (name,),
            )
            self.execute(
                self._sql(
                    "UPDATE {spaces} SET active = true WHERE name = %s", spaces=self.t("spaces")
                ),
                (name,),
            )

    def drop_space(self, name: str) -> None:
        """Remove a space that is not active: its vectors, refusals and cluster index. Waits for
        a run writing the space to finish (the same lock as `write_vectors`, taken first)."""
        table = Space(name, "", 0).table
        with self.transaction():
            self.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{table}",))
            row = self.execute(
                self._sql(
                    "SELECT active FROM {spaces} WHERE name = %s FOR UPDATE",
                    spaces=self.t("spaces"),
                ),
                (name,),
            ).fetchone()
            if row is None:
                raise StoreError(f"no embedding space {name!r} (see `embed-assets spaces`)")
            if row[0]:
                raise StoreError(
                    f"{name!r} is the active embedding space: activate another one first"
                )
            for owned in (
                "embedding_failures",
                "cluster_members",
                "clusters",
                "cluster_resolutions",
                "cluster_meta",
                "duplicate_rows",
                "duplicate_pairs",
                "spaces",
            ):
                column = "name" if owned == "spaces" else "space"
                self.execute(
                    self._sql(
                        "DELETE FROM {table} WHERE {column} = %s",
                        table=self.t(owned),
                        column=sql.Identifier(column),
                    ),
                    (name,),
                )
            self.execute(self._sql("DROP TABLE IF EXISTS {table}", table=self.t(table)))
        with _ensured_lock:
            _ensured.difference_update({key for key in _ensured if key[1:] == (self.schema, table)})

    def pending_chunks(
        self, space: Space, start: datetime, end: datetime, after: str, limit: int
    ) -> list[tuple[str, str, datetime, str]]:
        """A page (keyset order by chunk_id) of chunks in [start, end) with no current vector:
        (chunk_id, content_hash, row_time, text)."""
        return self.execute(
            self._sql(
                "SELECT c.chunk_id, c.content_hash, c.row_time, c.text FROM {chunks} c "
                "WHERE c.row_time >= %(start)s AND c.row_time < %(end)s AND c.chunk_id > %(after)s "
                "AND NOT EXISTS (SELECT 1 FROM {table} e WHERE e.chunk_id = c.chunk_id "
                "  AND e.content_hash = c.content_hash AND e.row_time = c.row_time) "
                "ORDER BY c.chunk_id LIMIT %(limit)s",
                chunks=self.t("chunks"),
                table=self.t(space.table),
            ),
            {"start": start, "end": end, "after": after, "limit": limit},
        ).fetchall()

    def start_vector_stage(self) -> None:
        self.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _stage_vectors (chunk_id text, "
            "content_hash text, row_time timestamptz, embedding vector)"
        )
        self.execute(
            "CREATE INDEX IF NOT EXISTS _stage_vectors_hash ON _stage_vectors (content_hash)"
        )
        self.execute("TRUNCATE _stage_vectors")

    def stage_known_vectors(
        self, space: Space, chunks: Sequence[tuple[str, str, datetime]]
    ) -> set[str]:
        """Stage, inside the server, the vectors of these pending chunks (chunk_id, content_hash,
        row_time) whose text already has one: staged earlier in this run, or in the space (a
        chunk that moved); return the hashes found."""
        return {
            row[0]
            for row in self.execute(
                self._sql(
                    _PAGE
                    + " INSERT INTO _stage_vectors (chunk_id, content_hash, row_time, embedding) "
                    "SELECT p.chunk_id, p.content_hash, p.row_time, known.embedding FROM page p "
                    "CROSS JOIN LATERAL (SELECT embedding FROM _stage_vectors s "
                    "  WHERE s.content_hash = p.content_hash UNION ALL SELECT embedding FROM "
                    "{table} e "
                    "  WHERE e.content_hash = p.content_hash LIMIT 1) known "
                    "RETURNING content_hash",
                    table=self.t(space.table),
                ),
                _page_params(chunks),
            ).fetchall()
        }

    def stage_vectors(self, rows: Iterable[tuple[str, str, datetime, np.ndarray]]) -> None:
        with self.conn.cursor().copy(
            "COPY _stage_vectors (chunk_id, content_hash, row_time, "
            "embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "timestamptz", "vector"])
            for row in rows:
                copy.write_row(row)

    def record_failures(self, space: Space, failures: Sequence[tuple[str, str, str]]) -> None:
        """Chunks whose vector was refused: (chunk_id, content_hash, reason). They stay pending."""
        if not failures:
            return
        self.conn.cursor().executemany(
            self._sql(
                "INSERT INTO {failures} (space, chunk_id, content_hash, reason) VALUES (%s, %s, "
                "%s, %s) "
                "ON CONFLICT (space, chunk_id) DO UPDATE SET content_hash = excluded.content_hash, "
                "reason = excluded.reason, failed_at = now()",
                failures=self.t("embedding_failures"),
            ),
            [(space.name, *f) for f in failures],
        )

    def write_vectors(self, space: Space, start: datetime, end: datetime) -> dict:
        """In one transaction: upsert the staged vectors and delete the vectors of [start, end)
        whose chunk is gone. A large batch drops the HNSW index and builds it again after the
        write: inserting into the graph costs ~10x more per row than building it (measured: 24K
        rows COPY into an indexed table 38 s, COPY then build 3.8 s)."""
        table = self.t(space.table)
        index = sql.Identifier(f"{space.table}_hnsw")
        with self.transaction():
            # One writer per space at a time; readers are not blocked except during a rebuild.
            self.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}.{space.table}",)
            )
            staged = self.execute("SELECT count(*) FROM _stage_vectors").fetchone()[0]
            stored = self.execute(
                self._sql("SELECT count(*) FROM {table}", table=table)
            ).fetchone()[0]
            has_index = self.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}"."{space.table}_hnsw"',)
            ).fetchone()[0]
            rebuild = not has_index or (staged >= 1000 and staged * 10 > stored + staged)
            if rebuild and has_index:
                self.execute(
                    self._sql(
                        "DROP INDEX {schema}.{index}",
                        schema=sql.Identifier(self.schema),
                        index=index,
                    )
                )
            written = self.execute(
                self._sql(
                    "INSERT INTO {table} (chunk_id, content_hash, row_time, embedding) "
                    "SELECT chunk_id, content_hash, row_time, embedding FROM _stage_vectors "
                    "ON CONFLICT (chunk_id) DO UPDATE SET content_hash = excluded.content_hash, "
                    "row_time = excluded.row_time, embedding = excluded.embedding, embedded_at = "
                    "now() "
                    "RETURNING (xmax = 0), date_trunc('month', row_time, 'UTC')",
                    table=table,
                )
            ).fetchall()
            deleted = by_month(
                self.execute(
                    self._sql(
                        "DELETE FROM {table} e WHERE e.row_time >= %(start)s "
                        "AND e.row_time < %(end)s "
                        "AND NOT EXISTS (SELECT 1 FROM {chunks} c WHERE c.chunk_id = e.chunk_id "
                        "  AND c.row_time = e.row_time) "
                        "RETURNING date_trunc('month', e.row_time, 'UTC')",
                        table=table,
                        chunks=self.t("chunks"),
                    ),
                    {"start": start, "end": end},
                )
            )
            self.execute(
                self._sql(
                    "DELETE FROM {failures} f WHERE f.space = %s AND f.chunk_id IN "
                    "(SELECT chunk_id FROM _stage_vectors)",
                    failures=self.t("embedding_failures"),
                ),
                (space.name,),
            )
            upserted = upserted_by_month(written)
            self.execute(
                self._sql(
                    "UPDATE {spaces} SET written_at = now() WHERE name = %s",
                    spaces=self.t("spaces"),
                ),
                (space.name,),
            )
            index_seconds = 0.0
            if rebuild:
                # m and ef_construction by the size of the table as written, unless set.
                m, ef_construction = hnsw.build_parameters(
                    stored + upserted.added.total() - deleted.total(),
                    self.settings.hnsw_m,
                    self.settings.hnsw_ef_construction,
                )
                self.execute("SET LOCAL maintenance_work_mem = '1GB'")
                # One worker beside the leader: measured faster than two on two cores.
                self.execute("SET LOCAL max_parallel_maintenance_workers = 1")
                building = time.perf_counter()
                self.execute(
                    self._sql(
                        "CREATE INDEX {index} ON {table} USING hnsw (embedding vector_cosine_ops) "
                        "WITH (m = {m}, ef_construction = {ef})",
                        index=index,
                        table=table,
                        m=sql.Literal(m),
                        ef=sql.Literal(ef_construction),
                    )
                )
                index_seconds = time.perf_counter() - building
            else:
                m, ef_construction = self.index_parameters(space)
        # No ANALYZE here: a large write rebuilt the index, which refreshes the row count the
        # planner needs, and sampling a table of vectors is slow.
        return {
            "added": upserted.added,  # by month
            "updated": upserted.updated,
            "deleted": deleted,
            "index_rebuilt": rebuild,
            "index_build_seconds": index_seconds,
            "hnsw_m": m,
            "hnsw_ef_construction": ef_construction,
        }

    def index_parameters(self, space: Space) -> tuple[int | None, int | None]:
        """(m, ef_construction) the space's HNSW index was built with; None for a value it does
        not name (pgvector's default then applies) and for a space with no index."""
        row = self.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
            (f'"{self.schema}"."{space.table}_hnsw"',),
        ).fetchone()
        options = dict(o.split("=", 1) for o in (row[0] or [])) if row else {}
        return tuple(
            int(options[k]) if k in options else None  # type: ignore[return-value]
            for k in ("m", "ef_construction")
        )

    # -- reading -----------------------------------------------------------------------------
    def status(self, space: Space | None) -> dict[str, int]:
        """Counts of the collection; `rows` are its normalised rows (a repositories collection
        also calls them `repositories`, as before collections)."""
        rows, chunks = self.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {rows}), (SELECT count(*) FROM {chunks})",
                rows=self.rows,
                chunks=self.t("chunks"),
            )
        ).fetchone()
        spec = self.table_spec
        embeddings, pending = self.space_counts(space) if space is not None else (0, chunks)
        return {
            "source_rows": self.count_table_source(spec) if spec else self.count_source(),
            **({} if spec else {"repositories": rows}),
            "rows": rows,
            "chunks": chunks,
            "embeddings": embeddings,
            "pending": pending,
            **({"rejected": self.count_rejected_files()} if spec and spec.kind == "files" else {}),
        }

    def space_counts(self, space: Space) -> tuple[int, int]:
        """(vectors in the space, chunks without a vector of their current text there)."""
        return self.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM {chunks} c "
                "WHERE NOT EXISTS (SELECT 1 FROM {table} e WHERE e.chunk_id = c.chunk_id "
                "AND e.content_hash = c.content_hash))",
                table=self.t(space.table),
                chunks=self.t("chunks"),
            )
        ).fetchone()

    def pending_months(self, space: Space) -> list[datetime]:
        """Months (UTC) with work the change log does not show: chunks whose vector was refused,
        and, when the space holds fewer or more vectors than there are chunks (a new model, a
        repository never chunked), every month with chunks or repositories lacking their output."""
        months = {
            row[0]
            for row in self.execute(
                self._sql(
                    "SELECT DISTINCT date_trunc('month', c.row_time, 'UTC') FROM {failures} f "
                    "JOIN {chunks} c USING (chunk_id) WHERE f.space = %s",
                    failures=self.t("embedding_failures"),
                    chunks=self.t("chunks"),
                ),
                (space.name,),
            )
        }
        chunks, vectors, rows, chunked = self.execute(
            self._sql(
                "SELECT (SELECT count(*) FROM {chunks}), (SELECT count(*) FROM {table}), "
                "(SELECT count(*) FROM {rows}), "
                "(SELECT count(*) FROM {chunks} WHERE position = 0)",
                chunks=self.t("chunks"),
                table=self.t(space.table),
                rows=self.rows,
            )
        ).fetchone()
        if (chunks, rows) != (vectors, chunked):
            months |= {
                row[0]
                for row in self.execute(
                    self._sql(
                        "SELECT DISTINCT date_trunc('month', row_time, 'UTC') FROM ("
                        "  SELECT c.row_time FROM {chunks} c WHERE NOT EXISTS (SELECT 1 FROM "
                        "{table} e "
                        "    WHERE e.chunk_id = c.chunk_id AND e.content_hash = c.content_hash) "
                        "  UNION ALL SELECT r.row_time FROM {rows} r WHERE NOT EXISTS ("
                        "    SELECT 1 FROM {chunks} c WHERE c.chunk_id = {key} || '#0')) "
                        "pending",
                        chunks=self.t("chunks"),
                        table=self.t(space.table),
                        rows=self.rows,
                        key=sql.Identifier("r", self.rows_key),
                    )
                )
            }
        return sorted(months)

    def count_vectors(self, space: Space) -> int:
        return self.execute(
            self._sql("SELECT count(*) FROM {table}", table=self.t(space.table))
        ).fetchone()[0]
