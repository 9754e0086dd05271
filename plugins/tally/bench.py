"""Benchmark: each stage of the pipeline on a generated day, on its own embedded services.

`tally bench --rows N` starts a separate PostgreSQL and S3 (under TALLY_HOME/bench, other
ports), wipes them, generates a day of N platform transactions and times: generate, parse,
land (S3 + manifest), load (parse + COPY), dbt build and the gate. Figures are wall seconds and
rows per second; peak memory is this process's maximum resident set.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import time
from datetime import date
from pathlib import Path

from tally import config

BENCH_DATE = date(2026, 11, 20)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_settings(base: config.Settings) -> config.Settings:
    home = base.home / "bench"
    env = {**base.env, "TALLY_HOME": str(home),
           "TALLY_PG_PORT": str(base.pg.port + 20), "TALLY_S3_PORT": str(base.s3.port + 20)}
    for name in ("TALLY_PG_DSN", "TALLY_S3_ENDPOINT", "AIRFLOW_CONN_TALLY_WAREHOUSE",
                 "AIRFLOW_CONN_TALLY_S3", "TALLY_INBOX"):
        env.pop(name, None)
    return config.load(env)


def run(rows: int, with_dbt: bool = True) -> dict:
    from tally import formats, gate, generate, pipeline, services, sources, transform

    settings = _bench_settings(config.load())
    services.down(settings)
    for part in ("pg", "s3", "inbox", "run"):
        shutil.rmtree(settings.home / part, ignore_errors=True)
    settings = services.up(settings)
    stages = {}

    def timed(name: str, fn, count: int | None = None):
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        stages[name] = {"seconds": round(seconds, 2),
                        "rows_per_second": round(count / seconds) if count else None,
                        "peak_rss_mib": round(_peak_mib())}
        return result

    day = timed("generate", lambda: generate.generate_day(BENCH_DATE, rows, settings.inbox_dir),
                rows)
    file_rows = json.loads(day.labels.read_text())["rows"]
    loaded_rows = sum(n for name, n in file_rows.items() if not name.endswith("_bill"))
    configs = sources.load_all(settings)

    def parse_all():
        for key, path in day.files.items():
            formats.parse(path.read_bytes(), configs[key.split(":")[0]], path.name)
    timed("parse", parse_all, loaded_rows)
    timed("land", lambda: pipeline.land_day(settings, BENCH_DATE), loaded_rows)
    timed("load (parse + COPY)", lambda: pipeline.load_day(settings, BENCH_DATE), loaded_rows)
    if with_dbt:
        timed("dbt build", lambda: transform.build(settings, BENCH_DATE), loaded_rows)
        verdict = timed("gate", lambda: gate.run(settings, BENCH_DATE), loaded_rows)
        stages["gate"]["passed"] = verdict.passed
    services.down(settings)
    return {
        "rows": rows, "rows_loaded": loaded_rows, "stages": stages,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                        / 2**30, 1)},
    }


def table(result: dict) -> str:
    lines = [f"{result['rows']:,} platform transactions ({result['rows_loaded']:,} rows loaded "
             f"across all files), {result['machine']['cores']} cores",
             "| stage | seconds | rows/s | peak RSS MiB |", "| --- | ---: | ---: | ---: |"]
    for name, s in result["stages"].items():
        rate = f"{s['rows_per_second']:,}" if s["rows_per_second"] else ""
        lines.append(f"| {name} | {s['seconds']} | {rate} | {s['peak_rss_mib']} |")
    return "\n".join(lines)


def write(result: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
