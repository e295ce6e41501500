"""Quality of the vectors and of the cluster index, GitHub topics of the real file as weak labels.

    .venv/bin/python benchmarks/quality.py [--model PATH_TO_MINILM] [--queries 300] [--shape]

Labels: the rows of ../shared/data/github_repos.csv that have topics (about 1,900), each labelled
by its most frequent *informative* topic, where a topic is informative when at least --min-label
rows use it and it is not the name of a programming language (the language is a field of its own
and would make language buckets the "right" answer). Rows with no informative topic are left
out. Weak labels: a repository tagged "llm" and "rag" is labelled "llm" and may well be found or
clustered with the "rag" ones; every method is scored against the same labels.

Texts are built by `repository_text` from the rows as the loader reads them (name, description,
language, topics; the file has no READMEs), exactly as the pipeline embeds them: the topics are
part of the text, so lexical methods see the words the labels come from. `--hide-topics` builds
the texts without them, the harder and fairer test.

Figures, per method, on the labelled rows as one collection:
  AMI     adjusted mutual information of the clustering with the labels (sklearn; unlike NMI it
          does not rise with the number of clusters);
  p@10    search: --queries rows (seeded sample with a description), the query is the description
          alone, ranked by cosine over all other labelled rows (exact, one vector per row as here
          each row is one chunk); relevant = the others with the same label;
  shape   clusters, share of rows in clusters of >= 5 members, largest cluster's share.

Methods: the project's providers by model name (offline ones always; all-MiniLM-L6-v2 through
the `sentence_transformers` provider with --model, in a venv that has the `[local]` extra), each
clustered by the project's full clustering (`full_cluster`, what the index runs) and by k-means
told k (the number of labels); baselines on the same texts: scikit-learn HashingVectorizer char
3-4-grams 384-d and TF-IDF word 1-2-grams fitted on the corpus, each with k-means told k.

--shape also embeds all 24,399 rows of the file with each provider and prints the full clustering's
shape there (the issue's targets: >= 70 % of rows in clusters of >= 5, the largest <= 5 %) and
whether any label uses a term present in more than a third of the collection.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.preprocessing import normalize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embed_assets.lib.clusters.algorithm import full_cluster  # noqa: E402
from embed_assets.lib.clusters.labels import cluster_labels, label_terms  # noqa: E402
from embed_assets.lib.providers import build_provider  # noqa: E402
from embed_assets.lib.settings import Settings  # noqa: E402
from embed_assets.lib.sources.loader import read_source_file  # noqa: E402
from embed_assets.lib.text import repository_text  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "github_repos.csv"
OFFLINE_MODELS = ("offline-hash-v1", "offline-hash-v2")


def read_rows(path: Path) -> list:
    return read_source_file(path, time_column="snapshot_date").rows


def weak_labels(rows: list, min_label: int) -> tuple[list, list[str]]:
    """The rows that get a label, and their labels (see the module docstring)."""
    languages = {re.sub(r"\W+", "-", (r.language or "").lower()) for r in rows} - {""}
    tagged = [r for r in rows if r.topics]
    uses = Counter(t for r in tagged for t in r.topics)
    informative = {t for t, n in uses.items() if n >= min_label and t not in languages}
    kept, labels = [], []
    for row in tagged:
        mine = [t for t in row.topics if t in informative]
        if mine:
            kept.append(row)
            labels.append(max(mine, key=lambda t: (uses[t], t)))
    return kept, labels


def text_of(row, hide_topics: bool = False) -> str:
    topics = [] if hide_topics else row.topics
    return repository_text(row.full_name, row.description, row.language, topics, None)


def precision_at_10(
    docs: np.ndarray, queries: np.ndarray, asked: np.ndarray, labels: np.ndarray
) -> float:
    """Mean share of the 10 nearest other rows that share the asking row's label."""
    scores = queries @ docs.T
    scores = scores.toarray() if hasattr(scores, "toarray") else scores  # sparse baselines
    scores[np.arange(len(asked)), asked] = -np.inf  # never the row itself
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return float((labels[top] == labels[asked][:, None]).mean())


def kmeans(vectors, k: int, seed: int = 0) -> np.ndarray:
    return KMeans(k, n_init=3, random_state=seed).fit_predict(vectors)


def shape(clusters: np.ndarray) -> str:
    sizes = np.bincount(np.unique(clusters, return_inverse=True)[1])
    in_five = sizes[sizes >= 5].sum() / len(clusters)
    return (
        f"{len(sizes)} clusters, {in_five:.0%} in >= 5, largest {sizes.max() / len(clusters):.1%}"
    )


def provider_for(model: str, lexical_weight: float = -1.0):
    """The offline provider of that model, else all-MiniLM-L6-v2 at that path through the
    sentence_transformers provider, blended with word vectors by `lexical_weight` (-1: the
    provider's default)."""
    if model in OFFLINE_MODELS:
        return build_provider(Settings(provider="offline", model=model))
    settings = Settings(provider="sentence_transformers", model=model)
    return build_provider(replace(settings, lexical_weight=lexical_weight))


def methods(model: str | None) -> list[tuple[str, object]]:
    """(name, provider): the offline models, and with a model path all-MiniLM-L6-v2 as the
    provider builds it by default (blended with word vectors) and alone."""
    found = [(name, provider_for(name)) for name in OFFLINE_MODELS]
    if model:
        found.append(("all-MiniLM-L6-v2 (default: + words 0.5)", provider_for(model)))
        found.append(("all-MiniLM-L6-v2 alone", provider_for(model, lexical_weight=0)))
    return found


def evaluate(args: argparse.Namespace) -> None:
    rows, names = weak_labels(read_rows(args.data), args.min_label)
    labels = np.unique(names, return_inverse=True)[1]
    k = int(labels.max()) + 1
    texts = [text_of(r, args.hide_topics) for r in rows]
    rng = np.random.default_rng(args.seed)
    described = np.flatnonzero([bool(r.description) for r in rows])
    asked = np.sort(rng.choice(described, min(args.queries, len(described)), replace=False))
    questions = [rows[i].description for i in asked]
    print(
        f"{len(rows):,} labelled rows, {k} labels (largest {np.bincount(labels).max()}), "
        f"{len(asked)} queries; topics {'hidden from' if args.hide_topics else 'in'} the texts"
    )
    print("| vectors | clustering | AMI | p@10 | shape | seconds |")
    print("|---|---|---|---|---|---|")

    def report(name: str, vectors, query_vectors, clusterings: dict, seconds: float) -> None:
        p10 = precision_at_10(vectors, query_vectors, asked, labels)
        for method, clusters in clusterings.items():
            ami = adjusted_mutual_info_score(labels, clusters)
            print(
                f"| {name} | {method} | {ami:.3f} | {p10:.3f} | {shape(clusters)} | {seconds:.2f} |"
            )

    for name, provider in methods(args.model):
        began = time.perf_counter()
        vectors = provider.embed(texts)
        seconds = time.perf_counter() - began
        clusterings = {"embed_assets full_cluster": full_cluster(vectors)}
        clusterings[f"k-means, k = {k} given"] = kmeans(vectors, k)
        report(name, vectors, provider.embed(questions), clusterings, seconds)

    hashing = HashingVectorizer(analyzer="char", ngram_range=(3, 4), n_features=384)
    report(
        "HashingVectorizer char 3-4, 384-d",
        hashing.transform(texts),
        hashing.transform(questions),
        {f"k-means, k = {k} given": kmeans(hashing.transform(texts), k)},
        0.0,
    )
    tfidf = TfidfVectorizer(ngram_range=(1, 2)).fit(texts)
    report(
        "TF-IDF word 1-2, fitted on the corpus",
        tfidf.transform(texts),
        tfidf.transform(questions),
        {f"k-means, k = {k} given": kmeans(tfidf.transform(texts), k)},
        0.0,
    )


def real_shape(args: argparse.Namespace) -> None:
    """The full clustering of the whole file with each provider: shape and labels."""
    rows = read_rows(args.data)
    texts = [text_of(r) for r in rows]
    for model, provider in methods(args.model):
        began = time.perf_counter()
        vectors = normalize(provider.embed(texts))
        embedded = time.perf_counter() - began
        clusters = full_cluster(vectors)
        clustered = time.perf_counter() - began - embedded
        members: dict[int, list[str]] = {}
        for i, cluster in enumerate(clusters.tolist()):
            members.setdefault(cluster, []).append(texts[i])
        label_of = cluster_labels(members)
        share = Counter(t for text in texts for t in set(label_terms(text)))
        common = {t for t, n in share.items() if n > len(texts) / 3}
        bad = [c for c, label in label_of.items() if common & set(label.split(" · "))]
        sizes = Counter(clusters.tolist())
        print(
            f"{model}: {len(rows):,} rows embedded in {embedded:.2f} s, clustered in "
            f"{clustered:.1f} s: {shape(clusters)}; labels with a term in more than a third of "
            f"the rows: {len(bad)}"
        )
        for cluster, size in sizes.most_common(args.show):
            print(f"    {size:5d}  {label_of[cluster]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", help="path of all-MiniLM-L6-v2 (sentence_transformers)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--min-label", type=int, default=30, help="rows a topic needs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hide-topics", action="store_true")
    parser.add_argument("--shape", action="store_true", help="also cluster the whole file")
    parser.add_argument("--shape-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--show", type=int, default=12, help="largest clusters to list")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found: this benchmark needs the shared data file")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    if not args.shape_only:
        evaluate(args)
    if args.shape or args.shape_only:
        real_shape(args)


if __name__ == "__main__":
    main()
