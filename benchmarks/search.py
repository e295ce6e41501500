"""Benchmark search on generated repositories: latency, recall@10 against exact search, index build.

    .venv/bin/python benchmarks/search.py [--rows 100000] [--queries 200] [--home DIR]
        [--ef-search 40 64 80 100] [--builds 16/64 24/128] [--modes-only]

Steps, each timed and printed:
  1. `generate_repositories(rows, seed=0)` written to a CSV file (`lib.sample.write_sample`);
  2. `embed-assets load FILE --json`, then `embed-assets sync --skip-clusters --json`, as
     subprocesses in a fresh EMBED_ASSETS_HOME (its own embedded PostgreSQL): the project's own
     path, a Dagster run of repositories -> chunks -> embeddings with the HNSW index built by the
     size rule (lib/hnsw.py); with --home DIR holding a previous run, steps 1-2 are skipped;
  3. query texts: the descriptions of `generate_repositories(queries, seed=2)` (other rows than
     the stored ones), embedded by the offline provider (384-d);
  4. the exact top 10 of each query (`Store.search(exact=True)`: a scan of every vector);
  5. the embedded server is restarted (`embed-assets db stop`), then each query is searched
     through `Store.search` on a new connection: the first pass is "cold" (PostgreSQL's buffers
     empty; the OS page cache may hold the files), the next two "warm"; p50/p95 in ms and mean
     recall@10 over repositories, at the configured ef_search and at each --ef-search;
  6. hybrid against vector-only search in the same run (`Store.search`, `Store.text_search`,
     `Store.hybrid_search`: on one connection without feedback, as before issue 13's feedback,
     and as `embed_assets.search` runs it by default, with pseudo-relevance feedback and the
     text arm on a second connection meanwhile; three rounds of a pass over the queries per
     mode, the last two counted): p50/p95 per mode and the ratio of the hybrid p50 to the
     vector p50 (issue 13: at most 1.5); then `embed_assets.search()` end to end (provider
     embed + connection + SQL), warm, in hybrid (the default) and vector mode;
  7. the `hnsw_recall` asset check's computation (`quality.search_recall`) and its seconds;
  8. the index rebuilt as `write_vectors` builds it (REINDEX, same memory and worker settings);
     with --builds M/EF ..., rebuilt with each (m, ef_construction) and measured again (then
     rebuilt by the rule, so that the home is left as the project would build it).
Uses its own EMBED_ASSETS_HOME and never touches yours. The machines are shared: read latencies
against the load average printed with them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = [sys.executable, "-m", "embed_assets.cli"]
K = 10


def cli(env: dict, *args: str) -> tuple[dict, float]:
    began = time.perf_counter()
    out = subprocess.run(
        [*CLI, *args, "--json"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out), time.perf_counter() - began


def ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1000)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def passes(store, space, queries, exact: list[set[str]], count: int) -> list[tuple[list, float]]:
    """`count` passes of every query through the index: (latencies, mean recall) per pass."""
    results = []
    for _ in range(count):
        latencies, recalls = [], []
        for vector, expected in zip(queries, exact, strict=True):
            began = time.perf_counter()
            found = store.search(space, vector, K)
            latencies.append(time.perf_counter() - began)
            recalls.append(len({h[0] for h in found} & expected) / len(expected))
        results.append((latencies, float(np.mean(recalls))))
    return results


def compare_modes(store, settings, space, texts: list[str], queries) -> None:
    """Three rounds, the first one not counted, each a pass over the queries in each mode in
    turn: the load of the shared machine falls on the modes alike, and no mode reads the pages
    the previous one just read for the same query (hybrid's vector arm would find them cached).
    The default hybrid's text arm runs on a second connection, as `embed_assets.search` does."""
    from embed_assets.lib.database import database_url
    from embed_assets.lib.store import connect_store

    words = (connect_store(database_url(settings), settings), ThreadPoolExecutor(1))
    runs = {
        "vector": lambda text, vector: store.search(space, vector, K),
        "text": lambda text, vector: store.text_search(text, K),
        "hybrid-1": lambda text, vector: store.hybrid_search(space, vector, text, K),
        "vector+fb": lambda text, vector: store.search(space, vector, K, feedback=True),
        "hybrid": lambda text, vector: store.hybrid_search(
            space, vector, text, K, feedback=True, words=words
        ),
    }
    latencies: dict[str, list[float]] = {mode: [] for mode in runs}
    try:
        for round_ in range(3):
            for mode, run in runs.items():
                for text, vector in zip(texts, queries, strict=True):
                    began = time.perf_counter()
                    run(text, vector)
                    if round_:
                        latencies[mode].append(time.perf_counter() - began)
    finally:
        words[1].shutdown()
        words[0].conn.close()
    print(f"modes, {len(texts)} queries x 2 warm passes, k = {K}; {load()}")
    for mode, samples in latencies.items():
        print(f"  {mode:<9} p50 {ms(samples, 50):6.2f} ms  p95 {ms(samples, 95):6.2f} ms")
    print("  (hybrid-1: one connection, no feedback; hybrid: the default, feedback and two)")
    for mode in ("hybrid-1", "vector+fb", "hybrid"):
        ratio = np.median(latencies[mode]) / np.median(latencies["vector"])
        print(f"  {mode} p50 / vector p50 = {ratio:.2f} (issue 13: hybrid <= 1.5)")


def report(label: str, latencies: list[float], recall: float) -> None:
    print(
        f"  {label:<34} p50 {ms(latencies, 50):6.2f} ms  p95 {ms(latencies, 95):6.2f} ms  "
        f"recall@10 {recall:.4f}"
    )


def measure(settings, queries, exact, ef_values) -> None:
    from embed_assets.lib.database import database_url
    from embed_assets.lib.store import Store, open_store

    with open_store(database_url(settings), settings) as store:
        space = store.active_space()
        print(f"index: m, ef_construction = {store.index_parameters(space)}; {load()}")
        for ef in ef_values:
            tuned = Store(store.conn, replace(settings, ef_search=ef))
            warm = passes(tuned, space, queries, exact, 2)[-1]
            report(f"warm, ef_search {ef}", *warm)


def rebuild(settings, parameters: tuple[int, int] | None) -> float:
    """Rebuild the HNSW index as write_vectors builds it: REINDEX, or with other parameters."""
    from psycopg import sql

    from embed_assets.lib.database import database_url
    from embed_assets.lib.store import open_store

    with open_store(database_url(settings), settings) as store:
        space = store.active_space()
        table, index = store.t(space.table), sql.Identifier(store.schema, f"{space.table}_hnsw")
        with store.transaction():
            store.execute("SET LOCAL maintenance_work_mem = '1GB'")
            store.execute("SET LOCAL max_parallel_maintenance_workers = 1")
            began = time.perf_counter()
            if parameters is None:
                store.execute(sql.SQL("REINDEX INDEX {}").format(index))
            else:
                store.execute(sql.SQL("DROP INDEX {}").format(index))
                store.execute(
                    sql.SQL(
                        "CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) "
                        "WITH (m = {}, ef_construction = {})"
                    ).format(
                        sql.Identifier(f"{space.table}_hnsw"),
                        table,
                        sql.Literal(parameters[0]),
                        sql.Literal(parameters[1]),
                    )
                )
            return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--home",
        type=Path,
        help="EMBED_ASSETS_HOME (default: a new temp dir); "
        "one holding a previous run's data is reused",
    )
    parser.add_argument("--ef-search", type=int, nargs="*", default=[40, 64, 80, 100])
    parser.add_argument(
        "--builds",
        nargs="*",
        default=[],
        help="other (m/ef_construction) to build and measure, e.g. 16/128 24/128",
    )
    parser.add_argument(
        "--modes-only", action="store_true", help="only step 6's comparison of the modes"
    )
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))

    home = args.home or Path(tempfile.mkdtemp(prefix="embed_assets_search_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_ASSETS_")}
    env.pop("DAGSTER_HOME", None)
    env.update(EMBED_ASSETS_HOME=str(home), EMBED_ASSETS_SCHEMA="benchmark")
    os.environ.update(env)  # for this process's own calls (embed_assets.search reads them)
    for name in [n for n in os.environ if n.startswith("EMBED_ASSETS_") and n not in env]:
        del os.environ[name]

    from psycopg import sql

    from embed_assets import search as search_api
    from embed_assets.lib import quality
    from embed_assets.lib.database import database_url
    from embed_assets.lib.providers import build_provider
    from embed_assets.lib.sample import generate_repositories, write_sample
    from embed_assets.lib.settings import Settings
    from embed_assets.lib.store import open_store

    settings = Settings.from_env(env)
    with open_store(database_url(settings), settings) as store:
        stored = store.status(store.active_space())["embeddings"]
    if not stored:
        sample = home / "sample.csv"
        began = time.perf_counter()
        write_sample(sample, args.rows, seed=0)
        print(f"generated {args.rows:,} repositories in {time.perf_counter() - began:.1f} s")
        loaded, seconds = cli(env, "load", str(sample))
        print(f"embed-assets load: {seconds:.1f} s  {loaded}")
        synced, seconds = cli(env, "sync", "--skip-clusters")
        print(
            f"embed-assets sync --skip-clusters: {seconds:.1f} s (in the run: "
            f"{synced['seconds']} s, by asset {synced['asset_seconds']})"
        )
    import dagster as dg

    from embed_assets.instance import project_instance

    with project_instance(settings) as instance:
        key = dg.AssetKey(["repositories", "embeddings"])  # the repositories collection's
        event = instance.get_latest_materialization_event(key)
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    print(
        f"embeddings, last materialisation: {metadata['dagster/row_count']:,} vectors; "
        f"write transaction with the HNSW build "
        f"{metadata['write_seconds']:.1f} s (m {metadata.get('hnsw_m')}, ef_construction "
        f"{metadata.get('hnsw_ef_construction')})"
    )

    provider = build_provider(settings)
    texts = [
        r["description"] or r["full_name"].split("/")[1]
        for r in generate_repositories(args.queries, seed=2)
    ]
    queries = np.asarray(provider.embed(texts), dtype=np.float32)
    with open_store(database_url(settings), settings) as store:
        space = store.active_space()
        print(
            f"space {space.name}: {store.count_vectors(space):,} vectors; "
            f"ef_search setting {settings.ef_search}"
        )
        if args.modes_only:
            store.execute(sql.SQL("ANALYZE {}").format(store.t("chunks")))  # as autovacuum would
            compare_modes(store, settings, space, texts, queries)
            return 0
        began = time.perf_counter()
        exact = [{h[0] for h in store.search(space, q, K, exact=True)} for q in queries]
        print(f"exact search: {(time.perf_counter() - began) / len(queries) * 1000:.0f} ms a query")

    # Restart the embedded server (in another process: pgserver keeps its handle in this one).
    subprocess.run([*CLI, "db", "stop"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from embed_assets.lib.database import database_url; "
            "from embed_assets.lib.settings import Settings; "
            "database_url(Settings.from_env())",
        ],
        env=env,
        cwd=ROOT,
        check=True,
    )
    with open_store(database_url(settings), settings) as store:
        print(f"search through the index, {len(queries)} queries, k = {K}; {load()}")
        results = passes(store, space, queries, exact, 3)
        report(f"cold, ef_search {settings.ef_search}", *results[0])
        report(f"warm, ef_search {settings.ef_search}", results[2][0], results[2][1])

        began = time.perf_counter()
        check = quality.search_recall(
            store, space, quality.QualitySettings.from_env().recall_queries
        )
        print(
            f"hnsw_recall check: recall@10 {check['recall']:.4f} over {check['queries']} stored "
            f"vectors, {time.perf_counter() - began:.2f} s"
        )

        compare_modes(store, settings, space, texts, queries)

    for mode in ("hybrid", "vector"):
        latencies = []
        for round_ in range(2):
            for text in texts:
                began = time.perf_counter()
                search_api(text, K, mode=mode)
                if round_:
                    latencies.append(time.perf_counter() - began)
        print(
            f"embed_assets.search(mode={mode!r}) end to end, warm: p50 {ms(latencies, 50):.2f} "
            f"ms, p95 {ms(latencies, 95):.2f} ms; {load()}"
        )

    measure(settings, queries, exact, args.ef_search)
    print(
        f"index rebuild (REINDEX as write_vectors builds it): {rebuild(settings, None):.1f} s; "
        f"{load()}"
    )
    for build in args.builds:
        m, ef_construction = (int(x) for x in build.split("/"))
        seconds = rebuild(settings, (m, ef_construction))
        print(f"\nbuilt m={m}, ef_construction={ef_construction}: {seconds:.1f} s; {load()}")
        measure(settings, queries, exact, args.ef_search)
    if args.builds:
        from embed_assets.lib import hnsw

        with open_store(database_url(settings), settings) as store:
            rows = store.count_vectors(space)
        rebuild(
            settings, hnsw.build_parameters(rows, settings.hnsw_m, settings.hnsw_ef_construction)
        )
    print(f"\nhome: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
