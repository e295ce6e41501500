"""The offline embedding provider: deterministic lexical vectors by signed feature hashing.

Nothing is downloaded and nothing is learned, so a vector depends only on its own text: the same
text
gives the same bytes in every process, on every machine and in every batch. Similarity is lexical
(shared words and word pieces), which is what the demo and the tests need from a provider.

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

import time
import unicodedata
from collections.abc import Iterator, Sequence

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
    model = "offline-hash-v1"
    # Hashing a text (~10 µs) is cheaper than caching its vector: writing 24K vectors to the
    # cache (and looking them up) cost 1.3 s of a 24K-row first sync; reading one back costs
    # more than hashing it again.
    cache_vectors = False

    def __init__(self, dimensions: int = 384) -> None:
        if dimensions <= 0:
            raise ValueError(f"dimensions must be a positive integer, got {dimensions}")
        self.dimensions = dimensions
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
            self._accumulate(texts[part], rows.reshape(-1))
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

    def _accumulate(self, texts: list[str], flat_rows: np.ndarray) -> None:
        """Add the signed, weighted features of `texts` to their rows, laid end to end in
        `flat_rows`."""
        # NFKC and str.lower are slow per call; ASCII texts need neither (they are lower-cased
        # below).
        texts = [t if t.isascii() else unicodedata.normalize("NFKC", t).lower() for t in texts]
        joined = " \x00 ".join(texts)
        if joined.count("\x00") != len(texts) - 1:  # a text holds NUL: count it as whitespace
            joined = " \x00 ".join(t.replace("\x00", " ") for t in texts)
        # surrogatepass: a lone surrogate (from a surrogateescape decode) is just another code
        # point.
        encoded = f"\x00 {joined} \x00".encode("utf-32-le", errors="surrogatepass")
        codes = np.frombuffer(encoded, dtype=np.uint32)

        # Whitespace becomes a space and each run of spaces collapses to one, so every text is
        # padded
        # with exactly one space at each end by the spaces around the separators.
        classes = _classify(codes)
        space = classes == _SPACE
        codes = np.where(space, 32, codes)
        codes[(codes >= 65) & (codes <= 90)] += 32  # ASCII A-Z to a-z
        keep = np.ones(codes.size, dtype=bool)
        keep[1:] = ~(space[1:] & space[:-1])
        codes, classes = codes[keep], classes[keep]
        separator = classes == _SEPARATOR
        # The offset in flat_rows of each position's row: a separator starts the next text's row.
        row_offset = np.cumsum(separator, dtype=np.int64)
        row_offset -= 1
        row_offset *= self.dimensions
        n = codes.size

        # prefix[i] = sum(codes[k] * P**k for k < i), so the hash of codes[s:e] is
        # (prefix[e] - prefix[s]) * P**-s. uint64 arithmetic wraps modulo 2**64, by design.
        inverse_powers = _powers(_P_INV, n)
        prefix = np.zeros(n + 1, dtype=_U64)
        np.cumsum(codes * _powers(_P, n), out=prefix[1:])

        def add(
            hashes: np.ndarray,
            offsets: np.ndarray,
            weight: np.float32,
            dropped: np.ndarray | None = None,
        ) -> None:
            # Lemire's multiply-shift maps the low 32 bits onto [0, dimensions); the top bit is the
            # sign.
            bucket = ((hashes & _U64(0xFFFFFFFF)) * _U64(self.dimensions)) >> _U64(32)
            signed = np.where(hashes.view(np.int64) < 0, -weight, weight)
            if dropped is not None:
                signed[dropped] = (
                    0  # cheaper than compressing hashes and offsets; +0.0 changes nothing
                )
            np.add.at(flat_rows, bucket.view(np.int64) + offsets, signed)

        # A character n-gram starts at every position; those holding a separator cross texts:
        # dropped.
        crossing = separator[:-1] | separator[1:]
        for size in (3, 4):
            crossing = crossing[:-1] | separator[size - 1 :]
            starts = slice(0, n - size + 1)
            hashes = (prefix[size:] - prefix[:-size]) * inverse_powers[starts]
            add(_mix(hashes, _SEED_CHAR[size]), row_offset[starts], _CHAR_WEIGHT, dropped=crossing)

        # Words never touch a separator, since the texts are padded with spaces.
        is_word = classes == _WORD
        word_starts = np.flatnonzero(is_word[1:] & ~is_word[:-1]) + 1
        word_ends = np.flatnonzero(is_word[:-1] & ~is_word[1:]) + 1
        word_hashes = (prefix[word_ends] - prefix[word_starts]) * inverse_powers[word_starts]
        words = _mix(word_hashes, _SEED_WORD)
        word_offsets = row_offset[word_starts]
        add(words, word_offsets, _WORD_WEIGHT)
        pairs = np.flatnonzero(
            word_offsets[:-1] == word_offsets[1:]
        )  # consecutive words of one text
        bigrams = _mix((words[pairs] * _BIGRAM_MULTIPLIER) ^ words[pairs + 1], _SEED_BIGRAM)
        add(bigrams, word_offsets[pairs], _WORD_WEIGHT)
