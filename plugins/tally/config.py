"""Settings for every part of Tally. This is the only module that reads the environment.

Defaults point at the embedded services (`tally services up`): a PostgreSQL cluster and a
SeaweedFS S3 server under TALLY_HOME, bound to 127.0.0.1. Pointing Tally at real services is
configuration only: set TALLY_PG_DSN and TALLY_S3_ENDPOINT (or the Airflow connections
AIRFLOW_CONN_TALLY_WAREHOUSE and AIRFLOW_CONN_TALLY_S3, which use the same URI form).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent

# Finance data never leaves the machine: every library's phone-home is off before it loads.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "SCARF_ANALYTICS": "false",
}


def disable_telemetry() -> None:
    for name, value in TELEMETRY_OFF.items():
        os.environ[name] = value


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # out of every repr: logs, tracebacks that show locals
    database: str
    embedded: bool

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={self.database}"
        )

    @property
    def sqlalchemy_url(self) -> str:
        from urllib.parse import quote

        return (
            f"postgresql+psycopg://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{self.database}"
        )


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str
    raw_bucket: str
    quarantine_bucket: str
    published_bucket: str
    embedded: bool
    port: int


@dataclass(frozen=True)
class WebSettings:
    """The finance workbench (`tally web`): where it listens and the key its session cookies
    are signed with (TALLY_WEB_SECRET, else generated once into TALLY_HOME/secrets.json)."""
    host: str
    port: int
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    home: Path
    pg: PostgresSettings
    s3: S3Settings
    inbox_dir: Path
    inbox_bucket: str | None  # an S3 file drop (<prefix><source>/<date>/<file>), if set
    inbox_prefix: str
    dbt_project_dir: Path
    expectations_dir: Path
    include_dir: Path
    timezone: str
    web: WebSettings
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    @property
    def load_workers(self) -> int:
        """Processes that load a day's files at once (TALLY_LOAD_WORKERS; default: the
        machine's cores, at most 4)."""
        return max(1, int(self.env.get("TALLY_LOAD_WORKERS") or min(os.cpu_count() or 1, 4)))

    @property
    def workbook_rows(self) -> int:
        """Rows at most on the workbook's item sheets (breaks, suspense) and in its batch
        table (TALLY_WORKBOOK_ROWS, default 10,000); the extracts hold every row."""
        return max(1, int(self.env.get("TALLY_WORKBOOK_ROWS") or 10_000))

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    def secret(self, name: str) -> str:
        """A connector credential, named in include/pulls.yaml, from TALLY_SECRET_<NAME>."""
        variable = f"TALLY_SECRET_{name.upper()}"
        if not self.env.get(variable):
            raise KeyError(f"{variable} is not set")
        return self.env[variable]

    def child_env(self) -> dict[str, str]:
        """Environment for a child process (airflow, dbt) that must see these same settings."""
        child = dict(self.env)
        # Airflow prints every frame's local variables (credentials among them) with a task's
        # traceback when DEV is set.
        child.pop("DEV", None)
        child.update(TELEMETRY_OFF)
        child.update(
            {
                "TALLY_HOME": str(self.home),
                "TALLY_PROJECT_DIR": str(self.project_dir),
                "TALLY_DBT_PROJECT_DIR": str(self.dbt_project_dir),
                "TALLY_INBOX": str(self.inbox_dir),
                "TALLY_PG_PORT": str(self.pg.port),
                "TALLY_S3_PORT": str(self.s3.port),
                "TALLY_WEB_PORT": str(self.web.port),
            }
        )
        return child

    def dbt_env(self) -> dict[str, str]:
        """Variables that dbt_project/profiles.yml reads."""
        return {
            **TELEMETRY_OFF,
            "TALLY_DBT_HOST": self.pg.host,
            "TALLY_DBT_PORT": str(self.pg.port),
            "TALLY_DBT_USER": self.pg.user,
            "TALLY_DBT_PASSWORD": self.pg.password,
            "TALLY_DBT_DATABASE": self.pg.database,
        }


def _default_project_dir() -> Path:
    # plugins/tally/config.py -> project root
    return PACKAGE_DIR.parent.parent


def _read_secrets(path: Path) -> dict[str, str]:
    if path.exists():
        return json.loads(path.read_text())
    return {}


def _postgres(env: dict[str, str], secrets: dict[str, str]) -> PostgresSettings:
    uri = env.get("TALLY_PG_DSN") or env.get("AIRFLOW_CONN_TALLY_WAREHOUSE")
    if uri:
        parts = urlsplit(uri)
        return PostgresSettings(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "tally"),
            password=unquote(parts.password or ""),
            database=(parts.path or "/tally").lstrip("/") or "tally",
            embedded=False,
        )
    return PostgresSettings(
        host="127.0.0.1",
        port=int(env.get("TALLY_PG_PORT", "54329")),
        user="tally",
        password=secrets.get("pg_password", ""),
        database="tally",
        embedded=True,
    )


def _s3(env: dict[str, str], secrets: dict[str, str]) -> S3Settings:
    port = int(env.get("TALLY_S3_PORT", "18333"))
    buckets = {
        "raw_bucket": env.get("TALLY_BUCKET_RAW", "tally-raw"),
        "quarantine_bucket": env.get("TALLY_BUCKET_QUARANTINE", "tally-quarantine"),
        "published_bucket": env.get("TALLY_BUCKET_PUBLISHED", "tally-published"),
    }
    region = env.get("TALLY_S3_REGION", "us-east-1")
    if env.get("TALLY_S3_ENDPOINT"):
        return S3Settings(
            endpoint=env["TALLY_S3_ENDPOINT"],
            access_key=env.get("TALLY_S3_ACCESS_KEY", ""),
            secret_key=env.get("TALLY_S3_SECRET_KEY", ""),
            region=region,
            embedded=False,
            port=port,
            **buckets,
        )
    if env.get("AIRFLOW_CONN_TALLY_S3"):
        # aws://KEY:SECRET@/?endpoint_url=http://host:port&region_name=...
        parts = urlsplit(env["AIRFLOW_CONN_TALLY_S3"])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return S3Settings(
            endpoint=query.get("endpoint_url", ""),
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            region=query.get("region_name", region),
            embedded=False,
            port=port,
            **buckets,
        )
    return S3Settings(
        endpoint=f"http://127.0.0.1:{port}",
        access_key=secrets.get("s3_access_key", ""),
        secret_key=secrets.get("s3_secret_key", ""),
        region=region,
        embedded=True,
        port=port,
        **buckets,
    )


def load(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    project_dir = Path(env.get("TALLY_PROJECT_DIR", _default_project_dir())).resolve()
    home = Path(env.get("TALLY_HOME", project_dir / ".tally")).resolve()
    secrets = _read_secrets(home / "secrets.json")
    return Settings(
        project_dir=project_dir,
        home=home,
        pg=_postgres(env, secrets),
        s3=_s3(env, secrets),
        inbox_dir=Path(env.get("TALLY_INBOX", home / "inbox")).resolve(),
        inbox_bucket=env.get("TALLY_INBOX_BUCKET") or None,
        inbox_prefix=env.get("TALLY_INBOX_PREFIX", "inbox/"),
        dbt_project_dir=Path(
            env.get("TALLY_DBT_PROJECT_DIR", project_dir / "dbt_project")).resolve(),
        expectations_dir=Path(
            env.get("TALLY_EXPECTATIONS_DIR", project_dir / "expectations")
        ).resolve(),
        include_dir=Path(env.get("TALLY_INCLUDE_DIR", project_dir / "include")).resolve(),
        timezone=env.get("TALLY_TIMEZONE", "Asia/Shanghai"),
        web=WebSettings(
            host=env.get("TALLY_WEB_HOST", "127.0.0.1"),
            port=int(env.get("TALLY_WEB_PORT", "18330")),
            secret_key=env.get("TALLY_WEB_SECRET") or secrets.get("web_secret", ""),
        ),
        env=env,
    )
