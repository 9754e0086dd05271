"""The read-only role BI tools connect as: it sees the `reporting` schema and nothing else.

Reporting views select from the marts, but a view runs with its owner's rights in PostgreSQL:
the views are owned by the pipeline's role (the one dbt runs as), so the reader needs, and has,
no grant on marts or anything upstream. dbt recreates the views on every run; default
privileges (for views the pipeline role creates in `reporting`) grant SELECT on each new one.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

READABLE_SCHEMA = "reporting"
# Schemas the reader must never see into; revoked explicitly in case of an earlier grant.
PRIVATE_SCHEMAS = ("raw", "staging", "intermediate", "marts", "tally", "reference")


def ensure_bi_role(conn: psycopg.Connection, role: str = "tally_reader",
                   password: str | None = None) -> None:
    """Create or update the reader role (idempotent). Run as the pipeline's role.

    With a password the role can log in; without one it is a group role to grant to people.
    """
    name = sql.Identifier(role)
    with conn.transaction():
        # Roles are cluster-wide: serialise concurrent callers.
        conn.execute("select pg_advisory_xact_lock(hashtext('tally.ensure_bi_role'))")
        if not conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("create role {} nologin").format(name))
        conn.execute(sql.SQL("alter role {} nosuperuser nocreatedb nocreaterole noreplication"
                             " nobypassrls").format(name))
        if password:
            conn.execute(sql.SQL("alter role {} login password {}").format(
                name, sql.Literal(password)))
        # A reader never writes, even where a grant were added by mistake.
        conn.execute(sql.SQL("alter role {} set default_transaction_read_only = on")
                     .format(name))
        database = sql.Identifier(conn.info.dbname)
        conn.execute(sql.SQL("grant connect on database {} to {}").format(database, name))
        existing = {r[0] for r in conn.execute(
            "select nspname from pg_namespace where nspname = any(%s)",
            (list(PRIVATE_SCHEMAS),)).fetchall()}
        for schema in sorted(existing):
            ident = sql.Identifier(schema)
            conn.execute(sql.SQL("revoke all on all tables in schema {} from {}")
                         .format(ident, name))
            conn.execute(sql.SQL("revoke all on schema {} from {}").format(ident, name))
        reporting = sql.Identifier(READABLE_SCHEMA)
        conn.execute(sql.SQL("create schema if not exists {}").format(reporting))
        conn.execute(sql.SQL("revoke create on schema {} from {}").format(reporting, name))
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(reporting, name))
        conn.execute(sql.SQL("grant select on all tables in schema {} to {}")
                     .format(reporting, name))
        conn.execute(sql.SQL("alter default privileges in schema {} grant select on tables"
                             " to {}").format(reporting, name))
