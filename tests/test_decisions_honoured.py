"""Decisions people approve in the workbench, honoured by the matching on the real pipeline: a
manual match pairs its rows before any rule (rule `manual`, the decision's id) and stays paired
when the day runs again; a break marked normal is resolved on the date it is decided and not
carried to the next; an unmatch stops the rule from pairing the same rows again. Two generated
days, then the second run again after the decisions, then a third day."""

from datetime import date, timedelta

import pytest

from tally import pipeline
from tally.devtools import generator
from tally.services import postgres
from tally.workbench import cases, decisions, users
from tally.workbench import policy as workbench_policy

DAYS = [date(2026, 10, 5) + timedelta(days=i) for i in range(3)]
SCALE = 200


def _outcome(conn, day, key) -> tuple | None:
    return conn.execute(
        "select outcome, rule, decision_id, break_type from marts.fct_outcomes"
        " where as_of_date = %s and transaction_key = %s", (day, key)).fetchone()


def _approved(conn, policy, case_key, proposal) -> int:
    """Proposed by an operator, approved by a different person: the maker-checker path."""
    operator, approver = users.get(conn, "olga"), users.get(conn, "arun")
    proposal_id = decisions.propose(conn, policy, operator, case_key, proposal)
    status = decisions.approve(conn, approver, proposal_id, "checked the statement")
    if status != "approved":  # above the two-approver threshold
        decisions.approve(conn, users.get(conn, "bea"), proposal_id, "checked as well")
    return proposal_id


@pytest.fixture(scope="module")
def decided(request):
    from tests.conftest import reset

    settings = reset(request.getfixturevalue("settings"))
    for day in DAYS:
        generator.generate_day(day, SCALE, settings.inbox_dir, seed=11)
    pipeline.run_in_order(settings, DAYS[0], DAYS[1])
    policy = workbench_policy.for_settings(settings)
    seen = {}
    with postgres.connect(settings, autocommit=True) as conn:
        for name, role in (("olga", "operator"), ("arun", "approver"), ("bea", "approver")):
            users.add(conn, name, role)
        cases.sync(conn, policy, DAYS[1], DAYS[1])
        day = DAYS[1]
        # an amount difference: both rows are breaks; a person pairs them
        left, right, case_key = conn.execute(
            "select left_key, right_key, break_key from marts.fct_breaks"
            " where as_of_date = %s and break_type = 'amount_mismatch' and needs_person"
            " order by break_key limit 1", (day,)).fetchone()
        seen["manual"] = (left, right, _approved(conn, policy, case_key, decisions.Proposal(
            "manual_match", "same order; the channel deducted its fee",
            left_keys=[left], right_keys=[right])))
        # a break carried from the first day, still open: marked normal
        key, project, case_key = conn.execute(
            "select b.transaction_key, b.project, b.break_key from marts.fct_breaks as b"
            " where b.as_of_date = %s and b.needs_person and b.business_date = %s"
            " and b.break_type = 'missing_on_statement' order by b.break_key limit 1",
            (day, DAYS[0])).fetchone()
        seen["normal"] = (key, project, _approved(conn, policy, case_key, decisions.Proposal(
            "mark_normal", "a known timing difference with the bank", left_keys=[key])))
        # a pair the exact rule made: a person says it is wrong
        left_u, right_u = conn.execute(
            "select left_key, right_key from marts.fct_matches where as_of_date = %s"
            " and rule_kind = 'exact' and project = 'platform_vs_bank'"
            " and left_business_date = right_business_date order by left_key limit 1",
            (day,)).fetchone()
        case_key = conn.execute(
            "select break_key from marts.fct_breaks where as_of_date = %s and needs_person"
            " and project = 'platform_vs_bank' order by break_key limit 1", (day,)).fetchone()[0]
        seen["unmatch"] = (left_u, right_u)
        seen["digest_before"] = pipeline.outcomes_digest(conn, day)
    # unmatch is proposed on some case of the project (the pair has none: it was matched)
    with postgres.connect(settings, autocommit=True) as conn:
        _approved(conn, policy, case_key, decisions.Proposal(
            "unmatch", "the bank booking belongs to another order",
            left_keys=[left_u], right_keys=[right_u]))
    seen["rerun"] = pipeline.run_in_order(settings, DAYS[1])
    seen["next"] = pipeline.run_day(settings, DAYS[2])
    with postgres.connect(settings, autocommit=True) as conn:
        seen["digest_after"] = pipeline.outcomes_digest(conn, DAYS[1])
    seen["again"] = pipeline.run_in_order(settings, DAYS[1])
    return settings, seen


def test_a_manual_match_pairs_its_rows_before_any_rule_and_holds_on_a_rerun(decided, conn):
    _, seen = decided
    left, right, decision_id = seen["manual"]
    for key in (left, right):
        assert _outcome(conn, DAYS[1], key)[:3] == ("matched", "manual", decision_id)
    assert conn.execute(
        "select pass, rule, decision_id from marts.fct_matches where as_of_date = %s"
        " and left_key = %s and right_key = %s", (DAYS[1], left, right)).fetchall() == [
        (0, "manual", decision_id)]
    # paired on its date: the next date does not carry them
    assert _outcome(conn, DAYS[2], left) is None and _outcome(conn, DAYS[2], right) is None
    # the day run once more comes out the same: the decision still holds
    assert [r["business_date"] for r in seen["again"]] == [DAYS[1].isoformat()]
    assert pipeline.outcomes_digest(conn, DAYS[1]) == seen["digest_after"]


def test_a_break_marked_normal_is_resolved_on_its_date_and_not_carried(decided, conn):
    _, seen = decided
    key, project, decision_id = seen["normal"]
    outcome, rule, found_id, break_type = _outcome(conn, DAYS[1], key)
    assert (outcome, rule, found_id) == ("resolved", "mark_normal", decision_id)
    assert break_type == "missing_on_statement"  # what it was stays said
    assert conn.execute(
        "select needs_person, outcome from marts.fct_breaks where as_of_date = %s"
        " and transaction_key = %s", (DAYS[1], key)).fetchall() == [(False, "resolved")]
    assert _outcome(conn, DAYS[2], key) is None
    assert conn.execute(
        "select sum(resolved_count) from marts.fct_daily_summary where as_of_date = %s"
        " and project = %s", (DAYS[1], project)).fetchone()[0] >= 1


def test_an_unmatched_pair_is_not_paired_again_by_the_rule(decided, conn):
    _, seen = decided
    left, right = seen["unmatch"]
    assert conn.execute(
        "select count(*) from marts.fct_matches where as_of_date = %s and left_key = %s"
        " and right_key = %s", (DAYS[1], left, right)).fetchone()[0] == 0
    assert _outcome(conn, DAYS[1], left)[0] != "matched"
    assert _outcome(conn, DAYS[1], right)[0] != "matched"


def test_the_decided_day_changed_and_the_gate_passed_on_every_run(decided, conn):
    _, seen = decided
    assert seen["digest_after"] != seen["digest_before"]
    runs = [r["run_id"] for r in seen["rerun"] + [seen["next"]] + seen["again"]]
    gates = dict(conn.execute(
        "select run_id, gate_passed from tally.runs where run_id = any(%s)", (runs,)).fetchall())
    assert gates == dict.fromkeys(runs, True)
