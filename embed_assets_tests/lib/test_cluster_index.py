"""The cluster index over the real database: incremental updates, full re-clusters with stable ids,
and operator edits that survive both."""

import json

from embed_assets.cli import main
from embed_assets.lib import pipeline
from embed_assets.lib.clusters.algorithm import DEFAULT_THRESHOLD
from embed_assets.lib.clusters.index import sync_cluster_index
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.sample import generate_repositories
from embed_assets_tests.helpers import ALL_TIME, source_row

THRESHOLD = DEFAULT_THRESHOLD
DESCRIPTION = (
    "A fast and friendly static site generator written in Go, with live reload, "
    "themes, shortcodes and Markdown content"
)


def sample_rows(n: int, seed: int = 1) -> list[tuple]:
    return [
        source_row(
            r["full_name"],
            r["description"] or "no description",
            language=r["language"],
            topics=r["topics"],
            when=r["created_at"].date().isoformat(),
        )
        for r in generate_repositories(n, seed=seed)
    ]


def index(store, full: bool = False) -> dict:
    provider = OfflineHashingProvider(dimensions=384)
    for step in (pipeline.sync_rows, pipeline.sync_chunks, pipeline.sync_embeddings):
        args = {pipeline.sync_chunks: (400, 80), pipeline.sync_embeddings: (provider,)}.get(
            step, ()
        )
        step(store, *ALL_TIME, *args)
    return sync_cluster_index(store, threshold=THRESHOLD, near_duplicate=0.95, full=full)


def assignments(store) -> dict[str, int]:
    return store.cluster_assignments(store.active_space())


def test_first_run_clusters_everything_and_names_each_cluster(store):
    store.upsert_source(sample_rows(300))
    result = index(store)
    assert result["full"] and result["full_reason"] == "first clustering"
    space = store.active_space()
    clusters = store.list_clusters(space, limit=10_000, members=10_000)
    assert sum(c["size"] for c in clusters) == result["row_count"] == 300
    assert sorted(n for c in clusters for n in c["members"]) == sorted(assignments(store))
    for cluster in clusters:
        assert cluster["label"] and cluster["representative"] in cluster["members"]
    assert clusters == sorted(clusters, key=lambda c: (-c["size"], c["cluster_id"]))
    assert len(clusters) < 300 and clusters[0]["size"] > 1


def test_new_rows_join_incrementally_and_nothing_else_moves(store):
    store.upsert_source(sample_rows(300))
    index(store)
    before = assignments(store)
    store.upsert_source(sample_rows(330)[300:])
    result = index(store)
    assert not result["full"] and result["added"] == 30
    after = assignments(store)
    assert {name: after[name] for name in before} == before
    assert index(store)["added"] == 0  # again: nothing to do


def test_vanished_rows_leave_their_clusters_and_empty_clusters_go(store):
    store.upsert_source(sample_rows(200))
    index(store)
    # Text like no topic's (another script) starts a cluster of its own when it arrives.
    lonely_row = source_row("lonely/one", "日本語の形態素解析エンジン、辞書と学習", language=None)
    store.upsert_source([lonely_row])
    assert not index(store)["full"]
    lonely = assignments(store)["lonely/one"]
    assert lonely not in {c for name, c in assignments(store).items() if name != "lonely/one"}
    gone = sample_rows(200)[0][0]
    sizes = {c["cluster_id"]: c["size"] for c in store.list_clusters(store.active_space(), 999, 0)}
    cluster_of_gone = assignments(store)[gone]
    store.execute(
        f'DELETE FROM "{store.schema}".repositories_source WHERE full_name = ANY(%s)',
        (["lonely/one", gone],),
    )
    result = index(store)
    assert result["deleted"] == 2 and not {"lonely/one", gone} & set(assignments(store))
    after = {c["cluster_id"]: c["size"] for c in store.list_clusters(store.active_space(), 999, 0)}
    assert lonely not in after and after[cluster_of_gone] == sizes[cluster_of_gone] - 1


def test_a_full_re_cluster_keeps_ids_and_operator_edits(store):
    store.upsert_source(sample_rows(300))
    index(store)
    space = store.active_space()
    biggest = store.list_clusters(space, limit=1, members=100)[0]
    removed = biggest["members"][-1]
    assert store.remove_cluster_member(space, removed) == biggest["cluster_id"]
    assert store.resolve_cluster(space, biggest["cluster_id"], "triaged")
    before = assignments(store)
    result = index(store, full=True)
    assert result["full"] and result["full_reason"] == "asked for"
    after = assignments(store)
    assert removed not in after
    same = sum(1 for name, cluster in after.items() if before.get(name) == cluster)
    assert same >= 0.9 * len(after)  # ids are stable across a re-cluster of unchanged data
    kept = [
        c for c in store.list_clusters(space, 10_000, 0) if c["cluster_id"] == biggest["cluster_id"]
    ]
    assert kept and kept[0]["note"] == "triaged" and kept[0]["resolved_at"] is not None
    store.upsert_source(sample_rows(320))
    index(store)
    assert removed not in assignments(store)


def test_near_duplicates_are_marked_both_ways(store):
    store.upsert_source(
        sample_rows(100)
        + [source_row("twin/site-gen", DESCRIPTION), source_row("twin/site-gen-fork", DESCRIPTION)]
    )
    index(store)
    space = store.active_space()
    cluster = assignments(store)["twin/site-gen"]
    assert assignments(store)["twin/site-gen-fork"] == cluster
    members = {m["key"]: m for m in store.cluster_members(space, cluster)}
    assert members["twin/site-gen"]["near_duplicate_of"] == ["twin/site-gen-fork"]
    assert members["twin/site-gen-fork"]["near_duplicate_of"] == ["twin/site-gen"]


def test_clusters_cli(settings, store, capsys):
    store.upsert_source(sample_rows(150))
    index(store)

    def run(*argv):
        assert main([*argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    listed = run("clusters", "--limit", "3")
    assert len(listed) == 3 and listed[0]["size"] >= listed[1]["size"]
    assert {"cluster_id", "size", "label", "members"} <= set(listed[0])
    shown = run("clusters", "show", str(listed[0]["cluster_id"]))
    assert [m["key"] for m in shown["members"]][: len(listed[0]["members"])] == listed[0]["members"]
    member = listed[0]["members"][0]
    assert run("clusters", "remove", member) == {
        "removed": member,
        "cluster_id": listed[0]["cluster_id"],
    }
    shown = run("clusters", "show", str(listed[0]["cluster_id"]))
    assert member not in [m["key"] for m in shown["members"]]
    assert shown["size"] == listed[0]["size"] - 1
    assert run("clusters", "resolve", str(listed[0]["cluster_id"]), "--note", "done")["resolved"]
    assert main(["clusters", "show", "999999"]) == 2
