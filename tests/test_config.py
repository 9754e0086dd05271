"""Configuration: embedded defaults, and real services by configuration only."""

from pathlib import Path

from tally import config


def test_defaults_point_at_the_embedded_services(tmp_path):
    settings = config.load({"TALLY_HOME": str(tmp_path)})
    assert settings.pg.embedded and settings.s3.embedded
    assert (settings.pg.host, settings.pg.port) == ("127.0.0.1", 54329)
    assert settings.s3.endpoint == "http://127.0.0.1:18333"
    assert (settings.s3.raw_bucket, settings.s3.quarantine_bucket,
            settings.s3.published_bucket) == ("tally-raw", "tally-quarantine", "tally-published")
    assert settings.home == tmp_path and settings.inbox_dir == tmp_path / "inbox"


def test_real_services_by_dsn_and_endpoint():
    settings = config.load({
        "TALLY_PG_DSN": "postgresql://etl:p%40ss@db.internal:6432/ledger",
        "TALLY_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com",
        "TALLY_S3_ACCESS_KEY": "AKIAEXAMPLE", "TALLY_S3_SECRET_KEY": "secret",
        "TALLY_S3_REGION": "eu-west-1", "TALLY_BUCKET_RAW": "acme-recon-raw",
    })
    pg = settings.pg
    assert (pg.host, pg.port, pg.user, pg.password, pg.database, pg.embedded) == (
        "db.internal", 6432, "etl", "p@ss", "ledger", False)
    assert settings.s3.endpoint == "https://s3.eu-west-1.amazonaws.com"
    assert (settings.s3.region, settings.s3.raw_bucket, settings.s3.embedded) == (
        "eu-west-1", "acme-recon-raw", False)
    assert settings.dbt_env()["TALLY_DBT_HOST"] == "db.internal"


def test_airflow_connections_in_uri_form():
    settings = config.load({
        "AIRFLOW_CONN_TALLY_WAREHOUSE": "postgresql://tally:pw@postgres:5432/tally",
        "AIRFLOW_CONN_TALLY_S3": "aws://KEY:SEC%2FRET@/?endpoint_url=http%3A%2F%2Fs3%3A8333"
                                 "&region_name=us-east-1",
    })
    assert (settings.pg.host, settings.pg.database, settings.pg.password) == (
        "postgres", "tally", "pw")
    assert (settings.s3.endpoint, settings.s3.access_key, settings.s3.secret_key) == (
        "http://s3:8333", "KEY", "SEC/RET")


def test_child_processes_get_telemetry_off_and_the_same_home(tmp_path):
    settings = config.load({"TALLY_HOME": str(tmp_path), "PATH": "/usr/bin"})
    env = settings.child_env()
    for name, value in config.TELEMETRY_OFF.items():
        assert env[name] == value
    assert Path(env["TALLY_HOME"]) == tmp_path


def test_only_config_reads_the_environment():
    """Nor writes it: a value put there for a library (GX's datasource URL) would be read
    back by whoever comes next; settings are handed over explicitly instead."""
    package = Path(config.__file__).parent
    touching = ("os.environ[", "os.environ.get", "os.getenv", "os.environ.update",
                "os.environ.setdefault", "os.environ.pop", "os.putenv", "from os import environ")
    readers = sorted(
        str(path.relative_to(package)) for path in package.rglob("*.py")
        if path.name != "config.py" and any(s in path.read_text() for s in touching)
    )
    assert readers == []
