import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from embed_assets.lib.providers import build_provider, offline
from embed_assets.lib.providers.offline import RECIPES, OfflineHashingProvider
from embed_assets.lib.settings import SettingError, Settings

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


@pytest.fixture(scope="module", params=sorted(RECIPES))
def provider(request) -> OfflineHashingProvider:
    return OfflineHashingProvider(model=request.param)


def test_the_default_is_the_newest_model_and_the_settings_name_it():
    provider = build_provider(Settings())
    assert (provider.name, provider.model, provider.dimensions) == (
        "offline",
        "offline-hash-v2",
        384,
    )
    assert Settings().model_name == provider.model


def test_the_first_model_is_still_built_by_its_name():
    provider = build_provider(Settings(model="offline-hash-v1", dimensions=64))
    assert (provider.model, provider.dimensions) == ("offline-hash-v1", 64)
    with pytest.raises(SettingError, match="offline-hash-v9.*not an offline model"):
        build_provider(Settings(model="offline-hash-v9"))


_P, _MASK = 0x100000001B3, (1 << 64) - 1


def _mix(h: int, seed: int) -> int:
    h ^= seed
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


def _hash(codes: list[int]) -> int:
    return sum(c * pow(_P, k, 1 << 64) for k, c in enumerate(codes)) & _MASK


def reference_v1(text: str, dimensions: int) -> np.ndarray:
    """offline-hash-v1 written out plainly, one feature at a time, as it was first shipped: stored
    spaces of that model must keep matching new queries."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if c.isspace() or c == "\x00" else c for c in text)
    text = " " + " ".join(text.split(" ")).strip(" ") + " "
    while "  " in text:
        text = text.replace("  ", " ")
    codes = [ord(c) + 32 if "A" <= c <= "Z" else ord(c) for c in text]
    vector = np.zeros(dimensions)

    def add(h: int, weight: float) -> None:
        vector[((h & 0xFFFFFFFF) * dimensions) >> 32] += -weight if h >> 63 else weight

    for size, seed in ((3, 0x165667B19E3779F9), (4, 0xD6E8FEB86659FD93)):
        for start in range(len(codes) - size + 1):
            add(_mix(_hash(codes[start : start + size]), seed), 0.4)
    words, current = [], []
    for c in [*codes, 32]:
        if chr(c).isalnum():
            current.append(c)
        elif current:
            words.append(_mix(_hash(current), 0x9E3779B97F4A7C15))
            current = []
    for word in words:
        add(word, 1.0)
    for a, b in zip(words, words[1:], strict=False):
        add(_mix(((a * 0xFF51AFD7ED558CCD) & _MASK) ^ b, 0xC2B2AE3D27D4EB4F), 1.0)
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize("dimensions", [64, 384])
def test_the_first_model_gives_the_vectors_it_always_gave(dimensions):
    texts = TEXTS + ["PyTorch and TensorFlow, the the the", "a\x00b  \t c"]
    vectors = OfflineHashingProvider(dimensions, model="offline-hash-v1").embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector, reference_v1(text, dimensions), atol=1e-6)


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
        f"provider = OfflineHashingProvider(model={provider.model!r})\n"
        "sys.stdout.buffer.write(provider.embed(json.load(sys.stdin)).tobytes())\n"
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


@pytest.mark.parametrize("model", sorted(RECIPES))
@pytest.mark.parametrize("dimensions", [100, 384])
def test_a_vector_does_not_depend_on_the_rest_of_the_batch(dimensions, model):
    provider = OfflineHashingProvider(dimensions=dimensions, model=model)
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


def test_common_words_weigh_less_in_the_newer_model():
    texts = [
        "vector database",
        "the vector database that is for all of us and you",
        "the game engine that is for all of us and you",
    ]
    old = OfflineHashingProvider(model="offline-hash-v1").embed(texts)
    new = OfflineHashingProvider(model="offline-hash-v2").embed(texts)
    # Stop words added to a text move it little; two unrelated texts padded alike stay unalike.
    assert cosine(new[0], new[1]) > 0.8 > cosine(old[0], old[1])
    assert cosine(new[1], new[2]) < 0.35 < cosine(old[1], old[2])


def test_a_rare_shared_word_outweighs_a_common_one_in_the_newer_model():
    texts = [
        "terminal emulator",
        "a fast emulator of old consoles",
        "terminal tools for people who like a good day",
    ]
    query, rare, common = OfflineHashingProvider().embed(texts)
    assert cosine(query, rare) > cosine(query, common) + 0.05


def test_camel_case_parts_count_as_words_in_the_newer_model():
    provider = OfflineHashingProvider()
    camel, plain = provider.embed(["PyTorch", "torch"])
    lower, _ = provider.embed(["pytorch", "torch"])
    assert cosine(camel, plain) > cosine(lower, plain) + 0.05  # the capital is what splits
    old = OfflineHashingProvider(model="offline-hash-v1")
    assert np.array_equal(*old.embed(["PyTorch", "pytorch"]))  # the first model never split


def test_the_shipped_word_table_is_read_whole():
    hashes, weights = offline._frequency_table()
    assert len(hashes) > 40_000 and np.all(np.diff(hashes.astype(np.float64)) >= 0)
    assert weights.min() == 0 and weights.max() <= 1
    parsed = offline._parse(["the zzqxv"])
    words = offline._mix(parsed.hashes(parsed.word_starts, parsed.word_ends), offline._SEED_WORD)
    assert offline._word_weights(words).tolist() == [0, 1]  # a stop word; a word not in the table
