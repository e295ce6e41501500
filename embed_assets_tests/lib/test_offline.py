import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embed_assets.lib.providers import offline
from embed_assets.lib.providers.offline import OfflineHashingProvider

REPO_ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "pgvector/pgvector\nOpen-source vector similarity search for Postgres\nLanguage: C",
    "dagster-io/dagster\nAn orchestration platform for data assets\nLanguage: Python",
    "sindresorhus/awesome\n😎 Awesome lists about all kinds of interesting topics\nLanguage: ",
    "taku910/mecab\n日本語の形態素解析エンジン\nLanguage: C++",
    "x",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ, ﬁle ligatures and Ωmega",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


@pytest.fixture(scope="module")
def provider() -> OfflineHashingProvider:
    return OfflineHashingProvider()


def test_identity_matches_settings_convention(provider):
    assert (provider.name, provider.model, provider.dimensions) == (
        "offline",
        "offline-hash-v1",
        384,
    )


@pytest.mark.parametrize("dimensions", [64, 100, 384])
def test_shape_dtype_layout_and_unit_norm(dimensions):
    vectors = OfflineHashingProvider(dimensions=dimensions).embed(TEXTS)
    assert vectors.shape == (len(TEXTS), dimensions)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_no_texts_gives_empty_matrix(provider):
    assert provider.embed([]).shape == (0, 384)


def test_dimensions_must_be_positive():
    with pytest.raises(ValueError, match="dimensions"):
        OfflineHashingProvider(dimensions=0)


def test_a_single_str_is_refused(provider):
    with pytest.raises(TypeError):
        provider.embed("one text, not a list of texts")


def test_same_text_gives_identical_bytes(provider):
    assert provider.embed(TEXTS).tobytes() == provider.embed(TEXTS).tobytes()


def test_deterministic_across_processes_with_different_hash_seeds(provider):
    script = (
        "import json, sys\n"
        "from embed_assets.lib.providers.offline import OfflineHashingProvider\n"
        "sys.stdout.buffer.write(OfflineHashingProvider().embed(json.load(sys.stdin)).tobytes())\n"
    )
    expected = provider.embed(TEXTS).tobytes()
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(TEXTS).encode(),
            capture_output=True,
            check=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=120,
        )
        assert result.stdout == expected


def test_texts_sharing_words_are_more_similar(provider):
    query, related, unrelated = provider.embed(
        [
            "vector similarity search extension for postgres",
            "open-source vector similarity search for postgres",
            "a static site generator written in go",
        ]
    )
    assert cosine(query, related) > 0.5
    assert cosine(query, related) > cosine(query, unrelated) + 0.3


def test_one_word_change_moves_the_vector_a_little(provider):
    base, changed, other = provider.embed(
        [
            "A fast and correct JSON parser for Rust with zero copy deserialization",
            "A fast and correct JSON parser for Go with zero copy deserialization",
            "Machine learning tutorials and notebooks for beginners",
        ]
    )
    assert cosine(base, changed) > 0.8
    assert cosine(base, changed) > cosine(base, other)


def test_word_pieces_reward_near_misses(provider):
    embedding, embeddings, unrelated = provider.embed(["embedding", "embeddings", "kubernetes"])
    assert cosine(embedding, embeddings) > cosine(embedding, unrelated) + 0.3


def test_normalisation_of_case_whitespace_and_compatibility_forms(provider):
    pairs = [
        ("Hello World", "  hello \t\n  WORLD "),
        ("Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ", "full-width abc"),  # NFKC
        ("ﬁle", "file"),  # NFKC ligature
        ("ΟΔΟΣ", "\u03bf\u03b4\u03bf\u03c2"),  # str.lower's final sigma
        ("a\x00b", "a b"),  # NUL counts as whitespace
    ]
    vectors = provider.embed([text for pair in pairs for text in pair])
    for i, (left, right) in enumerate(pairs):
        assert np.array_equal(vectors[2 * i], vectors[2 * i + 1]), (left, right)


def test_unicode_emoji_and_cjk(provider):
    texts = [
        "😎🚀✨",
        "日本語の形態素解析エンジン",
        "日本語の自然言語処理ライブラリ",
        "a fast json parser",
        "Ωmega ünïcödé",
        "lone surrogate \udcff from a surrogateescape decode",
    ]
    vectors = provider.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    japanese_a, japanese_b, english = vectors[1], vectors[2], vectors[3]
    assert cosine(japanese_a, japanese_b) > cosine(japanese_a, english) + 0.1


@pytest.mark.parametrize("dimensions", [100, 384])
def test_a_vector_does_not_depend_on_the_rest_of_the_batch(dimensions):
    provider = OfflineHashingProvider(dimensions=dimensions)
    batch = provider.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.array_equal(provider.embed([text])[0], batch[i]), text
    shuffled = provider.embed(TEXTS[::-1])
    assert np.array_equal(shuffled[::-1], batch)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_text_without_features_raises_with_its_index(provider, text):
    with pytest.raises(ValueError, match="index 1 "):
        provider.embed(["fine", text, "also fine"])


def test_empty_text_in_a_later_slice_is_reported_with_its_batch_index(provider):
    texts = [f"repository number {i}" for i in range(offline._SLICE_TEXTS + 10)]
    texts[offline._SLICE_TEXTS + 5] = ""
    with pytest.raises(ValueError, match=f"index {offline._SLICE_TEXTS + 5} "):
        provider.embed(texts)


def test_large_batch_equals_small_batches(provider, monkeypatch):
    rng = np.random.default_rng(7)
    vocabulary = ["vector", "search", "postgres", "dagster", "asset", "日本語", "😎", "Rust", "A-Z"]
    texts = [
        " ".join(rng.choice(vocabulary, size=rng.integers(1, 40)))
        for _ in range(2 * offline._SLICE_TEXTS + 123)
    ]
    texts[17] = (
        "a much longer text " * 2000
    )  # longer than a whole slice once slices are 1,000 chars
    in_small_batches = np.concatenate(
        [provider.embed(texts[i : i + 50]) for i in range(0, len(texts), 50)]
    )
    assert np.array_equal(provider.embed(texts), in_small_batches)
    monkeypatch.setattr(
        offline, "_SLICE_CHARS", 1000
    )  # slices bounded by code points, not by texts
    assert np.array_equal(provider.embed(texts), in_small_batches)
