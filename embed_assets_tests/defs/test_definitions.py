import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from embed_assets.components.assets import monthly_partitions
from embed_assets.definitions import build_definitions, defs
from embed_assets.lib.settings import Settings
from embed_assets_tests.helpers import asset_key


def test_definitions_load_cleanly():
    dg.Definitions.validate_loadable(build_definitions())
    assert isinstance(defs, dg.Definitions) or callable(defs)


def test_asset_graph_is_rows_chunks_embeddings_cluster_index_prefixed_by_the_collection():
    built = build_definitions()
    graph = built.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "repositories/rows",
        "repositories/chunks",
        "repositories/embeddings",
        "repositories/cluster_index",
    }
    assert graph.get(asset_key("chunks")).parent_keys == {asset_key("rows")}
    assert graph.get(asset_key("embeddings")).parent_keys == {asset_key("chunks")}
    assert graph.get(asset_key("cluster_index")).parent_keys == {asset_key("embeddings")}
    assert graph.get(asset_key("cluster_index")).partitions_def is None  # the whole space
    monthly = monthly_partitions(Settings())
    for key in map(asset_key, ("rows", "chunks", "embeddings")):
        node = graph.get(key)
        assert node.partitions_def == monthly
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert monthly.get_partition_keys()[0] == "2008-01-01"


def test_database_url_reaches_the_resource_as_an_env_var_not_a_value(monkeypatch):
    monkeypatch.setenv("EMBED_ASSETS_DATABASE_URL", "postgresql://user:secret@db/x")
    from embed_assets.lib.settings import Settings

    resources = build_definitions(Settings.from_env()).resources
    assert "secret" not in repr(resources["database"])


def test_dg_check_defs_validates_the_collections_and_loads_the_code_location():
    root = Path(__file__).resolve().parents[2]
    checked = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])},
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "All component YAML validated successfully" in checked.stdout + checked.stderr
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
