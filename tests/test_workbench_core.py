"""The workbench's core on the real warehouse, without the web layer: its schema, users and
lockout, API tokens, maker-checker (in the code and in the database itself), and the audit
trail's chain, which a change made behind the trigger's back still breaks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from tally import cli
from tally.services import postgres
from tally.workbench import audit, cases, decisions, notifications, schema, users
from tally.workbench.access import Invalid, Refused
from tally.workbench.policy import Policy
from tests.conftest import reset

POLICY = Policy(second_approver_above_minor=1_000_000, write_off_limit_minor=5_000_000)
PROJECT = "platform_vs_bank"


@pytest.fixture(scope="module")
def db(settings):
    reset(settings)
    with postgres.connect(settings, autocommit=True) as conn:
        people = {name: users.add(conn, name, role) for name, role in (
            ("olive", "operator"), ("abel", "approver"), ("anna", "approver"),
            ("adam", "admin"), ("vera", "viewer"))}
        yield conn, {name: users.get(conn, name) for name in people}, people


def new_case(conn, key: str) -> str:
    # A case as the queue would make it; these tests need no reconciled day.
    conn.execute("insert into workbench.cases (case_key, kind, project, first_seen)"
                 " values (%s, 'break', %s, %s)", (key, PROJECT, date(2026, 11, 20)))
    return key


def literal(value) -> str:
    return "'" + json.dumps(value).replace("'", "''") + "'"


def as_superuser(settings, statements: str) -> None:
    postgres._as_admin(settings, statements, database=settings.pg.database)


def test_the_schema_is_applied_once_and_names_the_decisions_dbt_reads(db):
    conn, _, _ = db
    digest = conn.execute("select digest from tally.schema_state where part = 'workbench'"
                          ).fetchone()[0]
    schema.ensure(conn)  # current: nothing to do
    assert conn.execute("select digest, applied_at = (select applied_at from tally.schema_state"
                        " where part = 'workbench') from tally.schema_state"
                        " where part = 'workbench'").fetchone()[0] == digest
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = 'workbench' and table_name = 'approved_decisions'"
        " order by ordinal_position").fetchall()
    assert columns == [("decision_id", "bigint"), ("action", "text"), ("project", "text"),
                       ("left_keys", "ARRAY"), ("right_keys", "ARRAY"),
                       ("amount_minor", "bigint"), ("currency", "text"),
                       ("approved_at", "timestamp with time zone")]


def test_a_password_is_generated_hashed_and_never_stored(db):
    conn, _, passwords = db
    stored = conn.execute("select password_hash from workbench.users where name = 'olive'"
                          ).fetchone()[0]
    assert stored.startswith("$argon2id$") and passwords["olive"] not in stored
    assert users.authenticate(conn, "olive", passwords["olive"]).role == "operator"
    assert users.authenticate(conn, "olive", passwords["olive"] + "x") is None
    assert users.authenticate(conn, "nobody", "whatever") is None
    with pytest.raises(Invalid):
        users.add(conn, "olive", "viewer")


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(db):
    conn, _, _ = db
    password = users.add(conn, "lars", "operator")
    for _ in range(users.MAX_FAILED_LOGINS):
        assert users.authenticate(conn, "lars", "wrong") is None
    locked_until = conn.execute("select locked_until from workbench.users where name = 'lars'"
                                ).fetchone()[0]
    assert timedelta(minutes=14) < locked_until - datetime.now(UTC) <= timedelta(minutes=15)
    assert users.authenticate(conn, "lars", password) is None  # even the right one, for now
    actions = [a for (a,) in conn.execute(
        "select action from workbench.audit_log where subject = 'user:lars' order by id")]
    assert actions == ["user_added", *["login_failed"] * 5, "lockout", "login_refused_locked"]
    # When the lock has expired the right password works again.
    conn.execute("update workbench.users set locked_until = now() - interval '1 second'"
                 " where name = 'lars'")
    assert users.authenticate(conn, "lars", password).name == "lars"


def test_api_tokens_are_kept_as_hashes_and_can_be_revoked(db):
    conn, _, _ = db
    token = users.create_token(conn, "abel", "script")
    assert users.by_token(conn, token).name == "abel"
    assert conn.execute("select count(*) from workbench.api_tokens where token_sha256 = %s"
                        " or name = %s", (token, token)).fetchone()[0] == 0
    assert users.by_token(conn, token + "x") is None
    token_id = conn.execute("select max(token_id) from workbench.api_tokens").fetchone()[0]
    users.revoke_token(conn, token_id, "adam")
    assert users.by_token(conn, token) is None


def test_a_proposal_needs_a_reason_and_a_proposer_role(db):
    conn, people, _ = db
    key = new_case(conn, "case-reason")
    with pytest.raises(Invalid, match="reason"):
        decisions.propose(conn, POLICY, people["olive"], key,
                          decisions.Proposal("mark_normal", "   "))
    with pytest.raises(Refused):
        decisions.propose(conn, POLICY, people["vera"], key,
                          decisions.Proposal("mark_normal", "fine"))
    with pytest.raises(Refused):
        decisions.propose(conn, POLICY, people["abel"], key,
                          decisions.Proposal("mark_normal", "fine"))
    with pytest.raises(Invalid, match="integer"):
        decisions.propose(conn, POLICY, people["olive"], key,
                          decisions.Proposal("adjustment", "x", amount_minor=12.5,
                                             currency="CNY"))
    # The database refuses an empty reason too, whoever writes.
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("insert into workbench.proposals (case_key, action, project, reason,"
                     " proposer, approvals_needed) values (%s, 'mark_normal', %s, ' ',"
                     " 'olive', 1)", (key, PROJECT))
    assert conn.execute("select count(*) from workbench.proposals where case_key = %s",
                        (key,)).fetchone()[0] == 0


def test_the_proposer_can_never_approve_not_even_in_the_database(db, settings):
    conn, people, _ = db
    key = new_case(conn, "case-own")
    proposal_id = decisions.propose(conn, POLICY, people["adam"], key,
                                    decisions.Proposal("mark_normal", "bank fee, expected"))
    with pytest.raises(Refused, match="proposer"):
        decisions.approve(conn, people["adam"], proposal_id)
    # Whatever the application does, the table says no: the trigger fills in the real
    # proposer, and the check refuses them; claiming another proposer breaks the foreign key.
    for proposer in ("adam", "olive"):
        with pytest.raises((psycopg.errors.CheckViolation,
                            psycopg.errors.ForeignKeyViolation)):
            conn.execute("insert into workbench.approvals (proposal_id, proposer, approver,"
                         " decision) values (%s, %s, 'adam', 'approve')", (proposal_id, proposer))
    # The trigger is off for a superuser's session_replication_role: the constraint still holds.
    with pytest.raises(RuntimeError, match="approvals_not_by_proposer"):
        as_superuser(settings, "set session_replication_role = replica;\n"
                     f"insert into workbench.approvals (proposal_id, proposer, approver, decision)"
                     f" values ({proposal_id}, 'adam', 'adam', 'approve');\n")
    assert decisions.approve(conn, people["abel"], proposal_id) == "approved"
    with pytest.raises(Invalid, match="approved"):
        decisions.approve(conn, people["anna"], proposal_id)


def test_above_the_threshold_two_different_approvers_are_needed(db):
    conn, people, _ = db
    key = new_case(conn, "case-large")
    big = POLICY.second_approver_above_minor + 1
    proposal_id = decisions.propose(
        conn, POLICY, people["olive"], key,
        decisions.Proposal("adjustment", "booked twice by the bank", left_keys=["L1"],
                           right_keys=["R1", "R2"], amount_minor=big, currency="CNY"))
    assert decisions.get(conn, proposal_id)["approvals_needed"] == 2
    assert cases.get(conn, key)["status"] == "proposed"
    asked = {n["user_name"] for n in _notes(conn, proposal_id, "approval_requested")}
    assert asked == {"abel", "anna", "adam"}
    assert decisions.approve(conn, people["abel"], proposal_id) == "proposed"
    with pytest.raises(Refused, match="already"):
        decisions.approve(conn, people["abel"], proposal_id)
    assert conn.execute("select count(*) from workbench.approved_decisions"
                        " where decision_id = %s", (proposal_id,)).fetchone()[0] == 0
    assert decisions.approve(conn, people["anna"], proposal_id) == "approved"
    assert cases.get(conn, key)["status"] == "resolved"
    row = conn.execute("select action, project, left_keys, right_keys, amount_minor, currency"
                       " from workbench.approved_decisions where decision_id = %s",
                       (proposal_id,)).fetchone()
    assert row == ("adjustment", PROJECT, ["L1"], ["R1", "R2"], big, "CNY")
    assert [n["user_name"] for n in _notes(conn, proposal_id, "approved")] == ["olive"]
    # At the threshold itself, one approver is enough.
    assert POLICY.approvals_needed(POLICY.second_approver_above_minor) == 1
    assert POLICY.approvals_needed(-big) == 2


def test_a_write_off_above_the_limit_is_refused(db):
    conn, people, _ = db
    key = new_case(conn, "case-write-off")
    with pytest.raises(Refused, match="write-off"):
        decisions.propose(conn, POLICY, people["olive"], key, decisions.Proposal(
            "write_off", "old", amount_minor=-(POLICY.write_off_limit_minor + 1),
            currency="CNY"))
    decisions.propose(conn, POLICY, people["olive"], key, decisions.Proposal(
        "write_off", "old", amount_minor=POLICY.write_off_limit_minor, currency="CNY"))


def test_a_rejection_needs_a_reason_and_returns_the_case_to_the_operator(db):
    conn, people, _ = db
    key = new_case(conn, "case-reject")
    cases.assign(conn, people["adam"], key, "adam")
    proposal_id = decisions.propose(conn, POLICY, people["olive"], key,
                                    decisions.Proposal("mark_normal", "looks fine"))
    with pytest.raises(Invalid, match="reason"):
        decisions.reject(conn, people["abel"], proposal_id, " ")
    decisions.reject(conn, people["abel"], proposal_id, "the bank confirms no such fee")
    assert decisions.get(conn, proposal_id)["status"] == "rejected"
    case = cases.get(conn, key)
    assert (case["status"], case["assignee"]) == ("open", "olive")
    assert [n["user_name"] for n in _notes(conn, proposal_id, "rejected")] == ["olive"]
    change = conn.execute("select detail from workbench.audit_log where subject = %s"
                          " and action = 'proposal_rejected'", (cases.subject(key),)).fetchone()[0]
    assert change["before"]["assignee"] == "adam" and change["after"]["assignee"] == "olive"
    # The case takes a new proposal.
    decisions.propose(conn, POLICY, people["olive"], key,
                      decisions.Proposal("missing_entry", "entry missing on the platform"))


def _notes(conn, proposal_id, event):
    return [n for n in (dict(zip(("user_name", "event"), r, strict=True)) for r in conn.execute(
        "select user_name, event from workbench.notifications where proposal_id = %s"
        " order by user_name", (proposal_id,))) if n["event"] == event]


def test_inbox_counts_and_marks_read_only_ones_own(db):
    conn, people, _ = db
    key = new_case(conn, "case-inbox")
    before = notifications.unread(conn, "olive")
    cases.assign(conn, people["abel"], key, "olive")
    assert notifications.unread(conn, "olive") == before + 1
    assert notifications.mark_read(conn, "abel") >= 0
    assert notifications.unread(conn, "olive") == before + 1
    assert notifications.mark_read(conn, "olive") == before + 1
    assert notifications.unread(conn, "olive") == 0


def test_the_audit_log_refuses_changes_and_the_chain_shows_one_made_anyway(db, settings,
                                                                           capsys):
    conn, _, _ = db
    assert audit.verify(conn).ok
    target = conn.execute("select id, detail from workbench.audit_log"
                          " where action = 'proposal_made' order by id limit 1").fetchone()
    for statement in ("update workbench.audit_log set actor = 'x' where id = %s",
                      "delete from workbench.audit_log where id = %s"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(statement, (target[0],))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("truncate workbench.audit_log")
    assert cli.main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out

    # A superuser with the trigger disabled changes one record's detail.
    tampered = {**target[1], "after": {**target[1]["after"], "reason": "nothing to see"}}
    as_superuser(settings, f"""
alter table workbench.audit_log disable trigger audit_log_no_change;
update workbench.audit_log set detail = {literal(tampered)}::jsonb where id = {target[0]};
alter table workbench.audit_log enable trigger audit_log_no_change;
""")
    try:
        result = audit.verify(conn)
        assert (result.ok, result.broken_id) == (False, target[0])
        assert "changed" in result.reason
        assert cli.main(["audit", "verify"]) == 1
        assert f"BROKEN at record {target[0]}" in capsys.readouterr().err
    finally:
        as_superuser(settings, f"""
alter table workbench.audit_log disable trigger audit_log_no_change;
update workbench.audit_log set detail = {literal(target[1])}::jsonb where id = {target[0]};
alter table workbench.audit_log enable trigger audit_log_no_change;
""")
    assert audit.verify(conn).ok


def test_concurrent_appends_keep_one_linear_chain(db, settings):
    conn, _, _ = db
    start = conn.execute("select count(*) from workbench.audit_log").fetchone()[0]

    def append(n):
        with postgres.connect(settings, autocommit=True) as own:
            for i in range(10):
                audit.record(own, f"worker{n}", "interface_call", "probe", None, {"i": i})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert conn.execute("select count(*) from workbench.audit_log").fetchone()[0] == start + 40
    assert audit.verify(conn).ok


def test_the_export_holds_the_days_records_with_their_links(db, tmp_path):
    conn, _, _ = db
    today = datetime.now(UTC).date()
    out = tmp_path / "audit.jsonl"
    count = audit.export(conn, today, today, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert count == len(lines) == conn.execute(
        "select count(*) from workbench.audit_log").fetchone()[0]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:], strict=False))
    # never a secret: no password, no password hash
    text = out.read_text()
    assert "$argon2" not in text and not any(p in text for p in db[2].values())
    assert audit.export(conn, today - timedelta(days=3), today - timedelta(days=2), out) == 0


def test_the_cli_prints_a_new_password_and_a_new_token_once(db, capsys):
    conn, _, _ = db
    assert cli.main(["users", "add", "cleo", "--role", "viewer", "--language", "en"]) == 0
    password = capsys.readouterr().out.strip().splitlines()[-1]
    assert users.authenticate(conn, "cleo", password).language == "en"
    assert cli.main(["users", "token", "cleo"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert users.by_token(conn, token).name == "cleo"
    assert cli.main(["users", "add", "cleo", "--role", "viewer"]) == 2
    assert "exists" in capsys.readouterr().err
