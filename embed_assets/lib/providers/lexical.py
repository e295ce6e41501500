"""A model's vectors with the offline provider's word vectors beside them: one vector that is
near another when the meaning is near (the model's part) or when the same rare words occur (the
lexical part), so that nearest-neighbour search, clusters and near-duplicates all see both.

The blend of two unit vectors m (the model's) and h (`offline-hash-v2` of the same text, 384-d)
is [m, sqrt(w) * h] / sqrt(1 + w): the cosine of two blends is (cos_m + w * cos_h) / (1 + w), a
weighted sum of the two similarities (what "sparse-dense" hybrid vectors do). The space's model
name records the blend (`<model>+offline-hash-v2*<w>`), so a query is embedded the same way
and a space made with another weight stays valid. Measured in docs/benchmarks.md: with
all-MiniLM-L6-v2 on the weak-label evaluation, w = 0.5 raised p@10 and the clusters' AMI when
the texts hold topic words, and changed neither when they do not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from embed_assets.lib.providers.base import OFFLINE_DIMENSIONS, EmbeddingProvider
from embed_assets.lib.providers.offline import OfflineHashingProvider

LEXICAL_MODEL = "offline-hash-v2"
_BLENDED = re.compile(r"^(?P<model>.+)\+(?P<lexical>offline-hash-v\d+)\*(?P<weight>[0-9.]+)$")


def blended_name(model: str, weight: float, lexical: str = LEXICAL_MODEL) -> str:
    return f"{model}+{lexical}*{weight:g}"


def split_blend(model: str) -> tuple[str, str, float] | None:
    """(the model, the lexical model, the weight) of a blended model name, else None."""
    found = _BLENDED.match(model)
    if found is None:
        return None
    return found["model"], found["lexical"], float(found["weight"])


class LexicalBlend:
    """`inner`'s vectors (normalised) with `lexical`'s beside them, weighted `weight`."""

    def __init__(self, inner: EmbeddingProvider, weight: float, lexical: str = LEXICAL_MODEL):
        self.inner = inner
        self.weight = weight
        self.lexical = OfflineHashingProvider(OFFLINE_DIMENSIONS, model=lexical)
        self.model = blended_name(inner.model, weight, lexical)
        self.dimensions = inner.dimensions + OFFLINE_DIMENSIONS

    def __repr__(self) -> str:
        return f"LexicalBlend({self.inner!r}, weight={self.weight:g})"

    def __getattr__(self, name: str):  # name, metrics, cache_vectors, close, ...: the model's
        return getattr(self.inner, name)

    def __enter__(self) -> LexicalBlend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        meaning = np.asarray(self.inner.embed(texts), dtype=np.float32)
        norms = np.linalg.norm(meaning, axis=1, keepdims=True)
        meaning = meaning / np.where(norms > 0, norms, 1)
        words = np.asarray(self.lexical.embed(list(texts)), dtype=np.float32)
        blend = np.hstack([meaning, np.sqrt(self.weight) * words])
        return (blend / np.sqrt(1 + self.weight)).astype(np.float32)
