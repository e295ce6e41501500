"""embed_assets: keep vector embeddings of text rows in sync with their source, as Dagster assets.

`embed_assets.search(query, k=10, mode="hybrid", min_score=None, feedback=True, collection=None,
where=None, group=None)` is the entry point for applications
(`[{"key", "score", "text", "metadata"}]`, k distinct rows best first);
`embed_assets.EmbeddingCollection` is the Dagster Component a `defs.yaml` declares a collection
with (`type: embed_assets.EmbeddingCollection`)."""

__all__ = ["EmbeddingCollection", "search"]


def search(query: str, k: int = 10, **filters) -> list[dict]:
    from embed_assets.lib.search import search as _search

    return _search(query, k, **filters)


def __getattr__(name: str):
    # Imported on use: `import embed_assets` for search() must not pay for importing Dagster.
    if name == "EmbeddingCollection":
        from embed_assets.components import EmbeddingCollection

        return EmbeddingCollection
    raise AttributeError(f"module 'embed_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dg finds the Components of a registry module by dir(): this one's is imported on use.
    return sorted([*globals(), "EmbeddingCollection"])
