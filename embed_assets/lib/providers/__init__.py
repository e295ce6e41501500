"""Embedding providers: the interface and metrics (`base`), and the factory that builds the one the
settings name. Implementations are imported only when built, so a command that never embeds never
imports httpx's clients or torch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from embed_assets.lib.providers.base import (
    HTTP_PROVIDERS,
    OFFLINE_DIMENSIONS,
    PROVIDERS,
    EmbeddingProvider,
    ProviderError,
    ProviderMetrics,
    estimate_tokens,
    fit_inputs,
    space_name,
    vector_problems,
)
from embed_assets.lib.settings import SettingError, Settings

if TYPE_CHECKING:
    from embed_assets.lib.budget import BudgetDatabase

__all__ = [
    "EmbeddingProvider",
    "HTTP_PROVIDERS",
    "OFFLINE_DIMENSIONS",
    "PROVIDERS",
    "ProviderError",
    "ProviderMetrics",
    "build_provider",
    "close_provider",
    "estimate_tokens",
    "fit_inputs",
    "opened_provider",
    "space_name",
    "vector_problems",
]


# EMBED_ASSETS_LEXICAL_WEIGHT's default per provider (absent: 0). Not for the HTTP providers:
# changing a space's vectors re-embeds every row, and there each one is paid for.
DEFAULT_LEXICAL_WEIGHT = {"sentence_transformers": 0.5}


def build_provider(settings: Settings, budgets: BudgetDatabase | None = None) -> EmbeddingProvider:
    """The provider named by EMBED_ASSETS_PROVIDER, its vectors blended with word vectors by
    EMBED_ASSETS_LEXICAL_WEIGHT (`lib.providers.lexical`). HTTP providers hold a pooled client
    (and, with `budgets`, a connection to the shared budget): close them (they are context
    managers), or use `opened_provider`.

    A blended model name (a space's: `<model>+offline-hash-v2*<w>`, with the blend's dimensions)
    builds that blend again, whatever the weight setting says: a query is embedded as the space
    it searches was."""
    from embed_assets.lib.providers.lexical import LexicalBlend, blend_weight, split_blend

    blend = split_blend(settings.model)
    if blend is not None:
        model, lexical, weight = blend
        if 0 < settings.dimensions <= OFFLINE_DIMENSIONS:
            raise SettingError(
                f"EMBED_ASSETS_DIMENSIONS={settings.dimensions} is too few for the blended model "
                f"{settings.model!r}: its word vectors alone take {OFFLINE_DIMENSIONS}"
            )
        inner_dimensions = max(settings.dimensions - OFFLINE_DIMENSIONS, 0)
        inner = replace(settings, model=model, dimensions=inner_dimensions, lexical_weight=0)
        return LexicalBlend(_unblended(inner, budgets), weight, lexical)
    weight = settings.lexical_weight
    if weight == -1:
        weight = DEFAULT_LEXICAL_WEIGHT.get(settings.provider, 0.0)
    provider = _unblended(settings, budgets)
    return LexicalBlend(provider, weight) if blend_weight(weight) > 0 else provider


def _unblended(settings: Settings, budgets: BudgetDatabase | None) -> EmbeddingProvider:
    if settings.provider == "offline":
        from embed_assets.lib.providers.offline import RECIPES, OfflineHashingProvider

        if settings.model_name not in RECIPES:
            raise SettingError(
                f"EMBED_ASSETS_MODEL={settings.model_name!r} is not an offline model "
                f"(known: {', '.join(RECIPES)})"
            )
        return OfflineHashingProvider(
            dimensions=settings.dimensions or OFFLINE_DIMENSIONS, model=settings.model_name
        )
    if settings.provider in HTTP_PROVIDERS:
        from embed_assets.lib.providers.http import http_provider

        return http_provider(settings, budgets)
    if settings.provider == "sentence_transformers":
        from embed_assets.lib.providers.sentence_transformers import SentenceTransformersProvider

        return SentenceTransformersProvider(settings)
    raise SettingError(
        f"EMBED_ASSETS_PROVIDER={settings.provider!r} is not a known provider "
        f"(known: {', '.join(PROVIDERS)})"
    )


@contextmanager
def opened_provider(
    settings: Settings, budgets: BudgetDatabase | None = None
) -> Iterator[EmbeddingProvider]:
    """`build_provider` for one run: the provider's HTTP client, if it has one, is closed after."""
    provider = build_provider(settings, budgets)
    try:
        yield provider
    finally:
        close_provider(provider)


def close_provider(provider: EmbeddingProvider) -> None:
    """Close the provider's HTTP client, if it has one (the offline provider holds nothing)."""
    close = getattr(provider, "close", None)
    if close is not None:
        close()
