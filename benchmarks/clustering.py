"""Benchmark the clustering core (embed_assets.lib.clusters.algorithm) on data made here, no file
needed.

    .venv/bin/python benchmarks/clustering.py [--rows 100000] [--scale 200000 400000] [--repeat 5]
                                              [--datasets repositories small-clusters]

Two data sets of 384-d unit vectors:
  repositories    generate_repositories(n, seed=0) rows -> repository_text (no README) ->
                  OfflineHashingProvider(384), as the pipeline embeds them. Few, large clusters
                  (k = 0.03 n): the generator's description templates dominate lexical similarity.
  small-clusters  synthetic: n/3 clusters (geometric sizes) in n/2000 topics, members at cosine 0.6
                  to their cluster's centre: small groups of near-duplicates within weak topics.
                  Agreement is measured against the topics, the grain full_cluster aims at.

For each: full clustering of --rows vectors (seconds, clusters, agreement with the true clusters
where known, tracemalloc peak of the call, peak RSS of the process); incremental `assign` of 1,000
new vectors into the state of those --rows (median of --repeat runs); the index grown from 60 % to
100 % of the rows by `assign` in batches of 1,000, against a full clustering of all (what the drift
rule watches); and full clustering at each --scale size, each in a fresh process, with seconds per
100K vectors. Targets (issue 5): assign of 1,000 into 100K <= 2 s; full clustering of 100K <= 60 s.
The machines are shared and their speed varies: the first line times a float32 matrix product, the
operation that dominates, to read the figures against.

Before issue 13 full_cluster was a threshold rule (a vector joins the cluster it is most similar
to on average, or starts one) run within MiniBatchKMeans cells: 7,432 clusters for the real file,
half its rows in clusters of fewer than 5. Figures of both are in docs/benchmarks.md.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from itertools import islice
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embed_assets.lib.clusters.algorithm import ClusterState, assign, drift, full_cluster, summary  # noqa: E402
from embed_assets.lib.providers.offline import OfflineHashingProvider  # noqa: E402
from embed_assets.lib.sample import iter_repositories  # noqa: E402
from embed_assets.lib.text import repository_text  # noqa: E402

NEW = 1_000  # vectors per incremental assign


def repositories(n: int) -> tuple[np.ndarray, None]:
    """Vectors of the first n generated repositories, embedded 50K rows at a time."""
    provider, rows, parts = OfflineHashingProvider(384), iter_repositories(0), []
    while len(parts) * 50_000 < n:
        batch = list(islice(rows, min(50_000, n - len(parts) * 50_000)))
        parts.append(
            provider.embed(
                [
                    repository_text(
                        r["full_name"], r["description"], r["language"], r["topics"], None
                    )
                    for r in batch
                ]
            )
        )
    return (np.concatenate(parts) if parts else np.empty((0, 384), np.float32)), None


def small_clusters(n: int, d: int = 384, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in about n/3 clusters (geometric sizes, mean 3) spread over n/2000 topics, and
    the topic of each. Cluster centres have cosine 0.5 to their topic's, members 0.6 to their
    cluster's: about 0.36 between members of a cluster, 0.09 between clusters of one topic."""
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((max(1, n // 2000), d), dtype=np.float32))
    truth = np.repeat(np.arange(n), rng.geometric(1 / 3, size=n))[:n]
    rng.shuffle(truth)
    topic_of = rng.integers(len(topics), size=int(truth.max()) + 1)
    centres = _around(topics[topic_of], 0.5, rng)
    vectors = np.empty((n, d), np.float32)
    for start in range(0, n, 65_536):
        vectors[start : start + 65_536] = _around(centres[truth[start : start + 65_536]], 0.6, rng)
    return vectors, topic_of[truth]


def _around(centres: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at about `cosine` to each (unit) centre."""
    spread = np.sqrt((1 / cosine**2 - 1) / centres.shape[1])
    return _unit(centres + spread * rng.standard_normal(centres.shape, dtype=np.float32))


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


DATASETS = {"repositories": repositories, "small-clusters": small_clusters}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed_full(vectors: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Labels, seconds and tracemalloc peak (MiB) of one full clustering."""
    tracemalloc.start()
    start = time.perf_counter()
    labels = full_cluster(vectors)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return labels, seconds, peak


def one_size(dataset: str, n: int) -> dict:
    """A full clustering at one size, in this (fresh) process."""
    vectors, truth = DATASETS[dataset](n)
    before = peak_rss_mib()
    labels, seconds, peak = timed_full(vectors)
    return {
        "n": n,
        "seconds": seconds,
        "clusters": int(labels.max()) + 1,
        "traced_peak_mib": peak,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "truth": agreement(truth, labels),
    }


def agreement(truth: np.ndarray | None, labels: np.ndarray) -> str:
    if truth is None:
        return ""
    return (
        f"; {len(np.unique(truth)):,} true topics, adjusted mutual information "
        f"{adjusted_mutual_info_score(truth, labels):.3f}"
    )


def bench(dataset: str, rows: int, repeat: int, scale: list[int]) -> None:
    print(f"\n== {dataset}")
    start = time.perf_counter()
    vectors, truth = DATASETS[dataset](rows + NEW)
    base, new = vectors[:rows], vectors[rows:]
    print(
        f"data: {rows + NEW:,} vectors in {time.perf_counter() - start:.1f} s "
        f"({vectors.nbytes / 2**20:.0f} MiB)"
    )

    labels, seconds, peak = timed_full(base)
    state = ClusterState.from_labels(base, labels)
    figures = summary(state)
    print(
        f"full_cluster of {rows:,}: {seconds:.1f} s; {figures['clusters']:,} clusters, "
        f"{figures['singletons']:,} singletons, largest {int(state.sizes.max()):,}; mean cosine of "
        f"a member to its centroid {figures['centroid_similarity']:.3f}, to the other members "
        f"{figures['member_similarity']:.3f}"
        f"{agreement(None if truth is None else truth[:rows], labels)}; "
        f"traced peak {peak:.0f} MiB "
        f"(input {base.nbytes / 2**20:.0f} MiB), process peak RSS {peak_rss_mib():.0f} MiB"
    )

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ids, grown = assign(state, new)
        times.append(time.perf_counter() - start)
    joined = int(np.isin(ids, state.ids).sum())
    print(
        f"assign {NEW:,} into {rows:,} ({len(state):,} clusters): median "
        f"{statistics.median(times):.3f} s "
        f"of {repeat} (min {min(times):.3f}, max {max(times):.3f}); {joined} joined existing "
        "clusters, "
        f"{len(grown) - len(state)} new clusters"
    )

    first = int(rows * 0.6)
    grown = ClusterState.from_labels(base[:first], full_cluster(base[:first]))
    baseline = summary(grown)
    start = time.perf_counter()
    for at in range(first, rows, NEW):
        grown = assign(grown, base[at : at + NEW])[1]
    moved, now = drift(grown, baseline), summary(grown)
    print(
        f"grown from {first:,} to {rows:,} by assign ({time.perf_counter() - start:.1f} s): "
        "clusters "
        f"{baseline['clusters']:,} -> {len(grown):,} ({moved['cluster_growth']:+.0%}); member "
        "cosine to "
        f"centroid {baseline['centroid_similarity']:.3f} -> {now['centroid_similarity']:.3f}, to "
        "the other "
        f"members {baseline['member_similarity']:.3f} -> {now['member_similarity']:.3f}; a full "
        "clustering "
        f"of all {rows:,}: {figures['clusters']:,} clusters, {figures['centroid_similarity']:.3f}, "
        f"{figures['member_similarity']:.3f}"
    )

    for n in scale:
        out = subprocess.run(
            [sys.executable, __file__, "--one", dataset, str(n)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"full_cluster of {n:,} (fresh process): {r['seconds']:.1f} s = "
            f"{r['seconds'] / n * 1e5:.1f} s "
            f"per 100K; {r['clusters']:,} clusters{r['truth']}; traced peak "
            f"{r['traced_peak_mib']:.0f} MiB; peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB (after making the data: {r['rss_before_mib']:.0f} MiB)"
        )


def gemm_gflops() -> float:
    a, b = np.ones((1024, 384), np.float32), np.ones((384, 16_384), np.float32)
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 1024 * 384 * 16_384 / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, nargs="*", default=[200_000, 400_000])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--one", nargs=2, metavar=("DATASET", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one[0], int(args.one[1]))))
        return
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"float32 matrix product now: {gemm_gflops():.0f} GFLOP/s")
    for dataset in args.datasets:
        bench(dataset, args.rows, args.repeat, args.scale)


if __name__ == "__main__":
    main()
