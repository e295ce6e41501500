"""A model switch without downtime: a new space fills while searches use the active one."""

from embed_assets.cli import main
from embed_assets.lib.search import search
from embed_assets.lib.settings import Settings
from embed_assets_tests.helpers import source_row
from embed_assets_tests.test_cli import run_json


def test_switch_fill_activate_and_drop(settings, store, monkeypatch, capsys):
    store.upsert_source(
        [
            source_row("acme/vector-db", "A vector database for similarity search"),
            source_row("acme/game", "A 3D game engine", when="2021-02-03"),
        ]
    )
    monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "64")
    run_json(capsys, "sync")
    old = "offline_hash_v2_64"
    assert [s["name"] for s in run_json(capsys, "spaces")] == [old]

    monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "128")  # the new model: a new space
    assert run_json(capsys, "sync")["embedded"] == 2  # a backfill of every month into it
    spaces = {s["name"]: s for s in run_json(capsys, "spaces")}
    new = "offline_hash_v2_128"
    assert (spaces[old]["active"], spaces[new]["active"]) == (True, False)
    assert spaces[new]["embeddings"] == spaces[old]["embeddings"] == 2
    assert spaces[new]["pending"] == 0 and spaces[new]["indexed"]

    # Searches keep using the old space while the configured model is the new one.
    hits = search("vector database", 1, settings=Settings.from_env())
    assert hits[0]["full_name"] == "acme/vector-db"
    assert store.active_space().name == old

    # A row added now reaches the new space only; activating with pending work needs --force.
    store.upsert_source([source_row("acme/parser", "A fast JSON parser", when="2022-03-03")])
    monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "64")
    run_json(capsys, "sync")
    monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "128")
    assert main(["spaces", "activate", new]) == 2
    assert "chunks without a vector" in capsys.readouterr().err
    run_json(capsys, "sync")
    listed = {s["name"]: s for s in run_json(capsys, "spaces", "activate", new)}
    assert listed[new]["active"] and not listed[old]["active"]
    assert store.active_space().name == new
    assert search("json parser", 1, settings=Settings.from_env())[0]["full_name"] == "acme/parser"
    assert run_json(capsys, "clusters")  # the new space's cluster index was built on activation

    for name in (old, new, old, new):  # back and forth, whatever the rows' order on disk
        run_json(capsys, "spaces", "activate", name, "--force", "--no-clusters")
        assert store.active_space().name == name

    assert main(["spaces", "drop", new]) == 2  # the active space is never dropped
    assert "active embedding space" in capsys.readouterr().err
    assert [s["name"] for s in run_json(capsys, "spaces", "drop", old)] == [new]
    tables = {
        row[0]
        for row in store.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (store.schema,)
        )
    }
    assert f"embeddings_{old}" not in tables and f"embeddings_{new}" in tables
