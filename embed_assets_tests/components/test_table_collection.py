"""A table collection end to end through Dagster, as the daemon runs it: the sensor sees inserts,
updates of the template's columns, metadata-only updates and deletes made with plain SQL; other
columns are ignored; search filters by metadata and by group."""

import dagster as dg
from psycopg import sql

import embed_assets
from embed_assets_tests.components.tables import declared, make_tickets, ticket_collection

PARTITIONED = [dg.AssetKey(["tickets", a]) for a in ("rows", "chunks", "embeddings")]


def tick_and_run(defs, instance, cursor=None, collection="tickets"):
    """One sensor tick, and its runs executed as the daemon would; (new cursor, the runs)."""
    sensor = defs.resolve_sensor_def(f"{collection}_new_source_rows")
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        cursor=cursor,
        resources={"database": defs.resources["database"]},
    ) as context:
        result = sensor(context)
    job = defs.resolve_implicit_global_asset_job_def()
    runs = [
        job.execute_in_process(
            instance=instance,
            tags=dict(request.tags),
            asset_selection=[
                dg.AssetKey([collection, a]) for a in ("rows", "chunks", "embeddings")
            ],
        )
        for request in result.run_requests or []
    ]
    assert all(run.success for run in runs)
    return result.cursor, runs


def metadata(runs, asset: str, name: str, collection: str = "tickets") -> int:
    """A count over the runs: each month of a run carries its own."""
    return sum(
        event.metadata[name].value
        for run in runs
        for event in run.asset_materializations_for_node(f"{collection}__{asset}")
    )


def test_plain_sql_writes_reach_the_store_and_search_filters_by_metadata(settings, store):
    source_schema = f"{settings.schema}_src"
    table = make_tickets(store, source_schema, 300)
    tickets = sql.Identifier(source_schema, "support_tickets")
    with (
        declared(settings, ticket_collection(table)) as (defs, project),
        dg.instance_for_test() as instance,
    ):

        def search(query, **filters):
            return embed_assets.search(
                query, k=5, collection="tickets", settings=settings, project=project, **filters
            )

        cursor, runs = tick_and_run(defs, instance)
        assert metadata(runs, "embeddings", "embedded") == 300  # rows there before the triggers

        # Metadata only: nothing re-embedded, the metadata refreshed.
        store.execute(sql.SQL("UPDATE {} SET priority = 'urgent' WHERE id = 7").format(tickets))
        cursor, runs = tick_and_run(defs, instance, cursor)
        assert len(runs) == 1 and metadata(runs, "embeddings", "embedded") == 0
        assert metadata(runs, "rows", "updated") == 1
        [hit] = search("export stops", where={"priority": "urgent"})
        assert hit["key"] == "7" and hit["metadata"] == {
            "customer": "globex",
            "priority": "urgent",
        }

        # A column the collection does not read: no change logged, no run.
        store.execute(sql.SQL("UPDATE {} SET assignee = 'eve'").format(tickets))
        cursor, runs = tick_and_run(defs, instance, cursor)
        assert runs == []

        # The body (read by the template), an insert and a delete.
        store.execute(
            sql.SQL("UPDATE {} SET body = 'the export button is gone' WHERE id = 8").format(tickets)
        )
        store.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (1000, 'refund', 'please refund the duplicate charge', "
                "'globex', 'high', 'bob', '2024-02-02')"
            ).format(tickets)
        )
        store.execute(sql.SQL("DELETE FROM {} WHERE id = 9").format(tickets))
        cursor, runs = tick_and_run(defs, instance, cursor)
        assert metadata(runs, "embeddings", "embedded") == 2
        assert metadata(runs, "embeddings", "deleted") == 1

        hits = search("refund the duplicate charge", where={"priority": "high"})
        assert hits[0]["key"] == "1000" and "please refund" in hits[0]["text"]
        assert {h["metadata"]["priority"] for h in hits} == {"high"}
        assert {h["metadata"]["customer"] for h in search("invoice", group="acme")} == {"acme"}
        assert "9" not in {h["key"] for h in search("dashboard slow", where={"customer": "acme"})}
        # The word ranking takes the same filters (its own SQL).
        words = search("refund duplicate charge", where={"priority": "high"}, mode="text")
        assert words[0]["key"] == "1000" and {h["metadata"]["priority"] for h in words} == {"high"}
        grouped = search("invoice", group="acme", mode="text")
        assert len(grouped) == 5 and {h["metadata"]["customer"] for h in grouped} == {"acme"}


def test_a_view_is_polled_and_with_no_time_column_has_no_partitions(settings, store):
    source_schema = f"{settings.schema}_src"
    make_tickets(store, source_schema, 50)
    tickets = sql.Identifier(source_schema, "support_tickets")
    store.execute(
        sql.SQL(
            "CREATE VIEW {} AS SELECT id, subject, body, customer FROM {} "
            "WHERE priority <> 'closed'"
        ).format(sql.Identifier(source_schema, "open_tickets"), tickets)
    )
    declaration = ticket_collection(
        f"{source_schema}.open_tickets", time_column=None, metadata=["customer"]
    )
    with (
        declared(settings, declaration) as (defs, _),
        dg.instance_for_test() as instance,
    ):
        graph = defs.resolve_asset_graph()
        assert all(graph.get(key).partitions_def is None for key in PARTITIONED)
        cursor, runs = tick_and_run(defs, instance)
        assert metadata(runs, "embeddings", "embedded") == 50
        assert tick_and_run(defs, instance, cursor)[1] == []  # the poll finds no difference

        store.execute(sql.SQL("UPDATE {} SET body = 'a new body' WHERE id = 3").format(tickets))
        store.execute(sql.SQL("UPDATE {} SET priority = 'closed' WHERE id = 4").format(tickets))
        cursor, runs = tick_and_run(defs, instance, cursor)
        assert metadata(runs, "embeddings", "embedded") == 1
        assert metadata(runs, "embeddings", "deleted") == 1
        assert tick_and_run(defs, instance, cursor)[1] == []
