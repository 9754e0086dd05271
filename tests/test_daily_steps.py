"""The daily DAG's plain part (tally.daily), without Airflow or services: what it hands dbt,
and the choices its tasks make (pipeline's steps stubbed)."""

from datetime import date

import pytest

from tally import config, daily, pipeline, recon, transform

DAY = date(2026, 11, 20)


@pytest.fixture
def calls(monkeypatch):
    """pipeline's steps recorded instead of run."""
    seen = []

    def stub(name, value=None):
        def step(*args, **kwargs):
            seen.append((name, args[1:], kwargs))
            return value
        monkeypatch.setattr(pipeline, name, step)

    stub("finish_dry_run")
    stub("publish", "s3://published/daily/2026-11-20/v0001/")
    stub("next_date_to_rerun", None)
    return seen


def test_dbt_tasks_build_one_date_with_the_rules_as_data_and_no_unit_tests():
    settings = config.load()
    args = daily.dbt_operator_args(settings)
    assert args["exclude"] == transform.DAILY_EXCLUDE == "test_type:unit"
    assert args["install_deps"] is False
    assert args["vars"] == recon.dbt_vars(settings, daily.BUSINESS_DATE_XCOM)
    assert args["vars"]["as_of"] == "{{ ti.xcom_pull(task_ids='resolve_business_date') }}"


def test_a_dry_run_publishes_nothing_alerts_nobody_and_hands_on_no_date(calls):
    settings = config.load()
    assert daily.publish(settings, "r1", DAY.isoformat(), dry_run=True) is None
    assert [name for name, _, _ in calls] == ["finish_dry_run"]
    assert daily.alert_if_needed(settings, DAY.isoformat(), dry_run=True) == []
    assert daily.follow_up(settings, "r1", DAY.isoformat(), ["2026-11-18"], dry_run=True) is None


def test_a_run_publishes_and_hands_the_earliest_date_to_run_again(calls, monkeypatch):
    settings = config.load()
    uri = daily.publish(settings, "r1", DAY.isoformat(), dry_run=False)
    assert uri.endswith("/v0001/") and calls[-1] == ("publish", ("r1", DAY), {})
    assert daily.follow_up(settings, "r1", DAY.isoformat(), [], dry_run=False) is None
    assert daily.follow_up(settings, "r1", DAY.isoformat(), ["2026-11-18", "2026-11-17"],
                           dry_run=False) == {"from_date": "2026-11-17"}
    monkeypatch.setattr(pipeline, "next_date_to_rerun", lambda *args: date(2026, 11, 21))
    assert daily.follow_up(settings, "r1", DAY.isoformat(), [], dry_run=False) == {
        "from_date": "2026-11-21"}
    assert daily.follow_up(settings, "r1", DAY.isoformat(), ["2026-11-19"], dry_run=False) == {
        "from_date": "2026-11-19"}
