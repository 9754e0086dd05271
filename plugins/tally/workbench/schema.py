"""The workbench's own tables, in schema `workbench`, applied like tally.warehouse's parts.

The DDL's digest is recorded in tally.schema_state as part `workbench`; a warehouse already at
this digest runs no DDL at all (no lock taken). A changed DDL is applied once, under the same
advisory lock as the warehouse's parts, and only after taking every existing workbench table
at once without waiting (NOWAIT, retried), so it never waits while holding a lock.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from tally import warehouse

PART = "workbench"

DDL = r"""
create schema if not exists workbench;

-- People. No default account and no default password: `tally users add` makes each one.
create table if not exists workbench.users (
    name           text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    display_name   text not null,
    role           text not null check (role in ('viewer', 'operator', 'approver', 'admin')),
    password_hash  text not null,  -- argon2id, never the password
    language       text not null default 'zh' check (language in ('zh', 'en')),
    failed_logins  integer not null default 0,
    locked_until   timestamptz,
    active         boolean not null default true,
    -- A session cookie is signed, not stored: signing out bumps this, and every session
    -- signed in before is refused from then on (a copied cookie dies with the sign-out).
    session_generation  integer not null default 0,
    created_at     timestamptz not null default now()
);

-- A token is shown once; only its sha256 is kept, so a copy of this table opens nothing.
create table if not exists workbench.api_tokens (
    token_id      bigserial primary key,
    user_name     text not null references workbench.users (name),
    name          text not null,
    token_sha256  text not null unique,
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- One case per break (its break_key) or suspense item (a hash of project and transaction key):
-- the item's identity across days, as the reports give it.
create table if not exists workbench.cases (
    case_key    text primary key,
    kind        text not null check (kind in ('break', 'suspense')),
    project     text not null,
    first_seen  date not null,
    status      text not null default 'open' check (status in ('open', 'proposed', 'resolved')),
    assignee    text references workbench.users (name),
    updated_at  timestamptz not null default now()
);
create index if not exists cases_by_assignee on workbench.cases (assignee, status);

-- The run of each date whose items the cases were last made from: the queue makes a date's
-- cases once per run of it, not on every view (a million open items took seconds each time).
create table if not exists workbench.synced_dates (
    business_date  date primary key,
    run_id         text not null,
    synced_at      timestamptz not null default now()
);

create table if not exists workbench.proposals (
    proposal_id             bigserial primary key,
    case_key                text not null references workbench.cases (case_key),
    action                  text not null check (action in ('manual_match', 'unmatch',
                                'mark_normal', 'adjustment', 'missing_entry', 'suspense',
                                'write_off')),
    project                 text not null,
    left_keys               text[] not null default '{}',
    right_keys              text[] not null default '{}',
    amount_minor            bigint,  -- integer minor units of `currency`, never a float
    currency                text,
    account                 text,
    expected_clearing_date  date,
    reason                  text not null check (btrim(reason) <> ''),
    proposer                text not null references workbench.users (name),
    status                  text not null default 'proposed'
        check (status in ('proposed', 'approved', 'rejected', 'stale')),
    approvals_needed        smallint not null check (approvals_needed in (1, 2)),
    created_at              timestamptz not null default now(),
    decided_at              timestamptz,
    -- the target of approvals' composite key: an approval names its proposal's proposer
    unique (proposal_id, proposer)
);
-- A case waits on one proposal at a time.
create unique index if not exists proposals_one_waiting
    on workbench.proposals (case_key) where status = 'proposed';
create index if not exists proposals_by_status on workbench.proposals (status, created_at);

-- Maker-checker in the database itself, whatever the application does: an approval carries
-- its proposal's proposer (the composite key makes it the real one; the trigger fills it in),
-- and the check refuses an approver who is the proposer; one decision per person and proposal.
create table if not exists workbench.approvals (
    approval_id  bigserial primary key,
    proposal_id  bigint not null,
    proposer     text not null,
    approver     text not null references workbench.users (name),
    decision     text not null check (decision in ('approve', 'reject')),
    reason       text,
    at           timestamptz not null default now(),
    foreign key (proposal_id, proposer)
        references workbench.proposals (proposal_id, proposer),
    constraint approvals_not_by_proposer check (approver <> proposer),
    constraint approvals_once_per_person unique (proposal_id, approver),
    constraint approvals_reject_has_reason
        check (decision = 'approve' or btrim(coalesce(reason, '')) <> '')
);

create or replace function workbench.approvals_guard() returns trigger
language plpgsql as $$
declare
    p record;
begin
    if tg_op <> 'INSERT' then
        raise exception 'workbench.approvals is append-only';
    end if;
    select proposer, status into p from workbench.proposals
        where proposal_id = new.proposal_id;
    if not found then
        raise exception 'proposal % does not exist', new.proposal_id;
    end if;
    if p.status <> 'proposed' then
        raise exception 'proposal % is %, not waiting for a decision', new.proposal_id, p.status;
    end if;
    new.proposer := p.proposer;
    if new.approver = new.proposer then
        raise exception 'the proposer of proposal % cannot decide it', new.proposal_id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
drop trigger if exists approvals_guard on workbench.approvals;
create trigger approvals_guard before insert or update or delete on workbench.approvals
    for each row execute function workbench.approvals_guard();

create table if not exists workbench.comments (
    comment_id  bigserial primary key,
    case_key    text not null references workbench.cases (case_key),
    author      text not null references workbench.users (name),
    body        text not null check (btrim(body) <> ''),
    at          timestamptz not null default now()
);
create index if not exists comments_by_case on workbench.comments (case_key, at);

create table if not exists workbench.notifications (
    notification_id  bigserial primary key,
    user_name        text not null references workbench.users (name),
    event            text not null
        check (event in ('assigned', 'approval_requested', 'approved', 'rejected', 'stale')),
    case_key         text references workbench.cases (case_key),
    proposal_id      bigint references workbench.proposals (proposal_id),
    created_at       timestamptz not null default now(),
    read_at          timestamptz
);
create index if not exists notifications_unread
    on workbench.notifications (user_name, notification_id) where read_at is null;

-- The audit trail: append-only, each record chained to the one before by its hash (audit.py).
create table if not exists workbench.audit_log (
    id         bigint primary key,
    at         timestamptz not null,
    actor      text not null,
    category   text not null check (category in ('user_operation', 'data_change',
                   'system_exception', 'interface_call')),
    action     text not null,
    subject    text,
    detail     jsonb not null default '{}',
    prev_hash  text not null,
    hash       text not null unique
);
create sequence if not exists workbench.audit_log_id_seq owned by workbench.audit_log.id;
create index if not exists audit_log_by_subject on workbench.audit_log (subject, id);
create index if not exists audit_log_by_time on workbench.audit_log (at);

create or replace function workbench.audit_log_refuse() returns trigger
language plpgsql as $$
begin
    raise exception 'workbench.audit_log is append-only (% refused)', tg_op;
end $$;
drop trigger if exists audit_log_no_change on workbench.audit_log;
create trigger audit_log_no_change before update or delete on workbench.audit_log
    for each row execute function workbench.audit_log_refuse();
drop trigger if exists audit_log_no_truncate on workbench.audit_log;
create trigger audit_log_no_truncate before truncate on workbench.audit_log
    for each statement execute function workbench.audit_log_refuse();

-- What dbt reads (as a source): the decisions finance approved, nothing else.
create or replace view workbench.approved_decisions as
select
    p.proposal_id   as decision_id,
    p.action,
    p.project,
    p.left_keys,
    p.right_keys,
    p.amount_minor,
    p.currency,
    p.decided_at    as approved_at
from workbench.proposals as p
where p.status = 'approved';
"""

def ensure(conn: psycopg.Connection,
           wait_seconds: float = warehouse.SCHEMA_LOCK_WAIT_SECONDS) -> None:
    """Create or update the workbench schema (idempotent; no lock when already current)."""
    digest = warehouse._digest(DDL)
    if warehouse._applied(conn).get(PART) == digest:
        return
    warehouse.retry_while_busy(lambda: _apply(conn, digest), wait_seconds)


def _apply(conn: psycopg.Connection, digest: str) -> None:
    with conn.transaction():
        # The warehouse's lock: one schema change at a time, whichever part it is.
        conn.execute("select pg_advisory_xact_lock(hashtext('tally.ensure_schema'))")
        conn.execute(warehouse.STATE_DDL)
        if warehouse._applied(conn).get(PART) == digest:
            return  # another session applied it meanwhile
        tables = [name for (name,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'workbench' and c.relkind in ('r', 'p') order by 1")]
        if tables:
            conn.execute(sql.SQL("lock table {} in access exclusive mode nowait").format(
                sql.SQL(", ").join(sql.Identifier("workbench", t) for t in tables)))
        conn.execute(DDL)
        conn.execute(
            "insert into tally.schema_state (part, digest) values (%s, %s)"
            " on conflict (part) do update set digest = excluded.digest, applied_at = now()",
            (PART, digest))
