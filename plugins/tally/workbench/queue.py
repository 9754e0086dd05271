"""What the pages and the API read: the work queue and a case's detail.

The queue is the open breaks (reporting.breaks, needs_person) and suspense items
(reporting.suspense) of the latest reconciled business date, or of a chosen range (each item
once, as of its latest day in the range), with its case's status and assignee. Every filter is
a bound parameter; the only SQL chosen by the request is the sort, picked from a fixed list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta

import psycopg
from psycopg import sql

from tally.workbench import audit, cases, decisions
from tally.workbench.access import Invalid, NotFound
from tally.workbench.policy import Policy

SORTS = {
    "amount_desc": "abs(i.amount_minor) desc nulls last, i.case_key",
    "amount_asc": "abs(i.amount_minor) asc nulls last, i.case_key",
    "age_desc": "i.age_days desc nulls last, i.case_key",
    "age_asc": "i.age_days asc nulls last, i.case_key",
}
STATUSES = ("open", "proposed", "resolved")
MAX_PAGE_SIZE = 200
UNASSIGNED = "-"  # the assignee filter's value for cases nobody has

_ITEMS = """
    select 'break' as kind, b.break_key as case_key, b.business_date, b.project,
           b.break_type as item_type, b.label_zh, b.label_en, b.reference, b.account,
           b.amount_minor, b.amount_difference_minor, b.currency, b.age_days,
           b.transaction_date, b.explanation, b.transaction_key
    from reporting.breaks as b
    where b.needs_person and b.business_date between %(date_from)s and %(date_to)s
    union all
    select 'suspense', {suspense_key}, s.business_date, s.project,
           'suspense', '挂账', 'Suspense', s.reference, s.account,
           s.amount_minor, null::bigint, s.currency, s.age_days,
           s.transaction_date, s.explanation, s.transaction_key
    from reporting.suspense as s
    where s.business_date between %(date_from)s and %(date_to)s
""".format(suspense_key=cases.SUSPENSE_KEY.format(t="s"))


@dataclass
class QueueFilter:
    date_from: date | None = None  # both None: the latest reconciled business date
    date_to: date | None = None
    project: str | None = None
    item_type: str | None = None  # a break_type, or 'suspense'
    min_amount_minor: int | None = None  # on the absolute amount
    max_amount_minor: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    status: str | None = None
    assignee: str | None = None  # a user name, or UNASSIGNED
    sort: str = "amount_desc"
    page: int = 1
    page_size: int = 50

    @classmethod
    def from_query(cls, query) -> QueueFilter:
        """From a request's query parameters (text); anything malformed is Invalid."""
        kinds = {f.name: f.type for f in fields(cls)}
        values = {}
        for name, kind in kinds.items():
            text = (query.get(name) or "").strip()
            if not text:
                continue
            try:
                if "date" in kind and name.startswith("date"):
                    values[name] = date.fromisoformat(text)
                elif "int" in kind:
                    values[name] = int(text)
                else:
                    values[name] = text
            except ValueError:
                raise Invalid(f"{name}: {text!r} is not valid") from None
        return cls(**values)

    def checked(self) -> QueueFilter:
        if self.sort not in SORTS:
            raise Invalid(f"sort must be one of {', '.join(SORTS)}")
        if self.status is not None and self.status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}")
        if self.page < 1 or not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise Invalid(f"page from 1, page_size from 1 to {MAX_PAGE_SIZE}")
        return self


def latest_date(conn: psycopg.Connection) -> date | None:
    """The latest business date a run reconciled and its gate passed."""
    return conn.execute(
        "select max(business_date) from tally.runs where status in ('published', 'dry_run')"
    ).fetchone()[0]


def _reconciled(conn: psycopg.Connection) -> bool:
    return all(conn.execute("select to_regclass(%s)", (view,)).fetchone()[0]
               for view in ("reporting.breaks", "reporting.suspense"))


def page(conn: psycopg.Connection, policy: Policy, f: QueueFilter) -> dict:
    """One page of the queue: {'items', 'total', 'page', 'page_size', 'date_from', 'date_to'}."""
    f.checked()
    if f.date_from is None and f.date_to is None:
        f.date_from = f.date_to = latest_date(conn)
    f.date_from = f.date_from or f.date_to
    f.date_to = f.date_to or f.date_from
    result = {"items": [], "total": 0, "page": f.page, "page_size": f.page_size,
              "date_from": f.date_from, "date_to": f.date_to}
    if f.date_from is None or not _reconciled(conn):
        return result  # nothing reconciled yet
    day = f.date_from
    while day <= f.date_to:
        cases.sync_once(conn, policy, day)
        day += timedelta(days=1)
    latest = latest_date(conn)
    if latest is not None and f.date_to >= latest:
        cases.retire(conn, latest)
    # Over several dates an item is shown once, as of the latest; one date lists each once.
    unique = ("select * from ({items}) as u" if f.date_from == f.date_to else
              "select distinct on (case_key) * from ({items}) as u"
              " order by case_key, business_date desc")
    query = sql.SQL("""
        with items as (
            {unique}
        )
        select i.*, coalesce(c.status, 'open') as status, c.assignee,
               count(*) over () as total
        from items as i
        left join workbench.cases as c using (case_key)
        where (%(project)s::text is null or i.project = %(project)s)
          and (%(item_type)s::text is null or i.item_type = %(item_type)s)
          and (%(min_amount)s::bigint is null or abs(i.amount_minor) >= %(min_amount)s)
          and (%(max_amount)s::bigint is null or abs(i.amount_minor) <= %(max_amount)s)
          and (%(min_age)s::int is null or i.age_days >= %(min_age)s)
          and (%(max_age)s::int is null or i.age_days <= %(max_age)s)
          and (%(status)s::text is null or coalesce(c.status, 'open') = %(status)s)
          and (%(assignee)s::text is null
               or (%(assignee)s::text = %(unassigned)s::text and c.assignee is null)
               or c.assignee = %(assignee)s::text)
        order by {order}
        limit %(limit)s offset %(offset)s
    """).format(unique=sql.SQL(unique).format(items=sql.SQL(_ITEMS)),
                order=sql.SQL(SORTS[f.sort]))
    cur = conn.execute(query, {
        "date_from": f.date_from, "date_to": f.date_to, "project": f.project,
        "item_type": f.item_type, "min_amount": f.min_amount_minor,
        "max_amount": f.max_amount_minor, "min_age": f.min_age, "max_age": f.max_age,
        "status": f.status, "assignee": f.assignee, "unassigned": UNASSIGNED,
        "limit": f.page_size, "offset": (f.page - 1) * f.page_size})
    names = [c.name for c in cur.description]
    items = [dict(zip(names, row, strict=True)) for row in cur]
    result["total"] = items[0].pop("total") if items else 0
    for item in items[1:]:
        item.pop("total")
    result["items"] = items
    return result


def projects(conn: psycopg.Connection) -> list[str]:
    return [p for (p,) in conn.execute(
        "select distinct project from workbench.cases order by project")]


def find_item(conn: psycopg.Connection, case_key: str) -> dict:
    """The case's item as of the latest day it was reported."""
    if not _reconciled(conn):
        raise NotFound(f"no case {case_key}")
    cur = conn.execute(
        sql.SQL("select * from ({items}) as u where case_key = %(key)s"
                " order by business_date desc limit 1").format(items=sql.SQL(_ITEMS)),
        {"key": case_key, "date_from": date.min, "date_to": date.max})
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no case {case_key}")
    return dict(zip([c.name for c in cur.description], row, strict=True))


def ensure_case(conn: psycopg.Connection, policy: Policy, case_key: str) -> dict:
    """The case's item; its case row made if the queue has not shown it yet."""
    item = find_item(conn, case_key)
    cases.sync_once(conn, policy, item["business_date"])
    return item


_SIDE = """
    select o.transaction_key, o.recon_side, o.side, o.source, o.kind, o.reference, o.account,
           o.direction, o.amount_minor, o.currency, o.status, o.event_at, o.business_date,
           o.outcome, o.break_type, o.counterpart_key, o.explanation,
           f.original_name as file_name, f.file_id, o.line_no, f.raw_key
    from marts.fct_outcomes as o
    left join tally.files as f on f.file_id = o.file_id
    where o.as_of_date = %(day)s and o.project = %(project)s
"""


def detail(conn: psycopg.Connection, policy: Policy, case_key: str, viewer: str) -> dict:
    """Everything a person needs to decide a case: both sides' rows (with the file and line
    each came from, and the full account), the explanation, the candidates on the other side,
    and the history. Viewing it is audited: it shows account details."""
    item = ensure_case(conn, policy, case_key)
    row = conn.execute(
        "select left_key, right_key, counterpart_key, repeats_key from reporting.breaks"
        " where break_key = %s and business_date = %s",
        (case_key, item["business_date"])).fetchone() if item["kind"] == "break" else None
    keys = sorted({k for k in (item["transaction_key"], *(row or ())) if k})
    params = {"day": item["business_date"], "project": item["project"]}
    cur = conn.execute(sql.SQL(_SIDE + " and o.transaction_key = any(%(keys)s::text[])"
                               " order by o.recon_side, o.transaction_key"),
                       {**params, "keys": keys})
    names = [c.name for c in cur.description]
    sides = [dict(zip(names, r, strict=True)) for r in cur]
    own = next((s for s in sides if s["transaction_key"] == item["transaction_key"]), None)
    candidates = []
    if own is not None:
        cur = conn.execute(sql.SQL(
            _SIDE + " and o.recon_side <> %(side)s and o.outcome <> 'matched'"
            " and not (o.transaction_key = any(%(keys)s::text[]))"
            " and (o.reference = %(reference)s or o.amount_minor = %(amount)s)"
            " order by (o.reference = %(reference)s) desc, abs(o.amount_minor - %(amount)s),"
            " o.transaction_key limit 10"),
            {**params, "side": own["recon_side"], "keys": keys, "reference": own["reference"],
             "amount": own["amount_minor"]})
        candidates = [dict(zip(names, r, strict=True)) for r in cur]
    audit.record(conn, viewer, "user_operation", "case_viewed", cases.subject(case_key),
                 {"business_date": item["business_date"]})
    return {
        "item": item,
        "case": cases.get(conn, case_key),
        "sides": sides,
        "candidates": candidates,
        "proposals": decisions.for_case(conn, case_key),
        "comments": cases.comments(conn, case_key),
        "history": audit.for_subject(conn, cases.subject(case_key)),
    }
