"""The reconciliation waterfall, suspense and break taxonomy on two generated days, checked
against the generator's ground truth: every injected difference is found with the right type,
and nothing else is reported."""

import json
from datetime import date, timedelta

import pytest

from tally import pipeline, transform
from tally.devtools import generator

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)


# Each project and the label source of the differences injected into it.
PROJECTS = {"platform_vs_bank": "bank", "platform_vs_alipay": "alipay_bill",
            "platform_vs_wechatpay": "wechatpay_bill"}


def refs(labels: dict, source: str, kind: str, **where) -> set[str]:
    return {d["reference"] for d in labels["discrepancies"]
            if d["source"] == source and d["type"] == kind and all(k in d for k in where)}


def expected_open(labels: dict, source: str) -> set:
    """What a day's own differences give on that day. A row settled on its side with no
    counterpart is a break that very day (the seed design's rule), timing ones included: the
    counterpart arrives the next day and the pair then matches as a timing difference."""
    found = {(side, r, "break", "amount_mismatch")
             for r in refs(labels, source, "amount_mismatch") for side in ("left", "right")}
    found |= {("right", r, "break", "duplicate") for r in refs(labels, source, "duplicate")}
    found |= {(side, r, "matched", "status_mismatch")
              for r in refs(labels, source, "status_mismatch") for side in ("left", "right")}
    found |= {("left", r, "break", "missing_on_statement")
              for r in refs(labels, source, "missing_on_statement")
              | refs(labels, source, "timing", booked_on=True)}
    found |= {("right", r, "break", "missing_on_platform")
              for r in refs(labels, source, "missing_on_platform")
              | refs(labels, source, "timing", recorded_on=True)}
    return found


def reported(conn, day, project):
    return set(conn.execute(
        "select recon_side, reference, outcome, break_type from marts.fct_outcomes"
        " where as_of_date = %s and project = %s and (outcome <> 'matched' or break_type"
        " is not null)", (day, project)).fetchall())


@pytest.fixture(scope="module")
def two_days(request):
    settings = request.getfixturevalue("clean")
    labels = {}
    for day in (D1, D2):
        generated = generator.generate_day(day, 3000, settings.inbox_dir, seed=21)
        labels[day] = json.loads(generated.labels.read_text())
        pipeline.land_day(settings, day)
        pipeline.load_day(settings, day)
        transform.build(settings, day)
    return settings, labels


@pytest.fixture(scope="module")
def clean(settings):
    from tests.conftest import reset

    return reset(settings)


@pytest.mark.parametrize("project", PROJECTS)
def test_first_day_reports_exactly_the_injected_differences(two_days, conn, project):
    _, labels = two_days
    found = expected_open(labels[D1], PROJECTS[project])
    assert {row[3] for row in found} >= {"amount_mismatch", "duplicate", "missing_on_statement",
                                         "missing_on_platform"}
    assert reported(conn, D1, project) == found


@pytest.mark.parametrize("project", PROJECTS)
def test_second_day_keeps_open_breaks_and_closes_timing_ones(two_days, conn, project):
    _, labels = two_days
    source = PROJECTS[project]
    cleared = refs(labels[D1], source, "timing", booked_on=True)
    # The bank bookings that arrive today for yesterday's late transfers are those that clear.
    assert refs(labels[D2], source, "timing", recorded_on=True) == cleared
    still_open = {row for row in expected_open(labels[D1], source)
                  if row[2] == "break" and row[1] not in cleared}
    timing = {(side, r, "matched", "timing") for r in cleared for side in ("left", "right")}
    new = {row for row in expected_open(labels[D2], source) if row[1] not in cleared}
    assert reported(conn, D2, project) == still_open | timing | new
    ages = {age for (age,) in conn.execute(
        "select age_days from marts.fct_outcomes where as_of_date = %s and project = %s"
        " and outcome = 'break' and break_type = 'missing_on_statement'",
        (D2, project)).fetchall()}
    assert ages == {0, 1}


@pytest.mark.parametrize("project", PROJECTS)
def test_each_difference_is_one_break_with_a_key_that_stays(two_days, conn, project):
    _, labels = two_days
    source = PROJECTS[project]
    counts = dict(conn.execute(
        "select break_type, count(*) from marts.fct_breaks where as_of_date = %s"
        " and project = %s and needs_person group by 1", (D1, project)).fetchall())
    assert counts == {
        "amount_mismatch": len(refs(labels[D1], source, "amount_mismatch")),
        "duplicate": len(refs(labels[D1], source, "duplicate")),
        "missing_on_statement": len(refs(labels[D1], source, "missing_on_statement")
                                    | refs(labels[D1], source, "timing", booked_on=True)),
        "missing_on_platform": len(refs(labels[D1], source, "missing_on_platform")
                                   | refs(labels[D1], source, "timing", recorded_on=True)),
    }
    # An amount mismatch names both sides and the difference.
    for left, right, left_amount, right_amount, difference in conn.execute(
            "select left_reference, right_reference, left_amount_minor, right_amount_minor,"
            " amount_difference_minor from marts.fct_breaks where as_of_date = %s"
            " and project = %s and break_type = 'amount_mismatch'", (D1, project)).fetchall():
        assert left == right and right_amount - left_amount == difference != 0
    # A break still open the next day keeps its key; a timing pair is one informational row.
    keys = {day: dict(conn.execute(
        "select break_key, break_type from marts.fct_breaks where as_of_date = %s"
        " and project = %s", (day, project)).fetchall()) for day in (D1, D2)}
    carried = {k for k, t in keys[D1].items() if t in ("amount_mismatch", "duplicate")}
    assert carried and carried <= set(keys[D2])
    cleared = refs(labels[D1], source, "timing", booked_on=True)
    assert sum(t == "timing" for t in keys[D2].values()) == len(cleared)
    assert conn.execute(
        "select count(*) from reporting.breaks where business_date = %s and project = %s"
        " and break_type = 'status_mismatch'", (D1, project)).fetchone()[0] == 0


def test_channel_settlements_match_the_previous_bill_day_as_batches(two_days, conn):
    """Each channel pays a bill day's net (payments - refunds - fees) the next morning, from
    its legal entity with a numeric end-to-end id: one batch row per bill day stands for the
    bill rows and is matched to the payout, by the bill date the remittance names (Alipay on
    D2) or, when it names none (WeChat Pay on D2), by the net within the expected delay."""
    bills = dict(conn.execute(
        "select channel, count(*) from intermediate.int_transactions where source in"
        " ('alipay_bill', 'wechatpay_trade_bill') and business_date = %s group by channel",
        (D1,)).fetchall())
    batches = {row[0]: row[1:] for row in conn.execute(
        "select channel, row_count, signed_amount_minor, settlement_batch, reference"
        " from intermediate.int_transactions where source = 'channel_batch'"
        " and business_date = %s", (D1,)).fetchall()}
    nets = dict(conn.execute(
        "select channel, sum(net_amount_minor) from intermediate.int_transactions where"
        " source in ('alipay_bill', 'wechatpay_trade_bill') and business_date = %s"
        " group by channel", (D1,)).fetchall())
    assert {c: (n, net) for c, (n, net, _, _) in batches.items()} == {
        c: (bills[c], nets[c]) for c in ("alipay", "wechatpay")}
    assert {c: b[2] for c, b in batches.items()} == {
        "alipay": f"ALIPAY-SETTLE-{D1:%Y%m%d}", "wechatpay": f"WECHATPAY-SETTLE-{D1:%Y%m%d}"}
    made = dict(conn.execute(
        "select l.channel, m.rule from marts.fct_matches as m join"
        " intermediate.int_transactions as l on l.transaction_key = m.left_key"
        " where m.as_of_date = %s and m.project = 'channel_settlement_vs_bank'",
        (D2,)).fetchall())
    assert made == {"alipay": "batch_exact", "wechatpay": "settlement_by_amount"}
    matched = dict(conn.execute(
        "select recon_side, count(*) from marts.fct_outcomes where as_of_date = %s and project"
        " = 'channel_settlement_vs_bank' and outcome = 'matched' group by recon_side",
        (D2,)).fetchall())
    assert matched == {"left": 2, "right": 2}
    # The bill rows themselves are in no project's channel settlement outcomes.
    assert conn.execute(
        "select count(*) from marts.fct_outcomes where project = 'channel_settlement_vs_bank'"
        " and source <> 'channel_batch' and side = 'channel'").fetchone()[0] == 0
    # Day one's credits pay a bill day that was never loaded: they wait for its bill (nothing
    # is a break on a side never received), and today's bill days wait for tomorrow's payouts,
    # one suspense item each.
    left_over = conn.execute(
        "select source, kind, outcome, awaiting from marts.fct_outcomes where as_of_date = %s"
        " and project = 'channel_settlement_vs_bank' and outcome <> 'matched' order by 1, 2, 3",
        (D2,)).fetchall()
    assert sorted(row[:3] for row in left_over) == [
        ("bank_camt053", "settlement", "suspense"), ("bank_csv", "settlement", "suspense"),
        ("channel_batch", "settlement_batch", "suspense"),
        ("channel_batch", "settlement_batch", "suspense")]
    assert sorted(row[3] for row in left_over if row[3]) == ["alipay_bill",
                                                             "wechatpay_trade_bill"]
    # A payout is never a customer's transfer.
    assert conn.execute(
        "select count(*) from marts.fct_outcomes where project = 'platform_vs_bank'"
        " and kind <> 'booking' and side = 'bank'").fetchone()[0] == 0


def test_tolerance_and_time_window_rules_match_what_they_are_for(two_days, conn):
    _, labels = two_days
    made_by = dict(conn.execute(
        "select left_reference, rule from marts.fct_matches where as_of_date = %s"
        " and project = 'platform_vs_bank'", (D1,)).fetchall())
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
            f" group by 1, 2 having count(*) > 1) as twice"
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
    breaks = "select break_key from marts.fct_breaks where as_of_date = %s order by 1"
    before = conn.execute(query, (D1,)).fetchall(), conn.execute(breaks, (D1,)).fetchall()
    later = conn.execute(query, (D2,)).fetchall(), conn.execute(breaks, (D2,)).fetchall()
    transform.build(settings, D1)
    assert (conn.execute(query, (D1,)).fetchall(), conn.execute(breaks, (D1,)).fetchall()) \
        == before
    assert (conn.execute(query, (D2,)).fetchall(), conn.execute(breaks, (D2,)).fetchall()) \
        == later


def test_balances_roll_forward_and_platform_bank_differences_are_explained(two_days, conn):
    for day in (D1, D2):
        checks = conn.execute(
            "select check_type, count(*), bool_and(passed) from marts.fct_balance_checks"
            " where as_of_date = %s group by check_type order by 1", (day,)).fetchall()
        assert checks == [
            ("platform_account_rollforward", checks[0][1], True),
            ("platform_vs_bank", 3, True),
            ("settlement_trial_balance", 1, True),
            ("statement_rollforward", checks[3][1], True),
        ]
    # The platform's record and the bank differ, by exactly what the open items say.
    explained = conn.execute(
        "select count(*) from marts.fct_balance_checks where check_type = 'platform_vs_bank'"
        " and explained_minor <> 0").fetchone()[0]
    assert explained >= 3


def test_a_balance_nobody_can_explain_fails_its_check(two_days, conn):
    settings, _ = two_days
    conn.execute(
        "update raw.platform_balances set closing_balance_minor = closing_balance_minor + 1,"
        " available_minor = available_minor + 1 where account_type = 'bank_mirror'"
        " and account = (select min(account) from raw.platform_balances"
        " where account_type = 'bank_mirror')")
    try:
        transform.build(settings, D2)
        failed = conn.execute(
            "select check_type, difference_minor from marts.fct_balance_checks"
            " where as_of_date = %s and not passed", (D2,)).fetchall()
        assert failed == [("platform_vs_bank", 1)]
    finally:
        conn.execute(
            "update raw.platform_balances set closing_balance_minor = closing_balance_minor - 1,"
            " available_minor = available_minor - 1 where account_type = 'bank_mirror'"
            " and account = (select min(account) from raw.platform_balances"
            " where account_type = 'bank_mirror')")
        transform.build(settings, D2)

