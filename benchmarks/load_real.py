"""Benchmark `embed-assets load` of the real 24,399-repository file, this tree against another.

    .venv/bin/python benchmarks/load_real.py [--csv ../shared/data/github_repos.csv]
        [--repeat 3] [--against DIR]

Each round, in a fresh schema: a first load of the file (`--time-column snapshot_date`, as
`sync_real.py` loads it), then the same load again (every row unchanged). Both are timed around
the CLI's `main` in a process of their own (reading and validating the file included, interpreter
start-up and imports excluded), after a CHECKPOINT. `--against DIR`: a checkout of another commit
(e.g. `git archive <commit> | tar -x -C DIR`), run in alternation with this tree on the same
embedded server, each going first every other round; prints the medians side by side with their
ratio (this tree / the other) and the median of the rounds' own ratios. Uses its own
EMBED_ASSETS_HOME, so it never touches yours.
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
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "github_repos.csv"
PHASES = ("first_load", "reload")


def one_round(root: Path, csv: Path, schema: str) -> dict:
    """In this process: the two loads with the code of `root`, in `schema`; then drop it."""
    sys.path.insert(0, str(root))
    os.chdir(root)
    os.environ["EMBED_ASSETS_SCHEMA"] = schema
    import contextlib
    import io

    from embed_assets.cli import main
    from embed_assets.lib.database import database_url
    from embed_assets.lib.settings import Settings
    from embed_assets.lib.store import open_store

    assert Path(sys.modules["embed_assets"].__file__).is_relative_to(root)
    settings = Settings.from_env()
    seconds = {}
    for phase in PHASES:
        # The previous round's writes are flushed first, so a checkpoint never lands in a timing.
        with open_store(database_url(settings), settings) as store:
            store.execute("CHECKPOINT")
        began = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["load", str(csv), "--time-column", "snapshot_date", "--json"]) == 0
        seconds[phase] = time.perf_counter() - began
        seconds[f"{phase}_counts"] = json.loads(out.getvalue())
    with open_store(database_url(settings), settings) as store:
        store.drop_schema()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout, run in alternation")
    parser.add_argument("--round", nargs=2, metavar=("ROOT", "SCHEMA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.round:
        print(json.dumps(one_round(Path(args.round[0]), args.csv, args.round[1])))
        return
    if not args.csv.exists():
        sys.exit(f"no data file at {args.csv}; pass --csv")
    trees = {"this tree": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    home = tempfile.mkdtemp(prefix="embed_assets_load_bench_")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_ASSETS_")}
    env["EMBED_ASSETS_HOME"] = home
    results: dict[str, list[dict]] = {name: [] for name in trees}
    try:
        # Round 0 warms the server and the file's pages up, and is not counted.
        for number in range(args.repeat + 1):
            # Alternating which tree goes first, so that neither always follows the other.
            order = list(trees.items())[:: -1 if number % 2 else 1]
            for name, root in order:
                command = [sys.executable, __file__, "--csv", str(args.csv)]
                command += ["--round", str(root), f"bench_load_{number}"]
                done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
                if number == 0:
                    continue
                results[name].append(json.loads(done.stdout))
                figures = ", ".join(f"{p} {results[name][-1][p]:.2f} s" for p in PHASES)
                print(f"round {number} {name}: {figures}", flush=True)
    finally:
        subprocess.run(
            [sys.executable, "-m", "embed_assets.cli", "db", "stop"], env=env, cwd=ROOT, check=False
        )
    for name, rounds in results.items():
        print(f"{name}: counts of the last round: {rounds[-1]['first_load_counts']}")
    print(f"\nmedians of {args.repeat} rounds (s)")
    print(
        f"{'phase':<12}"
        + "".join(f"{name:>12}" for name in trees)
        + ("   ratio  paired" * (len(trees) > 1))
    )
    for phase in PHASES:
        medians = [statistics.median(r[phase] for r in results[name]) for name in trees]
        ratio = ""
        if len(medians) > 1:
            # Also the median of the rounds' own ratios: the two runs of a round saw the same load.
            paired = statistics.median(
                a[phase] / b[phase] for a, b in zip(*results.values(), strict=True)
            )
            ratio = f"   {medians[0] / medians[1]:5.2f}  {paired:6.2f}"
        print(f"{phase:<12}" + "".join(f"{m:>12.2f}" for m in medians) + ratio)


if __name__ == "__main__":
    main()
