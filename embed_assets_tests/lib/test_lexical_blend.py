"""A model's vectors blended with word vectors (EMBED_ASSETS_LEXICAL_WEIGHT): the vectors, the
space's name, a query embedded as its space was, and the settings' errors; the model is the HTTP
provider against the fake server of the tests."""

from dataclasses import replace

import numpy as np
import pytest

from embed_assets.lib import search as search_module
from embed_assets.lib.providers import build_provider, space_name, vector_problems
from embed_assets.lib.providers.lexical import LexicalBlend
from embed_assets.lib.providers.offline import OfflineHashingProvider
from embed_assets.lib.settings import SettingError, Settings
from embed_assets_tests.helpers import source_row
from embed_assets_tests.lib.test_pipeline import materialise
from embed_assets_tests.provider_servers import FakeEmbeddingServer

TEXTS = ["a terminal emulator written in rust", "static site generator", "zeppelin airship"]


@pytest.fixture
def server():
    with FakeEmbeddingServer(dimensions=32) as running:
        yield running


def model_settings(server, **values) -> Settings:
    return Settings(provider="openai_compatible", base_url=server.openai_url, model="m", **values)


def test_the_blend_is_both_similarities_weighted(server):
    with build_provider(model_settings(server, lexical_weight=0.5)) as blend:
        assert (blend.model, blend.dimensions) == ("m+offline-hash-v2*0.5", 32 + 384)
        vectors = blend.embed(TEXTS)
    assert vectors.shape == (3, 416)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    meaning = server.vectors(TEXTS)
    meaning /= np.linalg.norm(meaning, axis=1, keepdims=True)
    words = OfflineHashingProvider(384, model="offline-hash-v2").embed(TEXTS)
    expected = (meaning @ meaning.T + 0.5 * (words @ words.T)) / 1.5
    np.testing.assert_allclose(vectors @ vectors.T, expected, atol=1e-5)


def test_http_providers_are_not_blended_unless_asked_and_offline_refuses(server):
    with build_provider(model_settings(server)) as plain:
        assert (plain.model, plain.dimensions) == ("m", 32)
    with pytest.raises(SettingError, match="EMBED_ASSETS_LEXICAL_WEIGHT is for model providers"):
        Settings(provider="offline", lexical_weight=0.5)
    with pytest.raises(SettingError, match="EMBED_ASSETS_LEXICAL_WEIGHT must be between 0 and 10"):
        Settings.from_env({"EMBED_ASSETS_LEXICAL_WEIGHT": "-0.5"})
    with pytest.raises(SettingError, match="EMBED_ASSETS_LEXICAL_WEIGHT must be a number"):
        Settings.from_env({"EMBED_ASSETS_LEXICAL_WEIGHT": "half"})


def test_a_blended_space_embeds_its_queries_as_its_rows_whatever_the_setting(
    server, settings, store
):
    store.upsert_source([source_row(f"r/{i}", text) for i, text in enumerate(TEXTS)])
    configured = replace(
        settings, provider="openai_compatible", base_url=server.openai_url, model="m"
    )
    configured = replace(configured, lexical_weight=0.5)
    blend = build_provider(configured)
    materialise(store, blend)
    space = store.active_space()
    assert space.name == space_name("m+offline-hash-v2*0.5", 416)
    # Searched with the weight unset (0 for this provider): the space's own blend embeds it.
    searching = replace(configured, lexical_weight=-1.0)
    try:
        hits = search_module.search("zeppelin airship", 1, mode="vector", settings=searching)
    finally:
        search_module.forget(searching)
    assert [hit["key"] for hit in hits] == ["r/2"]
    stored, asked = blend.embed([hits[0]["text"], "zeppelin airship"])
    assert hits[0]["score"] == pytest.approx(float(stored @ asked), abs=1e-4)


class ZeroModel:
    """A model that has nothing to say about any text: its vectors are all zero."""

    name, model, dimensions, cache_vectors = "zero", "zero", 8, False

    def embed(self, texts):
        return np.zeros((len(texts), 8), dtype=np.float32)


def test_stop_words_embed_and_a_models_zero_vector_stays_refused():
    # offline-hash-v1 stands for a model that embeds "the" (v2, the word vectors, weighs it 0).
    model = OfflineHashingProvider(16, model="offline-hash-v1")
    only_stop_words = LexicalBlend(model, 0.5).embed(["the", "a fine library"])
    np.testing.assert_allclose(np.linalg.norm(only_stop_words, axis=1), 1, atol=1e-5)
    assert not only_stop_words[0, 16:].any()  # no words to hash: the model's part alone
    zero = LexicalBlend(ZeroModel(), 0.5).embed(["a fine library"])
    assert vector_problems(zero, 1, 8 + 384) == {0: "zero vector"}


def test_each_weight_has_its_own_space_even_for_long_model_names():
    model = "sentence-transformers/all-MiniLM-L6-v2"
    names = {space_name(f"{model}+offline-hash-v2*{w}", 768) for w in (0.25, 0.5, 1)}
    assert len(names) == 3 and all(len(f"embeddings_{n}") <= 63 for n in names)
    assert space_name(model, 384) == "sentence_transformers_all_minilm_l6_v2_384"


def test_an_unblended_space_is_searched_unblended_whatever_the_weight(server, settings, store):
    store.upsert_source([source_row(f"r/{i}", text) for i, text in enumerate(TEXTS)])
    configured = replace(
        settings, provider="openai_compatible", base_url=server.openai_url, model="m"
    )
    materialise(store, build_provider(configured))  # the space of the model alone
    searching = replace(configured, lexical_weight=0.5)  # a blend configured since
    try:
        hits = search_module.search("zeppelin airship", 1, mode="vector", settings=searching)
    finally:
        search_module.forget(searching)
    assert [hit["key"] for hit in hits] == ["r/2"]
