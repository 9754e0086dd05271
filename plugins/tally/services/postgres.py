"""The embedded PostgreSQL cluster: initdb + pg_ctl from the machine's binaries, 127.0.0.1 only."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from tally.config import Settings
from tally.services import process

# Tuned for a single-machine warehouse; the cluster is disposable (it lives under TALLY_HOME).
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "synchronous_commit": "off",
    "max_connections": "100",
    # Compiling a large plan to machine code took longer than running it (the reconciliation
    # models, the gate's checks): see dbt_project/macros/reconciliation.sql, no_jit.
    "jit": "off",
}
BOOTSTRAP_SUPERUSER = 10  # the OID initdb gives its superuser


def data_dir(settings: Settings) -> Path:
    return settings.home / "pg" / "data"


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/N/bin; installs Debian's postgresql when root and missing."""
    def major(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if candidates:
        return Path(candidates[-1]).parent
    if os.geteuid() == 0 and shutil.which("apt-get"):
        # No prompts; the variable is set for apt-get alone, nothing here reads the environment.
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        subprocess.run([*apt, "update", "-qq"], check=True)
        subprocess.run([*apt, "install", "-y", "-qq", "postgresql"], check=True,
                       stdout=subprocess.DEVNULL)
        return find_bin_dir()
    raise RuntimeError(
        "No PostgreSQL server binaries found under /usr/lib/postgresql/*/bin. Install them "
        "(Debian: sudo apt-get install postgresql) or set TALLY_PG_DSN to an existing server."
    )


def _as_server_user(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: run the cluster as the unprivileged 'postgres' user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _prepare_dirs(pg_root: Path) -> None:
    pg_root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(pg_root, user.pw_uid, user.pw_gid)
        pg_root.chmod(0o700)


def start(settings: Settings) -> None:
    data = data_dir(settings)
    pid_file = data / "postmaster.pid"
    if process.read_pid(pid_file):
        return
    bin_dir = find_bin_dir()
    pg_root = data.parent
    if not (data / "PG_VERSION").exists():
        _prepare_dirs(pg_root)
        # No -U and no password: the superuser is the account the server runs as, and it logs in
        # over the cluster's socket only (peer). The pipeline's role is made by bootstrap().
        try:
            subprocess.run(
                _as_server_user([
                    str(bin_dir / "initdb"), "-D", str(data), "--auth-host=scram-sha-256",
                    "--auth-local=peer", "-E", "UTF8", "--locale=C.UTF-8",
                ]),
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed in {data}: {exc.stderr}") from exc
    options = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
    options += f" -p {settings.pg.port} -k {pg_root}"
    log = pg_root / "server.log"
    result = subprocess.run(
        _as_server_user([
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
            "-t", "60", "start",
        ]),
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr}{result.stdout}\n{tail}")


def connect(settings: Settings, database: str | None = None, **kwargs) -> psycopg.Connection:
    pg = settings.pg
    return psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password,
        dbname=database or pg.database, connect_timeout=10, **kwargs,
    )


def admin_user() -> str:
    """The embedded cluster's superuser, named by initdb after the account the server runs as."""
    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _as_admin(settings: Settings, statements: str, database: str = "postgres") -> None:
    """Run SQL as the cluster's superuser, through psql on the cluster's socket: setup only."""
    result = subprocess.run(
        _as_server_user([
            str(find_bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-v", "VERBOSITY=terse", "-h", str(data_dir(settings).parent),
            "-p", str(settings.pg.port), "-U", admin_user(), "-d", database,
        ]),
        # On stdin, not in argv where any local user could read a password. Errors never echo
        # the statement, neither here (terse) nor in the server's log. One setup at a time:
        # every `tally run` and `tally upload` sets the roles up, and two ALTER ROLEs of the
        # same role at once fail ("tuple concurrently updated"); the lock ends with psql.
        input=("set log_min_error_statement = panic;\n"
               "select pg_advisory_lock(hashtext('tally.setup_as_admin')) \\g /dev/null\n"
               + statements),
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"setting up PostgreSQL as {admin_user()} failed: {result.stderr}")


def _setup_roles(settings: Settings) -> None:
    """The pipeline's role owns the warehouse database and may create roles (the BI role), and
    nothing more: no superuser, no new databases."""
    pg = settings.pg
    if admin_user() == pg.user:
        raise RuntimeError(f"the account {pg.user!r} runs the embedded PostgreSQL and would be its"
                           " superuser: run Tally as another account, or set TALLY_PG_DSN")
    _as_admin(settings, sql.SQL("""
select format('create role %I', {name}) where not exists
    (select from pg_roles where rolname = {name}) \\gexec
alter role {role} login nosuperuser createrole nocreatedb noreplication nobypassrls
    password {password};
select format('create database %I owner %I', {datname}, {name}) where not exists
    (select from pg_database where datname = {datname}) \\gexec
alter database {database} owner to {role};
""").format(role=sql.Identifier(pg.user), name=sql.Literal(pg.user),
            password=sql.Literal(pg.password), database=sql.Identifier(pg.database),
            datname=sql.Literal(pg.database)).as_string())


def _retire_old_superuser(settings: Settings) -> bool:
    """Clusters made before the pipeline's role lost its superuser were initdb'd with -U <that
    role>, the bootstrap superuser, which owns the catalogs and cannot be demoted: rename it out
    of the way (no login) and make the server's account the superuser. True for such a cluster."""
    try:
        conn = connect(settings, database="postgres", autocommit=True)
    except psycopg.OperationalError:
        return False  # a new cluster: the pipeline's role does not exist before _setup_roles
    with conn:
        (oid,) = conn.execute("select oid from pg_roles where rolname = current_user").fetchone()
        if oid != BOOTSTRAP_SUPERUSER:
            return False
        if not conn.execute("select 1 from pg_roles where rolname = %s",
                            (admin_user(),)).fetchone():
            conn.execute(sql.SQL("create role {} superuser login").format(
                sql.Identifier(admin_user())))
    retired = sql.Identifier(f"{settings.pg.user}_initdb")
    _as_admin(settings, sql.SQL("alter role {} rename to {}; alter role {} nologin password null;")
              .format(sql.Identifier(settings.pg.user), retired, retired).as_string())
    return True


# Hands what the old bootstrap superuser (OID 10) created in the warehouse to the pipeline's role,
# and the roles it created (the BI role: on PostgreSQL 16+ a CREATEROLE role alters only roles
# it administers). Sequences owned by a column change owner with their table.
HAND_OVER = """
do $$
declare
    ddl text;
begin
    for ddl in
        select format('alter schema %I owner to {role}', nspname) from pg_namespace
        where nspowner = 10 and nspname !~ '^pg_' and nspname <> 'information_schema'
        union all
        select format('alter table %s owner to {role}', c.oid::regclass)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relowner = 10 and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
          and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass
                          and d.objid = c.oid and d.deptype in ('a', 'i'))
        union all
        select format('alter routine %s owner to {role}', p.oid::regprocedure)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proowner = 10 and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
        union all
        select format('grant %I to {role} with admin option', rolname) from pg_roles
        where not rolsuper and rolname !~ '^pg_' and rolname <> {name}
    loop
        execute ddl;
    end loop;
end $$;
"""


def bootstrap(settings: Settings) -> None:
    """Create the pipeline's role and the warehouse database (embedded cluster only), then
    Tally's schemas as the pipeline's role."""
    from tally import warehouse

    if settings.pg.embedded:
        retired = _retire_old_superuser(settings)
        _setup_roles(settings)
        if retired:
            _as_admin(settings, sql.SQL(HAND_OVER).format(
                role=sql.Identifier(settings.pg.user), name=sql.Literal(settings.pg.user),
            ).as_string(), database=settings.pg.database)
    with connect(settings) as conn:
        warehouse.ensure_schema(conn)


def stop(settings: Settings) -> bool:
    # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
    return process.stop(data_dir(settings) / "postmaster.pid", sig=signal.SIGINT)


def restart(settings: Settings) -> None:
    """A fast restart (pg_ctl restart -m fast): open sessions are rolled back and cut off."""
    # stop() and start() rather than pg_ctl restart, which would keep the server's output on
    # our pipe; the server options and log stay those of start().
    stop(settings)
    start(settings)


def status(settings: Settings) -> str:
    if not settings.pg.embedded:
        return f"external {settings.pg.host}:{settings.pg.port}"
    pid = process.read_pid(data_dir(settings) / "postmaster.pid")
    return f"running pid {pid} on 127.0.0.1:{settings.pg.port}" if pid else "stopped"
