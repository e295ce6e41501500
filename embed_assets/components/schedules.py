"""When a collection's cluster index runs by itself: after its embeddings change (declarative
automation, for runs not started by `sync`, which includes it), and a weekly full re-cluster."""

import dagster as dg

from embed_assets.components.assets import CollectionAssets


def cluster_index_schedules(
    assets: CollectionAssets,
) -> tuple[dg.AutomationConditionSensorDefinition, dg.JobDefinition, dg.ScheduleDefinition]:
    """The automation sensor, the full re-cluster job and its weekly schedule."""
    selection = dg.AssetSelection.assets(assets.cluster_index)
    # The implicit automation sensor starts STOPPED: declare one that runs.
    automation = dg.AutomationConditionSensorDefinition(
        f"{assets.name}_cluster_index_automation",
        target=selection,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    full_recluster = dg.define_asset_job(
        f"{assets.name}_full_recluster",
        selection=selection,
        config=dg.RunConfig(
            ops={assets.cluster_index.op.name: assets.cluster_index_config(full=True)}
        ),
    )
    weekly = dg.ScheduleDefinition(
        name=f"{assets.name}_weekly_full_recluster",
        job=full_recluster,
        cron_schedule="0 3 * * 0",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return automation, full_recluster, weekly
