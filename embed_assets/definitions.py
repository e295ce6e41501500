"""The code location: the asset graph with resources configured from the environment."""

import dagster as dg

from embed_assets.defs.alerts import alert_sensor
from embed_assets.defs.assets import chunks, cluster_index, embeddings, repositories
from embed_assets.defs.checks import ASSET_CHECKS
from embed_assets.defs.resources import resources_from
from embed_assets.defs.schedules import (
    cluster_index_automation,
    full_recluster,
    weekly_full_recluster,
)
from embed_assets.defs.sensors import daily_newest_partition, new_source_rows, weekly_reconciliation
from embed_assets.lib.settings import Settings

ASSETS = [repositories, chunks, embeddings, cluster_index]


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=[full_recluster],
        schedules=[daily_newest_partition, weekly_reconciliation, weekly_full_recluster],
        sensors=[new_source_rows, cluster_index_automation, alert_sensor],
        resources=resources_from(settings),
        # The graph is a chain: a process per step bought no parallelism and
        # cost seconds of imports per step (a 800-row sensor run took 56 s).
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
