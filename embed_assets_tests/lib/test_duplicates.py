"""Near-duplicate groups beside the topic clusters, over the real database: found at the bound,
kept incrementally as rows change or vanish, listed by the CLI."""

import json

from psycopg import sql

from embed_assets.cli import main
from embed_assets.lib import pipeline
from embed_assets.lib.clusters.algorithm import DEFAULT_THRESHOLD
from embed_assets.lib.clusters.duplicates import connected_groups, sync_duplicates
from embed_assets.lib.clusters.index import sync_cluster_index
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.store.base import _ensured, _ensured_lock
from embed_assets.lib.store.schema import SCHEMA_MARK
from embed_assets_tests.helpers import ALL_TIME, source_row
from embed_assets_tests.lib.test_cluster_index import sample_rows

QUESTION = "How do I reset my password when the reset email never arrives in my inbox"
OTHER = "Invoices for the annual plan show the wrong amount and a charge made twice"


# A repository's text starts with its name, so rows asking the same question under other names
# are 0.84-0.92 similar with the offline provider.
BOUND = 0.85


def index(store, full: bool = False) -> dict:
    pipeline.sync_rows(store, *ALL_TIME)
    pipeline.sync_chunks(store, *ALL_TIME, 400, 80)
    pipeline.sync_embeddings(store, *ALL_TIME, OfflineHashingProvider(dimensions=384))
    return sync_cluster_index(store, threshold=DEFAULT_THRESHOLD, near_duplicate=BOUND, full=full)


def groups(store) -> list[dict]:
    return store.list_duplicate_groups(store.active_space(), limit=100)


def test_connected_groups_are_named_by_their_smallest_key():
    pairs = [("c", "d", 0.97), ("a", "c", 0.96), ("x", "y", 0.99), ("b", "a", 0.95)]
    assert connected_groups(pairs) == {
        "a": "a",
        "b": "a",
        "c": "a",
        "d": "a",
        "x": "x",
        "y": "x",
    }
    assert connected_groups([]) == {}


def test_duplicates_are_grouped_and_kept_as_rows_change(store):
    asked = [
        source_row("ask/one", QUESTION),
        source_row("ask/two", QUESTION + "."),
        source_row("ask/three", "how do I reset my password when the reset email never arrives"),
        source_row("bill/one", OTHER),
        source_row("bill/two", OTHER + "!"),
    ]
    store.upsert_source(sample_rows(120) + asked)
    result = index(store)
    found = {g["group"]: sorted(m["key"] for m in g["members"]) for g in groups(store)}
    assert found["ask/one"] == ["ask/one", "ask/three", "ask/two"]
    assert found["bill/one"] == ["bill/one", "bill/two"]
    assert result["duplicate_groups"] == len(found) and result["duplicate_rows_compared"] == 125
    assert result["rows_in_duplicate_groups"] == sum(map(len, found.values()))
    first = groups(store)[0]
    assert first["size"] >= groups(store)[-1]["size"]
    assert all(BOUND <= m["similarity"] <= 1.0001 for m in first["members"])

    assert index(store)["duplicate_rows_compared"] == 0  # nothing changed, nothing compared
    # One text changes beyond the bound, another row vanishes: only they are compared again.
    store.upsert_source([source_row("bill/two", "A terminal emulator written in Rust, on the GPU")])
    store.execute(
        f'DELETE FROM "{store.schema}".repositories_source WHERE full_name = %s', ("ask/two",)
    )
    result = index(store)
    assert result["duplicate_rows_compared"] == 1
    found = {g["group"]: sorted(m["key"] for m in g["members"]) for g in groups(store)}
    assert found["ask/one"] == ["ask/one", "ask/three"]
    assert "bill/one" not in found and "bill/two" not in str(found)
    assert index(store, full=True)["duplicate_rows_compared"] == 124  # a full run compares all
    assert {g["group"]: sorted(m["key"] for m in g["members"]) for g in groups(store)} == found


def test_a_bulk_comparison_within_topic_clusters_finds_the_same_groups(store):
    store.upsert_source(
        sample_rows(150)
        + [source_row("ask/one", QUESTION), source_row("ask/two", QUESTION + ".")]
        + [source_row(f"bill/{n}", OTHER + "!" * n) for n in range(3)]
    )
    index(store)
    space = store.active_space()
    by_index = groups(store)
    assert {g["group"] for g in by_index} >= {"ask/one", "bill/0"}
    with store.transaction():
        figures = sync_duplicates(store, space, BOUND, reset=True, bulk_rows=0)
    assert figures["duplicate_rows_compared"] == 155
    assert groups(store) == by_index


def test_clusters_duplicates_cli(settings, store, capsys):
    store.upsert_source(
        sample_rows(60) + [source_row("ask/one", QUESTION), source_row("ask/two", QUESTION + "?")]
    )
    index(store)
    assert main(["clusters", "--duplicates", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = [g for g in listed if g["group"] == "ask/one"]
    assert mine and [m["key"] for m in mine[0]["members"]] in (
        ["ask/one", "ask/two"],
        ["ask/two", "ask/one"],
    )
    assert main(["clusters", "--duplicates"]) == 0
    assert "ask/one  (2 rows)" in capsys.readouterr().out
    assert main(["clusters", "--group", "acme"]) == 2  # a repositories collection has no group_by
    assert "has no group_by" in capsys.readouterr().err


def test_a_v8_store_gains_the_duplicate_tables_in_place(settings, store, capsys):
    store.upsert_source(
        [source_row("ask/one", QUESTION), source_row("ask/two", QUESTION + "?")] + sample_rows(20)
    )
    assert main(["sync", "--json"]) == 0
    capsys.readouterr()
    assert main(["clusters", "--json"]) == 0
    clusters = json.loads(capsys.readouterr().out)
    store.execute(
        sql.SQL("DROP TABLE {}, {}; COMMENT ON SCHEMA {} IS 'embed_assets schema v8'").format(
            store.t("duplicate_rows"), store.t("duplicate_pairs"), sql.Identifier(store.schema)
        )
    )
    with _ensured_lock:
        _ensured.clear()  # as in a new process of the new release

    assert main(["clusters", "--duplicates", "--json"]) == 0  # the first command upgrades
    assert json.loads(capsys.readouterr().out) == []  # nothing compared yet
    assert main(["clusters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == clusters  # kept, not rebuilt
    mark = store.execute(
        "SELECT obj_description(to_regnamespace(%s), 'pg_namespace')", (store.schema,)
    ).fetchone()[0]
    assert mark == SCHEMA_MARK
