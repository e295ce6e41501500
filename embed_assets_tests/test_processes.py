"""`embed-assets sync` as separate processes against an OpenAI-compatible server in this process:
two at once, and one killed with SIGKILL, each compared with an uninterrupted sync."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from psycopg import sql

from embed_assets.instance import project_instance
from embed_assets.lib.sample import generate_repositories
from embed_assets.lib.settings import Settings
from embed_assets.lib.sources.loader import SourceRow, parse_record, upsert_rows
from embed_assets.lib.store import open_store
from embed_assets.sync import LAUNCHED_BY_TAG, launched_by
from embed_assets_tests.provider_servers import FakeEmbeddingServer

ROOT = Path(__file__).resolve().parents[1]
ROWS = 400


def load_sample(settings: Settings) -> None:
    rows = [parse_record(r, i) for i, r in enumerate(generate_repositories(ROWS, seed=3))]
    with open_store(settings.database_url, settings) as store:
        upsert_rows(store, [r for r in rows if isinstance(r, SourceRow)])


def environment(settings: Settings, server: FakeEmbeddingServer, schema: str | None = None) -> dict:
    return os.environ | {
        "EMBED_ASSETS_SCHEMA": schema or settings.schema,
        "EMBED_ASSETS_PROVIDER": "openai_compatible",
        "EMBED_ASSETS_BASE_URL": server.openai_url,
        "EMBED_ASSETS_MODEL": "fake-embedder",
        "EMBED_ASSETS_DIMENSIONS": "32",
        # Small batches, one at a time: the sync lasts long enough to be killed half-way.
        "EMBED_ASSETS_BATCH_SIZE": "8",
        "EMBED_ASSETS_MAX_CONCURRENCY": "1",
    }


def start_sync(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from embed_assets.cli import main; raise SystemExit(main())",
            "sync",
            "--skip-clusters",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def contents(settings: Settings, schema: str) -> dict[str, set]:
    """Every row that matters, as values (not ids that differ between schemas)."""
    at = Settings.from_env({**os.environ, "EMBED_ASSETS_SCHEMA": schema})
    with open_store(settings.database_url, at) as store:
        space = store.active_space()
        query = {
            "repositories": "SELECT full_name, text_hash, row_time FROM {repositories}",
            "chunks": "SELECT chunk_id, content_hash, row_time, text FROM {chunks}",
            "embeddings": "SELECT chunk_id, content_hash, row_time, embedding::text FROM {vectors}",
        }
        return {
            name: set(
                store.execute(
                    sql.SQL(text).format(
                        repositories=store.t("repositories"),
                        chunks=store.t("chunks"),
                        vectors=store.t(space.table),
                    )
                ).fetchall()
            )
            for name, text in query.items()
        }


@pytest.fixture
def clean_run(settings):
    """The state an uninterrupted sync leaves, in a schema of its own."""
    schema = settings.schema + "_clean"
    clean = Settings.from_env({**os.environ, "EMBED_ASSETS_SCHEMA": schema})
    load_sample(clean)
    with FakeEmbeddingServer(dimensions=32) as server:
        finish(start_sync(environment(settings, server, schema)))
    yield contents(settings, schema)
    with open_store(settings.database_url, clean) as store:
        store.drop_schema()


def test_two_syncs_at_once_send_each_text_once_and_write_no_duplicates(settings, clean_run):
    load_sample(settings)
    with FakeEmbeddingServer(dimensions=32, latency=0.02) as server:
        env = environment(settings, server)
        first, second = start_sync(env), start_sync(env)
        reports = [finish(first), finish(second)]
        sent = Counter(text for request in server.requests for text in request.texts)
    assert max(sent.values()) == 1
    assert sum(r["embedded"] for r in reports) == len(clean_run["embeddings"])
    assert contents(settings, settings.schema) == clean_run
    with open_store(settings.database_url, settings) as store:
        space = store.active_space()
        rows, distinct = store.execute(
            sql.SQL("SELECT count(*), count(DISTINCT chunk_id) FROM {}").format(
                store.t(space.table)
            )
        ).fetchone()
    assert rows == distinct


@pytest.mark.parametrize("moment", ["starting", "embedding", "interrupted"])
def test_a_sync_killed_with_sigkill_then_synced_again_equals_an_uninterrupted_one(
    settings, clean_run, moment
):
    """ "interrupted": SIGINT while embedding, which Dagster turns into the same interruption of
    the step as a cancel from the UI does in a run worker."""
    load_sample(settings)
    with FakeEmbeddingServer(dimensions=32, latency=0.05) as server:
        env = environment(settings, server)
        victim = start_sync(env)
        if moment == "starting":  # the run is being created, or rows and chunks written
            time.sleep(3.5)
            assert not server.requests
        else:  # half-way through the provider calls, vectors cached but not yet written
            deadline = time.monotonic() + 120
            while len(server.requests) < 15 and time.monotonic() < deadline:
                time.sleep(0.01)
        victim.send_signal(signal.SIGINT if moment == "interrupted" else signal.SIGKILL)
        victim.wait(timeout=60)
        assert victim.returncode != 0
        finish(start_sync(env))  # must not wait for the dead run's pool slot
    assert contents(settings, settings.schema) == clean_run
    with project_instance(
        settings
    ) as instance:  # the killed run is marked failed, not left running
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={LAUNCHED_BY_TAG: launched_by(victim.pid)})
        )
        assert len(runs) == 1 or moment == "starting"
        assert all(
            run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
            for run in runs
        )
