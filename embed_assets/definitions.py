"""The code location: the collections declared under `embed_assets/defs/` (a `defs.yaml` each),
with the resources and alerts they share, configured from the settings given or the environment."""

from pathlib import Path

import dagster as dg

from embed_assets.components.collection import building_with
from embed_assets.lib.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    with building_with(settings or Settings.from_env()):
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
