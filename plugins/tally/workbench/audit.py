"""The audit trail: one append-only table whose records are chained by hash.

Each record's hash is sha256 over the previous record's hash and a canonical serialisation of
its own fields, so changing, removing or reordering any record breaks every hash after it;
`verify` names the first broken one. A trigger refuses UPDATE, DELETE and TRUNCATE; the chain is
what still tells when someone with the rights to disable the trigger changed a record anyway.

Appends take an advisory transaction lock before reading the last hash, so the chain stays
linear when sessions append at once; the record is written in the caller's transaction, so an
action and its audit record commit (or roll back) together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

CATEGORIES = ("user_operation", "data_change", "system_exception", "interface_call")
GENESIS = "0" * 64  # the previous hash of the first record
LOCK = "select pg_advisory_xact_lock(hashtext('tally.workbench.audit'))"


def canonical(record: dict) -> str:
    """The bytes a hash covers: sorted keys, no whitespace, UTF-8 as is."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normalised(detail: dict | None) -> dict:
    # What is hashed must be what jsonb gives back: dates and the like as text, no floats.
    return json.loads(json.dumps(detail or {}, default=str))


def _hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256((prev_hash + "\n" + canonical(fields)).encode()).hexdigest()


def _fields(record_id: int, at: datetime, actor: str, category: str, action: str,
            subject: str | None, detail: dict) -> dict:
    return {"id": record_id, "at": at.astimezone(UTC).isoformat(), "actor": actor,
            "category": category, "action": action, "subject": subject, "detail": detail}


def record(conn: psycopg.Connection, actor: str, category: str, action: str,
           subject: str | None = None, detail: dict | None = None) -> int:
    """Append one record (in the caller's transaction if there is one); returns its id."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown audit category {category!r}")
    detail = _normalised(detail)
    with conn.transaction():
        conn.execute(LOCK)
        last = conn.execute(
            "select hash from workbench.audit_log order by id desc limit 1").fetchone()
        prev_hash = last[0] if last else GENESIS
        record_id = conn.execute("select nextval('workbench.audit_log_id_seq')").fetchone()[0]
        # Microseconds, as timestamptz keeps them: the stored time hashes the same when read.
        at = datetime.now(UTC)
        fields = _fields(record_id, at, actor, category, action, subject, detail)
        conn.execute(
            "insert into workbench.audit_log"
            " (id, at, actor, category, action, subject, detail, prev_hash, hash)"
            " values (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
            (record_id, at, actor, category, action, subject, canonical(detail), prev_hash,
             _hash(prev_hash, fields)))
    return record_id


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str | None = None

    def text(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.checked} records"
        return (f"audit trail BROKEN at record {self.broken_id}: {self.reason} "
                f"({self.checked} records before it are intact)")


_COLUMNS = "id, at, actor, category, action, subject, detail, prev_hash, hash"


def verify(conn: psycopg.Connection) -> Verification:
    """Walk the chain from the first record; the first record that does not follow is named."""
    prev_hash, checked = GENESIS, 0
    # A server-side cursor: the trail is read in batches, never all at once.
    with conn.transaction(), conn.cursor(name="audit_verify") as cur:
        cur.execute(f"select {_COLUMNS} from workbench.audit_log order by id")
        for row in cur:
            record_id, at, actor, category, action, subject, detail, stored_prev, stored = row
            if stored_prev != prev_hash:
                return Verification(False, checked, record_id,
                                    "its prev_hash is not the hash of the record before it "
                                    "(a record was removed, inserted or reordered)")
            fields = _fields(record_id, at, actor, category, action, subject, detail)
            if _hash(stored_prev, fields) != stored:
                return Verification(False, checked, record_id,
                                    "its hash does not match its contents (it was changed)")
            prev_hash, checked = stored, checked + 1
    return Verification(True, checked)


def export(conn: psycopg.Connection, first: date, last: date, path: Path) -> int:
    """Write the records of days first..last (UTC) as JSON lines, with their hashes, so that an
    auditor can check the slice links up; returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        cur = conn.execute(
            f"select {_COLUMNS} from workbench.audit_log where at >= %s and at < %s order by id",
            (datetime.combine(first, datetime.min.time(), UTC),
             datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)))
        for record_id, at, actor, category, action, subject, detail, prev_hash, hash_ in cur:
            fields = _fields(record_id, at, actor, category, action, subject, detail)
            out.write(canonical({**fields, "prev_hash": prev_hash, "hash": hash_}) + "\n")
            count += 1
    return count


def for_subject(conn: psycopg.Connection, subject: str, limit: int = 200) -> list[dict]:
    rows = conn.execute(
        "select id, at, actor, category, action, detail from workbench.audit_log"
        " where subject = %s order by id desc limit %s", (subject, limit)).fetchall()
    return [dict(zip(("id", "at", "actor", "category", "action", "detail"), r, strict=True))
            for r in rows]
