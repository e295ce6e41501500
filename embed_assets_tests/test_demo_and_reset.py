"""`embed-assets demo` keeps its rows in a store of its own; `embed-assets reset` empties one
collection's store, asking first."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np

from embed_assets.cli import main
from embed_assets.lib.collections import declared_collections
from embed_assets.lib.demo import demo_settings
from embed_assets.lib.sample import generate_repositories
from embed_assets.lib.store import Space, open_store
from embed_assets_tests.components.tables import declared, make_tickets, ticket_collection

CSV = """full_name,description,language,stars,topics,url,created_at
pgvector/pgvector,Vector similarity search for Postgres,C,9000,postgres;vector,,2021-04-20
godotengine/godot,Multi-platform 2D and 3D game engine,C++,80000,game-engine,,2014-01-04
"""


def run_json(capsys, *argv) -> dict | list:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def write_csv(path, rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["full_name", "description", "language", "stars", "topics", "url"])
        for r in rows:
            values = [r["full_name"], r["description"], r["language"], r["stars"]]
            writer.writerow([*values, ";".join(r["topics"]), r["url"]])


def test_the_demo_has_its_own_store_and_searches_of_real_data_find_none_of_it(
    settings, tmp_path, capsys
):
    assert main(["demo", "--rows", "80", "--query", "vector database"]) == 0
    out = capsys.readouterr().out
    demo = demo_settings(settings, declared_collections())
    assert demo.schema == settings.schema + "_demo" and demo.schema in out
    demo_names = {r["full_name"] for r in generate_repositories(80, seed=0)}
    # A generated sample stands in for the real file; names the demo also has are left out.
    real = [r for r in generate_repositories(60, seed=7) if r["full_name"] not in demo_names]
    path = tmp_path / "real.csv"
    write_csv(path, real)
    assert run_json(capsys, "load", str(path))["inserted"] == len(real)
    run_json(capsys, "sync", "--skip-clusters")
    for query in ("vector database for similarity search", "3d game engine", "web framework"):
        hits = run_json(capsys, "search", query, "-k", "50")
        assert hits and {hit["key"] for hit in hits} <= {r["full_name"] for r in real}
    assert run_json(capsys, "status")["source_rows"] == len(real)
    with open_store(settings.database_url, demo) as store:
        assert store.count_source() == 80
    # `reset --demo` empties the demo store alone.
    emptied = run_json(capsys, "reset", "--demo", "--yes")
    assert emptied["schema"] == demo.schema and emptied["deleted"]["source_rows"] == 80
    with open_store(settings.database_url, demo) as store:
        assert store.count_source() == 0 and store.reset_counts()["vectors"] == 0
    assert run_json(capsys, "status")["source_rows"] == len(real)


def test_reset_needs_yes_without_a_terminal_then_empties_all_but_the_cache(
    settings, store, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path))
    run_json(capsys, "sync")
    # The offline provider's vectors cost nothing and are not cached: an HTTP provider's would be.
    store.cache_put(Space("remote", "remote-model", 3), {"a" * 64: np.ones(3, np.float32)})
    cached = run_json(capsys, "cache", "stats")["entries"]
    assert cached == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal: nobody to ask
    assert main(["reset"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --yes to confirm" in err
    assert "source rows 2" in err and "vectors 2" in err
    assert run_json(capsys, "status")["embeddings"] == 2  # nothing deleted

    emptied = run_json(capsys, "reset", "--yes")
    assert emptied["deleted"] == {"source_rows": 2, "rows": 2, "chunks": 2, "vectors": 2}
    assert "embedding cache is kept" in emptied["kept"]
    status = run_json(capsys, "status")
    assert (status["source_rows"], status["rows"], status["chunks"], status["embeddings"]) == (
        0,
        0,
        0,
        0,
    )
    assert run_json(capsys, "clusters") == []
    assert run_json(capsys, "cache", "stats")["entries"] == cached
    # Loaded again, the rows are embedded again.
    run_json(capsys, "load", str(path))
    assert run_json(capsys, "sync")["embedded"] == 2
    assert run_json(capsys, "search", "game engine", "-k", "1")[0]["key"] == "godotengine/godot"


def _reset_on_a_terminal(answer: str) -> tuple[int, str]:
    """`embed-assets reset` in a process whose stdin is a terminal, answered with `answer`."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode() + b"\n")
        done = subprocess.run(
            [sys.executable, "-m", "embed_assets.cli", "reset"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ.copy(),
        )
    finally:
        os.close(terminal)
        os.close(controller)
    return done.returncode, done.stderr + done.stdout


def test_reset_asks_on_a_terminal(settings, store, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path))
    code, said = _reset_on_a_terminal("n")
    assert code == 1 and "nothing deleted" in said
    assert store.count_source() == 2
    code, said = _reset_on_a_terminal("y")
    assert code == 0 and "emptied repositories: source_rows 2" in said, said
    assert store.count_source() == 0


def test_reset_of_a_table_collection_keeps_the_table_and_the_next_sync_reads_it_again(
    settings, store, capsys, monkeypatch
):
    table = make_tickets(store, settings.schema, 30)
    with declared(settings, ticket_collection(table)) as (_, project):
        monkeypatch.chdir(project)
        first = run_json(capsys, "sync", "--collection", "tickets", "--skip-clusters")
        assert first["embedded"] == 30
        emptied = run_json(capsys, "reset", "--collection", "tickets", "--yes")
        assert emptied["deleted"] == {"rows": 30, "chunks": 30, "vectors": 30}
        assert f"the table {table} is left as it is" in emptied["kept"]
        assert store.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 30
        assert run_json(capsys, "status", "--collection", "tickets")["embeddings"] == 0
        again = run_json(capsys, "sync", "--collection", "tickets", "--skip-clusters")
        assert again["embedded"] == 30
