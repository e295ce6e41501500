"""What a files collection's scan costs, by the number of files: the work of each sensor tick.

    .venv/bin/python benchmarks/files_scan.py [--files 1000 10000] [--repeat 5]

For each size, a generated folder of Markdown files (about 2 KB each, 100 per folder) scanned
into a collection's store (`FilesSource.scan`), timed as:
  - first: every file read, hashed and written (the first scan);
  - unchanged: a scan that finds nothing new (a `stat` per file, one query of the stored state);
  - one edit: one file's bytes changed (one file read and written, its change logged);
  - touch all: every file's time moved, bytes the same (every file read and hashed, nothing new).
Medians of --repeat scans (first: one per repeat, each into an empty store). Uses its own
EMBED_ASSETS_HOME (an embedded server of its own), so it never touches yours.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

PARAGRAPH = "The sensor lists the folder, compares each file's size and time, and reads few. "


def make_folder(root: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = root / f"section{i // 100:04d}" / f"page{i:06d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Page {i}\n\n" + PARAGRAPH * 24)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["EMBED_ASSETS_HOME"] = tempfile.mkdtemp(prefix="embed_assets_bench_")
    os.environ["EMBED_ASSETS_SCHEMA"] = "benchmark"

    from embed_assets.lib.database import database_url, stop_embedded
    from embed_assets.lib.settings import Settings
    from embed_assets.lib.sources.files import declared_files_source
    from embed_assets.lib.store import open_store

    settings = Settings.from_env()
    url = database_url(settings)
    print(f"{'files':>7} {'first s':>8} {'unchanged s':>12} {'one edit s':>11} {'touch all s':>12}")
    try:
        for n in args.files:
            root = Path(tempfile.mkdtemp(prefix="embed_assets_files_")) / "docs"
            paths = make_folder(root, n)
            source = declared_files_source(
                root.parent / "defs.yaml",
                "benchmark_files",
                {"kind": "files", "root": str(root), "include": ["**/*.md"]},
                None,
                None,
                None,
                [],
                None,
            )
            times = {"first": [], "unchanged": [], "one edit": [], "touch all": []}
            for attempt in range(args.repeat):
                with open_store(url, settings, source.table_spec) as store:
                    store.execute("DROP SCHEMA IF EXISTS benchmark_files CASCADE")
                with open_store(url, settings, source.table_spec) as store:
                    store.ensure_schema()
                    began = time.perf_counter()
                    source.scan(store)
                    times["first"].append(time.perf_counter() - began)
                    began = time.perf_counter()
                    assert source.scan(store).hashed == 0
                    times["unchanged"].append(time.perf_counter() - began)
                    paths[attempt].write_text(f"# Page edited {attempt}\n")
                    began = time.perf_counter()
                    assert source.scan(store).changed == 1
                    times["one edit"].append(time.perf_counter() - began)
                    for path in paths:
                        stamp = path.stat().st_mtime + 10 * (attempt + 1)
                        os.utime(path, (stamp, stamp))
                    began = time.perf_counter()
                    assert source.scan(store).touched == n
                    times["touch all"].append(time.perf_counter() - began)
            medians = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{n:>7,} {medians['first']:>8.3f} {medians['unchanged']:>12.3f} "
                f"{medians['one edit']:>11.3f} {medians['touch all']:>12.3f}"
            )
    finally:
        stop_embedded(settings.home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
