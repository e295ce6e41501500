"""Benchmark `embed-assets sync` on the real 24,399-repository file.

    .venv/bin/python benchmarks/sync_real.py [--csv ../shared/data/github_repos.csv] [--repeat 3]
        [--clusters] [--provider-latency 0.1]

Each round starts from an empty schema: load the file, then time as `sync --json` reports them
(Dagster run included, interpreter start-up excluded):
  1. the first sync (chunks, embeddings, HNSW index build), and apart the index build in it
     (`index_build_seconds` of the run's metadata) and everything else,
  2. a no-op sync,
  3. a sync after 1 % of descriptions were changed with plain SQL, as an external writer would.
Prints every figure and the medians. Uses its own EMBED_ASSETS_HOME, so it never touches yours.

By default syncs run with `--skip-clusters` (the partitioned assets only); `--clusters` includes
the cluster index and prints each asset's seconds. `--provider-latency S` embeds through the
OpenAI-compatible fake server of the tests (in this process, on 127.0.0.1, S seconds per request)
with default provider settings instead of the offline provider, and adds a round where every text
is a cache hit (the embedding space is dropped, the cache kept).

The machines are shared and their speed varies by a factor of several, so the script also times two
reference operations that the design notes measured on the reference machine (an HNSW build over
24,494 random unit vectors: 6.5 s; 244 rows copied into that indexed table: 0.19 s) and prints the
ratio, to read the sync figures against.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "github_repos.csv"
CLI = [sys.executable, "-m", "embed_assets.cli"]


def cli(env: dict, *args: str) -> dict:
    out = subprocess.run(
        [*CLI, *args, "--json"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def sql(env: dict, statement: str, *params) -> int:
    import psycopg

    from embed_assets.lib.database import database_url
    from embed_assets.lib.settings import Settings

    with psycopg.connect(database_url(Settings.from_env(env)), autocommit=True) as conn:
        return conn.execute(statement, params).rowcount


def calibrate(env: dict) -> tuple[float, float]:
    """The design notes' reference operations on this machine, now."""
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    from embed_assets.lib.database import database_url
    from embed_assets.lib.settings import Settings

    vectors = np.random.default_rng(0).standard_normal((24_494 + 244, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with psycopg.connect(database_url(Settings.from_env(env)), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("DROP TABLE IF EXISTS public.calibration")
        conn.execute("CREATE TABLE public.calibration (id int, embedding vector(384))")

        def copy(rows):
            with conn.cursor().copy("COPY public.calibration FROM STDIN WITH (FORMAT BINARY)") as c:
                c.set_types(["int4", "vector"])
                for row in rows:
                    c.write_row(row)

        copy(enumerate(vectors[:24_494]))
        began = time.perf_counter()
        conn.execute("CREATE INDEX ON public.calibration USING hnsw (embedding vector_cosine_ops)")
        build = time.perf_counter() - began
        began = time.perf_counter()
        copy((24_494 + i, v) for i, v in enumerate(vectors[24_494:]))
        insert = time.perf_counter() - began
        conn.execute("DROP TABLE public.calibration")
    return build, insert


def sql_one(env: dict, statement: str):
    import psycopg

    from embed_assets.lib.database import database_url
    from embed_assets.lib.settings import Settings

    with psycopg.connect(database_url(Settings.from_env(env)), autocommit=True) as conn:
        return conn.execute(statement).fetchone()[0]


def embeddings_metadata(env: dict) -> dict:
    """The metadata of the last `embeddings` materialisation, from the instance."""
    import dagster as dg

    from embed_assets.instance import project_instance
    from embed_assets.lib.settings import Settings

    with project_instance(Settings.from_env(env)) as instance:
        key = dg.AssetKey(["repositories", "embeddings"])  # the repositories collection's
        event = instance.get_latest_materialization_event(key)
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--home", type=Path, help="EMBED_ASSETS_HOME to use (default: a temp dir)")
    parser.add_argument("--clusters", action="store_true", help="include the cluster index")
    parser.add_argument(
        "--provider-latency",
        type=float,
        help="embed through a local OpenAI-compatible server with this latency",
    )
    args = parser.parse_args()
    if not args.csv.exists():
        print(f"no data file at {args.csv}; pass --csv", file=sys.stderr)
        return 2

    home = args.home or Path(tempfile.mkdtemp(prefix="embed_assets_bench_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_ASSETS_")}
    env.pop("DAGSTER_HOME", None)
    env.update(EMBED_ASSETS_HOME=str(home), EMBED_ASSETS_SCHEMA="benchmark")
    with contextlib.ExitStack() as stack:
        if args.provider_latency is not None:
            sys.path.insert(0, str(ROOT))
            from embed_assets_tests.provider_servers import FakeEmbeddingServer

            server = stack.enter_context(
                FakeEmbeddingServer(dimensions=384, latency=args.provider_latency)
            )
            env.update(
                EMBED_ASSETS_PROVIDER="openai_compatible",
                EMBED_ASSETS_MODEL="bench-embed",
                EMBED_ASSETS_DIMENSIONS="384",
                EMBED_ASSETS_BASE_URL=server.openai_url,
            )
        os.environ.update(env)  # for what this process reads itself (the Dagster instance)
        try:
            return rounds(args, env)
        finally:  # the embedded server of the benchmark's own home
            subprocess.run([*CLI, "db", "stop"], env=env, cwd=ROOT, capture_output=True)


def rounds(args, env: dict) -> int:
    sync_args = () if args.clusters else ("--skip-clusters",)
    figures: dict[str, list[float]] = {
        "first": [],
        "first_index_build": [],
        "first_without_build": [],
        "noop": [],
        "one_percent": [],
    }
    if args.provider_latency is not None:
        figures.update(
            first_texts_per_second=[], cached=[], cached_texts_per_second=[], cached_embed_step=[]
        )
    for round_ in range(1, args.repeat + 1):
        sql(env, "DROP SCHEMA IF EXISTS benchmark CASCADE")
        began = time.perf_counter()
        loaded = cli(env, "load", str(args.csv), "--time-column", "snapshot_date")
        print(f"round {round_}: load {loaded} in {time.perf_counter() - began:.2f} s (wall)")
        first = cli(env, "sync", *sync_args)
        build = embeddings_metadata(env)["index_build_seconds"]
        status = cli(env, "status")
        assert status["pending"] == 0 and status["embeddings"] == status["chunks"], status
        noop = cli(env, "sync", *sync_args)
        assert noop["embedded"] == 0, noop
        changed = sql(
            env,
            "UPDATE benchmark.repositories_source SET description = "
            "coalesce(description, '') || ' (revised ' || %s || ')' "
            "WHERE abs(hashtext(full_name || %s)) %% 100 = 0",
            str(round_),
            str(round_),
        )
        one_percent = cli(env, "sync", *sync_args)
        print(
            f"  first sync   {first['seconds']:6.2f} s  embedded {first['embedded']:,} "
            f"over {first['partitions']} partitions in one run; HNSW build {build:.2f} s, "
            f"everything else {first['seconds'] - build:.2f} s"
        )
        print(f"  no-op sync   {noop['seconds']:6.3f} s  embedded {noop['embedded']}")
        print(
            f"  1 % changed  {one_percent['seconds']:6.3f} s  rows changed {changed}, "
            f"embedded {one_percent['embedded']}, partitions {one_percent['partitions']}"
        )
        figures["first"].append(first["seconds"])
        figures["first_index_build"].append(build)
        figures["first_without_build"].append(first["seconds"] - build)
        figures["noop"].append(noop["seconds"])
        figures["one_percent"].append(one_percent["seconds"])
        if args.clusters:
            print(f"  asset seconds, first: {first['asset_seconds']}")
            print(f"  asset seconds, 1 %:   {one_percent['asset_seconds']}")
        if args.provider_latency is not None:
            figures["first_texts_per_second"].append(first["embedded"] / first["seconds"])
            space = sql_one(env, "SELECT name FROM benchmark.spaces WHERE active")
            sql(env, f'DROP TABLE benchmark."embeddings_{space}"')
            sql(env, "DELETE FROM benchmark.spaces")
            cached = cli(env, "sync", *sync_args)
            cached_metadata = embeddings_metadata(env)
            step = cached_metadata["seconds"] - cached_metadata["write_seconds"]
            print(
                f"  all cached   {cached['seconds']:6.2f} s  embedded {cached['embedded']:,} "
                f"({cached['embedded'] / cached['seconds']:,.0f} texts/s; embeddings step "
                f"without its write: {step:.2f} s, {cached['embedded'] / step:,.0f} texts/s)"
            )
            figures["cached"].append(cached["seconds"])
            figures["cached_texts_per_second"].append(cached["embedded"] / cached["seconds"])
            figures["cached_embed_step"].append(cached["embedded"] / step)

    build, insert = calibrate(env)
    print(
        f"\ncalibration: HNSW build of 24,494 random vectors {build:.2f} s (reference 6.5 s, "
        f"x{build / 6.5:.1f}); 244 rows into it {insert:.3f} s (reference 0.19 s, "
        f"x{insert / 0.19:.1f})"
    )
    provider = (
        "offline provider"
        if args.provider_latency is None
        else f"OpenAI-compatible server at {args.provider_latency * 1000:.0f} ms per request"
    )
    print(
        f"\nmedians over {args.repeat} rounds (24,399 rows, {provider}, "
        f"{'with' if args.clusters else 'without'} the cluster index; seconds as reported by "
        "`sync`, texts/s = embedded / those seconds):"
    )
    for name, values in figures.items():
        print(
            f"  {name:<24} {statistics.median(values):7.3f}   all: "
            + ", ".join(f"{v:.3f}" for v in values)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
