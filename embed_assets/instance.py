"""Dagster's instance storage in the project's own PostgreSQL: `dagster.yaml` names this class, so
`dagster dev`, the daemon, run workers and the CLI record runs in the same database as the vectors,
the embedded server or EMBED_ASSETS_DATABASE_URL alike, with no URL written in any file."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage

from embed_assets.lib.database import database_url, sqlalchemy_url
from embed_assets.lib.settings import Settings

STATEMENT_TIMEOUT_MS = 300_000


class ProjectPostgresStorage(DagsterPostgresStorage):
    """Runs, event logs and schedules in the database the project uses for its own tables."""

    @classmethod
    def config_type(cls):
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value):
        # Event writes need not wait for the disk: an OS crash can lose the last instants of
        # run history, never the project's data (whose own connections commit synchronously).
        # Options in the URL replace libpq's PGOPTIONS: those given there are kept.
        options = " ".join(["-c synchronous_commit=off", os.environ.get("PGOPTIONS", "")])
        url = sqlalchemy_url(database_url(Settings.from_env()))
        url += ("&" if "?" in url else "?") + "options=" + quote(options.strip())
        storage = cls(postgres_url=url, inst_data=inst_data)
        # dagster-postgres opens a new connection per query by default; a run over a range of
        # months stores hundreds of events, and ~4 ms of connecting each dominated a small sync.
        # Pooled engines are what the webserver uses (`optimize_for_webserver`).
        for part in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
            part.optimize_for_webserver(
                statement_timeout=STATEMENT_TIMEOUT_MS, pool_recycle=3600, max_overflow=10
            )
        return storage


def _project_root() -> Path | None:
    """The folder holding the project's dagster.yaml: the working directory, or the checkout this
    package was installed from (an editable install)."""
    for folder in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (folder / "dagster.yaml").exists():
            return folder
    return None


@contextmanager
def project_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """DAGSTER_HOME when set; else the project's dagster.yaml with local files under
    EMBED_ASSETS_HOME, which is what `dagster dev` from the project root sees too."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
        return
    root = _project_root()
    base = (settings.home / "dagster").resolve()
    base.mkdir(parents=True, exist_ok=True)
    overrides = None
    if root is None:
        overrides = {
            "storage": {"custom": {"module": __name__, "class": ProjectPostgresStorage.__name__}}
        }
    ref = InstanceRef.from_dir(str(base), config_dir=str(root or base), overrides=overrides)
    with dg.DagsterInstance.from_ref(ref) as instance:
        yield instance
