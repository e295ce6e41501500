"""The EmbeddingCollection Component as a user's own Dagster project declares it: a `defs.yaml`
with no Python; bad declarations fail definition loading with the file and the field named."""

import dagster as dg
import pytest

from embed_assets.lib.settings import Settings
from embed_assets_tests.components.tables import declared, make_tickets, ticket_collection


def load(attributes: dict) -> dg.Definitions:
    with declared(Settings.from_env(), attributes) as (defs, _):
        return defs


def failure(attributes: dict) -> str:
    with pytest.raises(Exception) as raised:
        load(attributes)
    return "\n".join(_messages(raised.value))


def _messages(error: BaseException) -> list[str]:
    """An error and its causes: Dagster wraps a component's own error in its own."""
    found = []
    while error is not None:
        found.append(str(error))
        error = error.__cause__ or error.__context__
    return found


def test_a_declared_collection_has_prefixed_assets_checks_sensor_and_schedules(settings):
    defs = load({"name": "stars", "source": {"kind": "repositories"}})
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"stars/rows", "stars/chunks", "stars/embeddings", "stars/cluster_index"}
    assert {s.name for s in defs.sensors} == {
        "stars_new_source_rows",
        "stars_cluster_index_automation",
    }
    assert {s.name for s in defs.schedules} == {
        "stars_daily_newest_partition",
        "stars_weekly_reconciliation",
        "stars_weekly_full_recluster",
    }
    checks = {k.asset_key.to_user_string() for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks == keys


def test_a_name_that_is_no_asset_key_part_names_the_file_and_the_field():
    message = failure({"name": "support tickets", "source": {"kind": "repositories"}})
    assert "tickets/defs.yaml: name: 'support tickets' is not a valid collection name" in message


def test_an_unknown_source_kind_names_the_file_and_the_field():
    message = failure({"name": "tickets", "source": {"kind": "spreadsheet"}})
    assert "tickets/defs.yaml: source.kind: unknown source kind 'spreadsheet'" in message


def test_a_key_the_source_kind_does_not_have_names_the_file_and_the_field():
    message = failure({"name": "tickets", "source": {"kind": "repositories"}, "key": "id"})
    assert "tickets/defs.yaml: key: a repositories collection's key is 'full_name'" in message


def test_an_unknown_attribute_fails_loading_and_is_named():
    message = failure({"name": "tickets", "source": {"kind": "repositories"}, "metdata": ["x"]})
    assert "metdata" in message and "tickets/defs.yaml" in message


def test_a_table_collection_over_an_unknown_table_names_the_field(settings):
    message = failure(ticket_collection(f"{settings.schema}_src.nowhere"))
    assert f"tickets/defs.yaml: source.table: no table or view {settings.schema}_src.nowhere" in (
        message
    )


def test_an_unknown_metadata_column_names_the_file_and_the_field(settings, store):
    table = make_tickets(store, f"{settings.schema}_src", 3)
    message = failure(ticket_collection(table, metadata=["customer", "severity"]))
    assert f"tickets/defs.yaml: metadata: {table} has no column 'severity'" in message


def test_a_template_naming_a_missing_column_names_the_file_and_the_field(settings, store):
    table = make_tickets(store, f"{settings.schema}_src", 3)
    message = failure(ticket_collection(table, text="{subject}\n\n{description}"))
    assert (
        f"tickets/defs.yaml: text: {table} has no column 'description' (the template names it)"
        in message
    )


def test_a_key_that_is_not_unique_names_the_file_and_the_field(settings, store):
    table = make_tickets(store, f"{settings.schema}_src", 3)
    message = failure(ticket_collection(table, key="customer"))
    assert (
        f"tickets/defs.yaml: key: (customer) is not unique in {table}: no primary key or "
        "unique index on it" in message
    )
