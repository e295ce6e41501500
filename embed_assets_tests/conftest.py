"""One real PostgreSQL with pgvector (from `pgserver`) per test session; one schema per test."""

import re
import uuid
import warnings

import psycopg
import pytest
from psycopg import sql

from embed_assets.lib.settings import Settings
from embed_assets.lib.store import open_store
from embed_assets_tests.install_check import install_problems, message


def pytest_configure(config):
    """A drifted install stops the session before any test runs (and before dagster is imported
    by a test module, which is where a library of another line would fail)."""
    problems = install_problems()
    if problems:
        pytest.exit(message(problems), returncode=3)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    # In `public` before any test: a test's search path (below) starts with a schema of its own,
    # where a first CREATE EXTENSION would put it, and drop it with that schema.
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No setting of the developer's shell may leak into a test; Dagster gets a throwaway home."""
    import os

    for name in list(os.environ):
        if name.startswith("EMBED_ASSETS_") or name == "DAGSTER_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("EMBED_ASSETS_HOME", str(tmp_path / "home"))


@pytest.fixture
def settings(database_url, request, monkeypatch, tmp_path) -> Settings:
    """Settings for a fresh schema, also exported as environment variables for CLI tests."""
    schema = (
        "t_"
        + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
        + "_"
        + uuid.uuid4().hex[:6]
    )
    monkeypatch.setenv("EMBED_ASSETS_DATABASE_URL", database_url)
    monkeypatch.setenv("EMBED_ASSETS_SCHEMA", schema)
    # Dagster's run storage (the project's dagster.yaml: this database) in a schema of the
    # test's own, first on every connection's search path: runs recorded by one test (the newest
    # materialised partition of `repositories/embeddings`...) are not seen by the next, so no
    # test passes or fails by which ran before it. Our own SQL names its schemas.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(f"{schema}_dagster")))
    monkeypatch.setenv("PGOPTIONS", f"-c search_path={schema}_dagster,public")
    current = Settings.from_env()
    yield current
    with open_store(database_url, current) as store:
        store.drop_schema()
        # A table collection's own schema, and the test's source tables, are named after it.
        for (name,) in store.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (schema + "_",)
        ).fetchall():
            store.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def store(settings):
    with open_store(settings.database_url, settings) as opened:
        yield opened
