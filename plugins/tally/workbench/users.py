"""People and their credentials: argon2 password hashes, lockout, API tokens.

No account exists until `tally users add` makes one, and its password is generated and shown
once. After MAX_FAILED_LOGINS wrong passwords in a row the account is locked for LOCKOUT; a
locked account refuses even the right password until then. API tokens are random, shown once,
and kept as their sha256 only (they are long and random, so a fast hash is enough).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tally.workbench import audit
from tally.workbench.access import LANGUAGES, ROLES, Invalid, NotFound, User

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
BEARER_PREFIX = "tly_"

_hasher = PasswordHasher()
# Verified against when the name is unknown, so that a wrong name takes as long as a wrong
# password and response times do not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

_USER = "select name, display_name, role, language from workbench.users"


def _user(row) -> User | None:
    return User(*row) if row else None


def get(conn: psycopg.Connection, name: str) -> User | None:
    return _user(conn.execute(_USER + " where name = %s and active", (name,)).fetchone())


def add(conn: psycopg.Connection, name: str, role: str, language: str = "zh",
        display_name: str | None = None, actor: str = "system") -> str:
    """Create a user; returns the generated password (shown once, never stored)."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if language not in LANGUAGES:
        raise Invalid(f"language must be one of {', '.join(LANGUAGES)}")
    password = secrets.token_urlsafe(12)
    with conn.transaction():
        try:
            conn.execute(
                "insert into workbench.users (name, display_name, role, password_hash, language)"
                " values (%s, %s, %s, %s, %s)",
                (name, display_name or name, role, _hasher.hash(password), language))
        except psycopg.errors.UniqueViolation:
            raise Invalid(f"user {name} exists") from None
        except psycopg.errors.CheckViolation:
            raise Invalid("a user name is lower-case letters, digits, '.', '_' or '-'") from None
        audit.record(conn, actor, "data_change", "user_added", f"user:{name}",
                     {"after": {"role": role, "language": language, "active": True}})
    return password


def update(conn: psycopg.Connection, name: str, actor: str, role: str | None = None,
           active: bool | None = None, language: str | None = None,
           unlock: bool = False) -> None:
    """Change a user's role, activity or language, or lift a lockout (audited before/after)."""
    if role is not None and role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if language is not None and language not in LANGUAGES:
        raise Invalid(f"language must be one of {', '.join(LANGUAGES)}")
    with conn.transaction():
        row = conn.execute(
            "select role, active, language, locked_until from workbench.users"
            " where name = %s for update", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no user {name}")
        before = {"role": row[0], "active": row[1], "language": row[2]}
        after = {"role": role if role is not None else row[0],
                 "active": active if active is not None else row[1],
                 "language": language or row[2]}
        conn.execute(
            "update workbench.users set role = %s, active = %s, language = %s,"
            " locked_until = case when %s then null else locked_until end,"
            " failed_logins = case when %s then 0 else failed_logins end where name = %s",
            (after["role"], after["active"], after["language"], unlock, unlock, name))
        if unlock:
            before["locked_until"], after["locked_until"] = row[3], None
        audit.record(conn, actor, "data_change", "user_changed", f"user:{name}",
                     {"before": before, "after": after})


def listing(conn: psycopg.Connection) -> list[dict]:
    cur = conn.execute(
        "select name, display_name, role, language, active, failed_logins, locked_until"
        " from workbench.users order by name")
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def authenticate(conn: psycopg.Connection, name: str, password: str,
                 via: str = "web") -> User | None:
    """The user if the password is right and the account active and not locked; every
    outcome is audited (the password never is)."""
    with conn.transaction():
        row = conn.execute(
            "select password_hash, failed_logins, locked_until, active from workbench.users"
            " where name = %s for update", (name,)).fetchone()
        if row is None or not row[3]:
            _verify(_DUMMY_HASH, password)
            audit.record(conn, "anonymous", "user_operation", "login_failed", None,
                         {"reason": "unknown or inactive user", "via": via})
            return None
        stored, failed, locked_until, _ = row
        now = datetime.now(UTC)
        if locked_until is not None and locked_until > now:
            audit.record(conn, name, "user_operation", "login_refused_locked", f"user:{name}",
                         {"locked_until": locked_until.isoformat(), "via": via})
            return None
        if not _verify(stored, password):
            failed += 1
            if failed >= MAX_FAILED_LOGINS:
                until = now + LOCKOUT
                conn.execute("update workbench.users set failed_logins = 0, locked_until = %s"
                             " where name = %s", (until, name))
                audit.record(conn, name, "user_operation", "login_failed", f"user:{name}",
                             {"failed_logins": failed, "via": via})
                audit.record(conn, "system", "user_operation", "lockout", f"user:{name}",
                             {"failed_logins": failed, "locked_until": until.isoformat()})
            else:
                conn.execute("update workbench.users set failed_logins = %s where name = %s",
                             (failed, name))
                audit.record(conn, name, "user_operation", "login_failed", f"user:{name}",
                             {"failed_logins": failed, "via": via})
            return None
        if _hasher.check_needs_rehash(stored):
            conn.execute("update workbench.users set password_hash = %s where name = %s",
                         (_hasher.hash(password), name))
        conn.execute("update workbench.users set failed_logins = 0, locked_until = null"
                     " where name = %s", (name,))
        audit.record(conn, name, "user_operation", "login", f"user:{name}", {"via": via})
    return get(conn, name)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def logout(conn: psycopg.Connection, name: str) -> None:
    """Sign out: every session of the user signed in until now stops working."""
    with conn.transaction():
        conn.execute("update workbench.users set session_generation = session_generation + 1"
                     " where name = %s", (name,))
        audit.record(conn, name, "user_operation", "logout", f"user:{name}")


def session_generation(conn: psycopg.Connection, name: str) -> int:
    return conn.execute("select session_generation from workbench.users where name = %s",
                        (name,)).fetchone()[0]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: psycopg.Connection, name: str, token_name: str = "api",
                 actor: str = "system") -> str:
    """A new API token for the user, returned once."""
    token = BEARER_PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        if get(conn, name) is None:
            raise NotFound(f"no active user {name}")
        token_id = conn.execute(
            "insert into workbench.api_tokens (user_name, name, token_sha256)"
            " values (%s, %s, %s) returning token_id",
            (name, token_name, _token_hash(token))).fetchone()[0]
        audit.record(conn, actor, "data_change", "token_created", f"user:{name}",
                     {"after": {"token_id": token_id, "name": token_name}})
    return token


def revoke_token(conn: psycopg.Connection, token_id: int, actor: str) -> None:
    with conn.transaction():
        row = conn.execute(
            "update workbench.api_tokens set revoked_at = now()"
            " where token_id = %s and revoked_at is null returning user_name",
            (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no live token {token_id}")
        audit.record(conn, actor, "data_change", "token_revoked", f"user:{row[0]}",
                     {"before": {"token_id": token_id, "revoked": False},
                      "after": {"token_id": token_id, "revoked": True}})


def by_token(conn: psycopg.Connection, token: str) -> User | None:
    """The active user a live token belongs to, or None."""
    if not token.startswith(BEARER_PREFIX):
        return None
    row = conn.execute(
        "update workbench.api_tokens as t set last_used_at = now()"
        " from workbench.users as u"
        " where t.token_sha256 = %s and t.revoked_at is null and u.name = t.user_name"
        "   and u.active and (u.locked_until is null or u.locked_until <= now())"
        " returning u.name, u.display_name, u.role, u.language",
        (_token_hash(token),)).fetchone()
    return _user(row)


def by_session(conn: psycopg.Connection, name: str, generation: int) -> User | None:
    """The user a session names, if still active, not locked, and not signed out since the
    session began (a role change applies at once)."""
    return _user(conn.execute(
        _USER + " where name = %s and active and session_generation = %s"
        " and (locked_until is null or locked_until <= now())", (name, generation)).fetchone())
