"""Cases: one per break or suspense item, their assignee and status, and comments.

A date's case rows are made once per run of that date, when the queue or a case first shows
it after the run (`sync_once`), so that the queue can join on them and a project's auto-assign
rule applies once, when the item first appears.
"""

from __future__ import annotations

from datetime import date

import psycopg

from tally.workbench import audit, notifications
from tally.workbench.access import Invalid, NotFound, User, require
from tally.workbench.policy import Policy

# A suspense item has no break_key; its identity is its project and transaction key.
SUSPENSE_KEY = "md5(concat_ws('|', 'suspense', {t}.project, {t}.transaction_key))"


def subject(case_key: str) -> str:
    return f"case:{case_key}"


def sync(conn: psycopg.Connection, policy: Policy, first: date, last: date) -> int:
    """Make the cases of the dates' open breaks and suspense items that have none yet, and
    assign each new one by its project's rule; returns how many were made."""
    with conn.transaction():
        made = conn.execute(
            "insert into workbench.cases (case_key, kind, project, first_seen)"
            " select b.break_key, 'break', b.project, b.business_date from reporting.breaks b"
            "  where b.business_date between %s and %s and b.needs_person"
            " union all"
            " select " + SUSPENSE_KEY.format(t="s") + ", 'suspense', s.project, s.business_date"
            "  from reporting.suspense s where s.business_date between %s and %s"
            # the earliest day first, so that first_seen is when the item first appeared
            " order by 4 on conflict (case_key) do nothing returning case_key, project",
            (first, last, first, last)).fetchall()
        assignable = _assignable(conn, set(policy.auto_assign.values()))
        for case_key, project in made:
            assignee = policy.auto_assign.get(project)
            if assignee in assignable:
                _assign(conn, "system", case_key, assignee)
    return len(made)


def sync_once(conn: psycopg.Connection, policy: Policy, day: date) -> bool:
    """Make the date's cases (sync) once per run of the date: its breaks and suspense change
    only when it runs. Returns whether they were made now. A date no run is recorded for (built
    by dbt alone) is synced every time."""
    run = conn.execute("select run_id from tally.runs where business_date = %s"
                       " order by started_at desc limit 1", (day,)).fetchone()
    seen = conn.execute("select run_id from workbench.synced_dates where business_date = %s",
                        (day,)).fetchone()
    if run and seen and seen[0] == run[0]:
        return False
    sync(conn, policy, day, day)
    if run:
        conn.execute("insert into workbench.synced_dates (business_date, run_id) values (%s, %s)"
                     " on conflict (business_date) do update set run_id = excluded.run_id,"
                     " synced_at = now()", (day, run[0]))
    return True


def retire(conn: psycopg.Connection, latest: date) -> list[int]:
    """Proposals still waiting on a case whose item is no longer open on the latest reconciled
    date (a late counterpart matched it, a suspense item became a break) are stale: deciding
    them would apply a decision to a difference that is gone. Their cases are resolved by the
    reconciliation itself; their proposers are told. Returns the stale proposals."""
    with conn.transaction():
        gone = conn.execute(
            "update workbench.proposals as p set status = 'stale', decided_at = now()"
            " from workbench.cases as c"
            " where c.case_key = p.case_key and p.status = 'proposed' and c.first_seen <= %s"
            "   and not exists (select from reporting.breaks b where b.business_date = %s"
            "                   and b.needs_person and b.break_key = c.case_key)"
            "   and not exists (select from reporting.suspense s where s.business_date = %s"
            "                   and " + SUSPENSE_KEY.format(t="s") + " = c.case_key)"
            " returning p.proposal_id, p.case_key, p.proposer", (latest, latest, latest)
        ).fetchall()
        for proposal_id, case_key, proposer in gone:
            conn.execute("update workbench.cases set status = 'resolved', updated_at = now()"
                         " where case_key = %s", (case_key,))
            audit.record(conn, "system", "data_change", "proposal_stale", subject(case_key),
                         {"proposal_id": proposal_id, "latest_date": latest,
                          "before": {"proposal_status": "proposed", "case_status": "proposed"},
                          "after": {"proposal_status": "stale", "case_status": "resolved"}})
            notifications.notify(conn, [proposer], "stale", case_key, proposal_id)
    return [proposal_id for proposal_id, _, _ in gone]


def _assignable(conn: psycopg.Connection, names: set[str]) -> set[str]:
    return {n for (n,) in conn.execute(
        "select name from workbench.users where name = any(%s::text[]) and active"
        " and role <> 'viewer'", (sorted(names),))}


def get(conn: psycopg.Connection, case_key: str, lock: bool = False) -> dict:
    cur = conn.execute(
        "select case_key, kind, project, first_seen, status, assignee, updated_at"
        " from workbench.cases where case_key = %s" + (" for update" if lock else ""),
        (case_key,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no case {case_key}")
    return dict(zip([c.name for c in cur.description], row, strict=True))


def assign(conn: psycopg.Connection, user: User, case_key: str, assignee: str | None) -> None:
    """Give the case to someone who can work it (or to nobody, with None)."""
    require(user, "work")
    with conn.transaction():
        if assignee and assignee not in _assignable(conn, {assignee}):
            raise Invalid(f"{assignee} is not an active user who works cases")
        _assign(conn, user.name, case_key, assignee or None)


def _assign(conn: psycopg.Connection, actor: str, case_key: str, assignee: str | None) -> None:
    before = get(conn, case_key, lock=True)["assignee"]
    if before == assignee:
        return
    conn.execute("update workbench.cases set assignee = %s, updated_at = now()"
                 " where case_key = %s", (assignee, case_key))
    audit.record(conn, actor, "data_change", "case_assigned", subject(case_key),
                 {"before": {"assignee": before}, "after": {"assignee": assignee}})
    if assignee and assignee != actor:
        notifications.notify(conn, [assignee], "assigned", case_key)


def comment(conn: psycopg.Connection, user: User, case_key: str, body: str) -> int:
    require(user, "work")
    body = (body or "").strip()
    if not body:
        raise Invalid("a comment needs text")
    with conn.transaction():
        get(conn, case_key)
        comment_id = conn.execute(
            "insert into workbench.comments (case_key, author, body) values (%s, %s, %s)"
            " returning comment_id", (case_key, user.name, body)).fetchone()[0]
        audit.record(conn, user.name, "data_change", "comment_added", subject(case_key),
                     {"after": {"comment_id": comment_id, "body": body}})
    return comment_id


def comments(conn: psycopg.Connection, case_key: str) -> list[dict]:
    cur = conn.execute(
        "select comment_id, author, body, at from workbench.comments where case_key = %s"
        " order by at, comment_id", (case_key,))
    return [dict(zip([c.name for c in cur.description], row, strict=True)) for row in cur]
