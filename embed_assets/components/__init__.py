"""The Dagster Component of embed_assets (`embed_assets.EmbeddingCollection`) and the factories
that build a collection's definitions."""

from embed_assets.components.collection import EmbeddingCollection

__all__ = ["EmbeddingCollection"]
