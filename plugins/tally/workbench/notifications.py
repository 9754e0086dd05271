"""The in-app inbox: one row per person and event, written in the transaction of the action
that caused it, so nobody is told about something that did not happen."""

from __future__ import annotations

import psycopg

EVENTS = ("assigned", "approval_requested", "approved", "rejected", "stale")


def notify(conn: psycopg.Connection, users: list[str], event: str, case_key: str | None,
           proposal_id: int | None = None) -> None:
    for name in sorted(set(users)):
        conn.execute(
            "insert into workbench.notifications (user_name, event, case_key, proposal_id)"
            " values (%s, %s, %s, %s)", (name, event, case_key, proposal_id))


def approvers(conn: psycopg.Connection, except_user: str) -> list[str]:
    """Everyone who may decide a proposal, except its proposer."""
    return [name for (name,) in conn.execute(
        "select name from workbench.users where active and role in ('approver', 'admin')"
        " and name <> %s order by name", (except_user,))]


def inbox(conn: psycopg.Connection, user: str, limit: int = 100) -> list[dict]:
    cur = conn.execute(
        "select notification_id, event, case_key, proposal_id, created_at, read_at"
        " from workbench.notifications where user_name = %s"
        " order by notification_id desc limit %s", (user, limit))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def unread(conn: psycopg.Connection, user: str) -> int:
    return conn.execute(
        "select count(*) from workbench.notifications where user_name = %s and read_at is null",
        (user,)).fetchone()[0]


def mark_read(conn: psycopg.Connection, user: str, ids: list[int] | None = None) -> int:
    """Mark the user's own notifications read (all of them without `ids`)."""
    cur = conn.execute(
        "update workbench.notifications set read_at = now() where user_name = %s"
        " and read_at is null and (%s::bigint[] is null or notification_id = any(%s::bigint[]))",
        (user, ids, ids))
    return cur.rowcount
