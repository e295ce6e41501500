"""Similarity search for applications: embed the query with the configured provider and ask the
active embedding space."""

from dataclasses import replace

from embed_assets.lib.database import database_url
from embed_assets.lib.providers import opened_provider, space_name
from embed_assets.lib.settings import Settings
from embed_assets.lib.store import StoreError, open_store


def search(query: str, k: int = 10, *, language: str | None = None, min_stars: int | None = None,
           settings: Settings | None = None) -> list[dict]:
    """The k repositories most similar to `query`, best first, as
    `{"full_name", "score", "text"}` with score = cosine similarity of the best chunk.

    Filters: `language` (case-insensitive) and `min_stars`. Settings come from the environment
    unless given."""
    if k <= 0:
        raise ValueError(f"k must be a positive number of results, got {k}")
    settings = settings or Settings.from_env()
    with open_store(database_url(settings), settings) as store:
        space = store.active_space()
        if space is None:
            raise StoreError("nothing is embedded yet: run `embed-assets sync` first")
        # The query is embedded by the active space's model, which is not the configured one
        # while a new model's space fills: searches go on, answered by the old space.
        with opened_provider(replace(settings, model=space.model,
                                     dimensions=space.dimensions)) as provider:
            if space.name != space_name(provider.model, provider.dimensions):
                raise StoreError(f"the active embedding space is {space.name!r}, which the "
                                 f"{settings.provider!r} provider cannot embed queries for "
                                 f"(it gives {provider.model!r} at {provider.dimensions} "
                                 "dimensions): activate a space of this provider")
            vector = provider.embed([query])[0]
        hits = store.search(space, vector, k, language=language, min_stars=min_stars)
    return [{"full_name": name, "score": round(score, 4), "text": text} for name, score, text in hits]
