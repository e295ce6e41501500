"""Range runs through Dagster's own engines, as a deployment runs them: a DAGSTER_HOME whose
`dagster.yaml` is the project's production one (QueuedRunCoordinator, the `embedding_provider`
pool, DefaultRunLauncher: each run its own process; storage in the project's PostgreSQL), a
`dagster-daemon run` process, and backfills launched with the GraphQL mutation the UI sends
(`launchPartitionBackfill`), one per range of months. `benchmarks/scale_out.py --modes queue`
uses it. No CI test drives it: one queued run of 300 rows took 100 s from submission here (the
daemon's tick, then a run process and a step process that each import Dagster), too slow for CI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.schema import create_schema

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / "workspace.yaml"
DAEMONS = ("BACKFILL", "QUEUED_RUN_COORDINATOR")
POOL = "embedding_provider"
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""
FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
FAILED_BACKFILL = {BulkActionStatus.FAILED, BulkActionStatus.FAILING, BulkActionStatus.CANCELED}


def write_home(home: Path, runs: int) -> None:
    """`home/dagster.yaml`: the project's production file with the run queue's limit, and the
    backfills' share of it, set to `runs` (the pool's limit is in the storage: `set_pool`)."""
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    queue = config["concurrency"]["runs"]
    queue["max_concurrent_runs"] = runs
    for limit in queue["tag_concurrency_limits"]:
        if limit["key"] == "dagster/backfill":
            limit["limit"] = runs
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def set_pool(instance: dg.DagsterInstance, slots: int) -> None:
    """What `dagster instance concurrency set embedding_provider N` does."""
    instance.event_log_storage.set_concurrency_slots(POOL, slots)


@contextmanager
def running_daemon(instance: dg.DagsterInstance, env: Mapping[str, str]) -> Iterator[None]:
    """A `dagster-daemon run` process over the project's workspace, ready (its backfill and
    run-queue daemons have reported in) when this yields, and stopped after."""
    began = time.time()
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its code server and runs are its children: stop them together
    )
    try:
        while not all(
            (beat := instance.get_daemon_heartbeats().get(name)) and beat.timestamp > began
            for name in DAEMONS
        ):
            if daemon.poll() is not None:
                raise SystemExit(f"dagster-daemon exited:\n{daemon.stderr.read()[-3000:]}")
            if time.time() - began > 300:
                raise SystemExit("dagster-daemon did not report in within 300 s")
            time.sleep(0.5)
        yield
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        # A code server that outlived its daemon (one in four did here) is ended too.
        with suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def stop_sensors_and_schedules(process: WorkspaceProcessContext) -> None:
    """Switch off the code location's sensors and schedules, as the UI's toggles do: the change
    sensor would otherwise launch a run of its own for the rows the benchmark loads."""
    request = process.create_request_context()
    for name in request.code_location_names:
        for repo in request.get_code_location(name).get_repositories().values():
            for sensor in repo.get_sensors():
                process.instance.stop_sensor(
                    sensor.get_remote_origin_id(), sensor.selector_id, sensor
                )
            for schedule in repo.get_schedules():
                process.instance.stop_schedule(
                    schedule.get_remote_origin_id(), schedule.selector_id, schedule
                )


@contextmanager
def backfill_launcher(instance: dg.DagsterInstance):
    """A function that launches a backfill of `asset` over a list of partition keys, as the UI
    does (the GraphQL mutation against the loaded workspace) and returns its id. The code
    location's sensors and schedules are off first (`stop_sensors_and_schedules`)."""
    schema = create_schema()
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as process:
        stop_sensors_and_schedules(process)

        def launch(asset: dg.AssetKey, partition_keys: list[str]) -> str:
            params = {
                "assetSelection": [{"path": list(asset.path)}],
                "partitionNames": partition_keys,
            }
            result = asyncio.run(
                schema.execute_async(
                    LAUNCH_BACKFILL,
                    context_value=process.create_request_context(),
                    variable_values={"backfillParams": params},
                )
            )
            if result.errors:
                raise SystemExit(f"launchPartitionBackfill: {result.errors[0]}")
            answer = result.data["launchPartitionBackfill"]
            if answer["__typename"] != "LaunchBackfillSuccess":
                raise SystemExit(f"launchPartitionBackfill: {answer}")
            return answer["backfillId"]

        yield launch


def wait_for_backfills(
    instance: dg.DagsterInstance, backfill_ids: list[str], timeout: float = 1800
) -> dict[str, float]:
    """Block until the one run of each backfill has succeeded; returns, in seconds from now, when
    the last of them had been created (by the backfill daemon's tick) and when the last ended."""
    began, created = time.perf_counter(), None
    while True:
        runs = [
            run
            for backfill_id in backfill_ids
            for run in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        ]
        if created is None and len(runs) >= len(backfill_ids):
            created = time.perf_counter() - began
        failed = [run for run in runs if run.status in FAILED]
        if failed:
            raise SystemExit(f"run {failed[0].run_id} ended {failed[0].status.value}")
        for backfill_id in backfill_ids:  # one that failed before making its run
            backfill = instance.get_backfill(backfill_id)
            if backfill is not None and backfill.status in FAILED_BACKFILL:
                raise SystemExit(f"backfill {backfill_id} {backfill.status.value}")
        if len(runs) >= len(backfill_ids) and all(
            run.status == dg.DagsterRunStatus.SUCCESS for run in runs
        ):
            return {"created": created, "succeeded": time.perf_counter() - began}
        if time.perf_counter() - began > timeout:
            raise SystemExit(f"backfills {backfill_ids} not done after {timeout:.0f} s")
        time.sleep(0.25)
