"""The offline embedding provider: deterministic lexical vectors by signed feature hashing.

Nothing is downloaded and nothing is learned, so a vector depends only on its own text: the same
text gives the same bytes in every process, on every machine and in every batch. Similarity is
lexical (shared words and word pieces).

Two models, both kept so that stored spaces stay valid:
- `offline-hash-v2` (the default) weighs each word by how rare it is in English: a fixed table of
  Zipf frequencies shipped as package data (`word_frequencies.tsv.gz`, from wordfreq; made by
  benchmarks/make_word_frequencies.py), so "the", "a", "language" weigh little and "pgvector" or
  "emulator" much. A word's character n-grams take its weight, a bigram the geometric mean of its
  words'. camelCase words also give their parts as words ("PyTorch": "py", "torch"), and bucket
  values are square-rooted (sublinear term frequency) before the vector is normalised.
- `offline-hash-v1`: every word and n-gram at one fixed weight, as first shipped.

A text is normalised (NFKC, lower case, each whitespace run collapsed to one space, NUL counted as
whitespace) and padded with a space at each end, which marks the starts and ends of words. Its
features, each hashed to a bucket and a sign:
- word unigrams and bigrams, where a word is a maximal run of `str.isalnum` code points (so CJK
  text without spaces is one long "word"; its character n-grams still give it useful features);
- character 3- and 4-grams of the whole padded text.

Everything is vectorised: a slice of texts becomes one array of code points, and the polynomial hash
of any substring comes from prefix sums in O(1), so words of any length and character n-grams are
hashed without a Python loop. Python's `hash()` is never used: it is salted per process.
"""

from __future__ import annotations

import gzip
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np

from embed_assets.lib.providers.base import ProviderMetrics, estimate_tokens

_U64 = np.uint64
# The multiplier of the polynomial hash sum(c[k] * P**k). It is odd, so it has an inverse modulo
# 2**64, which turns a difference of prefix sums into a hash that does not depend on where the
# substring is.
_P = 0x100000001B3
_P_INV = pow(_P, -1, 2**64)
# A different seed per kind of feature, so that e.g. the word "the" and the 3-gram "the" do not
# land in the same bucket with the same sign in every text.
_SEED_WORD = _U64(0x9E3779B97F4A7C15)
_SEED_BIGRAM = _U64(0xC2B2AE3D27D4EB4F)
_SEED_CHAR = {3: _U64(0x165667B19E3779F9), 4: _U64(0xD6E8FEB86659FD93)}
_BIGRAM_MULTIPLIER = _U64(0xFF51AFD7ED558CCD)
# A text has about two character n-grams per character but only about one word feature (unigram or
# bigram) per three characters. At weight 0.4 the character n-grams carry about as much of the
# vector's energy as the words: whole-word matches count most, word pieces still reward near-misses
# (plurals, typos, identifiers such as "pgvector" against "vector").
_WORD_WEIGHT = np.float32(1.0)
_CHAR_WEIGHT = np.float32(0.4)
# Zipf frequencies (log10 uses per billion words): a word at _ZIPF_COMMON or above ("the", "of",
# "and", "for") weighs nothing, one at _ZIPF_RARE or below, or not in the table, weighs 1; linear
# in between, which is IDF against general English (idf = ln 10 × (9 - zipf)) shifted so that the
# commonest words drop out as stop words do.
_ZIPF_COMMON, _ZIPF_RARE = 7.0, 2.5


@dataclass(frozen=True)
class _Recipe:
    word_weights: bool  # by the shipped frequency table; else every word weighs 1
    camel_parts: bool
    sublinear: bool


RECIPES = {
    "offline-hash-v1": _Recipe(word_weights=False, camel_parts=False, sublinear=False),
    "offline-hash-v2": _Recipe(word_weights=True, camel_parts=True, sublinear=True),
}
DEFAULT_MODEL = "offline-hash-v2"
# A slice holds at most this many texts and (unless one text is longer) code points. Small slices
# bound memory and are faster: their working arrays (~128 KiB) stay in the CPU cache and are
# recycled
# by malloc, where bigger ones are returned to the OS and page-faulted back in for every slice.
_SLICE_TEXTS = 512
_SLICE_CHARS = 1 << 14

# Code point classes. NUL separates the texts of a slice.
_OTHER, _WORD, _SPACE, _SEPARATOR = 0, 1, 2, 3
_ASCII_CLASS = np.array(
    [_WORD if chr(c).isalnum() else _SPACE if chr(c).isspace() else _OTHER for c in range(128)],
    dtype=np.int8,
)
_ASCII_CLASS[0] = _SEPARATOR


def _powers(base: int, n: int) -> np.ndarray:
    """base**i modulo 2**64 for i < n."""
    powers = np.full(n, base, dtype=_U64)
    powers[0] = 1
    return np.cumprod(powers, out=powers)


def _mix(h: np.ndarray, seed: np.uint64) -> np.ndarray:
    """The splitmix64 finaliser of h ^ seed, in place: every output bit depends on every input
    bit."""
    scratch = np.empty_like(h)
    h ^= seed
    for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        h ^= np.right_shift(h, _U64(shift), out=scratch)
        h *= _U64(multiplier)
    h ^= np.right_shift(h, _U64(31), out=scratch)
    return h


def _classify(codes: np.ndarray) -> np.ndarray:
    """The class of each code point, with the semantics of `str.isalnum` and `str.isspace`."""
    classes = _ASCII_CLASS.take(codes, mode="clip")  # non-ASCII clips to DEL, and is fixed below
    other = np.flatnonzero(codes >= 128)
    if other.size:
        chars = codes[other].view("U1")  # one-character strings, for numpy's vectorised str methods
        classes[other] = np.where(
            np.char.isalnum(chars), _WORD, np.where(np.char.isspace(chars), _SPACE, _OTHER)
        )
    return classes


def _slices(texts: Sequence[str]) -> Iterator[slice]:
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    start = 0
    while start < len(texts):
        stop = int(np.searchsorted(bounds, bounds[start] + _SLICE_CHARS, side="right")) - 1
        stop = min(max(stop, start + 1), start + _SLICE_TEXTS)
        yield slice(start, stop)
        start = stop


class OfflineHashingProvider:
    """Lexical embeddings with no model: see the module docstring."""

    name = "offline"
    # Hashing a text (~10 µs) is cheaper than caching its vector: writing 24K vectors to the
    # cache (and looking them up) cost 1.3 s of a 24K-row first sync; reading one back costs
    # more than hashing it again.
    cache_vectors = False

    def __init__(self, dimensions: int = 384, model: str = DEFAULT_MODEL) -> None:
        if dimensions <= 0:
            raise ValueError(f"dimensions must be a positive integer, got {dimensions}")
        if model not in RECIPES:
            raise ValueError(f"offline model {model!r} is not one of {', '.join(RECIPES)}")
        self.dimensions = dimensions
        self.model = model
        self._recipe = RECIPES[model]
        self.metrics = ProviderMetrics()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm float32 vectors of shape (len(texts), dimensions).

        Raises ValueError, naming its index, for a text with no features (empty or whitespace-only):
        it has no direction to normalise, and our chunks are never empty."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        began = time.perf_counter()
        texts = list(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for part in _slices(texts):
            rows = out[part]
            _accumulate(texts[part], rows.reshape(-1), self.dimensions, self._recipe)
            if self._recipe.sublinear:
                np.copysign(np.sqrt(np.abs(rows)), rows, out=rows)
            norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
            empty = np.flatnonzero(norms == 0)
            if empty.size:
                raise ValueError(
                    f"text at index {part.start + int(empty[0])} has no features to embed "
                    "(it is empty or whitespace-only)"
                )
            rows /= norms[:, None]
        self.metrics.add(provider_calls=1)
        self.metrics.succeeded(
            len(texts), sum(map(estimate_tokens, texts)), time.perf_counter() - began
        )
        return out


@dataclass
class _Parsed:
    """Texts laid end to end as code points, with what the features are made from."""

    codes: np.ndarray  # lower-cased, whitespace runs folded to one space, texts NUL-separated
    separator: np.ndarray  # bool: the NUL between two texts
    camel: np.ndarray  # bool: an ASCII capital right after an ASCII small letter ("pyTorch")
    row: np.ndarray  # int64: the text (row) each code point belongs to
    word_starts: np.ndarray
    word_ends: np.ndarray
    prefix: np.ndarray  # prefix sums of the polynomial hash
    inverse_powers: np.ndarray

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The polynomial hash of each substring codes[start:end], in O(1) each."""
        return (self.prefix[ends] - self.prefix[starts]) * self.inverse_powers[starts]


def _parse(texts: list[str]) -> _Parsed:
    # NFKC and str.lower are slow per call; ASCII texts need neither (they are lower-cased below).
    texts = [t if t.isascii() else unicodedata.normalize("NFKC", t).lower() for t in texts]
    joined = " \x00 ".join(texts)
    if joined.count("\x00") != len(texts) - 1:  # a text holds NUL: count it as whitespace
        joined = " \x00 ".join(t.replace("\x00", " ") for t in texts)
    # surrogatepass: a lone surrogate (from a surrogateescape decode) is just another code point.
    encoded = f"\x00 {joined} \x00".encode("utf-32-le", errors="surrogatepass")
    codes = np.frombuffer(encoded, dtype=np.uint32)

    # Whitespace becomes a space and each run of spaces collapses to one, so every text is padded
    # with exactly one space at each end by the spaces around the separators.
    classes = _classify(codes)
    space = classes == _SPACE
    codes = np.where(space, 32, codes)
    upper = (codes >= 65) & (codes <= 90)
    camel = np.zeros(codes.size, dtype=bool)
    camel[1:] = upper[1:] & (codes[:-1] >= 97) & (codes[:-1] <= 122)
    codes[upper] += 32  # ASCII A-Z to a-z
    keep = np.ones(codes.size, dtype=bool)
    keep[1:] = ~(space[1:] & space[:-1])
    codes, classes, camel = codes[keep], classes[keep], camel[keep]
    separator = classes == _SEPARATOR
    row = np.cumsum(separator, dtype=np.int64)  # a separator starts the next text's row
    row -= 1
    n = codes.size

    # prefix[i] = sum(codes[k] * P**k for k < i), so the hash of codes[s:e] is
    # (prefix[e] - prefix[s]) * P**-s. uint64 arithmetic wraps modulo 2**64, by design.
    prefix = np.zeros(n + 1, dtype=_U64)
    np.cumsum(codes * _powers(_P, n), out=prefix[1:])
    # Words never touch a separator, since the texts are padded with spaces.
    is_word = classes == _WORD
    return _Parsed(
        codes=codes,
        separator=separator,
        camel=camel,
        row=row,
        word_starts=np.flatnonzero(is_word[1:] & ~is_word[:-1]) + 1,
        word_ends=np.flatnonzero(is_word[:-1] & ~is_word[1:]) + 1,
        prefix=prefix,
        inverse_powers=_powers(_P_INV, n),
    )


def _accumulate(texts: list[str], flat_rows: np.ndarray, dimensions: int, recipe: _Recipe) -> None:
    """Add the signed, weighted features of `texts` to their rows, laid end to end in
    `flat_rows`."""
    parsed = _parse(texts)
    offset = parsed.row * dimensions  # of each position's row in flat_rows
    n = parsed.codes.size

    def add(hashes: np.ndarray, offsets: np.ndarray, weight, dropped=None) -> None:
        # Lemire's multiply-shift maps the low 32 bits onto [0, dimensions); the top bit is the
        # sign.
        bucket = ((hashes & _U64(0xFFFFFFFF)) * _U64(dimensions)) >> _U64(32)
        signed = np.where(hashes.view(np.int64) < 0, -weight, weight).astype(np.float32)
        if dropped is not None:
            signed[dropped] = 0  # cheaper than compressing hashes and offsets; +0.0 changes nothing
        np.add.at(flat_rows, bucket.view(np.int64) + offsets, signed)

    words = _mix(parsed.hashes(parsed.word_starts, parsed.word_ends), _SEED_WORD)
    word_offsets = offset[parsed.word_starts]
    weights = _word_weights(words) if recipe.word_weights else None

    # A character n-gram starts at every position; those holding a separator cross texts: dropped.
    # Weighted, an n-gram takes the weight of the word it starts in (or, from a space or a
    # punctuation mark, of the next word of its text; 1, as an unknown word, when there is none).
    if weights is not None:
        next_word = np.searchsorted(parsed.word_ends, np.arange(n), side="right")
        inside = next_word < len(weights)
        inside[inside] = word_offsets[next_word[inside]] == offset[inside]
        char_weight = np.full(n, _CHAR_WEIGHT, np.float32)
        char_weight[inside] *= weights[next_word[inside]]
    crossing = parsed.separator[:-1] | parsed.separator[1:]
    for size in (3, 4):
        crossing = crossing[:-1] | parsed.separator[size - 1 :]
        starts = np.arange(n - size + 1)
        hashes = _mix(parsed.hashes(starts, starts + size), _SEED_CHAR[size])
        weight = _CHAR_WEIGHT if weights is None else char_weight[: n - size + 1]
        add(hashes, offset[: n - size + 1], weight, dropped=crossing)

    add(words, word_offsets, _WORD_WEIGHT if weights is None else weights)
    pairs = np.flatnonzero(word_offsets[:-1] == word_offsets[1:])  # consecutive words of one text
    bigrams = _mix((words[pairs] * _BIGRAM_MULTIPLIER) ^ words[pairs + 1], _SEED_BIGRAM)
    pair_weight = _WORD_WEIGHT if weights is None else np.sqrt(weights[pairs] * weights[pairs + 1])
    add(bigrams, word_offsets[pairs], pair_weight)

    if recipe.camel_parts and parsed.camel.any():
        _add_camel_parts(parsed, offset, add, recipe)


def _add_camel_parts(parsed: _Parsed, offset: np.ndarray, add, recipe: _Recipe) -> None:
    """The parts of camelCase words, as words of their own: "PyTorch" also gives "py" and
    "torch"."""
    inner = np.flatnonzero(parsed.camel)  # never a word's first letter: a small letter precedes
    starts = np.sort(np.concatenate([parsed.word_starts, inner]))
    ends = np.sort(np.concatenate([parsed.word_ends, inner]))
    whole = np.isin(starts, parsed.word_starts) & np.isin(ends, parsed.word_ends)
    starts, ends = starts[~whole], ends[~whole]
    parts = _mix(parsed.hashes(starts, ends), _SEED_WORD)
    add(parts, offset[starts], _word_weights(parts) if recipe.word_weights else _WORD_WEIGHT)


def _word_weights(word_hashes: np.ndarray) -> np.ndarray:
    """The weight of each word (by its feature hash) from the shipped frequency table."""
    table, weights = _frequency_table()
    at = np.searchsorted(table, word_hashes).clip(max=len(table) - 1)
    return np.where(table[at] == word_hashes, weights[at], np.float32(1.0))


@cache
def _frequency_table() -> tuple[np.ndarray, np.ndarray]:
    """Sorted feature hashes of the table's words and their weights (built once, ~50 ms)."""
    data = files("embed_assets.lib.providers").joinpath("word_frequencies.tsv.gz").read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    words, zipf = zip(*(line.split("\t") for line in lines), strict=True)
    parsed = _parse([" ".join(words)])
    hashes = _mix(parsed.hashes(parsed.word_starts, parsed.word_ends), _SEED_WORD)
    if len(hashes) != len(words):
        raise RuntimeError("word_frequencies.tsv.gz holds an entry that is not one word")
    weights = np.clip(
        (_ZIPF_COMMON - np.array(zipf, dtype=np.float32)) / (_ZIPF_COMMON - _ZIPF_RARE), 0, 1
    ).astype(np.float32)
    order = np.argsort(hashes, kind="stable")
    return hashes[order], weights[order]
