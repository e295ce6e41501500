"""The `embed-assets` command: load, sync, status, search, clusters, spaces, demo, cache, db stop.

With --json a command prints one JSON document on stdout; progress and rejected rows go to stderr.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from embed_assets.lib.clusters.index import refresh_clusters
from embed_assets.lib.collections import (
    Collection,
    CollectionError,
    choose_collection,
    declared_collections,
)
from embed_assets.lib.database import database_url, redact, stop_embedded
from embed_assets.lib.search import search
from embed_assets.lib.settings import GITHUB_TOKEN_VARIABLE, SettingError, Settings
from embed_assets.lib.sources.github.client import GitHubClient, GitHubError, StoreETags
from embed_assets.lib.sources.github.load import ME, load_github, window_qualifier_in
from embed_assets.lib.sources.loader import (
    LoaderError,
    Rejected,
    SourceRow,
    parse_record,
    read_source_file,
    upsert_rows,
)
from embed_assets.lib.store import StoreError, catalog_store, open_store

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
    with open_store(database_url(settings), settings) as store:
        return upsert_rows(store, rows)


def _load_error(message: str) -> int:
    print(f"embed-assets: error: {message}", file=sys.stderr)
    return 2


def _load_github(settings: Settings, args, began: float) -> int:
    """`load --github QUERY` / `--github-starred USER`: fetch [since, until) and upsert it."""
    if args.time_column:
        return _load_error(
            "--time-column applies to a file load; GitHub rows are placed by their created_at"
        )
    if args.github is not None and window_qualifier_in(args.github):
        return _load_error(
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
        return _load_error(
            f"--since {since.isoformat()} is before the first partition "
            f"(EMBED_ASSETS_PARTITION_START={settings.partition_start})"
        )
    if until <= since:
        return _load_error(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
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
        return _load_error(str(error))
    _progress(f"{loaded.describe()} in {time.perf_counter() - began:.1f} s")
    _report_rejects(loaded.rejected)
    summary = loaded.summary()
    human = ", ".join(f"{k} {v:,}" for k, v in summary.items() if not isinstance(v, list))
    _emit(summary, args.json, f"loaded: {human} ({time.perf_counter() - began:.1f} s)")
    return 0


def _collection(args) -> Collection:
    """The collection the command names (`--collection`), or the project's only one."""
    return choose_collection(getattr(args, "collection", None))


def _open(settings: Settings, collection: Collection):
    """The store of a collection."""
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
        return _load_error(
            f"--collection: {args.collection} reads its own table; load fills the repositories "
            "source table"
        )
    if args.path is None and args.github is None and args.github_starred is None:
        return _load_error("load: give a file, --github QUERY or --github-starred USER")
    if args.github is not None or args.github_starred is not None:
        return _load_github(settings, args, began)
    if args.since or args.until:
        return _load_error("--since and --until apply to --github and --github-starred")
    earliest, latest = _time_bounds(settings)
    parsed = read_source_file(
        args.path, time_column=args.time_column, earliest=earliest, latest=latest
    )
    _progress(
        f"read {len(parsed.rows) + len(parsed.rejected):,} rows from {args.path} "
        f"in {time.perf_counter() - began:.1f} s; writing {len(parsed.rows):,}"
    )
    _report_rejects(parsed.rejected)
    counts = load_rows(settings, parsed.rows)
    counts["rejected"] = len(parsed.rejected)
    _emit(
        counts,
        args.json,
        "loaded: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f" ({time.perf_counter() - began:.1f} s)",
    )
    return 0


def _sync(settings: Settings, collection: Collection, clusters: bool = True) -> dict:
    from embed_assets.instance import project_instance
    from embed_assets.sync import Target, sync

    with project_instance(settings) as instance:
        target = Target.of(collection, settings)
        return sync(settings, instance, clusters=clusters, progress=_progress, target=target)


def cmd_sync(settings: Settings, args) -> int:
    report = _sync(settings, _collection(args), clusters=not args.skip_clusters)
    _emit(report, args.json, "synced: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    return 0


def _status(settings: Settings, collection: Collection) -> dict:
    with _open(settings, collection) as store:
        return store.status(store.active_space())


def cmd_status(settings: Settings, args) -> int:
    from embed_assets.components.checks import latest_results
    from embed_assets.instance import project_instance
    from embed_assets.sync import Target

    collection = _collection(args)
    status = _status(settings, collection)
    definitions = Target.of(collection, settings).definitions(settings)
    with project_instance(settings) as instance:  # the latest result of every asset check
        checks = latest_results(instance, definitions.resolve_asset_graph().asset_check_keys)
    human = (
        [f"{k:>13}  {v:,}" for k, v in status.items()]
        + ["", "checks"]
        + [
            f"  {({True: 'passed', False: 'FAILED', None: 'not run'})[c['passed']]:<7} "
            f"{c['severity'] or '':<5} {c['asset']}.{c['name']}"
            + (f"  ({c['partition']})" if c["partition"] else "")
            for c in checks
        ]
    )
    _emit(status | {"checks": checks}, args.json, "\n".join(human))
    return 0


def _show_hits(hits: list[dict]) -> str:
    lines = []
    for hit in hits:
        first_line = hit["text"].split("\n", 2)[1] if "\n" in hit["text"] else ""
        lines.append(f"{hit['score']:.3f}  {hit['key']:<45} {first_line[:70]}")
    return "\n".join(lines) or "no results"


def cmd_collections(settings: Settings, args) -> int:
    """The declared collections with their counts."""
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
            raise CollectionError(f"--where: expected COLUMN=VALUE, got {pair!r}")
        where[column] = value
    return where


def cmd_search(settings: Settings, args) -> int:
    hits = search(
        args.query,
        args.k,
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
    from embed_assets.lib.sample import generate_repositories

    _progress(f"database: {redact(database_url(settings))}")
    _progress(f"generating {args.rows:,} sample repositories (seed 0)")
    earliest, latest = _time_bounds(settings)
    rows = []
    for number, record in enumerate(generate_repositories(args.rows, seed=0), start=1):
        parsed = parse_record(record, number, earliest=earliest, latest=latest)
        if isinstance(parsed, SourceRow):
            rows.append(parsed)
    loaded = load_rows(settings, rows)
    _progress("loaded: " + ", ".join(f"{k} {v:,}" for k, v in loaded.items()))
    _progress("syncing (one Dagster run over the changed partitions)...")
    collection = _collection(args)
    report = _sync(settings, collection)
    _progress("synced: " + ", ".join(f"{k} {v}" for k, v in report.items()))
    print("\nstatus")
    print("\n".join(f"  {k:>13}  {v:,}" for k, v in _status(settings, collection).items()))
    for query in args.query or ["vector database for similarity search", "3d game engine"]:
        print(f"\nsearch: {query!r}")
        print(_show_hits(search(query, 5, settings=settings)))
    return 0


def _active_space(store):
    space = store.active_space()
    if space is None:
        raise StoreError("nothing is embedded yet: run `embed-assets sync` first")
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
            left = store.remove_cluster_member(space, args.member)
            if left is None:
                raise StoreError(f"{args.member!r} is not a member of any cluster")
            refresh_clusters(store, space, [left], near_duplicate=settings.near_duplicate_threshold)
            _emit(
                {"removed": args.member, "cluster_id": left},
                args.json,
                f"removed {args.member} from cluster {left}",
            )
        elif action == "resolve":
            if not store.resolve_cluster(space, args.cluster_id, args.note):
                raise StoreError(f"no cluster {args.cluster_id} in space {space.name!r}")
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
                raise StoreError(f"no cluster {args.cluster_id} in space {space.name!r}")
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
        else:
            clusters = [
                _cluster_json(c) for c in store.list_clusters(space, args.limit, args.members)
            ]
            human = [
                f"{c['cluster_id']:>6}  {c['size']:>5}  {c['label']:<40} "
                f"{', '.join(c['members'][:4])}"
                for c in clusters
            ]
            _emit(clusters, args.json, "\n".join(human) or "no clusters yet")
    return 0


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
                raise StoreError(
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embed-assets", description=__doc__.split("\n")[0])
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
        help=f"the repositories USER starred ({ME}: the token's owner), kept when "
        "created in [--since, --until)",
    )
    load.add_argument(
        "--time-column",
        help="column giving each row's time (default: created_at when present, else the load time)",
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

    search_parser = commands.add_parser("search", help="similarity search over the embeddings")
    search_parser.add_argument("query")
    search_parser.add_argument("-k", type=int, default=10, help="how many results (default 10)")
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
    demo.set_defaults(run=cmd_demo)

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

    for sub in (load, sync, status, search_parser, clusters, spaces):
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


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    args = build_parser().parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    try:
        return args.run(Settings.from_env(), args)
    except (SettingError, LoaderError, StoreError, CollectionError) as error:
        print(f"embed-assets: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the sync's run failure and the like, said plainly
        from embed_assets.sync import SyncError

        if isinstance(error, SyncError):
            print(f"embed-assets: error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
