"""The sync's plan, made without Dagster, names the partitions Dagster has."""

from datetime import UTC, date, datetime

import dagster as dg
import pytest

from embed_assets.lib.plan import month_keys


@pytest.mark.parametrize("start", ["2008-01-01", "2008-01-15", "2019-12-31", "2026-11-01"])
def test_month_keys_are_the_keys_of_the_assets_monthly_partitions(start):
    now = datetime(2026, 12, 4, 1, 30, tzinfo=UTC)
    dagster_keys = dg.MonthlyPartitionsDefinition(
        start_date=start, end_offset=1
    ).get_partition_keys(current_time=now)
    assert month_keys(date.fromisoformat(start), now) == dagster_keys
