"""The `embed-assets` command: load, sync, status, search, clusters, spaces, demo, cache, db stop.

With --json a command prints one JSON document on stdout; progress and rejected rows go to stderr.
Commands import what they use: the reading ones (status, search, clusters, spaces, cache,
collections) never import Dagster or scikit-learn, and sync imports Dagster only when there is
work. Errors are one line on stderr: exit code 2 for bad input, 1 for a failure, and `--debug`
shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from embed_assets.lib.errors import Failure, UsageError
from embed_assets.lib.search_request import MAX_K, MODES, check_request
from embed_assets.lib.settings import GITHUB_TOKEN_VARIABLE, Settings, redacted

if TYPE_CHECKING:
    from embed_assets.lib.collections import Collection
    from embed_assets.lib.sources.loader import Rejected, SourceRow

REJECTS_SHOWN = 20


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _emit(document, as_json: bool, human: str) -> None:
    print(json.dumps(document, default=str) if as_json else human)


def _time_bounds(settings: Settings) -> tuple[datetime, datetime]:
    """Rows must fall in a partition: from the partitions' start to now (plus a day of clock
    skew)."""
    earliest = datetime.combine(settings.partition_start_date, datetime.min.time(), UTC)
    return earliest, datetime.now(UTC) + timedelta(days=1)


def _report_rejects(rejected: Sequence[Rejected]) -> None:
    for reject in rejected[:REJECTS_SHOWN]:
        name = f" ({reject.full_name})" if reject.full_name else ""
        _progress(f"rejected row {reject.row}{name}: {reject.reason}")
    if len(rejected) > REJECTS_SHOWN:
        _progress(f"... and {len(rejected) - REJECTS_SHOWN} more rejected rows")


def load_rows(settings: Settings, rows: Sequence[SourceRow]) -> dict:
    from embed_assets.lib.database import database_url
    from embed_assets.lib.sources.loader import upsert_rows
    from embed_assets.lib.store import open_store

    with open_store(database_url(settings), settings) as store:
        return upsert_rows(store, rows)


def _load_github(settings: Settings, args, began: float) -> int:
    """`load --github QUERY` / `--github-starred USER`: fetch [since, until) and upsert it."""
    from embed_assets.lib.database import database_url
    from embed_assets.lib.sources.github.client import GitHubClient, GitHubError, StoreETags
    from embed_assets.lib.sources.github.load import load_github, window_qualifier_in
    from embed_assets.lib.store import open_store

    if args.time_column:
        raise UsageError(
            "--time-column applies to a file load; GitHub rows are placed by their created_at"
        )
    if args.github is not None and window_qualifier_in(args.github):
        raise UsageError(
            f"--github {args.github!r} has its own created: qualifier; give the "
            "window with --since and --until"
        )
    earliest = datetime.combine(settings.partition_start_date, datetime.min.time(), UTC)
    # Until the end of today (UTC), not this second: the same requests all day, so ETags answer.
    tomorrow = datetime.combine(
        datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC
    )
    since, until = args.since or earliest, args.until or tomorrow
    if since < earliest:
        raise UsageError(
            f"--since {since.isoformat()} is before the first partition "
            f"(EMBED_ASSETS_PARTITION_START={settings.partition_start})"
        )
    if until <= since:
        raise UsageError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    token = os.environ.get(GITHUB_TOKEN_VARIABLE) or None
    if token is None:
        _progress(
            f"warning: {GITHUB_TOKEN_VARIABLE} is not set: calling GitHub unauthenticated "
            "(10 search requests a minute, 60 requests an hour)"
        )
    source = {"query": args.github} if args.github is not None else {"starred": args.github_starred}
    what = (
        f"search {args.github!r}"
        if args.github is not None
        else f"repositories starred by {args.github_starred}"
    )
    _progress(
        f"fetching the GitHub {what} created from {since.isoformat()} to "
        f"{until.isoformat()} from {settings.github_url}"
    )
    try:
        with (
            open_store(database_url(settings), settings) as store,
            GitHubClient(token, base_url=settings.github_url, etags=StoreETags(store)) as client,
        ):
            loaded = load_github(store, client, since, until, **source)
    except GitHubError as error:
        raise UsageError(str(error)) from None
    _progress(f"{loaded.describe()} in {time.perf_counter() - began:.1f} s")
    _report_rejects(loaded.rejected)
    summary = loaded.summary()
    _emit(summary, args.json, f"{_load_report(summary)} ({time.perf_counter() - began:.1f} s)")
    return 0


def _load_report(counts: dict) -> str:
    """`loaded: inserted 1, updated 1, ...; changed: description 1, stars 0, ...`."""
    figures = ", ".join(f"{k} {v:,}" for k, v in counts.items() if not isinstance(v, (list, dict)))
    changed = ", ".join(f"{k} {v:,}" for k, v in counts["changed"].items())
    return f"loaded: {figures}; changed: {changed}"


def _collection(args) -> Collection:
    """The collection the command names (`--collection`), or the project's only one."""
    from embed_assets.lib.collections import choose_collection

    return choose_collection(getattr(args, "collection", None))


def _open(settings: Settings, collection: Collection):
    """The store of a collection."""
    from embed_assets.lib.database import database_url
    from embed_assets.lib.store import open_store

    table = collection.source_kind(settings).table_spec
    return open_store(database_url(settings), settings, table)


def _scan_files(settings: Settings, collection: Collection, args) -> int:
    """`load` of a files collection: scan its folder into the store (the sensor or `sync` then
    embeds what changed)."""
    began = time.perf_counter()
    source = collection.source_kind(settings)
    with _open(settings, collection) as store:
        scan = source.scan(store)
        rejected = store.rejected_files()
    for path, reason in rejected[:REJECTS_SHOWN]:
        _progress(f"rejected file {path}: {reason}")
    counts = dataclasses.asdict(scan) | {"rejected_files": len(rejected)}
    human = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    _emit(
        counts, args.json, f"scanned {source.root}: {human} ({time.perf_counter() - began:.1f} s)"
    )
    return 0


def cmd_load(settings: Settings, args) -> int:
    began = time.perf_counter()
    collection = _collection(args)
    kind = collection.source.get("kind")
    if kind == "files":
        return _scan_files(settings, collection, args)
    if kind != "repositories":
        raise UsageError(
            f"--collection: {args.collection} reads its own table; load fills the repositories "
            "source table"
        )
    if args.path is None and args.github is None and args.github_starred is None:
        raise UsageError("load: give a file, --github QUERY or --github-starred USER")
    if args.github is not None or args.github_starred is not None:
        if args.replace or args.prune:
            raise UsageError(
                "--replace and --prune apply to a file load; a GitHub load writes whole rows"
            )
        return _load_github(settings, args, began)
    if args.since or args.until:
        raise UsageError("--since and --until apply to --github and --github-starred")
    from embed_assets.lib.database import database_url
    from embed_assets.lib.sources.loader import read_source_file, upsert_file
    from embed_assets.lib.store import open_store

    earliest, latest = _time_bounds(settings)
    parsed = read_source_file(
        args.path, time_column=args.time_column, earliest=earliest, latest=latest
    )
    _progress(
        f"read {len(parsed.rows) + len(parsed.rejected):,} rows from {args.path} "
        f"in {time.perf_counter() - began:.1f} s; writing {len(parsed.rows):,}"
    )
    _report_rejects(parsed.rejected)
    with open_store(database_url(settings), settings) as store:
        counts = upsert_file(store, parsed, replace=args.replace, prune=args.prune)
    counts = {**counts, "rejected": len(parsed.rejected)}
    _emit(counts, args.json, f"{_load_report(counts)} ({time.perf_counter() - began:.1f} s)")
    return 0


def _sync(settings: Settings, collection: Collection, clusters: bool = True) -> dict:
    """Plan without Dagster; import it and run only when there is work."""
    from embed_assets.lib.plan import plan_sync

    _progress("reading the change log")
    source = collection.source_kind(settings)
    plan = plan_sync(settings, source, collection.by_month)
    if not plan.keys:
        return plan.idle_report()
    from embed_assets.instance import project_instance
    from embed_assets.sync import Target, sync

    with project_instance(settings) as instance:
        target = Target(collection.name, source, collection.by_month)
        return sync(
            settings, instance, clusters=clusters, progress=_progress, target=target, plan=plan
        )


def cmd_sync(settings: Settings, args) -> int:
    report = _sync(settings, _collection(args), clusters=not args.skip_clusters)
    _emit(report, args.json, "synced: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    return 0


def _status(settings: Settings, collection: Collection) -> dict:
    with _open(settings, collection) as store:
        return store.status(store.active_space())


CHECK_STATES = {True: "passed", False: "FAILED"}


def cmd_status(settings: Settings, args) -> int:
    """Counts, and every check that looks at the store evaluated over all of it (a check's
    latest run in Dagster saw only that run's partitions)."""
    from embed_assets.lib.checks import evaluate_store

    collection = _collection(args)
    with _open(settings, collection) as store:
        status = store.status(store.active_space())
        checks = evaluate_store(store, collection.name, settings.chunk_chars)
    human = (
        [f"{k:>13}  {v:,}" for k, v in status.items()]
        + ["", "checks over the whole store"]
        + [
            f"  {CHECK_STATES[c['passed']]:<7} {c['severity']:<5} {c['asset']}.{c['name']}"
            + ("" if c["passed"] else f": {c['description']}")
            for c in checks
        ]
    )
    _emit(status | {"checks": checks}, args.json, "\n".join(human))
    return 0


SNIPPET_CHARS = 160


def _show_hits(hits: list[dict]) -> str:
    """Per hit: rank, score, key and the row's metadata on one line, its best chunk's text below
    (a repository's without the name line it starts with), cut with an ellipsis."""
    lines = []
    for rank, hit in enumerate(hits, start=1):
        metadata = hit["metadata"]
        if "full_name" in hit:  # a repository: its fields by name, in a fixed order
            facts = [
                metadata.get("language") or "no language",
                f"{metadata.get('stars') or 0:,} stars",
                metadata.get("url") or "",
            ]
        else:
            facts = [f"{column} {value}" for column, value in metadata.items()]
        lines.append(
            f"{rank:>3}. {hit['score']:.3f}  {hit['key']}  " + "  ".join(f for f in facts if f)
        )
        text = hit["text"]
        if text.startswith(hit["key"] + "\n"):
            text = text[len(hit["key"]) + 1 :]
        lines.append(f"      {_snippet(text, SNIPPET_CHARS)}")
    return "\n".join(lines) or "no results"


def _snippet(text: str, limit: int) -> str:
    """The text on one line, cut at a word before `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[: cut if cut > limit // 2 else limit].rstrip(" ,.;:") + "…"


def cmd_collections(settings: Settings, args) -> int:
    """The declared collections with their counts."""
    from embed_assets.lib.collections import declared_collections

    listed = []
    for collection in declared_collections():
        status = _status(settings, collection)
        listed.append(
            {"name": collection.name, "source": collection.source}
            | {k: status[k] for k in ("rows", "chunks", "embeddings", "pending")}
        )
    human = [
        f"{c['name']:<20} {c['source'].get('kind', '?'):<13} rows {c['rows']:,}  chunks "
        f"{c['chunks']:,}  embeddings {c['embeddings']:,}  pending {c['pending']:,}"
        for c in listed
    ]
    _emit(listed, args.json, "\n".join(human) or "no collections declared")
    return 0


def _where(pairs: Sequence[str]) -> dict[str, str]:
    where = {}
    for pair in pairs:
        column, equals, value = pair.partition("=")
        if not equals or not column:
            raise UsageError(f"--where: expected COLUMN=VALUE, got {pair!r}")
        where[column] = value
    return where


def cmd_search(settings: Settings, args) -> int:
    check_request(args.query, args.k, args.mode)  # before connecting: a usage error
    from embed_assets.lib.search import search

    hits = search(
        args.query,
        args.k,
        mode=args.mode,
        min_score=args.min_score,
        feedback=not args.no_feedback,
        collection=args.collection,
        where=_where(args.where or []),
        group=args.group,
        language=args.language,
        min_stars=args.min_stars,
        settings=settings,
    )
    _emit(hits, args.json, _show_hits(hits))
    return 0


def cmd_demo(settings: Settings, args) -> int:
    from embed_assets.lib.collections import declared_collections
    from embed_assets.lib.database import database_url
    from embed_assets.lib.demo import demo_store
    from embed_assets.lib.sample import generate_repositories
    from embed_assets.lib.search import search
    from embed_assets.lib.sources.loader import SourceRow, parse_record

    collection, settings = demo_store(settings, declared_collections())
    _progress(
        f"database: {redacted(database_url(settings))}; the demo's own store: schema "
        f"{settings.schema}"
    )
    if args.reset:
        with _open(settings, collection) as store:
            emptied = store.reset()
        _progress("emptied the demo store: " + ", ".join(f"{k} {v:,}" for k, v in emptied.items()))
    _progress(f"generating {args.rows:,} sample repositories (seed 0)")
    earliest, latest = _time_bounds(settings)
    rows = []
    for number, record in enumerate(generate_repositories(args.rows, seed=0), start=1):
        parsed = parse_record(record, number, earliest=earliest, latest=latest)
        if isinstance(parsed, SourceRow):
            rows.append(parsed)
    loaded = load_rows(settings, rows)
    _progress(_load_report(loaded))
    _progress("syncing (one Dagster run over the changed partitions)...")
    report = _sync(settings, collection)
    _progress("synced: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    print("\nstatus")
    print("\n".join(f"  {k:>13}  {v:,}" for k, v in _status(settings, collection).items()))
    for query in args.query or ["vector database for similarity search", "3d game engine"]:
        print(f"\nsearch: {query!r}")
        print(_show_hits(search(query, 5, collection=collection.name, settings=settings)))
    print(
        f"\nThe demo's rows are in schema {settings.schema}, apart from your data: "
        f"EMBED_ASSETS_SCHEMA={settings.schema} embed-assets search '...' reads them, "
        "`embed-assets reset --demo --yes` empties them."
    )
    return 0


def cmd_reset(settings: Settings, args) -> int:
    """Empty one collection's store, after a confirmation (or `--yes`)."""
    if args.demo:
        from embed_assets.lib.collections import declared_collections
        from embed_assets.lib.demo import demo_store

        if args.collection:
            raise UsageError("--demo empties the demo's store; --collection names another")
        collection, settings = demo_store(settings, declared_collections())
    else:
        collection = _collection(args)
    spec = collection.source_kind(settings).table_spec
    kept = "the embedding cache is kept"
    if spec is not None:
        kept += f"; the table {spec.schema}.{spec.table} is left as it is, and the next sync "
        kept += "reads it again"
    with _open(settings, collection) as store:
        held = store.reset_counts()
        what = f"the store of collection {collection.name!r} (schema {store.schema}): " + ", ".join(
            f"{k.replace('_', ' ')} {v:,}" for k, v in held.items()
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"reset would empty {what}; give --yes to confirm")
            answer = input(f"Empty {what} ({kept})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 1
        emptied = store.reset()
    _emit(
        {"collection": collection.name, "schema": store.schema, "deleted": emptied, "kept": kept},
        args.json,
        f"emptied {collection.name}: "
        + ", ".join(f"{k} {v:,}" for k, v in emptied.items())
        + f" deleted ({kept})",
    )
    return 0


def _active_space(store):
    space = store.active_space()
    if space is None:
        raise UsageError("nothing is embedded yet: run `embed-assets sync` first")
    return space


def _cluster_json(cluster: dict) -> dict:
    return {
        "cluster_id": cluster["cluster_id"],
        "size": cluster["size"],
        "label": cluster["label"],
        "representative": cluster["representative"],
        "resolved": cluster["resolved_at"] is not None,
        "note": cluster["note"],
        "members": cluster["members"],
    }


def cmd_clusters(settings: Settings, args) -> int:
    with _open(settings, _collection(args)) as store:
        space = _active_space(store)
        action = args.clusters_command
        if action == "remove":
            from embed_assets.lib.clusters.index import refresh_clusters

            left = store.remove_cluster_member(space, args.member)
            if left is None:
                raise UsageError(f"{args.member!r} is not a member of any cluster")
            refresh_clusters(store, space, [left])
            _emit(
                {"removed": args.member, "cluster_id": left},
                args.json,
                f"removed {args.member} from cluster {left}",
            )
        elif action == "resolve":
            if not store.resolve_cluster(space, args.cluster_id, args.note):
                raise UsageError(f"no cluster {args.cluster_id} in space {space.name!r}")
            _emit(
                {"cluster_id": args.cluster_id, "resolved": True, "note": args.note},
                args.json,
                f"cluster {args.cluster_id} resolved: {args.note}",
            )
        elif action == "show":
            found = [
                c
                for c in store.list_clusters(space, limit=10**9, members=0)
                if c["cluster_id"] == args.cluster_id
            ]
            if not found:
                raise UsageError(f"no cluster {args.cluster_id} in space {space.name!r}")
            cluster = _cluster_json(found[0]) | {
                "members": store.cluster_members(space, args.cluster_id)
            }
            human = [
                f"cluster {cluster['cluster_id']}: {cluster['label']} ({cluster['size']} members)"
            ]
            human += [
                f"  {m['similarity']:.3f}  {m['key']}"
                + (
                    f"  near-duplicate of {', '.join(m['near_duplicate_of'])}"
                    if m["near_duplicate_of"]
                    else ""
                )
                for m in cluster["members"]
            ]
            _emit(cluster, args.json, "\n".join(human))
        elif args.duplicates:
            groups = store.list_duplicate_groups(space, args.limit, _cluster_group(store, args))
            human = [
                f"{g['group']}  ({g['size']} rows)\n"
                + "\n".join(f"  {m['similarity']:.3f}  {m['key']}" for m in g["members"])
                for g in groups
            ]
            _emit(groups, args.json, "\n".join(human) or "no near-duplicates")
        else:
            listed = store.list_clusters(
                space, args.limit, args.members, _cluster_group(store, args)
            )
            clusters = [_cluster_json(c) for c in listed]
            human = [
                f"{c['cluster_id']:>6}  {c['size']:>5}  {c['label']:<40} "
                f"{', '.join(c['members'][:4])}"
                for c in clusters
            ]
            _emit(clusters, args.json, "\n".join(human) or "no clusters yet")
    return 0


def _cluster_group(store, args) -> str | None:
    """`--group`: only valid for a collection with a group_by column."""
    if args.group is not None and (store.table_spec is None or store.table_spec.group_by is None):
        raise UsageError(f"--group: the collection {_collection(args).name} has no group_by")
    return args.group


def cmd_spaces(settings: Settings, args) -> int:
    """Embedding spaces: a new model or dimensions fill a new space (by `sync` or a backfill)
    while searches keep using the active one, until it is activated."""
    collection = _collection(args)
    with _open(settings, collection) as store:
        action = args.spaces_command
        if action == "activate":
            listed = {s["name"]: s for s in store.list_spaces()}
            pending = listed.get(args.name, {}).get("pending", 0)
            if pending and not args.force:
                raise UsageError(
                    f"space {args.name!r} still has {pending:,} chunks without a "
                    "vector: sync first, or --force to switch anyway"
                )
            store.activate_space(args.name)
        elif action == "drop":
            store.drop_space(args.name)
        spaces = store.list_spaces()
    if action == "activate" and not args.no_clusters:
        _progress("building the cluster index of the newly active space (a Dagster run)")
        from embed_assets.instance import project_instance
        from embed_assets.sync import Target, materialise_cluster_index

        with project_instance(settings) as instance:
            materialise_cluster_index(settings, instance, Target.of(collection, settings))
    human = [
        f"{'*' if s['active'] else ' '} {s['name']:<40} {s['embeddings']:>9,} vectors "
        f"{s['pending']:>9,} pending  {s['model']} ({s['dimensions']} dimensions)"
        for s in spaces
    ]
    _emit(spaces, args.json, "\n".join(human) or "no embedding space yet")
    return 0


def cmd_cache(settings: Settings, args) -> int:
    """The cache every collection shares: opened through the one named, or any."""
    from embed_assets.lib.collections import declared_collections

    if args.collection is None and len(declared := declared_collections()) > 1:
        collection = declared[0]
    else:
        collection = _collection(args)
    with _open(settings, collection) as store:
        if args.cache_command == "clear":
            removed = store.cache_clear()
            _emit({"removed": removed}, args.json, f"removed {removed:,} cached embeddings")
            return 0
        stats = store.cache_stats()
    _emit(stats, args.json, "\n".join(f"{k:>9}  {v:,}" for k, v in stats.items()))
    return 0


def cmd_db_sql(settings: Settings, args) -> int:
    """Plain SQL against the project's database (the embedded one needs no client), as any
    writer of a source table would send it: the change triggers see it like any other."""
    from embed_assets.lib.database import database_url
    from embed_assets.lib.store import catalog_store

    with catalog_store(database_url(settings), settings) as store:
        cursor = store.execute(args.statements)
        rows = cursor.fetchall() if cursor.description else []
    _emit(
        [list(row) for row in rows] if rows else {"rows": cursor.rowcount},
        args.json,
        "\n".join(" | ".join(map(str, row)) for row in rows)
        or (f"{cursor.rowcount} rows" if cursor.rowcount >= 0 else "done"),
    )
    return 0


def cmd_db_stop(settings: Settings, args) -> int:
    from embed_assets.lib.database import stop_embedded

    stopped = stop_embedded(settings.home)
    print(
        "stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL is not running"
    )
    return 0


def _utc_time(text: str) -> datetime:
    """A date or an ISO time in whole seconds; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date or time: {text!r} (e.g. 2020-01-31 or 2020-01-31T12:00:00Z)"
        ) from None
    if value.microsecond:
        raise argparse.ArgumentTypeError(f"{text!r}: whole seconds only")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit code 2 (argparse's own: usage text, then the error)."""

    def error(self, message: str):
        self.exit(2, f"embed-assets: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="embed-assets", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error, not one line (anywhere on the command line)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "load",
        help="upsert repository rows from CSV, JSON Lines or Parquet, or from GitHub's REST API; "
        "for a files collection, scan its folder",
    )
    source = load.add_mutually_exclusive_group()
    source.add_argument("path", nargs="?", help="a .csv, .jsonl/.ndjson or .parquet file")
    source.add_argument(
        "--github",
        metavar="QUERY",
        help="a GitHub repository search (e.g. 'language:rust stars:>100'; '' for "
        "all), over the repositories created in [--since, --until)",
    )
    source.add_argument(
        "--github-starred",
        metavar="USER",
        help="the repositories USER starred (@me: the token's owner), kept when "
        "created in [--since, --until)",
    )
    load.add_argument(
        "--time-column",
        help="column giving each row's time (default: created_at when present; else stored rows "
        "keep theirs and new ones get the load time)",
    )
    load.add_argument(
        "--replace",
        action="store_true",
        help="the file is the whole truth for the rows it names: its empty values and missing "
        "columns clear theirs (default: they keep what is stored)",
    )
    load.add_argument(
        "--prune",
        action="store_true",
        help="delete the rows of the source table that the file does not name",
    )
    load.add_argument(
        "--since",
        type=_utc_time,
        metavar="DATE",
        help="with --github*: first creation time, inclusive (default: "
        "EMBED_ASSETS_PARTITION_START)",
    )
    load.add_argument(
        "--until",
        type=_utc_time,
        metavar="DATE",
        help="with --github*: last creation time, exclusive (default: the end of today, UTC)",
    )
    load.set_defaults(run=cmd_load)

    sync = commands.add_parser(
        "sync",
        help="materialise every partition whose source rows "
        "changed, and the cluster index, in one Dagster run",
    )
    sync.add_argument(
        "--skip-clusters", action="store_true", help="leave the cluster index out of the run"
    )
    sync.set_defaults(run=cmd_sync)

    status = commands.add_parser("status", help="row counts and pending chunks")
    status.set_defaults(run=cmd_status)

    collections = commands.add_parser(
        "collections", help="the collections the project declares, with their counts"
    )
    collections.set_defaults(run=cmd_collections)

    search_parser = commands.add_parser(
        "search", help="hybrid (vectors + words), vector or full-text search of a collection"
    )
    search_parser.add_argument("query")
    search_parser.add_argument(
        "-k", type=int, default=10, help=f"how many distinct rows, 1 to {MAX_K} (default 10)"
    )
    search_parser.add_argument(
        "--mode",
        choices=MODES,
        default="hybrid",
        help="hybrid (default): vector and word rankings fused; vector: cosine similarity of "
        "the embeddings; text: PostgreSQL full-text match",
    )
    search_parser.add_argument(
        "--min-score",
        type=float,
        help="drop weak hits: in vector mode those whose score (cosine similarity, -1..1) is "
        "below this, in text mode those whose word-match rank (0..1) is; in hybrid mode those "
        "whose cosine similarity is below it unless they hold the query's words",
    )
    search_parser.add_argument(
        "--no-feedback",
        action="store_true",
        help="rank by the query's vector alone, not moved towards its best rows "
        "(pseudo-relevance feedback, the default in vector and hybrid modes)",
    )
    search_parser.add_argument(
        "--where",
        action="append",
        metavar="COLUMN=VALUE",
        help="only rows whose metadata column has this value (repeatable: all of them)",
    )
    search_parser.add_argument("--group", help="only rows of this group (the group_by column)")
    search_parser.add_argument("--language", help="only repositories in this language")
    search_parser.add_argument(
        "--min-stars", type=int, help="only repositories with this many stars"
    )
    search_parser.set_defaults(run=cmd_search)

    demo = commands.add_parser(
        "demo", help="load a generated sample, sync, show status and a search"
    )
    demo.add_argument("--rows", type=int, default=2000)
    demo.add_argument("--query", action="append", help="search to show (repeatable)")
    demo.add_argument(
        "--reset", action="store_true", help="empty the demo's store first (nothing else)"
    )
    demo.set_defaults(run=cmd_demo)

    reset = commands.add_parser(
        "reset",
        help="empty one collection's store: its source rows (a repositories collection's), "
        "chunks, vectors, clusters and change log; never the embedding cache or your own table",
    )
    reset.add_argument("--yes", action="store_true", help="do not ask first")
    reset.add_argument(
        "--demo", action="store_true", help="the demo's store (see `embed-assets demo`)"
    )
    reset.set_defaults(run=cmd_reset)

    clusters = commands.add_parser(
        "clusters",
        help="clusters of similar repositories, largest first (or show, remove a member, resolve)",
    )
    clusters.add_argument("--limit", type=int, default=50, help="how many clusters (default 50)")
    clusters.add_argument(
        "--members",
        type=int,
        default=20,
        help="member names per cluster, most similar first (default 20)",
    )
    clusters.add_argument(
        "--group", help="only the clusters of this group (the collection's group_by column)"
    )
    clusters.add_argument(
        "--duplicates",
        action="store_true",
        help="near-duplicate groups (rows at EMBED_ASSETS_NEAR_DUPLICATE_THRESHOLD or more) "
        "instead of topic clusters, largest first",
    )
    clusters.set_defaults(run=cmd_clusters, clusters_command="list")
    cluster_commands = clusters.add_subparsers(dest="clusters_command")
    show = cluster_commands.add_parser("show", help="one cluster with all its members")
    show.add_argument("cluster_id", type=int)
    remove = cluster_commands.add_parser("remove", help="take a repository out of its cluster")
    remove.add_argument("member", help="owner/name")
    resolve = cluster_commands.add_parser("resolve", help="mark a cluster as handled")
    resolve.add_argument("cluster_id", type=int)
    resolve.add_argument("--note", required=True)
    for sub in (show, remove, resolve):
        sub.set_defaults(run=cmd_clusters)

    spaces = commands.add_parser(
        "spaces",
        help="embedding spaces (model + dimensions) with "
        "counts; the active one (*) answers searches",
    )
    spaces.set_defaults(run=cmd_spaces, spaces_command="list")
    space_commands = spaces.add_subparsers(dest="spaces_command")
    activate = space_commands.add_parser("activate", help="make a space the one searches use")
    activate.add_argument("name")
    activate.add_argument(
        "--force", action="store_true", help="even with chunks still pending in it"
    )
    activate.add_argument(
        "--no-clusters", action="store_true", help="do not build its cluster index now"
    )
    drop = space_commands.add_parser("drop", help="remove a space that is not active")
    drop.add_argument("name")
    for sub in (activate, drop):
        sub.set_defaults(run=cmd_spaces)

    cache = commands.add_parser("cache", help="the embedding cache shared by all runs")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    cache_stats = cache_commands.add_parser("stats", help="entries, hits, misses, hit rate")
    cache_clear = cache_commands.add_parser("clear", help="remove every cached embedding")
    for sub in (cache_stats, cache_clear):
        sub.set_defaults(run=cmd_cache)

    db = commands.add_parser("db", help="the embedded PostgreSQL")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("stop", help="stop the embedded server").set_defaults(run=cmd_db_stop)
    db_sql = db_commands.add_parser("sql", help="run SQL statements against the database")
    db_sql.add_argument("statements", help="one or more statements, `;` between them")
    db_sql.set_defaults(run=cmd_db_sql)

    for sub in (load, sync, status, search_parser, clusters, reset, spaces):
        sub.add_argument(
            "--collection",
            help="the collection (a defs.yaml of the project); the default when there is one",
        )
    for sub in (cache_stats, cache_clear):
        sub.add_argument(
            "--collection", help="open the shared cache through this collection's store"
        )
    for sub in (
        load,
        sync,
        status,
        collections,
        search_parser,
        demo,
        reset,
        cache_stats,
        cache_clear,
        clusters,
        show,
        remove,
        resolve,
        db_sql,
        spaces,
        activate,
        drop,
    ):
        sub.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return parser


def _error(message: str, code: int) -> int:
    print(f"embed-assets: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line, not only before the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    if not hasattr(args, "json"):
        args.json = False
    try:
        return args.run(Settings.from_env(), args)
    except UsageError as error:
        if debug:
            raise
        return _error(str(error), 2)
    except Failure as error:
        if debug:
            raise
        return _error(str(error), 1)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except Exception as error:  # noqa: BLE001 - one line unless --debug; a bug all the same
        if debug:
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        return _error(
            f"{type(error).__name__}: {first} (run again with --debug for the traceback)", 1
        )


if __name__ == "__main__":
    sys.exit(main())
