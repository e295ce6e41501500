"""A local model through sentence-transformers (optional extra: `pip install
'embed_assets[local]'`),
for a machine with a GPU or a model on disk. The core install stays free of torch.

EMBED_ASSETS_MODEL is a local path or a model already in the Hugging Face cache: nothing is
downloaded at run time (`local_files_only`). Vectors are L2-normalised; EMBED_ASSETS_DIMENSIONS,
when
set, shortens them (`truncate_dim`, for Matryoshka models) and must not exceed the model's own.
Long inputs follow EMBED_ASSETS_LONG_INPUT like the HTTP providers' (the model would otherwise cut
them silently at its `max_seq_length`); EMBED_ASSETS_MAX_INPUT_TOKENS defaults to that length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from embed_assets.lib.providers.base import ProviderMetrics, fit_inputs
from embed_assets.lib.settings import SettingError, Settings

DEFAULT_BATCH_SIZE = 32
NO_LIMIT = 1 << 40


class SentenceTransformersProvider:
    name = "sentence_transformers"
    cache_vectors = True

    def __init__(self, settings: Settings) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise SettingError(
                "EMBED_ASSETS_PROVIDER=sentence_transformers needs the optional "
                "extra: pip install 'embed_assets[local]'"
            ) from None
        if not settings.model:
            raise SettingError(
                "EMBED_ASSETS_MODEL must name a local model path or a model in the "
                "Hugging Face cache for provider sentence_transformers"
            )
        try:
            self._model = SentenceTransformer(
                settings.model, local_files_only=True, truncate_dim=settings.dimensions or None
            )
        except (OSError, ValueError) as error:  # huggingface_hub's "not found locally" errors
            raise SettingError(
                f"EMBED_ASSETS_MODEL={settings.model!r} is neither a local model path nor a model "
                f"in the local Hugging Face cache (nothing is downloaded at run time): {error}"
            ) from None
        self.model = settings.model
        self.batch_size = settings.batch_size or DEFAULT_BATCH_SIZE
        # max_seq_length may be missing, None or infinite (static embeddings): then no limit of
        # ours.
        model_limit = getattr(self._model, "max_seq_length", None)
        self.max_input_tokens = settings.max_input_tokens or (
            model_limit if isinstance(model_limit, int) and model_limit > 0 else NO_LIMIT
        )
        self.long_input = settings.long_input
        self.metrics = ProviderMetrics(settings.price_per_million_tokens)
        self.dimensions = self._encode(["dimensions probe"]).shape[
            1
        ]  # any version, any truncate_dim
        if settings.dimensions and self.dimensions != settings.dimensions:
            raise SettingError(
                f"EMBED_ASSETS_DIMENSIONS={settings.dimensions} is more than the "
                f"{self.dimensions} dimensions of model {self.model!r}"
            )

    def __repr__(self) -> str:
        return f"SentenceTransformersProvider(model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm float32 vectors of shape (len(texts), dimensions), in the order of `texts`."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        texts, tokens = fit_inputs(texts, self.max_input_tokens, self.long_input, self.metrics)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        began = time.perf_counter()
        vectors = self._encode(texts)
        self.metrics.add(provider_calls=1)
        self.metrics.succeeded(len(texts), sum(tokens), time.perf_counter() - began)
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )
