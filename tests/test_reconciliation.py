"""The reconciliation waterfall, suspense and break taxonomy on two generated days, checked
against the generator's ground truth: every injected difference is found with the right type,
and nothing else is reported."""

import json
from datetime import date, timedelta

import pytest

from tally import generate, pipeline, transform

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
PROJECT = "platform_vs_bank"


def bank_labels(labels: dict, kind: str, **where) -> set[str]:
    return {d["reference"] for d in labels["discrepancies"]
            if d["source"] == "bank" and d["type"] == kind
            and all(k in d for k in where)}


def expected_open(labels: dict) -> tuple[set, set]:
    """(breaks, suspense) a day's own differences give on that day."""
    breaks = {(side, r, "break", "amount_mismatch")
              for r in bank_labels(labels, "amount_mismatch") for side in ("left", "right")}
    breaks |= {("right", r, "break", "duplicate") for r in bank_labels(labels, "duplicate")}
    suspense = {("left", r, "suspense", "missing_on_statement")
                for r in bank_labels(labels, "missing_on_statement")
                | bank_labels(labels, "timing", booked_on=True)}
    suspense |= {("right", r, "suspense", "missing_on_platform")
                 for r in bank_labels(labels, "missing_on_platform")
                 | bank_labels(labels, "timing", recorded_on=True)}
    return breaks, suspense


def reported(conn, day):
    return set(conn.execute(
        "select recon_side, reference, outcome, break_type from marts.fct_outcomes"
        " where as_of_date = %s and project = %s and (outcome <> 'matched' or break_type"
        " is not null)", (day, PROJECT)).fetchall())


@pytest.fixture(scope="module")
def two_days(request):
    settings = request.getfixturevalue("clean")
    labels = {}
    for day in (D1, D2):
        generated = generate.generate_day(day, 3000, settings.inbox_dir, seed=21)
        labels[day] = json.loads(generated.labels.read_text())
        pipeline.land_day(settings, day)
        pipeline.load_day(settings, day)
        transform.build(settings, day)
    return settings, labels


@pytest.fixture(scope="module")
def clean(settings):
    from tests.conftest import reset

    return reset(settings)


def test_first_day_reports_exactly_the_injected_differences(two_days, conn):
    _, labels = two_days
    breaks, suspense = expected_open(labels[D1])
    assert reported(conn, D1) == breaks | suspense


def test_second_day_ages_suspense_into_breaks_and_clears_timing(two_days, conn):
    _, labels = two_days
    old_breaks, old_suspense = expected_open(labels[D1])
    new_breaks, new_suspense = expected_open(labels[D2])
    cleared = bank_labels(labels[D1], "timing", booked_on=True)
    aged = {(side, r, "break", kind) for side, r, _, kind in old_suspense if r not in cleared}
    timing = {(side, r, "matched", "timing") for r in cleared for side in ("left", "right")}
    # The bank bookings that arrive today for yesterday's late transfers are those that clear.
    assert bank_labels(labels[D2], "timing", recorded_on=True) == cleared
    new_suspense = {row for row in new_suspense if row[1] not in cleared}
    assert reported(conn, D2) == old_breaks | aged | timing | new_breaks | new_suspense
    ages = dict(conn.execute(
        "select reference, age_days from marts.fct_outcomes where as_of_date = %s"
        " and project = %s and outcome = 'break' and break_type = 'missing_on_statement'",
        (D2, PROJECT)).fetchall())
    assert set(ages.values()) == {1}


def test_tolerance_and_time_window_rules_match_what_they_are_for(two_days, conn):
    _, labels = two_days
    made_by = dict(conn.execute(
        "select left_reference, rule from marts.fct_matches where as_of_date = %s"
        " and project = %s", (D1, PROJECT)).fetchall())
    for kind in ("within_tolerance", "no_reference"):
        for d in labels[D1]["discrepancies"]:
            if d["type"] == kind:
                assert made_by[d["reference"]] == d["rule"], d
    # The tolerance rule records the difference it allowed; it is within the tolerance.
    differences = [r[0] for r in conn.execute(
        "select amount_difference_minor from marts.fct_matches where rule ="
        " 'reference_amount_tolerance'").fetchall()]
    assert differences and all(-100 <= d < 0 for d in differences)


def test_no_row_is_matched_twice(two_days, conn):
    for side in ("left_key", "right_key"):
        assert conn.execute(
            f"select count(*) from (select project, {side} from marts.fct_matches"
            f" where rule_kind <> 'group' group by 1, 2 having count(*) > 1) as twice"
        ).fetchone()[0] == 0


def test_every_open_row_has_one_outcome_per_day(two_days, conn):
    for day in (D1, D2):
        assert conn.execute(
            "select count(*) from (select project, transaction_key from marts.fct_outcomes"
            " where as_of_date = %s group by 1, 2 having count(*) > 1) as twice",
            (day,)).fetchone()[0] == 0


def test_unmatched_rows_explain_their_nearest_candidate(two_days, conn):
    rows = conn.execute(
        "select break_type, explanation, amount_difference_minor from marts.fct_outcomes"
        " where as_of_date = %s and outcome <> 'matched'", (D1,)).fetchall()
    assert rows and all(explanation for _, explanation, _ in rows)
    for kind, explanation, difference in rows:
        if kind == "amount_mismatch":
            assert explanation.startswith("same reference ") and "amount differs by" in explanation
            assert f"{abs(difference) // 100}." in explanation.replace("-", "")


def test_rerunning_an_earlier_day_after_a_later_one_reproduces_it(two_days, conn):
    settings, _ = two_days
    query = ("select project, transaction_key, outcome, break_type, rule, counterpart_key,"
             " explanation from marts.fct_outcomes where as_of_date = %s order by 1, 2")
    before = conn.execute(query, (D1,)).fetchall()
    later = conn.execute(query, (D2,)).fetchall()
    transform.build(settings, D1)
    assert conn.execute(query, (D1,)).fetchall() == before
    assert conn.execute(query, (D2,)).fetchall() == later
