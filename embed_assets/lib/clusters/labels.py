"""Short human labels for clusters from their members' most distinguishing terms.

A term's weight in a cluster is p · log(p / q), where p is the share of the cluster's members that
use it and q the share of the whole collection (its term of the KL divergence between the cluster
and the collection): a term every cluster uses ("app", "library") has p ≈ q and weighs nothing,
one that most of this cluster uses and few others do weighs most. Each member counts a term once,
so one long README cannot outvote its cluster. (Class-based TF-IDF, used before, weighs by
frequency × log(1 + A / f): with topic clusters of hundreds it let "library", "simple" or
"python" label many clusters.)

And never: a term used by more than a third of the collection, a language the texts' "Language:"
lines name (the language is a filter of its own, not what a cluster is about), or anything from
that line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

# Words of our text template ("Language: ...", "Topics: ...") and of URLs: in many texts, and
# never what a cluster is about.
DOMAIN_STOP_WORDS = frozenset(
    {"language", "topics", "http", "https", "www", "com", "github", "io", "org"}
)
_STOP_WORDS = ENGLISH_STOP_WORDS | DOMAIN_STOP_WORDS
# Terms are runs of letters and digits, two or more long and not only digits: "3d" and "h264" are
# terms, "2020" is not. The underscore separates (snake_case names give their words).
_TOKEN = re.compile(r"[^\W_]{2,}")
# Bigrams never span these: lines, list items ("Topics: a, b"), clauses, sentences.
_SEGMENT = re.compile(r"[\n,;:|!?()\[\]]|\.\s")
_FULL_NAME_LINE = re.compile(r"\A[^/\s]+/([^/\s]+)(?:\n|\Z)")
_LANGUAGE_LINE = re.compile(r"^Language: [^\n]*$", re.MULTILINE)
# A term must be used by this share of a cluster's members (and by two of them, in a cluster of two
# or more): otherwise a cluster of repositories with no description is labelled by three of its
# names, each used once and so, by c-TF-IDF, "rare".
_MIN_SHARE = 0.05
MAX_COLLECTION_SHARE = 1 / 3  # of the collection's members that may use a label's term
# A label term is used at least this many times as often in its cluster as in the collection.
_MIN_LIFT = 1.5


def cluster_labels(
    texts_by_cluster: Mapping[int, Sequence[str]],
    *,
    sizes: Mapping[int, int] | None = None,
    top_terms: int = 3,
    separator: str = " · ",
) -> dict[int, str]:
    """A label per cluster id: its `top_terms` most distinguishing terms, best first.

    Terms are lower-case word unigrams and bigrams (not across lines, commas or sentences), used by
    at least 5 % of the cluster's members and by two of them; a term sharing a word with a better
    one is skipped ("react native" then "react" gives one term). A text's first line "owner/name"
    keeps
    only the name, whose words often say what the repository is, while owners would label clusters
    by who wrote them. Pass every cluster (a sample of each large one's texts suffices, e.g. those
    nearest its centroid, with `sizes` the clusters' real sizes so that each sample stands for its
    cluster when the collection's share of a term is estimated): the weights compare each cluster
    with all the others given. A cluster whose texts have no usable term gets "".
    """
    ids = list(texts_by_cluster)
    texts = [text for cluster in ids for text in texts_by_cluster[cluster]]
    owners = np.repeat(np.arange(len(ids)), [len(texts_by_cluster[cluster]) for cluster in ids])
    vectorizer = CountVectorizer(analyzer=label_terms, binary=True)
    try:
        uses = vectorizer.fit_transform(texts)  # member x term: 1 where the member uses the term
    except ValueError:  # no text has a single term
        return {cluster: "" for cluster in ids}
    one_hot = sparse.csr_matrix(
        (np.ones(len(texts)), (owners, np.arange(len(texts)))), shape=(len(ids), len(texts))
    )
    counts = (one_hot @ uses).tocsr().astype(np.float64)  # cluster x term: members using it
    sampled = np.bincount(owners, minlength=len(ids))
    stands_for = np.array(
        [(sizes or {}).get(cluster, n) / max(n, 1) for cluster, n in zip(ids, sampled, strict=True)]
    )  # members of the collection each sampled text stands for
    share = (stands_for @ counts) / (stands_for @ sampled)  # of the collection using each term
    rows = np.repeat(np.arange(len(ids)), np.diff(counts.indptr))
    in_cluster = counts.data / sampled[rows]  # share of the cluster's members using the term
    minimum = np.where(sampled > 1, np.maximum(2, np.ceil(_MIN_SHARE * sampled)), 1)
    terms = vectorizer.get_feature_names_out()
    allowed = (
        (counts.data >= minimum[rows])
        & (share[counts.indices] <= MAX_COLLECTION_SHARE)
        & _not_a_language(terms, _languages(texts))[counts.indices]
        & (in_cluster >= _MIN_LIFT * share[counts.indices])
    )
    weights = counts.copy()
    lift = np.log(np.maximum(in_cluster / share[counts.indices], 1))
    weights.data = np.where(allowed, in_cluster * lift, 0)
    return {
        cluster: separator.join(_best_terms(weights, row, terms, top_terms))
        for row, cluster in enumerate(ids)
    }


def _not_a_language(terms: np.ndarray, languages: set[str]) -> np.ndarray:
    """False for a term that is a language or holds one as a word ("python scripts")."""
    words = {language for language in languages if " " not in language}
    return np.array(
        [term not in languages and words.isdisjoint(term.split()) for term in terms], dtype=bool
    )


def _languages(texts: Sequence[str]) -> set[str]:
    """The languages the texts' "Language:" lines name, lower-cased."""
    return {
        match.group(0)[len("Language: ") :].strip().lower()
        for text in texts
        for match in _LANGUAGE_LINE.finditer(text)
    }


def label_terms(text: str) -> list[str]:
    """The terms a text offers a label: lower-case unigrams and bigrams of its segments, stop words,
    the owner and the "Language:" line left out; a bigram of a word with itself is not one."""
    terms: list[str] = []
    for segment in _SEGMENT.split(_LANGUAGE_LINE.sub("", _without_owner(text)).lower()):
        words = [
            word
            for word in _TOKEN.findall(segment)
            if word not in _STOP_WORDS and not word.isnumeric()
        ]
        terms.extend(words)
        terms.extend(f"{a} {b}" for a, b in pairwise(words) if a != b)
    return terms


def _best_terms(
    weights: sparse.csr_matrix, row: int, terms: np.ndarray, top_terms: int
) -> list[str]:
    start, stop = weights.indptr[row], weights.indptr[row + 1]
    columns, values = weights.indices[start:stop], weights.data[start:stop]
    columns, values = columns[values > 0], values[values > 0]
    chosen: list[str] = []
    used: set[str] = set()
    words_per_term = np.char.count(terms[columns].astype(str), " ") + 1
    # Heaviest first; on a tie the bigram ("game engine" rather than "engine"), then vocabulary
    # order.
    for column in columns[np.lexsort((columns, -words_per_term, -values))]:
        words = terms[column].split()
        if used.isdisjoint(words):
            chosen.append(terms[column])
            used.update(words)
            if len(chosen) == top_terms:
                break
    return chosen


def _without_owner(text: str) -> str:
    """ "owner/name\\n..." becomes "name\\n...": the name describes, the owner does not."""
    return _FULL_NAME_LINE.sub(lambda m: m.group(1) + "\n", text, count=1)
