"""Run dbt on the warehouse outside Airflow (tests, benchmarks, one-off rebuilds).

In the daily DAG, Cosmos runs the same project model by model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tally.config import Settings


class DbtFailed(RuntimeError):
    pass


def dbt(settings: Settings, *args: str, project_dir: Path | None = None) -> str:
    project = project_dir or settings.dbt_project_dir
    env = settings.child_env()
    env.update(settings.dbt_env())
    cmd = [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(project),
           "--profiles-dir", str(project), "--target-path", str(settings.home / "dbt-target"),
           "--log-path", str(settings.home / "dbt-logs")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise DbtFailed(f"dbt {args[0]} failed:\n{result.stdout[-4000:]}")
    return result.stdout


# The models' unit tests check the SQL, not the day's data: `make test` runs them once
# (unit_tests below); a daily build leaves them out, as the DAG does.
DAILY_EXCLUDE = "test_type:unit"


def build(settings: Settings, as_of, project_dir: Path | None = None) -> str:
    """Build every model for one business date (var as_of), with the rules in force, and run
    the data tests on what it built."""
    from tally import recon

    variables = json.dumps(recon.dbt_vars(settings, as_of))
    return dbt(settings, "build", "--vars", variables, "--exclude", DAILY_EXCLUDE,
               project_dir=project_dir)


def unit_tests(settings: Settings, as_of, project_dir: Path | None = None) -> str:
    """The models' unit tests (fixed inputs, expected outputs). dbt reads the column types of
    a model's inputs from the warehouse, so the models must have been built once."""
    from tally import recon

    variables = json.dumps(recon.dbt_vars(settings, as_of))
    return dbt(settings, "test", "--vars", variables, "--select", "test_type:unit",
               project_dir=project_dir)
