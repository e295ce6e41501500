"""Benchmark the near-duplicate groups (embed_assets.lib.clusters.duplicates) on the real file.

    .venv/bin/python benchmarks/duplicates.py [--csv ../shared/data/github_repos.csv]
        [--bound 0.95] [--repeat 3]

Loads the file into a fresh schema of its own EMBED_ASSETS_HOME and syncs it (offline provider,
cluster index included), then times `sync_duplicates` as the cluster_index asset runs it: every
row compared (the first build, and what a full re-cluster does: within the topic clusters, since
that is more than BULK_ROWS rows; with --index-path through the HNSW index, row by row), a no-op,
and after 1 % of descriptions were changed with plain SQL and synced without the cluster index
(through the index). Prints groups, rows in groups, the largest group, and medians over
--repeat rounds of the timed steps.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = [str(ROOT / ".venv" / "bin" / "embed-assets")]
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "github_repos.csv"


def cli(env: dict, *args: str) -> dict:
    done = subprocess.run([*CLI, *args, "--json"], env=env, cwd=ROOT, capture_output=True)
    if done.returncode:
        sys.exit(done.stderr.decode())
    return json.loads(done.stdout)


def timed(store, space, bound: float, reset: bool = False, **options) -> tuple[float, dict]:
    from embed_assets.lib.clusters.duplicates import sync_duplicates

    began = time.perf_counter()
    with store.transaction():
        figures = sync_duplicates(store, space, bound, reset=reset, **options)
    return time.perf_counter() - began, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--bound", type=float, default=0.95)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--index-path", action="store_true", help="compare all rows through the HNSW index"
    )
    args = parser.parse_args()
    if not args.csv.exists():
        print(f"no data file at {args.csv}; pass --csv", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_ASSETS_")}
    env.update(
        EMBED_ASSETS_HOME=tempfile.mkdtemp(prefix="embed_assets_bench_"),
        EMBED_ASSETS_SCHEMA="benchmark",
    )
    env.pop("DAGSTER_HOME", None)
    os.environ.update(env)
    print("command:", " ".join(["python", *sys.argv]))
    try:
        cli(env, "load", str(args.csv), "--time-column", "snapshot_date")
        cli(env, "sync")
        from embed_assets.lib.database import database_url
        from embed_assets.lib.settings import Settings
        from embed_assets.lib.store import open_store

        settings = Settings.from_env(env)
        seconds: dict[str, list[float]] = {"all rows": [], "no-op": [], "1 % changed": []}
        with open_store(database_url(settings), settings) as store:
            space = store.active_space()
            for round_ in range(1, args.repeat + 1):
                everything = {"bulk_rows": 10**9} if args.index_path else {}
                first, figures = timed(store, space, args.bound, reset=True, **everything)
                noop, _ = timed(store, space, args.bound)
                store.execute(
                    "UPDATE benchmark.repositories_source SET description = "
                    "coalesce(description, '') || ' (revised ' || %s || ')' "
                    "WHERE abs(hashtext(full_name || %s)) %% 100 = 0",
                    (str(round_), str(round_)),
                )
                cli(env, "sync", "--skip-clusters")
                changed, after = timed(store, space, args.bound)
                groups = store.list_duplicate_groups(space, limit=1)
                print(
                    f"round {round_}: all {figures['duplicate_rows_compared']:,} rows "
                    f"{first:.2f} s, no-op {noop:.3f} s, "
                    f"{after['duplicate_rows_compared']} changed {changed:.3f} s; "
                    f"{figures['duplicate_groups']:,} groups, "
                    f"{figures['rows_in_duplicate_groups']:,} rows in them, largest "
                    f"{groups[0]['size'] if groups else 0}"
                )
                for name, value in zip(seconds, (first, noop, changed), strict=True):
                    seconds[name].append(value)
        print(
            "medians: " + ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in seconds.items())
        )
    finally:
        subprocess.run([*CLI, "db", "stop"], env=env, cwd=ROOT, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
