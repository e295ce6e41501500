"""Scale-out: N Dagster runs at once over disjoint months against one PostgreSQL, calling one slow
OpenAI-compatible server (in this process) that counts the tokens it receives, all drawing on one
shared tokens-per-minute budget; launched two ways, side by side.

    .venv/bin/python benchmarks/scale_out.py [--rows 6000] [--latency 0.5] [--tpm 2400000]
                          [--repeats 3] [--counts 1,2,4] [--modes processes,queue]

For each N: a fresh schema holds the same generated rows of 2024, chunked beforehand; then N runs
materialise `repositories/embeddings` over N disjoint ranges of months that cover the year with
about equal numbers of chunks. Both modes use a DAGSTER_HOME whose dagster.yaml is the project's,
with the run queue's limits (all runs, backfill runs) and the `embedding_provider` pool set to N.
- processes: N `dagster asset materialize --partition-range` processes, started at once.
- queue: a `dagster-daemon run` (started before the clock starts, stopped after), and N backfills
  launched as the UI launches them (benchmarks/run_queue.py); the daemon's backfill tick creates
  the runs, its run queue starts them, each in its own process (DefaultRunLauncher).
Printed per N and mode (the median of the repeats, which alternate the modes): texts/s at the
server (texts received over the time from the first to the last request, which includes the
seconds when the first run has started and the others not yet), the peak over any 10 s window
(every run sending) in texts/s and tokens per minute, and the wall time from the start (the
submission) until every run has succeeded; then the ratios queue/processes. The budget line is the
tokens-per-minute limit, and the texts/s it allows at the texts' mean token count.
Needs no network: an embedded PostgreSQL (pgserver) unless EMBED_ASSETS_DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from benchmarks import run_queue  # noqa: E402
from embed_assets.lib import pipeline  # noqa: E402
from embed_assets.lib.database import database_url, stop_embedded  # noqa: E402
from embed_assets.lib.providers import estimate_tokens  # noqa: E402
from embed_assets.lib.sample import generate_repositories  # noqa: E402
from embed_assets.lib.settings import Settings  # noqa: E402
from embed_assets.lib.sources.loader import SourceRow, parse_record, upsert_rows  # noqa: E402
from embed_assets.lib.store import open_store  # noqa: E402
from embed_assets_tests.provider_servers import FakeEmbeddingServer  # noqa: E402

YEAR = 2024
COUNTS = (1, 2, 4)
WINDOW = 10.0  # seconds: the peak rate, once every run of N is sending


def month(m: int) -> datetime:
    return datetime(YEAR + (m - 1) // 12, (m - 1) % 12 + 1, 1, tzinfo=UTC)


def ranges(chunks_per_month: list[int], n: int) -> list[tuple[int, int]]:
    """n consecutive ranges of months (first, last) covering the year, each with about 1/n of
    the chunks (the generated volume grows over the year: equal months would be unequal work)."""
    total, bounds, done = sum(chunks_per_month), [], 0
    first = 1
    for m, count in enumerate(chunks_per_month, start=1):
        done += count
        if len(bounds) < n - 1 and done >= total * (len(bounds) + 1) / n and m < 12:
            bounds.append((first, m))
            first = m + 1
    return [*bounds, (first, 12)]


def prepare(url: str, schema: str, rows: int) -> tuple[Settings, list[int]]:
    """A schema with the rows of YEAR loaded, normalised and chunked: only embedding is left.
    Returns its settings and the chunks of each month."""
    settings = Settings(database_url=url, schema=schema)
    records = generate_repositories(
        rows, seed=7, start=datetime(YEAR, 1, 1).date(), end=datetime(YEAR, 12, 31).date()
    )
    parsed = [parse_record(r, i) for i, r in enumerate(records)]
    start, end = datetime(YEAR, 1, 1, tzinfo=UTC), datetime(YEAR + 1, 1, 1, tzinfo=UTC)
    with open_store(url, settings) as store:
        upsert_rows(store, [r for r in parsed if isinstance(r, SourceRow)])
        pipeline.sync_rows(store, start, end)
        pipeline.sync_chunks(store, start, end, settings.chunk_chars, settings.chunk_overlap)
        counts = [store.count_in_window("chunks", month(m), month(m + 1)) for m in range(1, 13)]
    return settings, counts


def busiest(server: FakeEmbeddingServer, window: float) -> tuple[float, float]:
    """The most texts per second, and tokens per minute, the server received in any `window`
    seconds starting at a request."""
    arrivals = sorted(
        (r.arrived, len(r.texts), sum(map(estimate_tokens, r.texts)))
        for r in server.requests
        if r.status == 200
    )
    texts = tokens = 0.0
    for a, _, _ in arrivals:
        inside = [(n, t) for b, n, t in arrivals if a <= b < a + window]
        texts = max(texts, sum(n for n, _ in inside) / window)
        tokens = max(tokens, sum(t for _, t in inside) * 60 / window)
    return texts, tokens


EMBEDDINGS = dg.AssetKey(["repositories", "embeddings"])


def month_keys(first: int, last: int) -> list[str]:
    return [f"{YEAR}-{m:02d}-01" for m in range(first, last + 1)]


@contextmanager
def separate_processes(env: dict[str, str], n: int) -> Iterator[Callable]:
    """N `dagster asset materialize` processes, one per range, each its own run."""

    def run(spans: list[tuple[int, int]]) -> dict:
        runs = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "embed_assets.definitions",
                    "--select",
                    EMBEDDINGS.to_user_string(),
                    "--partition-range",
                    f"{YEAR}-{first:02d}-01...{YEAR}-{last:02d}-01",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for first, last in spans
        ]
        for process in runs:
            err = process.stderr.read()
            if process.wait() != 0:
                raise SystemExit(f"a run failed:\n{err[-3000:]}")
        return {}

    yield run


@contextmanager
def queued_runs(env: dict[str, str], n: int) -> Iterator[Callable]:
    """A daemon (started before the clock starts) and N backfills submitted to its queue."""
    os.environ.update(env)  # the workspace this process loads to launch the backfills
    with (
        dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance,
        run_queue.backfill_launcher(instance) as launch,
        run_queue.running_daemon(instance, env),
    ):

        def run(spans: list[tuple[int, int]]) -> dict:
            ids = [launch(EMBEDDINGS, month_keys(first, last)) for first, last in spans]
            return run_queue.wait_for_backfills(instance, ids)

        yield run


MODES = {"processes": separate_processes, "queue": queued_runs}


def run_once(url: str, n: int, args: argparse.Namespace, home: Path, mode: str) -> dict:
    schema = f"scale_{n}_{uuid.uuid4().hex[:6]}"
    settings, counts = prepare(url, schema, args.rows)
    with FakeEmbeddingServer(dimensions=args.dimensions, latency=args.latency) as server:
        env = os.environ | {
            "DAGSTER_HOME": str(home),
            "EMBED_ASSETS_DATABASE_URL": url,
            "EMBED_ASSETS_SCHEMA": schema,
            "EMBED_ASSETS_PARTITION_START": f"{YEAR}-01-01",
            "EMBED_ASSETS_PROVIDER": "openai_compatible",
            "EMBED_ASSETS_BASE_URL": server.openai_url,
            "EMBED_ASSETS_MODEL": "bench",
            "EMBED_ASSETS_DIMENSIONS": str(args.dimensions),
            "EMBED_ASSETS_BATCH_SIZE": str(args.batch_size),
            "EMBED_ASSETS_MAX_CONCURRENCY": str(args.concurrency),
            "EMBED_ASSETS_TOKENS_PER_MINUTE": str(args.tpm),
        }
        with MODES[mode](env, n) as run:
            began = time.perf_counter()
            result = run(ranges(counts, n))
            wall = time.perf_counter() - began
        ok = [r for r in server.requests if r.status == 200]
        texts = sum(len(r.texts) for r in ok)
        tokens = sum(estimate_tokens(t) for r in ok for t in r.texts)
        span = max(r.arrived for r in ok) - min(r.arrived for r in ok)
        peak_texts, peak_tokens = busiest(server, WINDOW)
        largest = max(sum(map(estimate_tokens, r.texts)) for r in ok)
        result |= {
            # What the budget allows in any WINDOW: its share, plus one request (the burst).
            "bound_tokens_per_minute": (args.tpm * WINDOW / 60 + largest) * 60 / WINDOW,
            "texts": texts,
            "texts_per_second": texts / span,
            "peak_texts_per_second": peak_texts,
            "peak_tokens_per_minute": peak_tokens,
            "wall": wall,
            "tokens_per_text": tokens / texts,
        }
    with open_store(url, settings) as store:
        pending = store.status(store.active_space())["pending"]  # 0: every chunk was embedded
        store.drop_schema()
    result["pending"] = pending
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--tpm", type=int, default=2_400_000, help="shared tokens per minute")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight per run")
    parser.add_argument("--dimensions", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--counts", default="1,2,4", help="numbers of runs at once")
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)}")
    args = parser.parse_args()
    embedded = None if os.environ.get("EMBED_ASSETS_DATABASE_URL") else Path(tempfile.mkdtemp())
    url = os.environ.get("EMBED_ASSETS_DATABASE_URL") or database_url(Settings(home=embedded))
    os.environ["EMBED_ASSETS_DATABASE_URL"] = url
    print(
        f"command: .venv/bin/python benchmarks/scale_out.py --rows {args.rows} --latency "
        f"{args.latency} --tpm {args.tpm} --batch-size {args.batch_size} --concurrency "
        f"{args.concurrency} --dimensions {args.dimensions} --repeats {args.repeats} "
        f"--counts {args.counts} --modes {args.modes}"
    )
    print(
        f"server: {args.latency * 1000:.0f} ms per request; each run: batches of "
        f"{args.batch_size}, {args.concurrency} in flight; shared budget {args.tpm:,} tokens/min"
    )
    try:
        report(url, args)
    finally:
        if embedded is not None:
            stop_embedded(embedded)


def report(url: str, args: argparse.Namespace) -> None:
    modes = args.modes.split(",")
    for n in map(int, args.counts.split(",")):
        # Both modes' DAGSTER_HOMEs: the production dagster.yaml with the run queue's limits set
        # to N. Their storage is the same database, so the pool's N slots are both modes'.
        home = Path(tempfile.mkdtemp(prefix=f"scale_out_dagster_{n}_"))
        run_queue.write_home(home, n)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run_queue.set_pool(instance, n)
        # The modes alternate within each repeat, so that both see the same load of the machine.
        results = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                results[mode].append(run_once(url, n, args, home, mode))
        medians = {mode: median_of(rs) for mode, rs in results.items()}
        for mode in modes:
            print(summary(n, mode, results[mode], medians[mode], args.tpm))
        if len(modes) == 2:
            first, second = (medians[m] for m in modes)
            print(
                f"N={n} {modes[1]}/{modes[0]}: texts/s "
                f"{second['texts_per_second'] / first['texts_per_second']:.2f}, wall "
                f"{second['wall'] / first['wall']:.2f}"
            )


def median_of(results: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in results) for k in results[0] if k != "pending"}


def summary(n: int, mode: str, results: list[dict], median: dict, tpm: int) -> str:
    budget_texts = tpm / 60 / median["tokens_per_text"]
    queued = (
        f" (the last run created by the backfill daemon {median['created']:.1f} s after the "
        f"submission)"
        if "created" in median
        else ""
    )
    return (
        f"N={n} {mode}: {median['texts_per_second']:,.0f} texts/s first to last request, peak "
        f"{median['peak_texts_per_second']:,.0f} texts/s and "
        f"{median['peak_tokens_per_minute']:,.0f} tokens/min in {WINDOW:.0f} s (highest of "
        f"the repeats {max(r['peak_tokens_per_minute'] for r in results):,.0f}; the "
        f"bound, budget + one request: {median['bound_tokens_per_minute']:,.0f}); wall "
        f"{median['wall']:.1f} s{queued} for {median['texts']:,.0f} texts; budget {tpm:,} "
        f"tokens/min = {budget_texts:,.0f} texts/s; pending after: "
        f"{[r['pending'] for r in results]}; texts/s of each repeat "
        f"{[round(r['texts_per_second']) for r in results]}; wall of each repeat "
        f"{[round(r['wall'], 1) for r in results]}"
    )


if __name__ == "__main__":
    main()
