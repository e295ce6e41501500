"""Similarity search for applications: embed the query with the provider of the active embedding
space and ask that space.

An application calls `search` many times: each thread keeps its connection and providers between
calls, since a new connection costs a server process with cold catalog caches (measured: 22 ms a
search at 100K repositories with a connection per call, against 5 ms for the query itself).
"""

import threading
from dataclasses import replace

import psycopg

from embed_assets.lib.database import database_url
from embed_assets.lib.providers import EmbeddingProvider, build_provider, close_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.store import Space, Store, StoreError, connect_store

_kept = threading.local()  # settings -> (store, {space name: provider}) of this thread
KEPT_PER_THREAD = 4  # settings (databases, schemas) a thread keeps a connection for


def search(
    query: str,
    k: int = 10,
    *,
    language: str | None = None,
    min_stars: int | None = None,
    settings: Settings | None = None,
) -> list[dict]:
    """The k repositories most similar to `query`, best first, as
    `{"full_name", "score", "text"}` with score = cosine similarity of the best chunk.

    Filters: `language` (case-insensitive) and `min_stars`. Settings come from the environment
    unless given."""
    if k <= 0:
        raise ValueError(f"k must be a positive number of results, got {k}")
    settings = settings or Settings.from_env()
    try:
        return _search(settings, query, k, language, min_stars)
    except psycopg.OperationalError:  # the kept connection died (a server restart): once more
        forget(settings)
        return _search(settings, query, k, language, min_stars)


def forget(settings: Settings | None = None) -> None:
    """Close what this thread keeps (for `settings`, or all)."""
    kept = getattr(_kept, "sessions", {})
    for key in [settings] if settings is not None else list(kept):
        store, providers = kept.pop(key, (None, {}))
        for provider in providers.values():
            close_provider(provider)
        if store is not None:
            store.conn.close()


def _search(
    settings: Settings, query: str, k: int, language: str | None, min_stars: int | None
) -> list[dict]:
    store, providers = _session(settings)
    space = store.active_space()
    if space is None:
        raise StoreError("nothing is embedded yet: run `embed-assets sync` first")
    if space.name not in providers:
        providers[space.name] = _provider_for(settings, space)
    vector = providers[space.name].embed([query])[0]
    hits = store.search(space, vector, k, language=language, min_stars=min_stars)
    return [
        {"full_name": name, "score": round(score, 4), "text": text} for name, score, text in hits
    ]


def _session(settings: Settings) -> tuple[Store, dict[str, EmbeddingProvider]]:
    sessions = _kept.__dict__.setdefault("sessions", {})
    store, providers = sessions.get(settings, (None, {}))
    if store is None or store.conn.closed:
        store = connect_store(database_url(settings), settings)
        sessions[settings] = (store, providers)
        while len(sessions) > KEPT_PER_THREAD:
            forget(next(iter(sessions)))
    return store, providers


def _provider_for(settings: Settings, space: Space) -> EmbeddingProvider:
    """The query is embedded by the active space's model, which is not the configured one while
    a new model's space fills: searches go on, answered by the old space."""
    provider = build_provider(replace(settings, model=space.model, dimensions=space.dimensions))
    if space.name != space_name(provider.model, provider.dimensions):
        close_provider(provider)
        raise StoreError(
            f"the active embedding space is {space.name!r}, which the "
            f"{settings.provider!r} provider cannot embed queries for (it gives "
            f"{provider.model!r} at {provider.dimensions} dimensions): activate a "
            "space of this provider"
        )
    return provider
