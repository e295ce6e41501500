"""p@10 of the project's search modes (vector, text, hybrid) on `quality.py`'s own evaluation.

    .venv/bin/python benchmarks/search_modes.py [--model PATH_TO_MINILM] [--queries 300]

The labelled rows, labels and queries of `benchmarks/quality.py` (GitHub topics of the shared
file as weak labels; each query a labelled row's description, that row left out of its results;
relevant = the other rows with the same label), but searched the way the product searches: the
rows loaded into a fresh embedded PostgreSQL (its own EMBED_ASSETS_HOME), chunked (the default
1,500 characters) and embedded by the pipeline (`lib.pipeline`), the chunks' word statistics
gathered (ANALYZE, as autovacuum would), then each query through `Store.search` (HNSW),
`Store.text_search` and `Store.hybrid_search` for 11 rows, the vector and hybrid ones also
with pseudo-relevance feedback (`feedback=True`, what `embed_assets.search` does by default). A
query's p@10 counts missing results as misses (text search returns only rows holding the
words). Also each mode's p50 latency.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import DATA, provider_for, read_rows, weak_labels  # noqa: E402

from embed_assets.lib import pipeline  # noqa: E402
from embed_assets.lib.store import SOURCE_COLUMNS, open_store  # noqa: E402

ALL_TIME = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", help="path of all-MiniLM-L6-v2 (sentence_transformers)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--min-label", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} not found: this benchmark needs the shared data file")
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))

    rows, names = weak_labels(read_rows(args.data), args.min_label)
    label_of = {row.full_name: name for row, name in zip(rows, names, strict=True)}
    rng = np.random.default_rng(args.seed)  # the same queries as quality.py's
    described = np.flatnonzero([bool(r.description) for r in rows])
    asked = [rows[i] for i in np.sort(rng.choice(described, args.queries, replace=False))]

    home = Path(tempfile.mkdtemp(prefix="embed_assets_search_modes_"))
    for name in [n for n in os.environ if n.startswith("EMBED_ASSETS_")]:
        del os.environ[name]
    os.environ.update(EMBED_ASSETS_HOME=str(home), EMBED_ASSETS_SCHEMA="quality")
    from embed_assets.lib.database import database_url, stop_embedded
    from embed_assets.lib.settings import Settings

    settings = Settings.from_env()
    model = args.model or "offline-hash-v2"
    provider = provider_for(model)
    with open_store(database_url(settings), settings) as store:
        store.upsert_source([tuple(getattr(r, c) for c in SOURCE_COLUMNS) for r in rows])
        pipeline.sync_rows(store, *ALL_TIME)
        pipeline.sync_chunks(store, *ALL_TIME, settings.chunk_chars, settings.chunk_overlap)
        pipeline.sync_embeddings(store, *ALL_TIME, provider)
        store.execute('ANALYZE "quality".chunks')
        space = store.active_space()
        vectors = provider.embed([r.description for r in asked])
        print(
            f"{len(rows):,} labelled rows, {len(asked)} queries, model {model}, space {space.name}"
        )
        runs = {
            "vector": lambda text, vector: store.search(space, vector, 11),
            "text": lambda text, vector: store.text_search(text, 11),
            "hybrid": lambda text, vector: store.hybrid_search(space, vector, text, 11),
            "vector, feedback": lambda text, vector: store.search(space, vector, 11, feedback=True),
            "hybrid, feedback (default)": lambda text, vector: store.hybrid_search(
                space, vector, text, 11, feedback=True
            ),
        }
        print("| mode | p@10 | p50 ms |")
        print("|---|---|---|")
        for mode in runs:
            precisions, latencies = [], []
            for row, vector in zip(asked, vectors, strict=True):
                began = time.perf_counter()
                hits = runs[mode](row.description, vector)
                latencies.append(time.perf_counter() - began)
                others = [h[0] for h in hits if h[0] != row.full_name][:10]
                same = sum(1 for key in others if label_of[key] == label_of[row.full_name])
                precisions.append(same / 10)
            print(f"| {mode} | {np.mean(precisions):.3f} | {np.median(latencies) * 1000:.2f} |")
    stop_embedded(home)
    shutil.rmtree(home)


if __name__ == "__main__":
    main()
