"""The alert sensor: failed ERROR checks (and WARN ones when EMBED_ASSETS_ALERT_ON_WARN is set) and
failed runs become POSTs to EMBED_ASSETS_ALERT_WEBHOOK_URL (see embed_assets.lib.alerts).

How it never sends the same failure twice: it follows the runs that *ended*, through the event
log's RUN_SUCCESS and RUN_FAILURE records in storage-id order, with one cursor per event type. A
run's check results are all stored before its end event, so each run is looked at once, when it
ends: one alert per failed check (run, asset, check, partition), and one for the run when it failed
for another reason than its blocking checks (those already say why it stopped). The cursor moves
past a run once its alerts are sent; while one is being sent, the keys of the alerts already
delivered are kept in the cursor, so a tick that stops half-way (the webhook is down: it is retried
at the next tick) resends none of them.

Each tick reads at most RUNS_PER_TICK ends per event type and starts no new POST after
TICK_BUDGET_SECONDS (sensor evaluations time out at 60 s). On its first tick (no cursor), it looks
at runs that ended in the last hour only. Without a webhook URL it logs the failures and skips.
"""

import json
import time

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from embed_assets.lib.alerts import (
    Alert,
    AlertNotDelivered,
    AlertRejected,
    AlertSettings,
    post_alert,
    redact_url,
    run_url,
    slack_escape,
)

RUNS_PER_TICK = 50
TICK_BUDGET_SECONDS = 20.0  # no new POST after this; one POST's retries fit in what is left of 60 s
FIRST_TICK_LOOKBACK_SECONDS = 3600.0
RUN_ENDS = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS)
ICONS = {"ERROR": ":red_circle:", "WARN": ":warning:"}


def _link(run_id: str, url: str | None) -> str:
    return f"<{url}|run {run_id[:8]}>" if url else f"run {run_id[:8]}"


def _run_partition(run: dg.DagsterRun | None) -> str | None:
    if run is None:
        return None
    tags = run.tags
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return tags.get("dagster/partition")


def _check_alert(evaluation, run_id: str, url: str | None) -> Alert:
    asset = evaluation.asset_key.to_user_string()
    window = evaluation.metadata.get("partitions")
    partition = evaluation.partition or (
        window.value if window is not None and window.value != "all" else None
    )
    severity = evaluation.severity.value
    text = (
        f"{ICONS.get(severity, '')} embed_assets: check `{asset}.{evaluation.check_name}` "
        f"failed ({severity}) on {partition or 'all partitions'}: "
        f"{slack_escape(evaluation.description or 'no description')}. {_link(run_id, url)}"
    )
    return Alert(
        key=f"{run_id}|{asset}|{evaluation.check_name}|{partition or ''}",
        text=text,
        severity=severity,
        run_id=run_id,
        asset=asset,
        partition=partition,
        check=evaluation.check_name,
        url=url,
    )


def _root_message(error) -> str | None:
    """The first line of the innermost error: the user's, not Dagster's wrapper."""
    while error is not None and error.cause is not None:
        error = error.cause
    message = error.message.strip() if error is not None else ""
    return message.splitlines()[0][:300] if message else None


def _run_alert(
    instance: dg.DagsterInstance, run_id: str, url: str | None, failure: dg.EventLogRecord | None
) -> Alert:
    """The alert for a failed run; `failure` is its first step failure, if any."""
    run = instance.get_run_by_id(run_id)
    step, reason = None, "the run failed"
    if failure is not None:
        entry = failure.event_log_entry
        step = entry.step_key
        reason = (
            _root_message(getattr(entry.dagster_event.event_specific_data, "error", None)) or reason
        )
    partition = _run_partition(run)
    job = run.job_name if run else "?"
    text = (
        f"{ICONS['ERROR']} embed_assets: run of `{job}` failed"
        + (f" at `{step}`" if step else "")
        + (f" on {partition}" if partition else "")
        + f": {slack_escape(reason)}. {_link(run_id, url)}"
    )
    return Alert(
        key=f"{run_id}|run",
        text=text,
        severity="ERROR",
        run_id=run_id,
        asset=step,
        partition=partition,
        url=url,
    )


def alerts_for_run(
    instance: dg.DagsterInstance, record: dg.EventLogRecord, settings: AlertSettings
) -> list[Alert]:
    """The alerts due for a run that ended (`record` is its RUN_SUCCESS or RUN_FAILURE): one per
    failed check that is due, and one for a failed run unless every failed step is a check step
    stopped by its blocking checks (their alerts say why the run stopped)."""
    entry = record.event_log_entry
    run_id = entry.run_id
    url = run_url(settings.webserver_url, run_id)
    evaluations = [
        r.event_log_entry.dagster_event.event_specific_data
        for r in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    ]
    alerts = [
        _check_alert(e, run_id, url)
        for e in evaluations
        if not e.passed and (e.severity == dg.AssetCheckSeverity.ERROR or settings.alert_on_warn)
    ]
    if entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE:
        failures = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        ).records
        other = [
            f
            for f in failures
            if getattr(
                getattr(f.event_log_entry.dagster_event.event_specific_data, "error", None),
                "cls_name",
                None,
            )
            != "DagsterAssetCheckFailedError"
        ]
        if other or not failures:
            alerts.append(_run_alert(instance, run_id, url, other[0] if other else None))
    return alerts


def _load(cursor: str | None) -> dict:
    state = json.loads(cursor) if cursor else {}
    state.setdefault("sent", [])
    return state


@dg.sensor(
    name="alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Posts failed ERROR checks (and WARN ones when EMBED_ASSETS_ALERT_ON_WARN "
    "is set) and failed runs to EMBED_ASSETS_ALERT_WEBHOOK_URL, once each",
)
def alert_sensor(context: dg.SensorEvaluationContext):
    settings = AlertSettings.from_env()
    state = _load(context.cursor)
    began = time.monotonic()
    target = redact_url(settings.webhook_url) if settings.webhook_url else None
    sent = unsent = 0
    for event_type in RUN_ENDS:
        name = event_type.name  # RUN_FAILURE, RUN_SUCCESS (their values are legacy names)
        after = state.get(name)
        records = context.instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type,
                after_storage_id=after,
                after_timestamp=None
                if after is not None
                else time.time() - FIRST_TICK_LOOKBACK_SECONDS,
            ),
            limit=RUNS_PER_TICK,
            ascending=True,
        ).records
        for record in records:
            for alert in alerts_for_run(context.instance, record, settings):
                if alert.key in state["sent"]:
                    continue
                if target is None:
                    context.log.info(
                        f"not alerted (EMBED_ASSETS_ALERT_WEBHOOK_URL is not set): {alert.text}"
                    )
                    unsent += 1
                    continue
                if time.monotonic() - began > TICK_BUDGET_SECONDS:
                    context.update_cursor(json.dumps(state))
                    return dg.SkipReason(f"sent {sent} alerts; more next tick (time budget)")
                try:
                    post_alert(alert, settings)
                except AlertRejected as error:
                    context.log.error(f"alert {alert.key} dropped: {error}")
                except AlertNotDelivered as error:
                    context.log.error(
                        f"alert {alert.key} not delivered, retried next tick: {error}"
                    )
                    context.update_cursor(json.dumps(state))
                    return dg.SkipReason(f"sent {sent} alerts; the webhook at {target} failed")
                else:
                    sent += 1
                    context.log.info(f"alert {alert.key} sent to {target}")
                state["sent"].append(alert.key)
            state[name] = record.storage_id
            state["sent"] = []
    context.update_cursor(json.dumps(state))
    if target is None:
        return dg.SkipReason(
            f"EMBED_ASSETS_ALERT_WEBHOOK_URL is not set: {unsent} failures logged, none sent"
        )
    return dg.SkipReason(f"sent {sent} alerts to {target}")
