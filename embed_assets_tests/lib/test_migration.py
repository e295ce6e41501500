"""A store made by the release before collections (schema mark v7, tables keyed by `full_name`)
is upgraded in place by the first command of this one: nothing is lost or re-embedded."""

from psycopg import sql

from embed_assets.lib.store import open_store
from embed_assets.lib.store.base import _ensured, _ensured_lock
from embed_assets.lib.store.schema import SCHEMA_MARK
from embed_assets_tests.helpers import source_row
from embed_assets_tests.test_cli import run_json

# What v7 named differently: the key column of three generic tables, and one index.
V7_LAYOUT = """
ALTER TABLE {changes} RENAME COLUMN key TO full_name;
ALTER TABLE {chunks} RENAME COLUMN key TO full_name;
ALTER TABLE {members} RENAME COLUMN key TO full_name;
ALTER INDEX {index} RENAME TO chunks_full_name;
"""


def as_v7(store) -> None:
    """The store as the previous release left it: its layout and its mark."""
    store.execute(
        sql.SQL(V7_LAYOUT).format(
            changes=store.t("source_changes"),
            chunks=store.t("chunks"),
            members=store.t("cluster_members"),
            index=store.t("chunks_key"),
        )
    )
    store.execute(
        sql.SQL("COMMENT ON SCHEMA {} IS 'embed_assets schema v7'").format(
            sql.Identifier(store.schema)
        )
    )
    with _ensured_lock:
        _ensured.clear()  # as in a new process


def column_names(store, table: str) -> set[str]:
    return {
        row[0]
        for row in store.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (store.schema, table),
        )
    }


def test_a_v7_store_is_upgraded_in_place_by_the_first_command(settings, store, capsys):
    store.upsert_source(
        [
            source_row("acme/parser", "a json parser", when="2020-05-02"),
            source_row("acme/game", "a game engine", when="2021-03-04"),
        ]
    )
    first = run_json(capsys, "sync")
    assert first["embedded"] == 2
    clusters = run_json(capsys, "clusters")
    as_v7(store)
    assert "full_name" in column_names(store, "chunks")

    status = run_json(capsys, "status")  # the first command of the new release
    assert (status["chunks"], status["embeddings"], status["pending"]) == (2, 2, 0)
    with open_store(settings.database_url, settings) as upgraded:
        mark = upgraded.execute(
            "SELECT obj_description(to_regnamespace(%s), 'pg_namespace')", (upgraded.schema,)
        ).fetchone()[0]
        assert mark == SCHEMA_MARK
        for table in ("chunks", "cluster_members", "source_changes"):
            assert "key" in column_names(upgraded, table)
            assert "full_name" not in column_names(upgraded, table)
    assert run_json(capsys, "clusters") == clusters  # kept, not rebuilt
    assert run_json(capsys, "sync")["embedded"] == 0  # nothing re-embedded

    # The change triggers write the new layout: an insert by plain SQL reaches the store.
    store.upsert_source([source_row("acme/db", "a vector database", when="2022-01-01")])
    assert run_json(capsys, "sync")["embedded"] == 1
    assert run_json(capsys, "search", "vector database", "-k", "1")[0]["full_name"] == "acme/db"
