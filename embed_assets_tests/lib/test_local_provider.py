"""The sentence-transformers provider: its tests need the optional extra `[local]`."""

import importlib.util

import numpy as np
import pytest

from embed_assets.lib.providers import build_provider
from embed_assets.lib.settings import SettingError, Settings

INSTALLED = importlib.util.find_spec("sentence_transformers") is not None
needs_extra = pytest.mark.skipif(
    not INSTALLED,
    reason="sentence-transformers is not installed "
    "(optional extra: pip install 'embed_assets[local]')",
)


@pytest.mark.skipif(INSTALLED, reason="sentence-transformers is installed")
def test_without_the_extra_the_error_says_how_to_install_it():
    with pytest.raises(SettingError, match=r"pip install 'embed_assets\[local\]'"):
        build_provider(Settings(provider="sentence_transformers", model="any"))


@pytest.fixture
def tiny_model(tmp_path) -> str:
    """A static-embedding model built and saved locally: nothing is downloaded."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "a tool for vector search in postgres with rust and python games".split()
    tokenizer = Tokenizer(
        models.WordLevel(
            {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(words)}}, unk_token="[UNK]"
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tiny-model"
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=16)]).save(str(path))
    return str(path)


@needs_extra
def test_a_local_model_gives_unit_vectors_in_order(tiny_model):
    provider = build_provider(
        Settings(provider="sentence_transformers", model=tiny_model, lexical_weight=0)
    )
    texts = ["a tool for vector search", "rust games", "a tool for vector search"]
    vectors = provider.embed(texts)
    assert (provider.name, provider.dimensions, vectors.shape) == (
        "sentence_transformers",
        16,
        (3, 16),
    )
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert provider.metrics.snapshot()["texts_sent"] == 3


@needs_extra
def test_dimensions_shorten_a_local_model_and_a_missing_model_is_not_downloaded(
    tiny_model, tmp_path
):
    provider = build_provider(
        Settings(provider="sentence_transformers", model=tiny_model, dimensions=8)
    )
    # By default a local model's vectors have the 384 of the word vectors beside them.
    assert provider.embed(["python"]).shape == (1, 8 + 384)
    assert provider.model == f"{tiny_model}+offline-hash-v2*0.5"
    with pytest.raises(SettingError, match="nothing is downloaded at run time"):
        build_provider(
            Settings(provider="sentence_transformers", model="embed-assets-test/no-such-model")
        )
