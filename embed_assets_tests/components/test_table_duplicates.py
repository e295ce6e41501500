"""A table collection with a group_by column: near-duplicate groups and topic clusters stay within
one group (customer), the cluster_index asset reports them, and `clusters --group` /
`clusters --duplicates --group` list one customer's."""

import dataclasses
import json

import dagster as dg

from embed_assets.cli import main
from embed_assets_tests.components.tables import declared, make_tickets, ticket_collection
from embed_assets_tests.components.test_table_collection import tick_and_run


def listed(capsys, *argv) -> list:
    assert main([*argv, "--collection", "tickets", "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_duplicates_and_clusters_per_group(settings, store, capsys, monkeypatch):
    # Tickets of one topic differ by their number only: 0.85-0.95 similar with the offline model.
    monkeypatch.setenv("EMBED_ASSETS_NEAR_DUPLICATE_THRESHOLD", "0.85")  # the CLI's
    table = make_tickets(store, f"{settings.schema}_src", 120)
    customer = dict(
        store.execute(f"SELECT id::text, customer FROM {table}").fetchall()  # noqa: S608
    )
    with (
        declared(
            dataclasses.replace(settings, near_duplicate_threshold=0.85),
            ticket_collection(table),
        ) as (defs, project),
        dg.instance_for_test() as instance,
    ):
        monkeypatch.chdir(project)
        tick_and_run(defs, instance)
        job = defs.resolve_implicit_global_asset_job_def()
        run = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["tickets", "cluster_index"])]
        )
        figures = run.asset_materializations_for_node("tickets__cluster_index")[0].metadata
        groups = listed(capsys, "clusters", "--duplicates", "--limit", "1000")
        assert figures["duplicate_groups"].value == len(groups) >= 12  # 4 topics x 3 customers
        assert figures["rows_in_duplicate_groups"].value == sum(g["size"] for g in groups)
        for group in groups:
            assert len({customer[m["key"]] for m in group["members"]}) == 1, group
        acme = listed(capsys, "clusters", "--duplicates", "--group", "acme", "--limit", "1000")
        assert acme and acme == [g for g in groups if customer[g["group"]] == "acme"]

        clusters = listed(capsys, "clusters", "--group", "acme", "--members", "1000")
        everything = listed(capsys, "clusters", "--members", "1000", "--limit", "1000")
        assert clusters and len(clusters) < len(everything)
        assert {customer[k] for c in clusters for k in c["members"]} == {"acme"}
        assert main(["clusters", "--group", "nobody", "--collection", "tickets"]) == 0
        assert "no clusters yet" in capsys.readouterr().out
