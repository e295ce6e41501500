"""Whole-process wall time of each everyday command, median of several runs, on a store loaded
with the generated demo sample; with `--baseline REV`, the same commands of that commit side by
side (its code from a temporary git worktree, on a store of its own), as ratios.

    .venv/bin/python benchmarks/cli_start.py --rows 2000 --runs 7 --baseline HEAD~1

Each store lives in its own schema of the embedded database (or EMBED_ASSETS_DATABASE_URL), made
here and dropped after.
"""

from __future__ import annotations

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
# One embedded database for both trees (a relative home would start one per worktree).
HOME = os.environ.get("EMBED_ASSETS_HOME", str(ROOT / ".embed_assets"))
COMMANDS = [
    ["--help"],
    ["status"],
    ["search", "vector database for similarity search"],
    ["clusters"],
    ["spaces"],
    ["cache", "stats"],
    ["collections"],
    ["sync"],  # nothing changed: a no-op
]


def run(code: Path, schema: str, args: list[str]) -> float:
    env = os.environ | {
        "EMBED_ASSETS_SCHEMA": schema,
        "PYTHONPATH": str(code),
        "EMBED_ASSETS_HOME": HOME,
    }
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "embed_assets.cli", *args],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {code}: {done.stderr.strip()[-500:]}")
    return seconds


def prepare(code: Path, schema: str, sample: Path) -> None:
    print(f"loading {sample.name} into schema {schema} with {code}", file=sys.stderr, flush=True)
    run(code, schema, ["load", str(sample)])
    run(code, schema, ["sync"])


def sample_file(rows: int, folder: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from embed_assets.lib.sample import generate_repositories

    path = folder / "sample.jsonl"
    with path.open("w") as handle:
        for record in generate_repositories(rows, seed=0):
            handle.write(json.dumps(record, default=str) + "\n")
    return path


def drop(schema: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "embed_assets.cli", "db", "sql", f"DROP SCHEMA {schema} CASCADE"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT), "EMBED_ASSETS_HOME": HOME},
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", help="a git revision to compare with, e.g. HEAD~1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        sample = sample_file(args.rows, folder)
        trees = {"this": (ROOT, "bench_cli_this")}
        if args.baseline:
            tree = folder / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.baseline],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            trees["baseline"] = (tree, "bench_cli_baseline")
        try:
            for code, schema in trees.values():
                drop(schema)
                prepare(code, schema, sample)
            medians: dict[str, dict[str, float]] = {name: {} for name in trees}
            for command in COMMANDS:
                label = " ".join(command[:2])
                times: dict[str, list[float]] = {name: [] for name in trees}
                for _ in range(args.runs):  # interleaved: both see the same machine load
                    for name, (code, schema) in trees.items():
                        times[name].append(run(code, schema, command))
                for name in trees:
                    medians[name][label] = statistics.median(times[name])
                line = f"{label:<16} this {medians['this'][label]:6.2f} s"
                if "baseline" in trees:
                    base = medians["baseline"][label]
                    line += (
                        f"   baseline {base:6.2f} s   ratio {medians['this'][label] / base:5.2f}"
                    )
                print(line, flush=True)
        finally:
            for _, schema in trees.values():
                drop(schema)
            if args.baseline:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(folder / "baseline")],
                    cwd=ROOT,
                    capture_output=True,
                )


if __name__ == "__main__":
    main()
