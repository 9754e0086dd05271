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
}


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
        pwfile = pg_root / "pwfile"
        pwfile.write_text(settings.pg.password + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            subprocess.run(
                _as_server_user([
                    str(bin_dir / "initdb"), "-D", str(data), "-U", settings.pg.user,
                    f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer",
                    "-E", "UTF8", "--locale=C.UTF-8",
                ]),
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed in {data}: {exc.stderr}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
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


def bootstrap(settings: Settings) -> None:
    """Create the warehouse database (embedded cluster only) and Tally's schemas."""
    from tally import warehouse

    if settings.pg.embedded:
        with connect(settings, database="postgres", autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (settings.pg.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'create database "{settings.pg.database}"')
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
