"""A lead for search quality, measured outside the product: pseudo-relevance feedback (Rocchio) on
the offline vectors, on `quality.py`'s evaluation (weak labels from the real file's topics; the
query a row's description; exact cosine over the other labelled rows; p@10).

    .venv/bin/python benchmarks/query_feedback.py [--seeds 0 1 2] [--min-label 30]

Feedback: search once, take the vectors of the `m` best rows, move the query towards their mean
(q + beta * mean, normalised) and search again. It costs a second nearest-neighbour query per
search, which is why it is measured here and not yet in `embed_assets.search`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (the evaluation's own data, labels and p@10)


def expanded(queries: np.ndarray, docs: np.ndarray, asked: np.ndarray, m: int, beta: float):
    scores = queries @ docs.T
    scores[np.arange(len(asked)), asked] = -np.inf  # never the row itself
    top = np.argsort(-scores, axis=1)[:, :m]
    moved = queries + beta * docs[top].mean(axis=1)
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-label", type=int, default=30)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--model", default="offline-hash-v2")
    args = parser.parse_args()
    rows, names = quality.weak_labels(quality.read_rows(quality.DATA), args.min_label)
    labels = np.unique(names, return_inverse=True)[1]
    provider = quality.provider_for(args.model)
    docs = np.asarray(provider.embed([quality.text_of(r) for r in rows]))
    described = np.flatnonzero([bool(r.description) for r in rows])
    grid = [(m, beta) for m in (1, 2, 3, 4, 5, 10) for beta in (0.5, 1.0, 2.0, 3.0)]
    results: dict = {"plain": []} | {g: [] for g in grid}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        asked = np.sort(rng.choice(described, min(args.queries, len(described)), replace=False))
        queries = np.asarray(provider.embed([rows[i].description for i in asked]))
        results["plain"].append(quality.precision_at_10(docs, queries, asked, labels))
        for m, beta in grid:
            moved = expanded(queries, docs, asked, m, beta)
            results[(m, beta)].append(quality.precision_at_10(docs, moved, asked, labels))
    print(f"{args.model}, {len(rows):,} labelled rows, seeds {args.seeds}: p@10 per seed, mean")
    for name, values in results.items():
        label = "plain search" if name == "plain" else f"feedback m={name[0]} beta={name[1]}"
        per_seed = " ".join(f"{v:.3f}" for v in values)
        print(f"{label:<28} {per_seed}   mean {np.mean(values):.3f}")


if __name__ == "__main__":
    main()
