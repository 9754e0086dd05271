"""Fourteen generated days reconciled in order, then a late file for an earlier day: each day's
outcomes are what the generator's labels say (a settled row without counterpart is a break on
its day, timing clears the next day), a missing bill makes its orders wait rather than break,
and the late file re-runs its day and the days after it that it changes."""

import dataclasses
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from tally import pipeline, transform
from tally.devtools import generator

FIRST = date(2026, 11, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(14)]
LATE_DAY = DAYS[11]  # its WeChat Pay bill arrives after the last day ran
SCALE = 200

PROJECTS = {"platform_vs_bank": "bank", "platform_vs_alipay": "alipay_bill",
            "platform_vs_wechatpay": "wechatpay_bill"}


def refs(labels: dict, source: str, kind: str, **where) -> set[str]:
    return {d["reference"] for d in labels["discrepancies"]
            if d["source"] == source and d["type"] == kind and all(k in d for k in where)}


def expected(labels: dict[date, dict], day: date, source: str) -> set:
    """What a project reports on `day` (unmatched rows, and matches flagged with a break type)
    from every day's labels up to it: differences of a day are reported on it as breaks and
    stay open; a transfer booked after midnight is a break on its day and matched (timing) on
    the next."""
    rows = set()
    for origin, found in labels.items():
        age = (day - origin).days
        if age < 0:
            continue
        rows |= {(side, r, "break", "amount_mismatch")
                 for r in refs(found, source, "amount_mismatch") for side in ("left", "right")}
        rows |= {("right", r, "break", "duplicate") for r in refs(found, source, "duplicate")}
        rows |= {("left", r, "break", "missing_on_statement")
                 for r in refs(found, source, "missing_on_statement")}
        rows |= {("right", r, "break", "missing_on_platform")
                 for r in refs(found, source, "missing_on_platform")}
        if age == 0:
            rows |= {(side, r, "matched", "status_mismatch")
                     for r in refs(found, source, "status_mismatch") for side in ("left", "right")}
        booked_late = refs(found, source, "timing", booked_on=True)
        if age == 0:
            rows |= {("left", r, "break", "missing_on_statement") for r in booked_late}
        if age == 1:
            rows |= {(side, r, "matched", "timing") for r in booked_late
                     for side in ("left", "right")}
        if origin == FIRST:  # bookings for transfers of the day before the first: never matched
            rows |= {("right", r, "break", "missing_on_platform")
                     for r in refs(found, source, "timing", recorded_on=True)}
    return rows


def reported(conn, day, project) -> set:
    return set(conn.execute(
        "select recon_side, reference, outcome, break_type from marts.fct_outcomes"
        " where as_of_date = %s and project = %s and (outcome <> 'matched' or break_type"
        " is not null)", (day, project)).fetchall())


WECHAT_BY_OUTCOME = ("select outcome, count(*) from marts.fct_outcomes where as_of_date = %s"
                     " and project = 'platform_vs_wechatpay' and business_date = %s"
                     " group by outcome")


@pytest.fixture(scope="module")
def fortnight(request):
    """Fourteen days backfilled in order; then the late file is dropped, found by the next
    run's sweep and re-run from its date. What each step did is kept for the tests."""
    from tally.services import postgres
    from tests.conftest import reset

    settings = reset(request.getfixturevalue("settings"))
    labels, late_file = {}, None
    for day in DAYS:
        late = ("wechatpay_trade_bill",) if day == LATE_DAY else ()
        generated = generator.generate_day(day, SCALE, settings.inbox_dir, seed=31, late=late)
        labels[day] = json.loads(generated.labels.read_text())
        late_file = late_file or next((Path(d["file"]) for d in labels[day]["discrepancies"]
                                       if d["type"] == "late_file"), None)
    seen = {"labels": labels}
    seen["backfill"] = pipeline.run_in_order(settings, DAYS[0], DAYS[-1])
    with postgres.connect(settings, autocommit=True) as conn:
        seen["before"] = {day: pipeline.outcomes_digest(conn, day) for day in DAYS}
        seen["waiting"] = dict(conn.execute(WECHAT_BY_OUTCOME, (LATE_DAY, LATE_DAY)).fetchall())
        seen["aged"] = dict(conn.execute(WECHAT_BY_OUTCOME, (LATE_DAY + timedelta(days=1),
                                                             LATE_DAY)).fetchall())
        seen["awaiting"] = conn.execute(
            "select distinct awaiting from marts.fct_outcomes where as_of_date = %s"
            " and project = 'platform_vs_wechatpay' and business_date = %s",
            (LATE_DAY + timedelta(days=1), LATE_DAY)).fetchall()
    seen["summary"] = pipeline.day_summary(settings, LATE_DAY)
    target = settings.inbox_dir / "wechatpay_trade_bill" / LATE_DAY.isoformat() / late_file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(late_file.read_bytes())
    # The next daily run's sweep finds the file and lands it under its own date.
    seen["late_dates"] = pipeline.land_late_files(settings, DAYS[-1] + timedelta(days=1))
    seen["rerun"] = pipeline.run_in_order(settings, LATE_DAY)
    with postgres.connect(settings, autocommit=True) as conn:
        seen["after"] = {day: pipeline.outcomes_digest(conn, day) for day in DAYS}
    seen["again"] = pipeline.run_in_order(settings, LATE_DAY)
    return settings, seen


def dates(results: list[dict]) -> list[str]:
    return [r["business_date"] for r in results]


def test_a_backfill_runs_every_date_in_order_and_publishes_each(fortnight, conn):
    _, seen = fortnight
    assert dates(seen["backfill"]) == [d.isoformat() for d in DAYS]
    backfill_runs = {r["run_id"] for r in seen["backfill"]}
    runs = [(day, status, passed) for run, day, status, passed in conn.execute(
        "select run_id, business_date, status, gate_passed from tally.runs"
        " order by started_at").fetchall() if run in backfill_runs]
    assert runs == [(day, "published", True) for day in DAYS]
    assert conn.execute("select count(*) from tally.run_lock").fetchone()[0] == 0


def test_before_the_late_file_its_orders_wait_for_it_and_say_so(fortnight):
    """Nothing is a break on a side that was never received: the orders of the day whose bill
    is missing wait, the next day too, naming the bill; the day says the project is
    incomplete."""
    _, seen = fortnight
    assert set(seen["waiting"]) == {"suspense"} and seen["waiting"]["suspense"] > 20
    assert set(seen["aged"]) == {"suspense"}
    assert seen["awaiting"] == [("wechatpay_trade_bill",)]
    assert seen["summary"]["incomplete"]["platform_vs_wechatpay"] == "wechatpay_trade_bill"
    # (The first morning's payouts pay bill days from before the first day, never received:
    # they wait for those bills, so the settlement project is incomplete too.)
    assert seen["summary"]["incomplete"].keys() <= {"platform_vs_wechatpay",
                                                    "channel_settlement_vs_bank"}


def test_a_late_file_reruns_its_date_and_every_later_date_it_changes(fortnight):
    _, seen = fortnight
    assert seen["late_dates"] == [LATE_DAY.isoformat()]
    assert dates(seen["rerun"]) == [d.isoformat() for d in DAYS[11:]]
    changed = [day for day in DAYS if seen["after"][day] != seen["before"][day]]
    assert changed == DAYS[11:]
    # Nothing has changed since: running the date again stops after it.
    assert dates(seen["again"]) == [LATE_DAY.isoformat()]


@pytest.mark.parametrize("project", PROJECTS)
def test_every_date_reports_what_the_labels_say(fortnight, conn, project):
    """After the late file's re-run, every date is as if the file had come on time."""
    _, seen = fortnight
    for day in DAYS:
        assert reported(conn, day, project) == expected(seen["labels"], day, PROJECTS[project]), day


def outcome_rows(conn, day) -> list[tuple]:
    """Every column of a date's outcomes but classified_by, in a fixed order."""
    columns = [name for (name,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'marts'"
        " and table_name = 'fct_outcomes' and column_name <> 'classified_by'"
        " order by ordinal_position").fetchall()]
    return conn.execute(f"select {', '.join(columns)} from marts.fct_outcomes"
                        " where as_of_date = %s order by project, transaction_key",
                        (day,)).fetchall()


def test_an_open_item_nothing_touched_keeps_the_classification_it_would_get_again(
        fortnight, conn, tmp_path):
    """A day classifies its new rows and the open items something touched; the others keep the
    last date's classification, a day older. A change to the rules (here only a project's
    label) has every open item classified again: the last date comes out the same."""
    settings, _ = fortnight
    last = DAYS[-1]
    before = outcome_rows(conn, last)
    carried_breaks = conn.execute(
        "select count(*) from marts.fct_outcomes where as_of_date = %s and outcome = 'break'"
        " and business_date < as_of_date - 3", (last,)).fetchone()[0]
    assert carried_breaks > 100  # the breaks of the earlier days, still open
    (first_version,) = conn.execute(
        "select distinct classified_by from marts.fct_outcomes where as_of_date = %s",
        (last,)).fetchone()

    include = tmp_path / "include"
    shutil.copytree(settings.include_dir, include)
    rules = include / "reconciliation.yaml"
    text = rules.read_text()
    assert "label: 平台转账 ↔ 银行流水\n" in text
    rules.write_text(text.replace("label: 平台转账 ↔ 银行流水\n",
                                  "label: 平台转账 ↔ 银行流水（改名）\n", 1))
    transform.build(dataclasses.replace(settings, include_dir=include), last)

    assert conn.execute("select array_agg(distinct classified_by) from marts.fct_outcomes"
                        " where as_of_date = %s", (last,)).fetchone()[0] != [first_version]
    assert outcome_rows(conn, last) == before


def test_a_days_data_tests_read_that_days_rows_only(fortnight, conn):
    """dbt's data tests in a daily build check the rows that build made: a bad row kept from
    an earlier date fails that date's tests, not every later day's."""
    from tally import recon

    settings, _ = fortnight
    first, last = DAYS[0], DAYS[-1]

    def test_outcomes(day):
        return transform.dbt(settings, "test", "--select", "fct_outcomes", "--exclude",
                             transform.DAILY_EXCLUDE, "--vars",
                             json.dumps(recon.dbt_vars(settings, day)))

    (key,) = conn.execute(
        "select transaction_key from marts.fct_outcomes where as_of_date = %s"
        " and outcome = 'break' order by transaction_key limit 1", (first,)).fetchone()
    conn.execute("update marts.fct_outcomes set outcome = 'lost' where as_of_date = %s"
                 " and transaction_key = %s and outcome = 'break'", (first, key))
    try:
        assert "PASS=" in test_outcomes(last)
        with pytest.raises(transform.DbtFailed, match="accepted_values_fct_outcomes_outcome"):
            test_outcomes(first)
    finally:
        conn.execute("update marts.fct_outcomes set outcome = 'break' where as_of_date = %s"
                     " and transaction_key = %s and outcome = 'lost'", (first, key))


def test_a_warehouse_built_by_an_earlier_release_gets_todays_indexes(fortnight, conn):
    """dbt creates a model's configured indexes only with its table: an index added since
    (fct_balance_checks by date) is created on the next run, and the gate's index of earlier
    releases (year, month and day of the date), no longer read, is dropped."""
    settings, _ = fortnight
    conn.execute("drop index marts.fct_balance_checks_by_as_of_date")
    conn.execute("create index fct_outcomes_by_gate_day on marts.fct_outcomes ("
                 "(extract(year from as_of_date)), (extract(month from as_of_date)),"
                 " (extract(day from as_of_date)))")

    transform.build(settings, DAYS[-1])

    indexes = dict(conn.execute(
        "select indexname, indexdef from pg_indexes where schemaname = 'marts'").fetchall())
    assert "fct_outcomes_by_gate_day" not in indexes
    assert indexes["fct_balance_checks_by_as_of_date"].endswith("(as_of_date)")
