"""A local Airflow home for running the DAGs with `airflow dags test` (SQLite metadata).

The package never imports Airflow: it only prepares the environment and runs its CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from tally.config import Settings

DAG_ID = "tally_daily"


def environment(settings: Settings) -> dict[str, str]:
    home = settings.airflow_home
    env = settings.child_env()
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_dir / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_dir / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
    })
    return env


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def prepare_home(settings: Settings) -> None:
    """Create the Airflow home and its metadata database once."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".migrated"
    if marker.exists():
        return
    subprocess.run([_airflow(), "db", "migrate"], env=environment(settings), check=True,
                   stdout=subprocess.DEVNULL)
    marker.write_text("ok\n")


def dags_test(settings: Settings, business_date: date, log_file: Path | None = None,
              dag_id: str = DAG_ID, conf: dict | None = None) -> int:
    """Run the DAG once for the business date, in this process's environment. Returns the exit
    code of `airflow dags test`; the outcome of the day is read from tally.runs by the caller.
    `conf` adds run parameters (sources, dry_run)."""
    prepare_home(settings)
    cmd = [_airflow(), "dags", "test", dag_id, business_date.isoformat(),
           "--conf", json.dumps({"business_date": business_date.isoformat(), **(conf or {})})]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "wb") as out:
            return subprocess.run(cmd, env=environment(settings), stdout=out,
                                  stderr=subprocess.STDOUT).returncode
    return subprocess.run(cmd, env=environment(settings)).returncode
