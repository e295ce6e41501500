"""Throughput of an HTTP provider with default settings against an OpenAI-compatible server that
takes 100 ms per request (the fake server of the tests, in this process, on 127.0.0.1).

    .venv/bin/python benchmarks/provider_http.py [--latency 0.1] [--dimensions 384]

Texts: the 24,399 real repositories of ../shared/data/github_repos.csv, loaded and rendered as the
pipeline does (`repository_text`), or as many generated ones when the file is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from embed_assets.lib.providers import build_provider  # noqa: E402
from embed_assets.lib.sample import generate_repositories  # noqa: E402
from embed_assets.lib.settings import Settings  # noqa: E402
from embed_assets.lib.sources.loader import read_source_file  # noqa: E402
from embed_assets.lib.text import repository_text  # noqa: E402
from embed_assets_tests.provider_servers import FakeEmbeddingServer  # noqa: E402

REAL_FILE = ROOT.parent / "shared" / "data" / "github_repos.csv"
COUNT = 24_399


def texts() -> tuple[list[str], str]:
    if REAL_FILE.exists():
        rows = [
            asdict(row) for row in read_source_file(REAL_FILE, time_column="snapshot_date").rows
        ]
        source = str(REAL_FILE)
    else:
        rows = generate_repositories(COUNT)
        source = f"{COUNT:,} generated repositories"
    return [
        repository_text(r["full_name"], r["description"], r["language"], r["topics"], r["readme"])
        for r in rows
    ], source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    parser.add_argument("--dimensions", type=int, default=384)
    args = parser.parse_args()
    inputs, source = texts()
    with (
        FakeEmbeddingServer(dimensions=args.dimensions, latency=args.latency) as server,
        build_provider(
            Settings(provider="openai_compatible", base_url=server.openai_url, model="bench")
        ) as provider,
    ):
        began = time.perf_counter()
        vectors = provider.embed(inputs)
        seconds = time.perf_counter() - began
        metrics = provider.metrics.snapshot()
    assert vectors.shape == (len(inputs), args.dimensions)
    print(
        f"command: .venv/bin/python benchmarks/provider_http.py --latency {args.latency} "
        f"--dimensions {args.dimensions}"
    )
    print(f"texts: {len(inputs):,} from {source}")
    print(
        f"server: {args.latency * 1000:.0f} ms per request; provider defaults: batch "
        f"{provider.batch_size}, {provider.max_concurrency} requests in flight "
        f"(server saw at most {server.max_in_flight})"
    )
    print(
        f"{len(inputs) / seconds:,.0f} texts/s ({seconds:.2f} s; {metrics['provider_calls']} "
        f"requests, p50 {metrics['latency_p50_ms']:.0f} ms, p95 {metrics['latency_p95_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
