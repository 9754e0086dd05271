"""The embedded services: real PostgreSQL and SeaweedFS on loopback, stopped by PID."""

from tally import services
from tally.services import postgres, process


def test_postgres_listens_on_loopback_only(settings, conn):
    assert conn.execute("show listen_addresses").fetchone()[0] == "127.0.0.1"
    assert conn.execute("show port").fetchone()[0] == str(settings.pg.port)
    assert conn.execute("select current_database()").fetchone()[0] == "tally"


def test_status_names_the_running_processes(settings):
    state = services.status(settings)
    assert state["postgres"].startswith("running pid ")
    assert state["s3"].startswith("running pid ")


def test_the_s3_server_runs_with_a_soft_heap_limit(settings):
    from pathlib import Path

    from tally.services import s3

    pid = process.read_pid(settings.run_dir / "s3.pid")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"GOMEMLIMIT={s3.MEMORY_LIMIT}".encode() in environ


def test_down_stops_by_pid_and_up_starts_again(settings):
    from tally.services import web

    web.start(settings)  # started by `tally web` only, stopped with the others
    pg_pid = process.read_pid(postgres.data_dir(settings) / "postmaster.pid")
    s3_pid = process.read_pid(settings.run_dir / "s3.pid")
    web_pid = process.read_pid(web.pid_file(settings))
    assert sorted(services.down(settings)) == ["postgres", "s3", "web"]
    assert not any(process.alive(pid) for pid in (pg_pid, s3_pid, web_pid))
    assert not process.port_open("127.0.0.1", settings.pg.port)
    assert not process.port_open("127.0.0.1", settings.s3.port)
    assert not process.port_open("127.0.0.1", settings.web.port)
    assert services.status(settings) == {"postgres": "stopped", "s3": "stopped", "web": "stopped"}
    services.up(settings)
    with postgres.connect(settings) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
