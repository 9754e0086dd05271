"""Security, on the real services: credentials come only from the environment (or Airflow
connections) and show up neither in the repository nor in anything a run leaves behind; the
pipeline's role writes without being a superuser; the zones are separate buckets and the raw
zone is write-once. (What the BI role may and may not do: tests/test_bi_role.py.)"""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from tally import airflow_local, landing, pipeline, sources, storage
from tally.devtools import generator
from tally.services import postgres
from tests.conftest import reset
from tests.test_intake import with_pulls
from tests.vendors.bank_server import BankServer

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 20)
EMPTY_DAY = date(2026, 11, 27)  # no files: the gate fails
# The run's connector credential: random, so that finding it anywhere is never an accident.
MARKER = "tally-marker-" + secrets.token_hex(12)
PULL = {"name": "custody_bank", "connector": "bank_api", "account": "6228480011223344556",
        "source": "bank_camt053", "secret": "CUSTODY_BANK_TOKEN"}

# A credential-like name given a string literal as its whole value: `password="..."`.
LITERAL_CREDENTIAL = re.compile(
    r"""(?im)\b\w*(?:password|passwd|secret|token|api_?key|access_?key)\w*["']?\s*[:=]\s*"""
    r"""[rbuf]?(["'])[^"'\n]+\1\s*(?:[,)}\]#]|$)""")
AWS_ACCESS_KEY_ID = re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")


def secrets_of(settings) -> dict[str, str]:
    """Every credential the services and connectors of these settings use."""
    found = {"PostgreSQL password": settings.pg.password,
             "S3 access key": settings.s3.access_key, "S3 secret key": settings.s3.secret_key}
    found.update({name: value for name, value in settings.env.items()
                  if value and re.match(r"TALLY_(SECRET_|.*PASSWORD$|.*_KEY$)", name)})
    # Long and random enough that a match is a leak, not a coincidence.
    assert all(len(value) >= 16 for value in found.values()), sorted(found)
    return found


def leaks(paths, found: dict[str, str]) -> list[str]:
    hits = []
    for path in paths:
        data = path.read_bytes()
        hits += [f"{name} in {path}" for name, value in found.items() if value.encode() in data]
    return hits


def files_under(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not set(skip) & set(p.relative_to(folder).parts))


def repository_files() -> list[Path]:
    """Tracked files, files git would add (untracked, not ignored), the GX project and the dbt
    project (without dbt's target/ and logs/)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True).stdout.split(b"\0")
    files = {ROOT / name.decode() for name in listed if name}
    files.update(files_under(ROOT / "expectations"))
    files.update(files_under(ROOT / "dbt_project", skip=("target", "logs")))
    return sorted(p for p in files if p.is_file())  # a tracked file deleted in the work tree


# --- 1. the repository -------------------------------------------------------------------------

def test_the_repository_holds_no_credential(settings):
    files = repository_files()
    assert len(files) > 100 and ROOT / "plugins" / "tally" / "config.py" in files
    found = secrets_of(settings) | {"connector marker": MARKER}
    assert leaks(files, found) == []

    # No credential written into code: the patterns find what they look for...
    assert LITERAL_CREDENTIAL.search('psycopg.connect(host=h, password="hunter2-but-longer")')
    assert LITERAL_CREDENTIAL.search("AWS_SECRET_ACCESS_KEY = 'abc/def+ghi'\n")
    assert not LITERAL_CREDENTIAL.search('"s3_access_key": "tally" + token_hex(6),')
    assert not LITERAL_CREDENTIAL.search("password=settings.pg.password,")
    # ...and nothing in the package or the DAGs matches them.
    code = [p for p in files if p.suffix == ".py"
            and p.relative_to(ROOT).parts[0] in ("plugins", "dags")]
    assert len(code) > 20
    literal = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in code
               for m in LITERAL_CREDENTIAL.finditer(p.read_text())]
    assert literal == []
    keys = [str(p.relative_to(ROOT)) for p in files
            if AWS_ACCESS_KEY_ID.search(p.read_bytes()) or PRIVATE_KEY.search(p.read_bytes())]
    assert keys == []

    # Where the credentials do live is ignored by git.
    for path in (settings.secrets_file, ROOT / ".env"):
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
        assert ignored.returncode == 0, f"{path} is not ignored by git"


# --- 2. a run's logs and leftovers -------------------------------------------------------------

def bad_ledger(settings) -> bytes:
    """A platform ledger whose 3rd row has an amount that is not a number: quarantined."""
    good = next((settings.inbox_dir / "platform_ledger" / DAY.isoformat()).iterdir())
    lines = good.read_text().splitlines()
    fields = lines[3].split(",")
    fields[5] = "1.2.3"
    return ("\n".join([*lines[:3], ",".join(fields), *lines[4:]]) + "\n").encode()


@pytest.fixture(scope="module")
def day_run(settings, tmp_path_factory):
    """One day through the daily DAG with a bank pull whose token is the marker (the bank knows
    the account but has no statement yet) and a bad file that goes to quarantine; then a day
    with no files, whose gate fails, with Airflow's DEV tracebacks (they show local variables)
    asked for."""
    reset(settings)
    tmp = tmp_path_factory.mktemp("security")
    with BankServer(token=MARKER) as bank:
        bank.statements[(PULL["account"], "2000-01-01")] = b""  # the account exists
        run = with_pulls(settings, tmp, [{**PULL, "base_url": bank.url}],
                         TALLY_SECRET_CUSTODY_BANK_TOKEN=MARKER)
        generator.generate_day(DAY, 200, run.inbox_dir, seed=21)
        bad = bad_ledger(run)
        (run.inbox_dir / "platform_ledger" / DAY.isoformat() / "correction.csv").write_bytes(bad)
        code = airflow_local.dags_test(run, DAY, log_file=tmp / "run.log")
        summary = pipeline.day_summary(run, DAY)
        failing = replace(run, env={**run.env, "DEV": "1"})
        failed_code = airflow_local.dags_test(failing, EMPTY_DAY, log_file=tmp / "failed.log")
    return SimpleNamespace(settings=run, failing=failing, code=code, summary=summary, bad=bad,
                           failed_code=failed_code, bank_calls=bank.valid_calls,
                           log=tmp / "run.log", failed_log=tmp / "failed.log")


def test_a_run_leaves_no_credential_in_its_logs(day_run):
    run = day_run.settings
    assert day_run.code == 0, day_run.log.read_text()[-3000:]
    assert day_run.summary["run_status"] == "published"
    assert day_run.bank_calls >= 1  # the marker was the token the bank accepted
    assert "custody_bank: bank statement of account" in day_run.log.read_text()  # not ready
    assert day_run.failed_code != 0 and "GateFailed" in day_run.failed_log.read_text()
    found = secrets_of(run)
    assert found["TALLY_SECRET_CUSTODY_BANK_TOKEN"] == MARKER

    # airflow dags test's output, the Airflow home (task logs, Cosmos cache, metadata DB)...
    places = [day_run.log, day_run.failed_log, *files_under(run.airflow_home)]
    # ...dbt's and the services' logs, Tally's own logs, the GX project and its data docs...
    for folder in (run.home / "logs", run.home / "dbt-logs", run.home / "dbt-target",
                   run.dbt_project_dir / "logs", run.dbt_project_dir / "target",
                   run.expectations_dir):
        places += files_under(folder)
    places += [p for p in (run.home / "pg" / "server.log", run.home / "s3" / "server.log")
               if p.exists()]
    assert leaks(places, found) == []

    # ...and everything the runs wrote to the quarantine and published zones.
    s3 = storage.client(run)
    objects = 0
    for bucket in (run.s3.quarantine_bucket, run.s3.published_bucket):
        for key in storage.list_keys(s3, bucket, ""):
            objects += 1
            data = storage.get_bytes(s3, bucket, key)
            assert [n for n, v in found.items() if v.encode() in data] == [], f"{bucket}/{key}"
    assert objects > 10


def test_credentials_stay_out_of_reprs_and_dev_tracebacks(day_run):
    """Tracebacks that show local variables print the settings' repr: it names no credential.
    Airflow shows locals (of every library frame too) when DEV is set: its runs never get it."""
    failing = day_run.failing
    shown = repr(failing) + str(failing.pg) + str(failing.s3)
    assert "tally" in shown and [n for n, v in secrets_of(failing).items() if v in shown] == []
    assert failing.env["DEV"] == "1" and "DEV" not in airflow_local.environment(failing)


# --- 3. the pipeline's role ---------------------------------------------------------------------

def test_the_pipeline_role_writes_but_is_no_superuser(settings, conn):
    assert conn.execute("select current_user").fetchone()[0] == settings.pg.user
    attributes = conn.execute(
        "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " from pg_roles where rolname = current_user").fetchone()
    # It creates the BI role (CREATEROLE), nothing more.
    assert attributes == (False, True, False, False, False)
    owner = conn.execute("select pg_get_userbyid(datdba) from pg_database"
                         " where datname = current_database()").fetchone()[0]
    assert owner == settings.pg.user
    # It writes where the pipeline writes...
    conn.execute("create table raw.security_probe (a int)")
    conn.execute("insert into raw.security_probe values (1)")
    assert conn.execute("select count(*) from raw.security_probe").fetchone()[0] == 1
    conn.execute("drop table raw.security_probe")
    # ...and cannot do what only a superuser can.
    for statement in ("alter system set work_mem = '1MB'",
                      "select rolpassword from pg_authid limit 1",
                      "copy (select 1) to program 'true'",
                      "create role security_probe superuser",
                      f'alter role "{settings.pg.user}" superuser'):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_clusters_superuser_cannot_log_in_over_tcp(settings):
    """The embedded cluster's superuser is the account the server runs as, on its socket only."""
    admin = postgres.admin_user()
    assert admin != settings.pg.user
    for password in (settings.pg.password, ""):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=settings.pg.host, port=settings.pg.port, user=admin,
                            password=password, dbname="postgres", connect_timeout=5)


# --- 4. zones -----------------------------------------------------------------------------------

def test_zones_are_separate_buckets_and_hold_only_their_own_objects(day_run):
    run = day_run.settings
    raw, quarantine, published = (run.s3.raw_bucket, run.s3.quarantine_bucket,
                                  run.s3.published_bucket)
    assert len({raw, quarantine, published}) == 3
    s3 = storage.client(run)
    keys = {bucket: storage.list_keys(s3, bucket, "") for bucket in (raw, quarantine, published)}
    assert keys[raw] and all(k.startswith("raw/") for k in keys[raw])
    assert keys[quarantine] and all(k.startswith("quarantine/") for k in keys[quarantine])
    assert any(k.startswith(f"daily/{DAY}/v0001/") for k in keys[published])
    assert all(k.startswith(("daily/", "data-docs/")) for k in keys[published])

    # The bad file: its bytes in the quarantine zone, kept as received in the raw zone.
    sha = hashlib.sha256(day_run.bad).hexdigest()
    raw_key = landing.raw_key("platform_ledger", DAY, sha, "correction.csv")
    assert storage.get_bytes(s3, raw, raw_key) == day_run.bad
    q_key = raw_key.replace("raw/", "quarantine/", 1)
    assert {q_key, f"{q_key}.reason.json"} <= set(keys[quarantine])
    assert storage.get_bytes(s3, quarantine, q_key) == day_run.bad
    assert not any(sha in k for k in keys[published])


def test_the_raw_zone_is_write_once(day_run, conn):
    run = day_run.settings
    s3 = storage.client(run)
    file_id, source, name, key = conn.execute(
        "select file_id, source, original_name, raw_key from tally.files"
        " where status = 'loaded' order by file_id limit 1").fetchone()
    data = storage.get_bytes(s3, run.s3.raw_bucket, key)
    before = s3.head_object(Bucket=run.s3.raw_bucket, Key=key)

    # Other bytes under an existing key: refused, the stored object untouched.
    assert not storage.put_if_absent(s3, run.s3.raw_bucket, key, data + b"tampered")
    # The same file landed again: a duplicate of the first receipt, the object untouched.
    again = landing.land_bytes(run, conn, s3, sources.load_all(run)[source], DAY, data, name)
    assert (again.status, again.raw_key) == ("duplicate", key)
    assert conn.execute("select duplicate_of from tally.files where file_id = %s",
                        (again.file_id,)).fetchone()[0] == file_id

    after = s3.head_object(Bucket=run.s3.raw_bucket, Key=key)
    assert storage.get_bytes(s3, run.s3.raw_bucket, key) == data
    assert (after["ETag"], after["LastModified"], after["ContentLength"]) == (
        before["ETag"], before["LastModified"], before["ContentLength"])
