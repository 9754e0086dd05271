"""The finance workbench: where people work the breaks and suspense items a run publishes.

One module per concern: `schema` (its tables), `audit` (the hash-chained trail), `users`
(passwords, lockout, API tokens), `access` (who may do what), `policy` (limits from
include/workbench.yaml), `cases`, `decisions` (maker-checker), `notifications`, `queue` (what
the pages read), `i18n`, and `app` (the FastAPI application). Everything but `app` is plain
functions over a psycopg connection, so the CLI and the tests use the same code as the pages.
"""
