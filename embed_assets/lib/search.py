"""Similarity search for applications: embed the query with the provider of the active embedding
space and ask that space.

An application calls `search` many times: each thread keeps its connection and providers between
calls, since a new connection costs a server process with cold catalog caches (measured: 22 ms a
search at 100K repositories with a connection per call, against 5 ms for the query itself).
"""

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg

from embed_assets.lib.collections import Collection, choose_collection
from embed_assets.lib.database import database_url
from embed_assets.lib.providers import EmbeddingProvider, build_provider, close_provider, space_name
from embed_assets.lib.search_request import check_request
from embed_assets.lib.settings import Settings
from embed_assets.lib.store import Space, Store, StoreError, connect_store

_kept = threading.local()  # (settings, collection name, its defs.yaml) -> this thread's _Session
KEPT_PER_THREAD = 4  # collections (of databases, schemas) a thread keeps its session of


@dataclass
class _Session:
    """What a thread keeps for one collection: its store, the providers of its spaces, and for
    hybrid searches a second store and a thread that runs the text arm on it meanwhile."""

    store: Store
    providers: dict[str, EmbeddingProvider] = field(default_factory=dict)
    words: tuple[Store, ThreadPoolExecutor] | None = None

    def words_arm(self, url: str, settings: Settings) -> tuple[Store, ThreadPoolExecutor]:
        if self.words is None:
            store = connect_store(url, settings, self.store.table_spec)
            self.words = (store, ThreadPoolExecutor(1, thread_name_prefix="embed_assets_words"))
        return self.words

    def close(self) -> None:
        for provider in self.providers.values():
            close_provider(provider)
        self.store.conn.close()
        if self.words is not None:
            self.words[1].shutdown()
            self.words[0].conn.close()


def search(
    query: str,
    k: int = 10,
    *,
    mode: str = "hybrid",
    min_score: float | None = None,
    feedback: bool = True,
    collection: str | None = None,
    where: Mapping[str, str] | None = None,
    group: str | None = None,
    language: str | None = None,
    min_stars: int | None = None,
    settings: Settings | None = None,
    project: Path | None = None,
) -> list[dict]:
    """The k (at most MAX_K) distinct rows of `collection` (the project's only one when None)
    that best answer `query`, best first, as `{"key", "score", "text", "metadata"}`, `text` being
    the row's best chunk; a repositories collection's also carry `full_name`, and their metadata
    language, stars and url.

    `mode`: "vector" ranks by the cosine similarity of the query's embedding (score: that
    similarity, -1..1; with `feedback`, ranked by the moved query, see below), "text" by
    PostgreSQL full-text match of its words (score: ts_rank normalised to 0..1; rows with none
    of the words are not returned), "hybrid" (the default) fuses the two rankings by weighted
    reciprocal rank (score: 1.0 for a row first in both, 0.67 first by vectors alone, 0.33
    first by words alone). `min_score` drops weak hits: those scoring below it in vector and
    text mode; in hybrid mode the rows whose cosine similarity is below it, unless they hold the
    query's words (a rank score says nothing of how good a hit is). `feedback` (vector and
    hybrid modes): the vector ranking is by the query's vector moved towards its best rows
    (pseudo-relevance feedback, `lib.store.search`), which finds more rows about the same
    thing; the vector score stays the similarity to the query itself. False ranks by the query
    alone.

    Filters: `where` (metadata column -> value, all of them), `group` (the collection's group_by
    value); for repositories also `language` (case-insensitive) and `min_stars`. Settings come
    from the environment unless given; the project (its declared collections) from the current
    folder unless given."""
    check_request(query, k, mode)
    settings = settings or Settings.from_env()
    chosen = choose_collection(collection, project)
    filters = {"where": dict(where or {}), "group": group, "language": language}
    filters["min_stars"] = min_stars
    try:
        hits = _search(settings, chosen, query, k, mode, min_score, feedback, filters)
    except psycopg.OperationalError:  # the kept connection died (a server restart): once more
        forget(settings)
        hits = _search(settings, chosen, query, k, mode, min_score, feedback, filters)
    return hits


def forget(settings: Settings | None = None) -> None:
    """Close what this thread keeps (for `settings`, or all)."""
    kept = getattr(_kept, "sessions", {})
    for key in [k for k in kept if settings is None or k[0] == settings]:
        kept.pop(key).close()


def _search(
    settings: Settings,
    collection: Collection,
    query: str,
    k: int,
    mode: str,
    min_score: float | None,
    feedback: bool,
    filters: dict,
) -> list[dict]:
    session = _session(settings, collection)
    store, providers = session.store, session.providers
    _check_filters(collection, store, filters)
    space = store.active_space()
    if space is None:
        raise StoreError("nothing is embedded yet: run `embed-assets sync` first")
    if mode == "text":
        hits = store.text_search(query, k, **filters)
    else:
        # Scores are shown to 4 decimals: a cutoff at a shown score keeps the hit showing it.
        cutoff = None if min_score is None else min_score - 0.00005
        if space.name not in providers:
            providers[space.name] = _provider_for(settings, space)
        vector = providers[space.name].embed([query])[0]
        if mode == "vector":
            hits = store.search(
                space, vector, k, min_similarity=cutoff, feedback=feedback, **filters
            )
        else:
            words = session.words_arm(database_url(settings), settings)
            hits = store.hybrid_search(
                space,
                vector,
                query,
                k,
                min_similarity=cutoff,
                feedback=feedback,
                words=words,
                **filters,
            )
    repositories = store.table_spec is None
    return [
        {"key": key, "score": round(score, 4), "text": text, "metadata": metadata or {}}
        | ({"full_name": key} if repositories else {})
        for key, score, text, metadata in hits
        if mode != "text" or min_score is None or round(score, 4) >= min_score  # as shown
    ]


def _check_filters(collection: Collection, store: Store, filters: dict) -> None:
    spec = store.table_spec
    columns = spec.metadata if spec else ("language", "stars")
    for column in filters["where"]:
        if column not in columns:
            raise StoreError(
                f"where: {column!r} is not a metadata column of {collection.name} "
                f"({', '.join(columns) or 'it has none'})"
            )
    if filters["group"] is not None and (spec is None or spec.group_by is None):
        raise StoreError(f"group: the collection {collection.name} has no group_by")
    if spec is not None and (filters["language"] is not None or filters["min_stars"] is not None):
        raise StoreError("language and min_stars filter repositories; use where")


def _session(settings: Settings, collection: Collection) -> _Session:
    """This thread's session of the collection (its source checked once)."""
    sessions = _kept.__dict__.setdefault("sessions", {})
    key = (settings, collection.name, collection.path)
    session = sessions.get(key)
    if session is None or session.store.conn.closed:
        if session is not None:
            session.close()
        source = collection.source_kind(settings)
        session = _Session(connect_store(database_url(settings), settings, source.table_spec))
        sessions[key] = session
        while len(sessions) > KEPT_PER_THREAD:
            sessions.pop(next(iter(sessions))).close()
    return session


def _provider_for(settings: Settings, space: Space) -> EmbeddingProvider:
    """The query is embedded by the active space's model, which is not the configured one while
    a new model's space fills: searches go on, answered by the old space."""
    # Blended or not as the space is: its model's name says (lib.providers.lexical).
    provider = build_provider(
        replace(settings, model=space.model, dimensions=space.dimensions, lexical_weight=0)
    )
    if space.name != space_name(provider.model, provider.dimensions):
        close_provider(provider)
        raise StoreError(
            f"the active embedding space is {space.name!r}, which the "
            f"{settings.provider!r} provider cannot embed queries for (it gives "
            f"{provider.model!r} at {provider.dimensions} dimensions): activate a "
            "space of this provider"
        )
    return provider
