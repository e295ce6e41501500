"""The load rules (a load merges, never erases; `--replace`; `--prune`; the per-column report),
run through `embed-assets load` against the real database."""

import csv
import json
from datetime import UTC, datetime

from embed_assets.cli import main
from embed_assets.lib.sample import generate_repositories
from embed_assets.lib.sources.github.load import GIVEN
from embed_assets.lib.sources.loader import parse_record, upsert_rows
from embed_assets.lib.store import SOURCE_COLUMNS

FULL = """full_name,description,language,stars,topics,url,created_at
django/django,The web framework for perfectionists,Python,80000,web;framework,https://dj.example,2012-04-28
pgvector/pgvector,Vector similarity search for Postgres,C,9000,postgres;vector,,2021-04-20
godotengine/godot,Multi-platform 2D and 3D game engine,C++,80000,game-engine,,2014-01-04
"""


def load(capsys, tmp_path, text: str, *flags: str, name: str = "rows.csv") -> dict:
    path = tmp_path / name
    path.write_text(text)
    code = main(["load", str(path), *flags, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def stored(store, full_name: str) -> dict:
    row = store.execute(
        "SELECT description, language, stars, topics, url, readme, created_at "
        f"FROM {store.schema}.repositories_source WHERE full_name = %s",
        (full_name,),
    ).fetchone()
    return dict(zip(SOURCE_COLUMNS[1:], row, strict=True)) if row else None


def changes(**changed: int) -> dict:
    return {c: changed.get(c, 0) for c in SOURCE_COLUMNS[1:]}


def test_a_file_without_some_columns_keeps_them_and_the_rows_time(
    settings, store, tmp_path, capsys
):
    load(capsys, tmp_path, FULL)
    before = stored(store, "django/django")
    report = load(capsys, tmp_path, "full_name,description\ndjango/django,A new description\n")
    assert report == {
        "inserted": 0,
        "updated": 1,
        "unchanged": 0,
        "deleted": 0,
        "rejected": 0,
        "changed": changes(description=1),
    }
    assert stored(store, "django/django") == before | {"description": "A new description"}
    assert stored(store, "pgvector/pgvector")["language"] == "C"  # not named: untouched


def test_an_empty_value_keeps_the_stored_one(settings, store, tmp_path, capsys):
    load(capsys, tmp_path, FULL)
    before = stored(store, "django/django")
    report = load(
        capsys,
        tmp_path,
        "full_name,description,language,stars,topics,url\ndjango/django,,,,,\n",
    )
    assert (report["updated"], report["unchanged"], report["changed"]) == (0, 1, changes())
    assert stored(store, "django/django") == before
    jsonl = '{"full_name": "django/django", "stars": 81000}\n{"full_name": "pgvector/pgvector"}\n'
    report = load(capsys, tmp_path, jsonl, name="rows.jsonl")
    assert report["changed"] == changes(stars=1)
    assert stored(store, "django/django") == before | {"stars": 81000}
    assert stored(store, "pgvector/pgvector")["description"].startswith("Vector similarity")


def test_a_new_row_without_a_time_gets_the_load_time_which_a_reload_keeps(
    settings, store, tmp_path, capsys
):
    began = datetime.now(UTC)
    load(capsys, tmp_path, "full_name,description\nnew/one,first words\n")
    first = stored(store, "new/one")["created_at"]
    assert began <= first <= datetime.now(UTC)
    report = load(capsys, tmp_path, "full_name,description,stars\nnew/one,first words,5\n")
    assert report["changed"] == changes(stars=1)
    assert stored(store, "new/one")["created_at"] == first
    # A file that gives the time moves the row.
    report = load(capsys, tmp_path, "full_name,created_at\nnew/one,2015-06-01\n")
    assert report["changed"] == changes(created_at=1)
    assert stored(store, "new/one")["created_at"] == datetime(2015, 6, 1, tzinfo=UTC)


def test_reloading_a_file_without_times_moves_no_row_and_syncs_no_month(
    settings, store, tmp_path, capsys
):
    """The real file has no created_at: re-loading it once moved every row into this month."""
    rows = generate_repositories(120, seed=3)
    path = tmp_path / "sample.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["full_name", "description", "language", "stars", "topics", "url"])
        for r in rows:
            topics = ";".join(r["topics"])
            values = [r["full_name"], r["description"], r["language"], r["stars"], topics]
            writer.writerow([*values, r["url"]])
    assert main(["load", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inserted"] == 120
    times = dict(
        store.execute(f"SELECT full_name, created_at FROM {store.schema}.repositories_source")
    )
    assert main(["sync", "--skip-clusters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed_partitions"] == 1
    assert main(["load", str(path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["unchanged"], again["updated"], again["changed"]) == (120, 0, changes())
    after = dict(
        store.execute(f"SELECT full_name, created_at FROM {store.schema}.repositories_source")
    )
    assert after == times
    assert main(["sync", "--skip-clusters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed_partitions"] == 0


def test_replace_makes_the_file_the_whole_truth_for_its_rows(settings, store, tmp_path, capsys):
    load(capsys, tmp_path, FULL)
    before = stored(store, "django/django")
    report = load(
        capsys,
        tmp_path,
        "full_name,description,stars\ndjango/django,The web framework,\n",
        "--replace",
    )
    assert report["changed"] == changes(description=1, language=1, stars=1, topics=1, url=1)
    assert stored(store, "django/django") == before | {
        "description": "The web framework",
        "language": None,
        "stars": None,
        "topics": [],
        "url": None,
    }  # and its time is kept: the file gives none
    assert stored(store, "godotengine/godot")["language"] == "C++"


def test_prune_deletes_the_rows_the_file_does_not_name(settings, store, tmp_path, capsys):
    load(capsys, tmp_path, FULL)
    report = load(
        capsys,
        tmp_path,
        "full_name,stars\ndjango/django,1\nnew/repo,2\ngodotengine/godot,lots\n",
        "--prune",
    )
    # godot's row is rejected (stars) but named: kept; pgvector is not named: deleted.
    assert (report["inserted"], report["updated"], report["deleted"]) == (1, 1, 1)
    assert report["rejected"] == 1
    assert stored(store, "pgvector/pgvector") is None
    assert stored(store, "godotengine/godot")["stars"] == 80000


def test_prune_refuses_an_empty_file_and_unnamed_rejects(settings, store, tmp_path, capsys):
    load(capsys, tmp_path, FULL)
    for text, said in (
        ("full_name,description\n", "the file names no row"),
        ("full_name,stars\ndjango/django,1\nnot a name,2\n", "no readable full_name"),
    ):
        path = tmp_path / "prune.csv"
        path.write_text(text)
        assert main(["load", str(path), "--prune"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len([line for line in err if line.startswith("embed-assets: error:")]) == 1
        assert said in err[-1] and str(path) in err[-1]
    assert store.count_source() == 3
    assert stored(store, "django/django")["stars"] == 80000


def test_the_text_report_names_each_columns_changes(settings, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(FULL)
    assert main(["load", str(path)]) == 0
    path.write_text("full_name,description\ndjango/django,Changed\n")
    assert main(["load", str(path)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(
        "loaded: inserted 0, updated 1, unchanged 0, deleted 0, rejected 0; changed: "
        "description 1, language 0, stars 0, topics 0, url 0, readme 0, created_at 0 ("
    )


def test_replace_and_prune_are_for_files(settings, capsys):
    assert main(["load", "--github", "", "--prune"]) == 2
    assert "apply to a file load" in capsys.readouterr().err


def test_a_github_load_writes_what_github_gives_and_keeps_a_readme(
    settings, store, tmp_path, capsys
):
    load(
        capsys, tmp_path, "full_name,description,readme,created_at\na/b,old,# A readme,2020-01-01\n"
    )
    item = {
        "full_name": "a/b",
        "description": None,
        "language": "Go",
        "stars": 3,
        "topics": [],
        "url": None,
        "created_at": "2020-01-01T00:00:00Z",
    }
    row = parse_record(item, 1, time_column="created_at")
    counts = upsert_rows(store, [row], given=GIVEN, replace=True)
    assert counts["changed"] == changes(description=1, language=1, stars=1)
    assert stored(store, "a/b") == {
        "description": None,
        "language": "Go",
        "stars": 3,
        "topics": [],
        "url": None,
        "readme": "# A readme",
        "created_at": datetime(2020, 1, 1, tzinfo=UTC),
    }


def test_a_file_of_names_alone_inserts_the_new_ones_and_prunes_the_others(
    settings, store, tmp_path, capsys
):
    load(capsys, tmp_path, FULL)
    before = stored(store, "django/django")
    report = load(capsys, tmp_path, "full_name\ndjango/django\nnew/x\n", "--prune")
    assert report == {
        "inserted": 1,
        "updated": 0,
        "unchanged": 1,
        "deleted": 2,
        "rejected": 0,
        "changed": changes(),
    }
    assert stored(store, "django/django") == before
    assert stored(store, "new/x")["description"] is None and store.count_source() == 2
