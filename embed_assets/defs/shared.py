"""What every collection of the code location shares: the resources (one database, one provider
pool, one embedding cache, the GitHub source) and the in-process executor; the settings are read
when the definitions are built."""

import dagster as dg

from embed_assets.components.collection import build_settings
from embed_assets.defs.resources import shared_definitions


@dg.definitions
def shared() -> dg.Definitions:
    """Also given by each collection (the same objects): here for a project with none."""
    return shared_definitions(build_settings())
