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
PRIVATE_SCHEMAS = ("raw", "staging", "intermediate", "marts", "tally", "reference",
                   "workbench")


def ensure_bi_role(conn: psycopg.Connection, role: str = "tally_reader",
                   password: str | None = None) -> None:
    """Create or update the reader role (idempotent). Run as the pipeline's role.

    With a password the role can log in; without one it is a group role to grant to people.
    """
    name = sql.Identifier(role)
    with conn.transaction():
        # Roles are cluster-wide: serialise concurrent callers.
        conn.execute("select pg_advisory_xact_lock(hashtext('tally.ensure_bi_role'))")
        found = conn.execute(
            "select rolsuper or rolcreatedb or rolcreaterole or rolreplication or rolbypassrls,"
            " coalesce(rolconfig, '{}') from pg_roles where rolname = %s", (role,)).fetchone()
        if found is None:
            # A new role has none of the attributes above. The pipeline's role may create it
            # (CREATEROLE) but may not grant or revoke those attributes.
            conn.execute(sql.SQL("create role {} nologin").format(name))
            found = (False, [])
        privileged, settings = found
        if privileged:
            raise RuntimeError(f"role {role} can do more than read (superuser, createdb, "
                               "createrole, replication or bypassrls): not a reader")
        if password:
            conn.execute(sql.SQL("alter role {} login password {}").format(
                name, sql.Literal(password)))
        # A reader never writes, even where a grant were added by mistake.
        if "default_transaction_read_only=on" not in settings:
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
        # Default privileges for every schema (docker/postgres-init.sh grants them) would open
        # each new schema and table upstream to the reader: reporting's are the only ones.
        conn.execute(sql.SQL("alter default privileges revoke all on schemas from {}")
                     .format(name))
        conn.execute(sql.SQL("alter default privileges revoke all on tables from {}")
                     .format(name))
