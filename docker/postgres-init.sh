#!/usr/bin/env bash
# Runs once, when the postgres volume is first created (docker-entrypoint-initdb.d).
# Airflow's metadata and Tally's warehouse are separate databases with separate owners on one
# server. Passwords come from the environment (.env); a later change in .env does not reach
# roles that already exist (docker compose down -v starts over).
set -eo pipefail
: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in .env}"
: "${WAREHOUSE_DB_PASSWORD:?set WAREHOUSE_DB_PASSWORD in .env}"
: "${WAREHOUSE_READER_PASSWORD:?set WAREHOUSE_READER_PASSWORD in .env}"

# psql quotes :'name' variables itself, so a password is never spliced into SQL by the shell.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v tally_password="$WAREHOUSE_DB_PASSWORD" \
    -v reader_password="$WAREHOUSE_READER_PASSWORD" <<'SQL'
-- Airflow's metadata database.
create role airflow login password :'airflow_password';
create database airflow owner airflow;
revoke all on database airflow from public;

-- The warehouse: the pipeline role owns it, as it owns the embedded cluster's database
-- (it creates the tally and raw schemas, loads, and builds the dbt models).
create role tally login password :'tally_password';
create database tally owner tally;
revoke all on database tally from public;

-- BI: logs in and can change nothing; what it may read (the reporting schema only) is
-- granted by the pipeline itself (tally.roles.ensure_bi_role, run by airflow-init).
create role tally_reader login password :'reader_password';
alter role tally_reader set default_transaction_read_only = on;
grant connect on database tally to tally_reader;
SQL
