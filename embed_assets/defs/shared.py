"""What every collection of the code location shares: the resources (one database, one provider
pool, one embedding cache, the GitHub source) and the in-process executor; the settings are read
when the definitions are built."""

import dagster as dg

from embed_assets.components.collection import build_settings
from embed_assets.defs.resources import resources_from


@dg.definitions
def shared() -> dg.Definitions:
    return dg.Definitions(
        resources=resources_from(build_settings()),
        # The graph is a chain: a process per step bought no parallelism and
        # cost seconds of imports per step (a 800-row sensor run took 56 s).
        executor=dg.in_process_executor,
    )
