"""The embed-assets command, run in-process against the real database and a real instance."""

import json

from embed_assets.cli import main
from embed_assets.lib.store import SOURCE_COLUMNS


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


CSV = """full_name,description,language,stars,topics,url,forks,snapshot_date
pgvector/pgvector,Vector similarity search for Postgres,C,9000,postgres;vector,,1,2023-04-01
dagster-io/dagster,An orchestration platform for data,Python,10000,orchestration;data,,1,2024-02-10
godotengine/godot,Multi-platform 2D and 3D game engine,C++,80000,game-engine,,1,2019-07-07
bad name,no slash in the name,,1,,,1,2020-01-01
ok/stars,stars are not a number,,lots,,,1,2020-01-01
ok/date,the date is not a date,,1,,,1,yesterday-ish
"""


def test_load_reports_counts_and_rejects_with_row_numbers(settings, tmp_path, capsys):
    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    assert main(["load", str(path), "--time-column", "snapshot_date", "--json"]) == 0
    captured = capsys.readouterr()
    loaded = json.loads(captured.out)
    assert loaded.pop("changed") == dict.fromkeys(SOURCE_COLUMNS[1:], 0)
    assert loaded == {"inserted": 3, "updated": 0, "unchanged": 0, "deleted": 0, "rejected": 3}
    assert (
        "rejected row 4: full_name: not an 'owner/name' repository name: 'bad name'" in captured.err
    )
    assert "rejected row 5 (ok/stars): stars: not an integer: 'lots'" in captured.err
    assert "rejected row 6 (ok/date): snapshot_date: not a date: 'yesterday-ish'" in captured.err
    again = run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    assert again.pop("changed") == dict.fromkeys(SOURCE_COLUMNS[1:], 0)
    assert again == {"inserted": 0, "updated": 0, "unchanged": 3, "deleted": 0, "rejected": 3}


def test_load_of_a_missing_column_is_a_clear_error(settings, tmp_path, capsys):
    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    assert main(["load", str(path), "--time-column", "created"]) == 2
    assert "created" in capsys.readouterr().err


def test_sync_status_search_and_a_second_sync_that_does_nothing(settings, tmp_path, capsys):
    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    report = run_json(capsys, "sync")
    assert report["changed_partitions"] == 3 and report["embedded"] == 3
    assert report["partitions"] == (2024 - 2019) * 12 + (2 - 7) + 1  # one run, 2019-07 .. 2024-02
    assert set(report) >= {"partitions", "embedded", "unchanged", "deleted", "seconds"}
    status = run_json(capsys, "status")
    assert status.pop("checks")  # the latest result of each asset check: see defs/test_checks.py
    assert status == {
        "source_rows": 3,
        "repositories": 3,
        "rows": 3,
        "chunks": 3,
        "embeddings": 3,
        "pending": 0,
    }

    hits = run_json(capsys, "search", "vector similarity search in postgres", "-k", "2")
    assert [h["full_name"] for h in hits][0] == "pgvector/pgvector"
    assert len(hits) == 2 and hits[0]["score"] >= hits[1]["score"]
    assert set(hits[0]) == {"key", "full_name", "score", "text", "metadata"}
    assert hits[0]["metadata"] == {
        "language": "C",
        "stars": 9000,
        "url": "https://github.com/pgvector/pgvector",
    }

    again = run_json(capsys, "sync")
    assert again["embedded"] == 0 and again["partitions"] == 0 and again["unchanged"] == 3


def test_sync_after_a_delete_and_an_edit(settings, tmp_path, capsys, store):
    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    run_json(capsys, "sync")
    store.execute(
        f'DELETE FROM "{settings.schema}".repositories_source '
        "WHERE full_name = 'godotengine/godot'"
    )
    store.execute(
        f'UPDATE "{settings.schema}".repositories_source SET description = %s '
        "WHERE full_name = 'dagster-io/dagster'",
        ("Assets, not tasks",),
    )
    store.execute(
        f'UPDATE "{settings.schema}".repositories_source SET stars = 1 '
        "WHERE full_name = 'pgvector/pgvector'"
    )
    report = run_json(capsys, "sync")
    assert (report["changed_partitions"], report["embedded"], report["deleted"]) == (2, 1, 1)
    assert run_json(capsys, "status")["embeddings"] == 2


def test_sync_records_its_run_in_the_projects_postgres_instance(
    settings, tmp_path, capsys, monkeypatch
):
    """No DAGSTER_HOME: the project's dagster.yaml puts runs in the project's database."""
    import dagster as dg

    from embed_assets.instance import project_instance

    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    report = run_json(capsys, "sync")
    with project_instance(settings) as instance:
        run = instance.get_run_by_id(report["run_id"])
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert type(instance.run_storage).__module__.startswith("dagster_postgres")


def test_search_before_anything_is_embedded_says_what_to_do(settings, capsys):
    assert main(["search", "anything"]) == 2
    assert "embed-assets sync" in capsys.readouterr().err


def test_bad_setting_names_the_variable(settings, monkeypatch, capsys):
    monkeypatch.setenv("EMBED_ASSETS_DIMENSIONS", "many")
    assert main(["status"]) == 2
    assert "EMBED_ASSETS_DIMENSIONS" in capsys.readouterr().err


def test_search_filters_by_language_and_stars(settings, tmp_path, capsys):
    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    run_json(capsys, "sync")
    query = "vector similarity search in postgres"
    hits = run_json(capsys, "search", query, "--language", "python")
    assert [h["full_name"] for h in hits] == ["dagster-io/dagster"]
    hits = run_json(capsys, "search", query, "--min-stars", "50000")
    assert [h["full_name"] for h in hits] == ["godotengine/godot"]
    assert run_json(capsys, "search", query, "--language", "cobol") == []


def test_python_search_api(settings, tmp_path, capsys):
    import embed_assets

    path = tmp_path / "repos.csv"
    path.write_text(CSV)
    run_json(capsys, "load", str(path), "--time-column", "snapshot_date")
    run_json(capsys, "sync")
    hits = embed_assets.search("2D and 3D game engine", k=1)
    assert hits[0]["full_name"] == "godotengine/godot" and 0 < hits[0]["score"] <= 1
    # A filter keeps the rows' own scores in vector mode (hybrid's are ranks, which it changes).
    assert embed_assets.search("game engine", k=3, language="C", mode="vector") == [
        h
        for h in embed_assets.search("game engine", k=3, mode="vector")
        if h["full_name"] == "pgvector/pgvector"
    ]


def test_collections_lists_the_declared_ones_with_their_counts(settings, capsys):
    loaded = run_json(capsys, "load", "--time-column", "snapshot_date", str(_csv(settings)))
    assert loaded["inserted"] == 3
    assert run_json(capsys, "sync", "--collection", "repositories")["embedded"] == 3
    assert run_json(capsys, "collections") == [
        {
            "name": "repositories",
            "source": {"kind": "repositories"},
            "rows": 3,
            "chunks": 3,
            "embeddings": 3,
            "pending": 0,
        }
    ]
    hits = run_json(capsys, "search", "game engine", "-k", "1", "--collection", "repositories")
    assert hits[0]["full_name"] == "godotengine/godot"


def test_an_unknown_collection_is_a_clear_error(settings, capsys):
    assert main(["status", "--collection", "tickets", "--json"]) == 2
    assert (
        "--collection: no collection 'tickets' (declared: repositories)" in capsys.readouterr().err
    )


def _csv(settings):
    path = settings.home / "repos.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CSV)
    return path
