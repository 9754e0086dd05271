"""The finance workbench: where people work the breaks and suspense items a run publishes.

One module per concern: `schema` (its tables), `audit` (the hash-chained trail), `users`
(passwords, lockout, API tokens), `access` (who may do what), `policy` (limits from
include/workbench.yaml), `cases`, `decisions` (maker-checker), `notifications`, `queue` (what
the pages read), `i18n`, and `app` (the FastAPI application, `create_app(settings)`, with
Jinja2 templates in templates/ and static files in static/, the vendored libraries in
static/vendor/ with VENDORED.md). `tally web` serves it on its own; Airflow's API server mounts
it under /tally (plugins/tally_workbench_plugin.py). Everything but `app` is plain
functions over a psycopg connection, so the CLI and the tests use the same code as the pages.
"""
