"""Fourteen generated days reconciled in order, then a late file for an earlier day: each day's
outcomes are what the generator's labels say (suspense ages into breaks, timing clears the
next day), and the late file re-runs its day and the days after it that it changes."""

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from tally import generate, pipeline, recon

FIRST = date(2026, 11, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(14)]
LATE_DAY = DAYS[11]  # its WeChat Pay bill arrives after the last day ran
SCALE = 200

PROJECTS = {"platform_vs_bank": "bank", "platform_vs_alipay": "alipay_bill",
            "platform_vs_wechatpay": "wechatpay_bill"}


def refs(labels: dict, source: str, kind: str, **where) -> set[str]:
    return {d["reference"] for d in labels["discrepancies"]
            if d["source"] == source and d["type"] == kind and all(k in d for k in where)}


def expected(labels: dict[date, dict], day: date, source: str, suspense_days: dict) -> set:
    """What a project reports on `day` (unmatched rows, and matches flagged with a break type)
    from every day's labels up to it: differences of a day are reported on it; breaks stay
    open; a missing counterpart waits in suspense for its kind's days, then is a break; a
    transfer booked after midnight is matched (timing) on the next day."""
    rows = set()
    for origin, found in labels.items():
        age = (day - origin).days
        if age < 0:
            continue
        rows |= {(side, r, "break", "amount_mismatch")
                 for r in refs(found, source, "amount_mismatch") for side in ("left", "right")}
        rows |= {("right", r, "break", "duplicate") for r in refs(found, source, "duplicate")}
        if age == 0:
            rows |= {(side, r, "matched", "status_mismatch")
                     for r in refs(found, source, "status_mismatch") for side in ("left", "right")}
        booked_late = refs(found, source, "timing", booked_on=True)
        if age == 1:
            rows |= {(side, r, "matched", "timing") for r in booked_late
                     for side in ("left", "right")}
        waiting = {("left", d["reference"], d.get("kind"), "missing_on_statement")
                   for d in found["discrepancies"] if d["source"] == source
                   and d["type"] == "missing_on_statement"}
        waiting |= {("left", r, None, "missing_on_statement") for r in booked_late if age == 0}
        waiting |= {("right", d["reference"], d.get("kind"), "missing_on_platform")
                    for d in found["discrepancies"] if d["source"] == source
                    and d["type"] == "missing_on_platform"}
        if origin == FIRST:  # bookings for transfers of the day before the first: never matched
            waiting |= {("right", r, None, "missing_on_platform")
                        for r in refs(found, source, "timing", recorded_on=True)}
        for side, r, kind, break_type in waiting:
            days = suspense_days.get(kind, suspense_days["default"])
            rows.add((side, r, "suspense" if age < days else "break", break_type))
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
        generated = generate.generate_day(day, SCALE, settings.inbox_dir, seed=31, late=late)
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


def test_before_the_late_file_its_orders_wait_then_break(fortnight):
    _, seen = fortnight
    assert set(seen["waiting"]) == {"suspense"} and seen["waiting"]["suspense"] > 20
    # Payments wait a day, refunds seven: a day later the payments are breaks.
    assert seen["aged"]["break"] > 5 * seen["aged"].get("suspense", 0) > 0


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
    settings, seen = fortnight
    suspense_days = recon.load(settings)["suspense_days"]
    for day in DAYS:
        assert reported(conn, day, project) == expected(
            seen["labels"], day, PROJECTS[project], suspense_days), day
