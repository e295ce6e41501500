"""Short human labels for clusters from their members' most distinguishing terms.

Class-based TF-IDF (c-TF-IDF, as BERTopic computes it): all members of a cluster form one class; a
term's weight in a class is its frequency there (normalised by the class's total) times
log(1 + A / f), where A is the mean number of terms per class and f the term's frequency across all
classes. A term that many clusters use ("app", "library") weighs little; one that this cluster uses
and few others do weighs most. Each member counts a term once, so one long README cannot outvote
its cluster.
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
# A term must be used by this share of a cluster's members (and by two of them, in a cluster of two
# or more): otherwise a cluster of repositories with no description is labelled by three of its
# names, each used once and so, by c-TF-IDF, "rare".
_MIN_SHARE = 0.05


def cluster_labels(
    texts_by_cluster: Mapping[int, Sequence[str]], *, top_terms: int = 3, separator: str = " · "
) -> dict[int, str]:
    """A label per cluster id: its `top_terms` most distinguishing terms, best first.

    Terms are lower-case word unigrams and bigrams (not across lines, commas or sentences), used by
    at least 5 % of the cluster's members and by two of them; a term sharing a word with a better
    one is skipped ("react native" then "react" gives one term). A text's first line "owner/name"
    keeps
    only the name, whose words often say what the repository is, while owners would label clusters
    by who wrote them. Pass every cluster (a sample of each large one's texts suffices, e.g. those
    nearest its centroid): the weights compare each cluster with all the others given. A cluster
    whose texts have no usable term gets "".
    """
    ids = list(texts_by_cluster)
    texts = [text for cluster in ids for text in texts_by_cluster[cluster]]
    owners = np.repeat(np.arange(len(ids)), [len(texts_by_cluster[cluster]) for cluster in ids])
    vectorizer = CountVectorizer(analyzer=_terms, binary=True)
    try:
        uses = vectorizer.fit_transform(texts)  # member x term: 1 where the member uses the term
    except ValueError:  # no text has a single term
        return {cluster: "" for cluster in ids}
    one_hot = sparse.csr_matrix(
        (np.ones(len(texts)), (owners, np.arange(len(texts)))), shape=(len(ids), len(texts))
    )
    counts = (one_hot @ uses).tocsr().astype(np.float64)  # cluster x term: members using it
    frequency = np.asarray(counts.sum(axis=0)).ravel()
    idf = np.log1p(counts.sum() / len(ids) / frequency)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(len(ids)), np.diff(counts.indptr))
    sizes = np.bincount(owners, minlength=len(ids))
    minimum = np.where(sizes > 1, np.maximum(2, np.ceil(_MIN_SHARE * sizes)), 1)
    weights = counts.copy()
    weights.data = np.where(
        counts.data >= minimum[rows], counts.data / totals[rows] * idf[counts.indices], 0
    )
    terms = vectorizer.get_feature_names_out()
    return {
        cluster: separator.join(_best_terms(weights, row, terms, top_terms))
        for row, cluster in enumerate(ids)
    }


def _terms(text: str) -> list[str]:
    """Lower-case unigrams and bigrams of the text's segments, stop words left out; a bigram of a
    word with itself ("JavaScript\\nLanguage: JavaScript") is not one."""
    terms: list[str] = []
    for segment in _SEGMENT.split(_without_owner(text).lower()):
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
