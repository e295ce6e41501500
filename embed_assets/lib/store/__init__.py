"""All SQL of the project, one module per concern, joined into one `Store`. Every identifier is
composed with psycopg.sql; values are parameters.

Tables live in one schema (EMBED_ASSETS_SCHEMA):
- the source table (EMBED_ASSETS_SOURCE_TABLE, `repositories_source`): the loading contract;
- `source_changes`: filled by statement triggers on the source table, so that inserts, updates of
  embedded columns and deletes by any writer (the loader, a crawler's plain SQL) are seen;
- `repositories`, `rejected_rows` (the repositories source kind's, `repositories.py`): the
  normalised rows;
- `chunks`: the texts to embed, keyed by the collection's `key` (generic, like what follows);
- `spaces` and one `embeddings_<space>` table per embedding space (model + dimensions), with an
  HNSW cosine index.

A `table` collection (`table.py`) has the same generic tables in a schema of its own
(`<schema>_<collection>`), a `rows` table in place of `repositories`, and shares the embedding
cache of the settings' schema. A `files` collection is a table collection whose source relation is
its own `files` table, filled by scanning a folder (`files.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pgvector.psycopg import register_vector

from embed_assets.lib.database import server_of
from embed_assets.lib.errors import Failure
from embed_assets.lib.search_request import MODES
from embed_assets.lib.settings import Settings
from embed_assets.lib.store.base import (
    Space,
    StoreError,
    TableSpec,
    Upserted,
    _ensured,
    _ensured_lock,
    register_array_dumper,
)
from embed_assets.lib.store.budget import BudgetQueries
from embed_assets.lib.store.cache import CacheQueries
from embed_assets.lib.store.checks import CheckQueries
from embed_assets.lib.store.clusters import ClusterQueries
from embed_assets.lib.store.duplicates import DuplicateQueries
from embed_assets.lib.store.files import FileQueries, Seen
from embed_assets.lib.store.github import GitHubQueries
from embed_assets.lib.store.repositories import SOURCE_COLUMNS, RepositoryQueries
from embed_assets.lib.store.reset import ResetQueries
from embed_assets.lib.store.rows import RowQueries
from embed_assets.lib.store.schema import SchemaQueries
from embed_assets.lib.store.search import SearchQueries
from embed_assets.lib.store.table import TableQueries
from embed_assets.lib.store.vectors import VectorQueries

__all__ = [
    "MODES",
    "SOURCE_COLUMNS",
    "DatabaseUnreachable",
    "Seen",
    "Space",
    "Store",
    "StoreError",
    "TableSpec",
    "Upserted",
    "catalog_store",
    "connect_store",
    "open_store",
]


class DatabaseUnreachable(Failure):
    pass


class Store(
    SchemaQueries,
    RepositoryQueries,
    TableQueries,
    FileQueries,
    RowQueries,
    VectorQueries,
    SearchQueries,
    CacheQueries,
    ClusterQueries,
    DuplicateQueries,
    CheckQueries,
    GitHubQueries,
    BudgetQueries,
    ResetQueries,
):
    """One connection to the project's schema, with every query the project runs."""


CONNECT_TIMEOUT_SECONDS = 5
# libpq's "connection failed: connection to server at "h" (addr), port p failed: FATAL:  why"
_LIBPQ_PREFIX = re.compile(
    r"^(connection failed: )?(connection to server .*? failed: )?(FATAL: +)?"
)


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection, or within CONNECT_TIMEOUT_SECONDS a DatabaseUnreachable that
    names the server (never the password) and why."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.OperationalError as error:
        first = (str(error).strip().splitlines() or ["no answer"])[0]
        reason = _LIBPQ_PREFIX.sub("", first).strip() or "no answer"
        raise DatabaseUnreachable(
            f"cannot connect to the database at {server_of(url)}: {reason}"
        ) from None


def connect_store(url: str, settings: Settings, table: TableSpec | None = None) -> Store:
    """A connection in autocommit mode (transactions are explicit), with the schema in place;
    the caller closes it (`store.conn.close()`). `table`: the store of that table collection,
    else of the repositories one."""
    conn = connect(url)
    try:
        store = Store(conn, settings, table)
        key = (url, settings.schema, settings.source_table, table)
        if key not in _ensured:
            store.ensure_schema()
            with _ensured_lock:
                _ensured.add(key)
        register_vector(conn)
        register_array_dumper(conn)
        return store
    except BaseException:
        conn.close()
        raise


@contextmanager
def catalog_store(url: str, settings: Settings) -> Iterator[Store]:
    """A connection for reading the catalog (checking a declaration against the database):
    no DDL is run, nothing is created."""
    with connect(url) as conn:
        yield Store(conn, settings)


@contextmanager
def open_store(url: str, settings: Settings, table: TableSpec | None = None) -> Iterator[Store]:
    """`connect_store`, closed after."""
    store = connect_store(url, settings, table)
    with store.conn:
        yield store
