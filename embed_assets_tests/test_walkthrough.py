"""The README's support_tickets walkthrough, run as written: its SQL, its defs.yaml and its
commands, in a schema of the test's own instead of `public`, with the sensor ticks `dagster dev`'s
daemon would make."""

import json
import re
import shlex
from pathlib import Path

import dagster as dg

from embed_assets.cli import main
from embed_assets_tests.components.tables import declared_yaml
from embed_assets_tests.components.test_table_collection import metadata, tick_and_run

README = Path(__file__).resolve().parents[1] / "README.md"


def block(marker: str) -> str:
    """The fenced block after `<!-- walkthrough: marker -->` in the README."""
    found = re.search(
        rf"<!-- walkthrough: {re.escape(marker)} -->\n```\w*\n(.*?)```", README.read_text(), re.S
    )
    assert found, marker
    return found.group(1)


def commands(marker: str, schema: str) -> list[list[str]]:
    """The `embed-assets` command lines of a block, as argv lists."""
    return [
        shlex.split(line.replace("public.", f"{schema}."))[1:]
        for line in block(marker).splitlines()
        if line.startswith(".venv/bin/embed-assets ")
    ]


def run_json(capsys, argv: list[str]):
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def every_cluster(capsys) -> list[dict]:
    """Every cluster of the collection with all its members (the listing's default is 50)."""
    argv = ["clusters", "--collection", "support_tickets", "--members", "5000", "--limit", "1000"]
    return run_json(capsys, [*argv, "--json"])


def test_the_support_tickets_walkthrough(settings, capsys, monkeypatch):
    schema = f"{settings.schema}_app"
    run_json(capsys, ["db", "sql", f"CREATE SCHEMA {schema}", "--json"])
    assert main(["db", "sql", block("support_tickets.sql").replace("public.", f"{schema}.")]) == 0
    declaration = block("support_tickets/defs.yaml").replace("public.", f"{schema}.")
    with (
        declared_yaml(settings, declaration, "support_tickets") as (defs, project),
        dg.instance_for_test() as instance,
    ):
        monkeypatch.chdir(project)  # the CLI knows the collections of the project it runs in
        graph = defs.resolve_asset_graph()
        assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
            f"support_tickets/{a}" for a in ("rows", "chunks", "embeddings", "cluster_index")
        }
        cursor, runs = tick_and_run(defs, instance, collection="support_tickets")
        assert metadata(runs, "embeddings", "embedded", "support_tickets") == 3000

        for argv in commands("changes", schema):
            assert main(argv) == 0, capsys.readouterr().err
        cursor, runs = tick_and_run(defs, instance, cursor, collection="support_tickets")
        # The body update and the insert; the priority update re-embeds nothing.
        assert metadata(runs, "embeddings", "embedded", "support_tickets") == 2
        assert metadata(runs, "embeddings", "deleted", "support_tickets") == 1
        capsys.readouterr()

        search, listing = commands("search", schema)
        hits = run_json(capsys, search)
        assert len(hits) == 5 and {h["metadata"]["priority"] for h in hits} == {"high"}
        assert hits[0]["key"] == "5000"
        assert hits[0]["text"] == "refund\n\nplease refund the duplicate charge"
        assert hits[0]["metadata"] == {"customer": "globex", "priority": "high"}
        # The ticket whose priority became high is found by it: its metadata was refreshed.
        refreshed = run_json(
            capsys,
            [
                "search",
                "slow dashboard, the dashboard takes a minute",
                "--collection",
                "support_tickets",
                "--where",
                "priority=high",
                "--where",
                "customer=acme",
                "--json",
            ],
        )
        assert refreshed[0]["key"] == "3"
        assert {tuple(h["metadata"].values()) for h in refreshed} == {("acme", "high")}
        grouped = run_json(capsys, [*search[:4], "--group", "globex", "--json"])
        assert grouped and {h["metadata"]["customer"] for h in grouped} == {"globex"}
        # Clusters are formed per customer: every cluster's members share theirs.
        job = defs.resolve_implicit_global_asset_job_def()
        clustered = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["support_tickets", "cluster_index"])]
        )
        assert clustered.success
        customer = dict(
            run_json(
                capsys,
                ["db", "sql", f"SELECT id::text, customer FROM {schema}.support_tickets", "--json"],
            )
        )
        clusters = every_cluster(capsys)
        assert sum(c["size"] for c in clusters) == 3000
        assert all(len({customer[key] for key in c["members"]}) == 1 for c in clusters)
        assert {customer[c["members"][0]] for c in clusters} == {"acme", "globex", "initech"}
        # An acme ticket with the very text of globex's joins an acme cluster (incrementally).
        twin = (
            f"INSERT INTO {schema}.support_tickets VALUES (6000, 'refund', "
            "'please refund the duplicate charge', 'acme', 'low', '2024-03-03')"
        )
        assert main(["db", "sql", twin]) == 0
        cursor, runs = tick_and_run(defs, instance, cursor, collection="support_tickets")
        incremental = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["support_tickets", "cluster_index"])]
        )
        assert (
            not incremental.asset_materializations_for_node("support_tickets__cluster_index")[0]
            .metadata["full"]
            .value
        )
        customer["6000"] = "acme"
        capsys.readouterr()
        clusters = every_cluster(capsys)
        assert all(len({customer[key] for key in c["members"]}) == 1 for c in clusters)
        [of_twin] = [c for c in clusters if "6000" in c["members"]]
        assert "5000" not in of_twin["members"]
        [collection] = run_json(capsys, listing)
        assert collection["name"] == "support_tickets"
        rows = (collection["rows"], collection["embeddings"], collection["pending"])
        assert rows == (3001, 3001, 0)
