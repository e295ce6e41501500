"""Where the database is: the server named by EMBED_ASSETS_DATABASE_URL, or an embedded PostgreSQL
with pgvector started from the `pgserver` package, its data under EMBED_ASSETS_HOME.

The embedded server is left running when the process exits, so that the next CLI command, a Dagster
run worker or `dagster dev` attaches to it in milliseconds; `embed-assets db stop` stops it.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from embed_assets.lib.settings import Settings

logging.getLogger("pgserver").setLevel(logging.WARNING)


def embedded_data_dir(home: Path) -> Path:
    return home.expanduser().resolve() / "pgdata"


def _embedded_server(home: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        data_dir = embedded_data_dir(home)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        return pgserver.get_server(data_dir, cleanup_mode=None)


def database_url(settings: Settings) -> str:
    """The libpq URL to use, starting the embedded server when no URL is configured."""
    if settings.database_url:
        return settings.database_url
    return _embedded_server(settings.home).get_uri()


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    data_dir = embedded_data_dir(home)
    if not (data_dir / "postmaster.pid").exists():
        return False
    from pgserver._commands import pg_ctl

    server = _embedded_server(home)
    pg_ctl(["-w", "stop"], pgdata=data_dir, user=server.system_user)
    return True


def sqlalchemy_url(url: str) -> str:
    """Dagster's storage needs the psycopg2 driver named: with SQLAlchemy 2.1 a bare postgresql://
    selects psycopg 3, and dagster-postgres then fails on `NOTIFY run_events, $1`."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", url)


def server_of(url: str) -> str:
    """Where a URL points, for messages: host:port/database, or the socket folder; no user, no
    password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "an unreadable URL"
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    host = parts.hostname or query.get("host") or "localhost"
    return f"{host}:{port or 5432}{parts.path or ''}"
