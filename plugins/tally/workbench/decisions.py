"""Maker-checker: an operator proposes what to do about a case, an approver decides.

The proposer can never decide their own proposal: refused here, and again by the database
(workbench.approvals' check and trigger) should any other code try. A proposal whose absolute
amount is above the policy's threshold needs two different approvers; a write-off above the
policy's limit is refused outright. A rejection needs a reason and hands the case back to its
proposer, open again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import psycopg

from tally import money
from tally.workbench import audit, cases, notifications
from tally.workbench.access import Invalid, NotFound, Refused, User, require
from tally.workbench.policy import Policy

ACTIONS = ("manual_match", "unmatch", "mark_normal", "adjustment", "missing_entry",
           "suspense", "write_off")


@dataclass
class Proposal:
    """What a person proposes; amounts in integer minor units."""
    action: str
    reason: str
    left_keys: list[str] = field(default_factory=list)
    right_keys: list[str] = field(default_factory=list)
    amount_minor: int | None = None
    currency: str | None = None
    account: str | None = None
    expected_clearing_date: date | None = None

    def checked(self) -> Proposal:
        if self.action not in ACTIONS:
            raise Invalid(f"action must be one of {', '.join(ACTIONS)}")
        if not (self.reason or "").strip():
            raise Invalid("a proposal needs a reason")
        if self.amount_minor is not None:
            # bool is an int in Python; a float is never money here
            if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
                raise Invalid("amount_minor is an integer number of minor units")
            if not self.currency:
                raise Invalid("an amount needs its currency")
        if self.currency:
            try:
                money.exponent(self.currency)
            except money.AmountError as exc:
                raise Invalid(str(exc)) from None
        return self


_COLUMNS = ("proposal_id, case_key, action, project, left_keys, right_keys, amount_minor,"
            " currency, account, expected_clearing_date, reason, proposer, status,"
            " approvals_needed, created_at, decided_at")


def get(conn: psycopg.Connection, proposal_id: int, lock: bool = False) -> dict:
    cur = conn.execute(f"select {_COLUMNS} from workbench.proposals where proposal_id = %s"
                       + (" for update" if lock else ""), (proposal_id,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no proposal {proposal_id}")
    return dict(zip([c.name for c in cur.description], row, strict=True))


def _public(proposal: dict) -> dict:
    """A proposal as the audit trail keeps it: its decision-relevant fields."""
    return {k: proposal[k] for k in ("proposal_id", "action", "project", "left_keys",
                                     "right_keys", "amount_minor", "currency", "account",
                                     "expected_clearing_date", "reason", "status",
                                     "approvals_needed")}


def propose(conn: psycopg.Connection, policy: Policy, user: User, case_key: str,
            proposal: Proposal) -> int:
    require(user, "propose")
    p = proposal.checked()
    if p.action == "write_off" and abs(p.amount_minor or 0) > policy.write_off_limit_minor:
        raise Refused(f"a write-off above {policy.write_off_limit_minor} minor units is "
                      "beyond the workbench's limit")
    with conn.transaction():
        case = cases.get(conn, case_key, lock=True)
        if case["status"] != "open":
            raise Invalid(f"case {case_key} is {case['status']}: it takes no new proposal")
        proposal_id = conn.execute(
            "insert into workbench.proposals (case_key, action, project, left_keys, right_keys,"
            " amount_minor, currency, account, expected_clearing_date, reason, proposer,"
            " approvals_needed) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " returning proposal_id",
            (case_key, p.action, case["project"], p.left_keys, p.right_keys, p.amount_minor,
             p.currency, p.account, p.expected_clearing_date, p.reason.strip(), user.name,
             policy.approvals_needed(p.amount_minor))).fetchone()[0]
        conn.execute("update workbench.cases set status = 'proposed', updated_at = now()"
                     " where case_key = %s", (case_key,))
        audit.record(conn, user.name, "data_change", "proposal_made", cases.subject(case_key),
                     {"before": {"case_status": "open"},
                      "after": {"case_status": "proposed", **_public(get(conn, proposal_id))}})
        notifications.notify(conn, notifications.approvers(conn, user.name),
                             "approval_requested", case_key, proposal_id)
    return proposal_id


def _decidable(conn: psycopg.Connection, user: User, proposal_id: int) -> dict:
    require(user, "approve")
    proposal = get(conn, proposal_id, lock=True)  # one decision at a time per proposal
    if proposal["status"] != "proposed":
        raise Invalid(f"proposal {proposal_id} is {proposal['status']}")
    if proposal["proposer"] == user.name:
        raise Refused("the proposer of a proposal cannot decide it")
    return proposal


def approve(conn: psycopg.Connection, user: User, proposal_id: int,
            reason: str | None = None) -> str:
    """Record the user's approval; returns the proposal's status after it ('approved', or
    'proposed' while it waits for a second approver)."""
    with conn.transaction():
        proposal = _decidable(conn, user, proposal_id)
        try:
            with conn.transaction():
                conn.execute(
                    "insert into workbench.approvals (proposal_id, proposer, approver, decision,"
                    " reason) values (%s, %s, %s, 'approve', %s)",
                    (proposal_id, proposal["proposer"], user.name, (reason or "").strip() or None))
        except psycopg.errors.UniqueViolation:
            raise Refused("you have already approved this proposal") from None
        given = conn.execute(
            "select count(*) from workbench.approvals where proposal_id = %s"
            " and decision = 'approve'", (proposal_id,)).fetchone()[0]
        status = "approved" if given >= proposal["approvals_needed"] else "proposed"
        case_key = proposal["case_key"]
        if status == "approved":
            conn.execute("update workbench.proposals set status = 'approved', decided_at = now()"
                         " where proposal_id = %s", (proposal_id,))
            conn.execute("update workbench.cases set status = 'resolved', updated_at = now()"
                         " where case_key = %s", (case_key,))
        audit.record(conn, user.name, "data_change", "proposal_approved", cases.subject(case_key),
                     {"proposal_id": proposal_id, "approvals": given,
                      "approvals_needed": proposal["approvals_needed"], "reason": reason,
                      "before": {"proposal_status": "proposed", "case_status": "proposed"},
                      "after": {"proposal_status": status,
                                "case_status": "resolved" if status == "approved"
                                else "proposed"}})
        if status == "approved":
            notifications.notify(conn, [proposal["proposer"]], "approved", case_key,
                                 proposal_id)
    return status


def reject(conn: psycopg.Connection, user: User, proposal_id: int, reason: str) -> None:
    """Reject with a reason: the proposal is closed and the case goes back, open, to its
    proposer."""
    if not (reason or "").strip():
        raise Invalid("a rejection needs a reason")
    with conn.transaction():
        proposal = _decidable(conn, user, proposal_id)
        conn.execute(
            "insert into workbench.approvals (proposal_id, proposer, approver, decision, reason)"
            " values (%s, %s, %s, 'reject', %s)",
            (proposal_id, proposal["proposer"], user.name, reason.strip()))
        conn.execute("update workbench.proposals set status = 'rejected', decided_at = now()"
                     " where proposal_id = %s", (proposal_id,))
        case_key = proposal["case_key"]
        before = cases.get(conn, case_key, lock=True)
        conn.execute("update workbench.cases set status = 'open', assignee = %s,"
                     " updated_at = now() where case_key = %s", (proposal["proposer"], case_key))
        audit.record(conn, user.name, "data_change", "proposal_rejected", cases.subject(case_key),
                     {"proposal_id": proposal_id, "reason": reason.strip(),
                      "before": {"proposal_status": "proposed", "case_status": before["status"],
                                 "assignee": before["assignee"]},
                      "after": {"proposal_status": "rejected", "case_status": "open",
                                "assignee": proposal["proposer"]}})
        notifications.notify(conn, [proposal["proposer"]], "rejected", case_key, proposal_id)


def for_case(conn: psycopg.Connection, case_key: str) -> list[dict]:
    """The case's proposals, newest first, each with its decisions."""
    cur = conn.execute(f"select {_COLUMNS} from workbench.proposals where case_key = %s"
                       " order by proposal_id desc", (case_key,))
    names = [c.name for c in cur.description]
    proposals = [dict(zip(names, row, strict=True)) for row in cur]
    for p in proposals:
        p["decisions"] = decisions_of(conn, p["proposal_id"])
    return proposals


def decisions_of(conn: psycopg.Connection, proposal_id: int) -> list[dict]:
    cur = conn.execute("select approver, decision, reason, at from workbench.approvals"
                       " where proposal_id = %s order by approval_id", (proposal_id,))
    return [dict(zip([c.name for c in cur.description], row, strict=True)) for row in cur]


def waiting_for(conn: psycopg.Connection, user: User) -> list[dict]:
    """Proposals this user may decide: waiting, not their own, not already approved by them."""
    require(user, "approve")
    cur = conn.execute(
        f"select {', '.join('p.' + c.strip() for c in _COLUMNS.split(','))}"
        " from workbench.proposals p where p.status = 'proposed' and p.proposer <> %s"
        " and not exists (select from workbench.approvals a where a.proposal_id = p.proposal_id"
        "   and a.approver = %s) order by p.created_at", (user.name, user.name))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]
