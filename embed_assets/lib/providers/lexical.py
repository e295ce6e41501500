"""A model's vectors with the offline provider's word vectors beside them: one vector that is
near another when the meaning is near (the model's part) or when the same rare words occur (the
lexical part), so that nearest-neighbour search, clusters and near-duplicates all see both.

The blend of two unit vectors m (the model's) and h (`offline-hash-v2` of the same text, 384-d)
is [m, sqrt(w) * h] / sqrt(1 + w): the cosine of two blends is (cos_m + w * cos_h) / (1 + w), a
weighted sum of the two similarities (what "sparse-dense" hybrid vectors do). The space's model
name records the blend (`<model>+offline-hash-v2*<w>`), so a query is embedded the same way
and a space made with another weight stays valid. Measured in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embed_assets.lib.providers.base import BLENDED_MODEL, OFFLINE_DIMENSIONS, EmbeddingProvider
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.settings import SettingError

LEXICAL_MODEL = "offline-hash-v2"
MAX_DIMENSIONS = 2000  # pgvector's HNSW limit


def blend_weight(weight: float) -> float:
    """The weight as a blend's name carries it: two decimals, so that the name gives it back."""
    return round(weight, 2)


def blended_name(model: str, weight: float, lexical: str = LEXICAL_MODEL) -> str:
    return f"{model}+{lexical}*{blend_weight(weight):g}"


def split_blend(model: str) -> tuple[str, str, float] | None:
    """(the model, the lexical model, the weight) of a blended model name, else None."""
    found = BLENDED_MODEL.match(model)
    if found is None:
        return None
    return found["model"], f"offline-hash-v{found['version']}", float(found["weight"])


class LexicalBlend:
    """`inner`'s vectors (normalised) with `lexical`'s beside them, weighted `weight`."""

    def __init__(self, inner: EmbeddingProvider, weight: float, lexical: str = LEXICAL_MODEL):
        self.inner = inner
        self.weight = blend_weight(weight)
        self.lexical = OfflineHashingProvider(OFFLINE_DIMENSIONS, model=lexical)
        self.model = blended_name(inner.model, self.weight, lexical)

    def __repr__(self) -> str:
        return f"LexicalBlend({self.inner!r}, weight={self.weight:g})"

    def __getattr__(self, name: str):  # name, metrics, cache_vectors, close, ...: the model's
        if name.startswith("__") or name == "inner":  # copy and pickle probe before __init__
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __enter__(self) -> LexicalBlend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        from embed_assets.lib.providers import close_provider

        close_provider(self.inner)

    @property
    def dimensions(self) -> int:
        """The model's and the word vectors'; read when needed, since an HTTP provider finds its
        own from a first request."""
        dimensions = self.inner.dimensions + OFFLINE_DIMENSIONS
        if dimensions > MAX_DIMENSIONS:
            raise SettingError(
                f"EMBED_ASSETS_LEXICAL_WEIGHT: {self.inner.model!r} gives "
                f"{self.inner.dimensions} dimensions, and {OFFLINE_DIMENSIONS} more make "
                f"{dimensions}, over pgvector's HNSW limit of {MAX_DIMENSIONS}: set it to 0, "
                "or shorten the model's vectors with EMBED_ASSETS_DIMENSIONS"
            )
        return dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        meaning = np.asarray(self.inner.embed(texts), dtype=np.float32)
        norms = np.linalg.norm(meaning, axis=1, keepdims=True)
        meaning = meaning / np.where(norms > 0, norms, 1)
        blend = np.hstack([meaning, np.sqrt(self.weight) * self._words(texts)])
        # Unit rows: sqrt(1 + w) for all but a text without words to hash, which is the model's
        # part alone. A zero vector of the model's stays zero, for the pipeline to refuse.
        blend[norms[:, 0] == 0] = 0
        lengths = np.linalg.norm(blend, axis=1, keepdims=True)
        return (blend / np.where(lengths > 0, lengths, 1)).astype(np.float32)

    def _words(self, texts: list[str]) -> np.ndarray:
        """The offline vectors of `texts`, zero for a text of stop words only (it has no
        features to hash; the model's part still embeds it)."""
        try:
            return np.asarray(self.lexical.embed(texts), dtype=np.float32)
        except ValueError:
            out = np.zeros((len(texts), OFFLINE_DIMENSIONS), dtype=np.float32)
            for i, text in enumerate(texts):
                try:
                    out[i] = self.lexical.embed([text])[0]
                except ValueError:
                    pass
            return out
